"""Numbers from a chapter's code into its prose, the same in the HTML book and in JupyterLab.

A chapter records each number once, in a hidden cell, with :func:`glue` (myst-nb's ``glue``, which also
remembers the value in this kernel), and its prose cites it with an inline expression::

    The network misclassifies {eval}`glued("C07_err:.1%")` of the adversarial digits.

The role's body is a Python call, so one source serves three readers:

* **The HTML book.**  The book's Sphinx extension (``book/_ext/glued_numbers.py``) reads
  ``glued("NAME:FORMAT")`` as myst-nb's ``{glue:text}`NAME:FORMAT``` and pastes the glued output.
* **JupyterLab, before running anything.**  jupyterlab-myst shows the result stored in the markdown
  cell's ``user_expressions`` metadata.  ``python -m advex.glue sync NOTEBOOK`` writes those results from
  the notebook's own glue outputs (``check`` reports stale ones); :func:`format_glued` formats them
  exactly as myst-nb's text role does, so both views show the same characters.
* **JupyterLab, after running the chapter.**  Running a markdown cell asks the kernel to evaluate
  ``glued(...)``, which formats the value this run glued: the reader sees their own numbers.

``NAME:FORMAT`` follows myst-nb: the format spec (``.1%``, ``.2f``, ``,``, ``d`` …) is optional and is
applied after the value's ``text/plain`` is read back with :func:`ast.literal_eval`.  Values glued as
``IPython.display.Markdown`` are pasted as their markdown text.  ``DOC::NAME`` cites a value another chapter
glued (``glued("/chapters/02_linear_models_on_mnist.ipynb::C26_slope:.2f")``, DOC from the book's root): it is
read from that notebook's stored outputs, in the kernel as in ``sync``.
"""
from __future__ import annotations

import argparse
import ast
import json
import re
import sys
from pathlib import Path
from typing import Any

__all__ = ["glue", "glue_rate", "glued", "format_glued", "glue_outputs", "expression_results", "sync_notebook", "stale_expressions"]

#: Values glued in this kernel, by name (what :func:`glued` formats).
_GLUED: dict[str, Any] = {}

#: The expression itself, glued("NAME:FORMAT"); group 1 is NAME:FORMAT (the book's Sphinx role reads it too).
GLUED_CALL = re.compile(r'glued\("([^"`]+)"\)')
#: An inline expression in the prose, {eval}`glued("NAME:FORMAT")`: groups are the expression and NAME:FORMAT.
GLUED_ROLE = re.compile(r"\{eval\}`(" + GLUED_CALL.pattern + r")`")

_RECORD = "application/papermill.record/"


class GluedText(str):
    """A formatted number whose ``repr`` is itself, so the kernel shows 89.1%, not '89.1%'."""

    def __repr__(self) -> str:
        return str(self)


def split_reference(reference: str) -> tuple[str, str]:
    """``"NAME:FORMAT"`` -> ``(NAME, FORMAT)``; FORMAT is ``""`` when absent (myst-nb's rule)."""
    if not isinstance(reference, str) or not reference.strip():
        raise ValueError(f"reference must be a non-empty string 'NAME' or 'NAME:FORMAT', got {reference!r}")
    name, _, fmt = reference.rpartition(":") if ":" in reference else (reference, "", "")
    if not name:
        raise ValueError(f"reference {reference!r} has an empty NAME; expected 'NAME' or 'NAME:FORMAT'")
    return name, fmt


def format_glued(text_plain: str, fmt: str) -> str:
    """Format a glued ``text/plain`` value as myst-nb's ``{glue:text}`` role does.

    The text is read back with :func:`ast.literal_eval` (so ``'cpu'`` loses its quotes and ``0.891``
    becomes a float); a format spec whose type character is an integer or float type converts first.
    """
    try:
        value = ast.literal_eval(text_plain)
    except (SyntaxError, ValueError):
        value = text_plain
    if fmt == "":
        return str(value)
    kind = fmt[-1]
    if kind == "s":
        value = str(value)
    elif kind in "bcdoxX":
        value = int(value)
    elif kind in "eEfFgGn%":
        value = float(value)
    return format(value, fmt)


def _mime_bundle(value: Any) -> dict[str, str]:
    """The display data myst-nb's glue stores for ``value`` (IPython's formatters)."""
    from IPython.core.formatters import format_display_data

    bundle, _ = format_display_data(value)
    return bundle


def _text_of(bundle: dict[str, str], fmt: str, name: str) -> str:
    if "text/markdown" in bundle and not fmt:
        return bundle["text/markdown"]
    if "text/plain" not in bundle:
        raise ValueError(f"glued value {name!r} has no text/plain form to format")
    return format_glued(bundle["text/plain"], fmt)


def book_root(start: str | Path | None = None) -> Path:
    """The book's root folder (the one holding ``_toc.yml``), searched upwards from ``start`` (default: cwd)."""
    start = Path(start or Path.cwd()).resolve()
    for folder in (start, *start.parents):
        if (folder / "_toc.yml").is_file():
            return folder
    raise FileNotFoundError(f"no _toc.yml in {start} or above: cross-chapter references (DOC::NAME) "
                            "need the book's repository")


def _other_chapter_bundle(reference: str, root: Path) -> dict[str, str]:
    """The glue output that ``DOC::NAME`` cites, stored in the notebook DOC (a path from the book's root)."""
    doc, name = reference.split("::", 1)
    path = root / doc.lstrip("/")
    if not path.is_file():
        raise FileNotFoundError(f"DOC {doc!r} names no notebook under {root}")
    outputs = glue_outputs(json.loads(path.read_text(encoding="utf-8")))
    if name not in outputs:
        raise KeyError(f"{doc} stores no glue output named {name!r}; execute it first")
    return outputs[name]


def glue(name: str, variable: Any, display: bool = True) -> None:
    """myst-nb's :func:`myst_nb.glue`, also remembering ``variable`` for :func:`glued` in this kernel."""
    if not isinstance(name, str) or not name or ":" in name or '"' in name:
        raise ValueError(f"name must be a non-empty string without ':' or '\"', got {name!r}")
    try:
        from myst_nb import glue as myst_glue
    except ImportError as error:
        raise ImportError("advex.glue.glue needs myst-nb: pip install 'advex[book]' (or myst-nb)") from error

    if hasattr(variable, "item") and getattr(variable, "shape", None) == ():
        variable = variable.item()   # a numpy or torch scalar: glue the number, not "np.float64(...)"
    _GLUED[name] = variable
    myst_glue(name, variable, display=display)


def glue_rate(name: str, rate, display: bool = False) -> None:
    """Glue a measured rate with its uncertainty: ``name`` (the rate, a float), ``name_n`` (its n),
    ``name_low`` / ``name_high`` (the 95% interval's ends) and ``name_ci`` ('95% CI 70.1–78.3%, n = 500').

    ``rate`` is an :class:`advex.intervals.Proportion` (from :func:`advex.intervals.proportion`).  Cite it as
    ``{eval}`glued("name:.1%")` ({eval}`glued("name_ci")`)``.
    """
    from .intervals import Proportion

    if not isinstance(rate, Proportion):
        raise ValueError(f"rate must be an advex.intervals.Proportion (see advex.intervals.proportion), got {rate!r}")
    glue(name, rate.rate, display=display)
    glue(f"{name}_n", rate.n, display=display)
    glue(f"{name}_low", rate.low, display=display)
    glue(f"{name}_high", rate.high, display=display)
    glue(f"{name}_ci", rate.interval_text(), display=display)


def glued(reference: str) -> GluedText:
    """The value glued as NAME in this kernel, formatted by FORMAT: ``glued("C07_err:.1%")``."""
    name, fmt = split_reference(reference)
    if "::" in name:
        return GluedText(_text_of(_other_chapter_bundle(name, book_root()), fmt, name))
    if name not in _GLUED:
        known = ", ".join(sorted(_GLUED)) or "none yet"
        raise KeyError(f"nothing is glued as {name!r} in this kernel (run the cell that glues it first); "
                       f"glued so far: {known}")
    return GluedText(_text_of(_mime_bundle(_GLUED[name]), fmt, name))


def glue_outputs(notebook: dict) -> dict[str, dict[str, str]]:
    """Every glued value stored in a notebook's outputs: name -> its mime bundle."""
    found = {}
    for cell in notebook["cells"]:
        for output in cell.get("outputs", []) if cell["cell_type"] == "code" else []:
            name = output.get("metadata", {}).get("scrapbook", {}).get("name")
            if name is not None:
                found[name] = {k.removeprefix(_RECORD): "".join(v) if isinstance(v, list) else v
                               for k, v in output.get("data", {}).items()}
    return found


def expression_results(notebook: dict, root: Path | None = None) -> list[list[dict] | None]:
    """For each cell, the ``user_expressions`` jupyterlab-myst shows (None for cells without any).

    Each entry is ``{"expression": 'glued("NAME:FORMAT")', "result": {"status": "ok", "data":
    {"text/plain": TEXT}, "metadata": {}}}``, TEXT formatted from the notebook's stored glue output
    (for DOC::NAME, from DOC's, under the book's ``root``).
    """
    outputs = glue_outputs(notebook)
    results = []
    for index, cell in enumerate(notebook["cells"]):
        source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        found = GLUED_ROLE.findall(source) if cell["cell_type"] == "markdown" else []
        if not found:
            results.append(None)
            continue
        entries = []
        for expression, reference in dict.fromkeys(found):
            name, fmt = split_reference(reference)
            if "::" in name:
                bundle = _other_chapter_bundle(name, root or book_root())
            elif name in outputs:
                bundle = outputs[name]
            else:
                raise KeyError(f"cell {index} cites {expression} but the notebook stores no glue output "
                               f"named {name!r}; execute the notebook first")
            entries.append({"expression": expression, "result": {
                "status": "ok", "data": {"text/plain": _text_of(bundle, fmt, name)}, "metadata": {}}})
        results.append(entries)
    return results


def stale_expressions(notebook: dict, root: Path | None = None) -> list[str]:
    """Cells whose stored ``user_expressions`` differ from what the glue outputs give (empty: in sync)."""
    problems = []
    for index, (cell, wanted) in enumerate(zip(notebook["cells"], expression_results(notebook, root))):
        stored = cell.get("metadata", {}).get("user_expressions")
        if stored != wanted:
            problems.append(f"cell {index}: stored user_expressions {stored!r} != {wanted!r}")
    return problems


def sync_notebook(path: str | Path) -> int:
    """Write each markdown cell's ``user_expressions`` from the notebook's glue outputs; returns cells changed."""
    path = Path(path)
    notebook = json.loads(path.read_text(encoding="utf-8"))
    changed = 0
    for cell, wanted in zip(notebook["cells"], expression_results(notebook, book_root(path.parent))):
        metadata = cell.setdefault("metadata", {})
        if metadata.get("user_expressions") == wanted:
            continue
        changed += 1
        if wanted is None:
            del metadata["user_expressions"]
        else:
            metadata["user_expressions"] = wanted
    if changed:
        # the layout nbformat writes, so a sync changes only the metadata lines
        path.write_text(json.dumps(notebook, indent=1, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m advex.glue", description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=["sync", "check"],
                        help="sync: write user_expressions from the glue outputs; check: report stale ones")
    parser.add_argument("notebooks", nargs="+", type=Path)
    args = parser.parse_args(argv)
    status = 0
    for path in args.notebooks:
        if args.command == "sync":
            print(f"{path}: {sync_notebook(path)} cell(s) updated")
        else:
            problems = stale_expressions(json.loads(path.read_text(encoding="utf-8")), book_root(path.parent))
            for problem in problems:
                print(f"{path}: {problem}")
            status |= bool(problems)
    return status


if __name__ == "__main__":
    sys.exit(main())
