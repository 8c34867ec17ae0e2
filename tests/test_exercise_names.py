"""Every function an exercise or a solution names exists, in advex or in the chapter's own code.

An exercise that sends the reader to `logits_along_fgsm_direction` when the package calls it
`logits_along_direction` cannot be done as written.  For every chapter this test collects the text of each
exercise and solution (the ``{exercise}`` directive, the ``{solution}`` directive, and everything from
``{solution-start}`` to ``{solution-end}``, the executed solution code cells included) and checks:

* every dotted name ``advex.a.b`` resolves by import and attribute lookup;
* every ``from advex.x import a, b`` imports names that exist;
* in the prose, every backticked name (``name``, ``name(...)``, ``obj.name``) is a name the chapter's code
  defines (a function, class, variable or import), a name defined anywhere in advex's source (function, class,
  method, attribute, module), or a Python builtin.

Keyword arguments (``early_stop=True``) and literals are not names and are skipped.
"""
from __future__ import annotations

import ast
import builtins
import importlib
import json
import re
from functools import lru_cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "chapters").glob("[0-9][0-9]_*.ipynb"))
ADVEX_SOURCE = ROOT / "src" / "advex"

DOTTED_ADVEX = re.compile(r"\badvex(?:\.\w+)+")
FROM_IMPORT = re.compile(r"^[ \t]*from\s+(advex(?:\.\w+)*)\s+import\s+(?:\(([^)]*)\)|([\w ,]+))", re.M)
BACKTICKED = re.compile(r"(?<![`}])`([^`\n]+)`")
NAME = re.compile(r"^([A-Za-z_][\w.]*)(?:\(.*\))?$")


@lru_cache(maxsize=None)
def advex_names() -> frozenset[str]:
    """Every name advex's source defines: modules, functions, classes, methods, assigned attributes."""
    names = set()
    for path in ADVEX_SOURCE.rglob("*.py"):
        names.add(path.stem)
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                names.add(node.attr)
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                names.add(node.target.id)
    return frozenset(names)


def notebook_names(code: list[str]) -> set[str]:
    """Names the chapter's code cells define: functions, classes, variables, loop targets, imports."""
    return set(notebook_definitions(code)[0])


def notebook_definitions(code: list[str]) -> tuple[set[str], dict[str, str]]:
    """(names the code defines, {alias: module or module.attribute} for each import)."""
    names, imported = set(), {}
    for cell in code:
        try:
            tree = ast.parse(cell)
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
            elif isinstance(node, ast.Import):
                for a in node.names:
                    names.add((a.asname or a.name).split(".")[0])
                    imported[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
            elif isinstance(node, ast.ImportFrom) and node.module:
                for a in node.names:
                    names.add(a.asname or a.name)
                    imported[a.asname or a.name] = f"{node.module}.{a.name}"
            elif isinstance(node, ast.arg):
                names.add(node.arg)
    return names, imported


def resolves(dotted: str) -> bool:
    """Whether advex.a.b... exists: import the longest module prefix, then look up the attributes."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:]:
            if not hasattr(obj, attr):
                return False
            obj = getattr(obj, attr)
        return True
    return False


def exercises_and_solutions(path: Path) -> tuple[list[tuple[str, str]], list[str]]:
    """([(label, text of the exercise or solution, code cells included)], the code of every code cell)."""
    notebook = json.loads(path.read_text(encoding="utf-8"))
    blocks, code, inside, label = [], [], False, None
    current: list[str] = []
    for cell in notebook["cells"]:
        source = "".join(cell["source"])
        if cell["cell_type"] == "markdown":       # code shown, not run (e.g. a solution too slow for the build)
            code.extend(re.findall(r"^`{3,}python\n(.*?)^`{3,}", source, re.M | re.S))
        if cell["cell_type"] == "code":
            code.append(source)
            if inside:
                current.append(source)
            continue
        for match in re.finditer(r"^(`{3,}|:{3,})\{(exercise|solution)\}[^\n]*\n(.*?)^\1\s*$", source, re.M | re.S):
            blocks.append((f"{match.group(2)} in {path.stem}", match.group(3)))
        for line_block in re.split(r"(^`{3,}\{solution-(?:start|end)\}[^\n]*$)", source, flags=re.M):
            start = re.match(r"^`{3,}\{solution-start\}\s*(\S*)", line_block)
            if start:
                inside, label, current = True, start.group(1), []
            elif re.match(r"^`{3,}\{solution-end\}", line_block):
                if inside:
                    blocks.append((f"solution {label}", "\n".join(current)))
                inside = False
            elif inside:
                current.append(line_block)
    return blocks, code


def unknown_names(text: str, defined: set[str], imported: dict[str, str] | None = None) -> list[str]:
    unknown = []
    for dotted in DOTTED_ADVEX.findall(text):
        if not resolves(dotted):
            unknown.append(dotted)
    for module, in_parentheses, on_one_line in FROM_IMPORT.findall(text):
        for name in (n.strip() for n in (in_parentheses or on_one_line).replace("\n", " ").split(",")):
            if name and not resolves(f"{module}.{name.split(' as ')[0].strip()}"):
                unknown.append(f"{module}.{name}")
    prose = re.sub(r"^(`{3,})python.*?^\1", "", text, flags=re.M | re.S)      # code blocks: imports checked above
    for token in BACKTICKED.findall(prose):
        match = NAME.match(token.strip())
        if not match or "=" in token.split("(")[0]:
            continue
        name = match.group(1)
        if name.startswith("advex."):
            continue                                       # checked by resolves() above
        leaf = name.split(".")[-1]
        root = name.split(".")[0]
        if root in defined and name == root:
            continue
        if root in (imported or {}) and name != root:            # np.clip, toy.fit_loglog_slope: look it up
            if resolves(imported[root] + name[len(root):]):
                continue
            unknown.append(name)
            continue
        if leaf in defined or leaf in advex_names() or hasattr(builtins, leaf):
            continue
        unknown.append(name)
    return unknown


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_exercises_name_only_functions_that_exist(path):
    blocks, code = exercises_and_solutions(path)
    assert blocks, "no exercises found"
    defined, imported = notebook_definitions(code)
    problems = [f"{label}: {name}" for label, text in blocks for name in unknown_names(text, defined, imported)]
    assert not problems, "exercises or solutions name functions that do not exist:\n" + "\n".join(problems)


def test_catches_a_function_that_does_not_exist():
    text = ("Repeat it with `logits_along_fgsm_direction` and `r_squared(x, y)`, or with advex.theory.nothing_here.\n"
            "```python\nfrom advex.attacks import fgsm, no_such_attack\n```")
    assert unknown_names(text, {"x_curve"}) == ["advex.theory.nothing_here", "advex.attacks.no_such_attack",
                                                "logits_along_fgsm_direction", "r_squared"]


def test_accepts_advex_functions_notebook_names_and_keywords():
    text = ("Use `logits_along_direction`, `advex.attacks.pgd`, `x_curve`, `early_stop=True`, `Frame` and "
            "`gaussian_rubbish(...)`, and `len`.\n```python\nfrom advex.attacks import fgsm\n```")
    assert unknown_names(text, {"x_curve"}) == []
