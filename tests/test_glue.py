"""advex.glue: the chapters' inline numbers read the same in the HTML book, in JupyterLab and in a live kernel."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from advex import glue as book_glue

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "chapters").glob("[0-9][0-9]_*.ipynb"))


@pytest.mark.parametrize("text, fmt", [
    ("0.8913", ".1%"), ("0.8913", ".2f"), ("12345", ","), ("12345.6", ",.0f"), ("7", "d"), ("0.00012", ".1e"),
    ("3.0", "g"), ("'cpu (2 threads)'", ""), ("0.25", ""), ("np.float64(0.5)", ""), ("42", "s"),
])
def test_formats_exactly_as_myst_nb_glue_text(text, fmt):
    from myst_nb.core.variables import format_plain_text

    assert book_glue.format_glued(text, fmt) == format_plain_text(text, fmt)


@pytest.mark.parametrize("reference, expected", [
    ("C07_err", ("C07_err", "")), ("C07_err:.1%", ("C07_err", ".1%")),
    ("/chapters/02_x.ipynb::C26_slope:.2f", ("/chapters/02_x.ipynb::C26_slope", ".2f")),
])
def test_split_reference_follows_myst_nb(reference, expected):
    assert book_glue.split_reference(reference) == expected


@pytest.mark.parametrize("bad", ["", "  ", ":.1f", None, 3])
def test_bad_references_are_refused_by_name(bad):
    with pytest.raises(ValueError, match="reference"):
        book_glue.split_reference(bad)


def test_glued_formats_the_value_glued_in_this_kernel(monkeypatch):
    monkeypatch.setattr(book_glue, "_GLUED", {})
    book_glue.glue("test_rate", 0.8913, display=False)
    shown = book_glue.glued("test_rate:.1%")
    assert shown == "89.1%" and repr(shown) == "89.1%"  # the kernel's text/plain carries no quotes
    with pytest.raises(KeyError, match="test_missing"):
        book_glue.glued("test_missing:.1%")
    with pytest.raises(ValueError, match="name"):
        book_glue.glue("bad:name", 1)


def test_numpy_and_torch_scalars_are_glued_as_numbers(monkeypatch):
    import numpy as np
    import torch
    monkeypatch.setattr(book_glue, "_GLUED", {})
    book_glue.glue("test_numpy", np.sqrt(2) / 4, display=False)
    book_glue.glue("test_torch", torch.tensor(0.25), display=False)
    assert type(book_glue._GLUED["test_numpy"]) is float and type(book_glue._GLUED["test_torch"]) is float
    assert book_glue.glued("test_numpy:.3f") == "0.354" and book_glue.glued("test_torch:.2f") == "0.25"


def test_markdown_values_paste_as_their_text(monkeypatch):
    from IPython.display import Markdown

    monkeypatch.setattr(book_glue, "_GLUED", {})
    book_glue.glue("test_device", Markdown("cpu (2 threads)"), display=False)
    assert book_glue.glued("test_device") == "cpu (2 threads)"


def _notebook(markdown: str, glued: dict[str, str]) -> dict:
    outputs = [{"output_type": "display_data", "metadata": {"scrapbook": {"name": k, "mime_prefix": ""}},
                "data": {"application/papermill.record/text/plain": v}} for k, v in glued.items()]
    return {"cells": [{"cell_type": "code", "source": "", "metadata": {}, "outputs": outputs},
                      {"cell_type": "markdown", "source": markdown, "metadata": {}}]}


def test_stored_results_come_from_the_glue_outputs_and_staleness_is_caught(tmp_path):
    notebook = _notebook('Error {eval}`glued("err:.1%")`, twice {eval}`glued("err:.1%")`, n = {eval}`glued("n:,")`.',
                         {"err": "0.25", "n": "10000"})
    results = book_glue.expression_results(notebook, tmp_path)
    assert results[0] is None
    assert [(r["expression"], r["result"]["data"]["text/plain"]) for r in results[1]] == [
        ('glued("err:.1%")', "25.0%"), ('glued("n:,")', "10,000")]
    assert book_glue.stale_expressions(notebook, tmp_path)  # nothing stored yet
    notebook["cells"][1]["metadata"]["user_expressions"] = results[1]
    assert book_glue.stale_expressions(notebook, tmp_path) == []
    notebook["cells"][0]["outputs"][0]["data"]["application/papermill.record/text/plain"] = "0.5"
    assert book_glue.stale_expressions(notebook, tmp_path)  # a re-run changed the number: stale


def test_a_citation_of_a_name_never_glued_is_an_error(tmp_path):
    with pytest.raises(KeyError, match="nope"):
        book_glue.expression_results(_notebook('{eval}`glued("nope")`', {}), tmp_path)


def test_sync_writes_and_check_agrees(tmp_path):
    (tmp_path / "_toc.yml").write_text("root: x\n")
    path = tmp_path / "nb.ipynb"
    path.write_text(json.dumps(_notebook('{eval}`glued("err:.2f")`', {"err": "0.123"})))
    assert book_glue.sync_notebook(path) == 1 and book_glue.sync_notebook(path) == 0
    assert book_glue.main(["check", str(path)]) == 0
    stored = json.loads(path.read_text())["cells"][1]["metadata"]["user_expressions"]
    assert stored[0]["result"]["data"]["text/plain"] == "0.12"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_chapters_cite_numbers_only_through_glued_and_store_them_for_jupyterlab(path):
    """No myst-nb glue role JupyterLab cannot render, and every stored result matches the stored glue output."""
    notebook = json.loads(path.read_text(encoding="utf-8"))
    markdown = "\n".join("".join(c["source"]) for c in notebook["cells"] if c["cell_type"] == "markdown")
    assert "{glue" not in markdown, "a {glue} role or directive shows as raw markup in JupyterLab"
    roles = re.findall(r"\{eval\}`([^`]*)`", markdown)
    assert roles and all(book_glue.GLUED_ROLE.fullmatch(f"{{eval}}`{r}`") for r in roles), \
        "every {eval} is glued(\"NAME:FORMAT\"), the one form the static book can read"
    assert book_glue.stale_expressions(notebook, ROOT) == [], "run: python -m advex.glue sync " + path.name
