"""The rules the assignments state, checked on a submission's syntax tree (not its text).

A student writes code in the solution cells and in any cell they add; the grader restores the locked cells
(setup and tests) but runs the student's cells as written, unsandboxed, in the same kernel as the tests. A
text search is beaten by an alias (``import advex.attacks as a``) or a re-export (``advex.defences.certify``),
so the check walks the syntax tree of every student cell and flags:

* any use of the book's package ``advex`` (an import, or the name ``advex`` the setup cell bound): students
  write the attacks and the certificate themselves, and every reference the hidden tests compare against
  lives there, including the top-level re-exports ``advex.fgsm``, ``advex.pgd``, ``advex.robust_accuracy``;
* the defences' ready-made attack helpers (``attack_surrogate``, ``StraightThrough``,
  ``ExpectationOverTransform``), whatever object they are reached through;
* ways to reach the kernel or the interpreter's machinery: ``get_ipython``, IPython, ``sys`` (``sys.modules``,
  trace and exception hooks), ``builtins``, ``importlib``, ``inspect``, ``gc``, ``ctypes``, ``exec``/``eval``/
  ``compile``/``__import__``, ``globals()``/``locals()``/``vars()``, ``setattr``/``delattr``, dunder attributes
  such as ``__class__`` or ``__globals__`` (input transformers and event hooks are registered through these);
* assignments to an attribute of a module (``torch.allclose = ...``, ``F.cross_entropy = ...``);
* rebinding a name that a locked cell defined (the setup's data, models and helpers the tests rely on).

A flagged cell is not run by the grader (see ``preprocessors.SubmissionCheck``): its source is replaced by a
``raise`` that names the rule, so the submission scores what its other cells earn, never more.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass

FORBIDDEN_MODULES = {"advex", "sys", "builtins", "importlib", "inspect", "gc", "ctypes", "IPython", "ipykernel",
                     "traitlets", "atexit", "signal", "subprocess", "threading", "multiprocessing", "os", "nbformat",
                     "nbclient", "nbgrader", "pickle", "marshal", "types", "code", "codeop", "runpy", "pytest",
                     "unittest"}
FORBIDDEN_NAMES = {"advex", "get_ipython", "exec", "eval", "compile", "__import__", "globals", "locals", "vars",
                   "setattr", "delattr", "breakpoint", "__builtins__", "StraightThrough", "ExpectationOverTransform",
                   "attack_surrogate", "In", "Out", "_ih", "_oh", "exit", "quit", "sys", "os", "inspect",
                   "builtins", "importlib", "gc"}
FORBIDDEN_ATTRIBUTES = {"attack_surrogate", "StraightThrough", "ExpectationOverTransform", "get_ipython",
                        "input_transformers_cleanup", "input_transformers_post", "events", "register",
                        "set_custom_exc", "run_cell", "ast_transformers"}
# dunder attributes a class definition needs; every other one is a way into the interpreter's internals
ALLOWED_DUNDERS = {"__init__", "__call__", "__name__", "__doc__", "__len__", "__repr__", "__str__"}
# modules a solution reaches through the names the setup cell imported; assigning to their attributes monkey-patches
MODULE_NAMES = {"torch", "F", "nn", "np", "numpy", "math", "scipy", "beta", "norm", "functools", "copy",
                "hashlib", "toy", "random", "itertools", "partial"}


@dataclass(frozen=True)
class Violation:
    """One rule a cell breaks: the line (in the cell) and what is wrong, in words for the student."""

    line: int
    rule: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.rule}"


def _root_name(node: ast.AST) -> str | None:
    while isinstance(node, (ast.Attribute, ast.Subscript, ast.Call)):
        node = node.func if isinstance(node, ast.Call) else node.value
    return node.id if isinstance(node, ast.Name) else None


def _bound_names(target: ast.AST) -> list[str]:
    if isinstance(target, ast.Name):
        return [target.id]
    if isinstance(target, (ast.Tuple, ast.List)):
        return [name for element in target.elts for name in _bound_names(element)]
    if isinstance(target, ast.Starred):
        return _bound_names(target.value)
    return []


def import_signatures(source: str) -> set[tuple]:
    """(module, name, bound-as) of every import in a cell: re-running one of the setup's own imports is harmless."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set()
    signatures = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            signatures |= {("", a.name, a.asname or a.name.split(".")[0]) for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            signatures |= {(node.module or "", a.name, a.asname or a.name) for a in node.names}
    return signatures


def top_level_names(source: str, skip_imports: set[tuple] = frozenset()) -> set[str]:
    """The names a cell binds at module level (functions, classes, assignments, imports)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set()
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                names.update(_bound_names(target))
        elif isinstance(node, (ast.AnnAssign, ast.AugAssign)):
            names.update(_bound_names(node.target))
        elif isinstance(node, ast.Import):
            names.update(bound for _, _, bound in import_signatures(ast.unparse(node)) - set(skip_imports))
        elif isinstance(node, ast.ImportFrom):
            names.update(bound for _, _, bound in import_signatures(ast.unparse(node)) - set(skip_imports))
    return names


def strip_magics(source: str) -> str:
    """The cell with IPython's line magics and shell escapes turned into a call the check flags."""
    lines = []
    for line in source.splitlines():
        stripped = line.lstrip()
        if stripped.startswith(("%", "!")):
            indent = line[: len(line) - len(stripped)]
            lines.append(f"{indent}get_ipython()  # {stripped[:40]}")
        else:
            lines.append(line)
    return "\n".join(lines)


def check_cell(source: str, protected: set[str] = frozenset(), setup_imports: set[tuple] = frozenset()) -> list[Violation]:
    """The rules ``source`` (a student's code cell) breaks; ``protected``: names the locked cells bound;
    ``setup_imports``: the locked cells' own imports, which a student cell may repeat."""
    try:
        tree = ast.parse(strip_magics(source))
    except SyntaxError:
        return []          # the kernel reports it when the cell runs; nothing in it can run
    found: list[Violation] = []

    def flag(node: ast.AST, rule: str) -> None:
        found.append(Violation(getattr(node, "lineno", 0), rule))

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in FORBIDDEN_MODULES:
                    flag(node, f"imports {alias.name}: the assignment asks you to write this yourself with torch, "
                               f"and a submission may not reach the kernel or the book's package")
        elif isinstance(node, ast.ImportFrom):
            module = (node.module or "").split(".")[0]
            if node.level == 0 and module in FORBIDDEN_MODULES:
                flag(node, f"imports from {node.module}: write it yourself with torch")
            for alias in node.names:
                if alias.name in FORBIDDEN_NAMES or alias.name in FORBIDDEN_ATTRIBUTES:
                    flag(node, f"imports {alias.name}, which the assignment asks you not to use")
        elif isinstance(node, ast.Name) and node.id in FORBIDDEN_NAMES:
            flag(node, f"uses {node.id}, which a submission may not use (the book's package, the kernel, "
                       f"or dynamic code)")
        elif isinstance(node, ast.Attribute):
            if node.attr in FORBIDDEN_ATTRIBUTES:
                flag(node, f"uses .{node.attr}, which the assignment asks you not to use")
            elif node.attr.startswith("__") and node.attr.endswith("__") and node.attr not in ALLOWED_DUNDERS:
                flag(node, f"uses the interpreter attribute .{node.attr}")
            if isinstance(node.ctx, (ast.Store, ast.Del)) and _root_name(node) in MODULE_NAMES:
                flag(node, f"assigns to {_root_name(node)}.{node.attr}: a submission may not change a library")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "getattr":
            if len(node.args) < 2 or not isinstance(node.args[1], ast.Constant) or \
                    node.args[1].value in FORBIDDEN_ATTRIBUTES or str(node.args[1].value).startswith("__"):
                flag(node, "getattr with a computed or forbidden attribute name")
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            taken = sorted(set(node.names) & set(protected))
            if taken:
                flag(node, f"declares {', '.join(taken)} global to rebind what the setup cell defined")
        elif isinstance(node, (ast.Subscript,)) and isinstance(node.ctx, (ast.Store, ast.Del)) and \
                _root_name(node) in MODULE_NAMES | {"advex"}:
            flag(node, f"assigns into {_root_name(node)}: a submission may not change a library")
    for name in sorted(top_level_names(strip_magics(source), setup_imports) & set(protected)):
        line = next((n.lineno for n in tree.body if name in top_level_names(ast.unparse(n), setup_imports)), 0)
        found.append(Violation(line, f"redefines {name}, which a locked cell defined (the tests rely on it)"))
    for node in tree.body:
        if isinstance(node, ast.Delete):
            for target in node.targets:
                for name in set(_bound_names(target)) & set(protected):
                    found.append(Violation(node.lineno, f"deletes {name}, which a locked cell defined"))
    return sorted(set(found), key=lambda v: (v.line, v.rule))


def _nbgrader(cell: dict) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def locked_ids(source_notebook: dict) -> set[str]:
    """grade_ids of the source notebook's cells that the grader restores (locked or grade cells)."""
    return {_nbgrader(c)["grade_id"] for c in source_notebook["cells"]
            if _nbgrader(c).get("grade_id") and (_nbgrader(c).get("locked") or _nbgrader(c).get("grade"))}


def protected_names(source_notebook: dict) -> set[str]:
    """Names the locked cells that are not tests (setup, models, helpers) bind: no student cell may rebind them."""
    names: set[str] = set()
    for cell in source_notebook["cells"]:
        meta = _nbgrader(cell)
        if cell["cell_type"] == "code" and meta.get("locked") and not meta.get("grade"):
            names |= top_level_names("".join(cell["source"]))
    return names


def check_notebook(submitted: dict, source_notebook: dict) -> dict[int, list[Violation]]:
    """{index of a student cell: its violations} for every code cell the grader does not restore."""
    restored = locked_ids(source_notebook)
    protected = protected_names(source_notebook)
    setup_imports = set().union(*[import_signatures("".join(c["source"])) for c in source_notebook["cells"]
                                  if c["cell_type"] == "code" and _nbgrader(c).get("locked")])
    report = {}
    for index, cell in enumerate(submitted["cells"]):
        if cell["cell_type"] != "code" or _nbgrader(cell).get("grade_id") in restored:
            continue
        violations = check_cell("".join(cell["source"]), protected, setup_imports)
        if violations:
            report[index] = violations
    return report


def refusal(violations: list[Violation]) -> str:
    """The code that replaces a flagged cell: it raises, naming what the cell did."""
    rules = "; ".join(str(v) for v in violations[:5])
    return ("# submission check: this cell was not run\n"
            f"raise RuntimeError({('submission check: this cell was not run, because it ' + rules)!r})\n")
