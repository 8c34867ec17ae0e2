"""The static book's {eval} role (book/_ext/glued_numbers.py), on a two-cell Sphinx project.

The full build only shows that the chapters' citations resolve; here each path of the role is checked
on its own: a formatted number, a value glued as markdown, and the expressions it must refuse.
"""
from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest

pytest.importorskip("myst_nb")
from sphinx.application import Sphinx  # noqa: E402  (after the skip: sphinx comes with myst-nb)

PREFIX = "application/papermill.record/"  # how myst-nb stores a glued value in a cell output
EXTENSIONS = Path(__file__).resolve().parents[1] / "book" / "_ext"


def _build(tmp_path: Path, markdown: str) -> tuple[str, str]:
    """Build one notebook whose first cell glued err=0.25 and table='**bold**'; return (html, warnings)."""
    outputs = [
        {"output_type": "display_data", "metadata": {"scrapbook": {"name": "err", "mime_prefix": PREFIX}},
         "data": {PREFIX + "text/plain": "0.25"}},
        {"output_type": "display_data", "metadata": {"scrapbook": {"name": "table", "mime_prefix": PREFIX}},
         "data": {PREFIX + "text/markdown": "**bold**",
                  PREFIX + "text/plain": "<IPython.core.display.Markdown object>"}},
    ]
    notebook = {"nbformat": 4, "nbformat_minor": 5,
                "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
                "cells": [{"cell_type": "code", "id": "c1", "source": "", "metadata": {}, "outputs": outputs,
                           "execution_count": 1},
                          {"cell_type": "markdown", "id": "m1", "source": markdown, "metadata": {}}]}
    source = tmp_path / "src"
    source.mkdir()
    (source / "index.ipynb").write_text(json.dumps(notebook), encoding="utf-8")
    (source / "conf.py").write_text(
        f"import sys\nsys.path.insert(0, {str(EXTENSIONS)!r})\n"
        "extensions = ['myst_nb', 'glued_numbers']\nnb_execution_mode = 'off'\n", encoding="utf-8")
    warnings = io.StringIO()
    try:
        app = Sphinx(str(source), str(source), str(tmp_path / "out"), str(tmp_path / "doctrees"), "html",
                     status=None, warning=warnings, freshenv=True)
        app.build()
    finally:
        while str(EXTENSIONS) in sys.path:  # conf.py put it there
            sys.path.remove(str(EXTENSIONS))
    return (tmp_path / "out" / "index.html").read_text(encoding="utf-8"), warnings.getvalue()


def test_a_glued_number_is_pasted_formatted_and_markdown_as_markdown(tmp_path):
    html, warnings = _build(tmp_path, 'Error {eval}`glued("err:.1%")`, raw {eval}`glued("err")`, '
                                      'table {eval}`glued("table")`.')
    assert '<span class="pasted-text">25.0%</span>' in html and '<span class="pasted-text">0.25</span>' in html
    assert "table <strong>bold</strong>." in html  # markdown pasted as markdown, not as its repr
    assert "WARNING" not in warnings, warnings


@pytest.mark.parametrize("expression", ["1 + 1", 'glued("")', "glued('err')", 'glued("err:.1%") + 1'])
def test_any_other_expression_is_a_build_warning_not_a_silent_blank(tmp_path, expression):
    html, warnings = _build(tmp_path, f"Value {{eval}}`{expression}`.")
    assert "is not supported in the static book" in warnings and repr(expression) in warnings, warnings


def test_a_name_never_glued_is_a_build_warning(tmp_path):
    html, warnings = _build(tmp_path, 'Value {eval}`glued("nope:.2f")`.')
    assert "nope" in warnings and "WARNING" in warnings, warnings
