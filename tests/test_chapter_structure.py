"""Every chapter follows the book's shape (see book/style_guide.md).

What you will learn, a first cell that installs advex where it is missing, a seeded setup cell, an ε slider, a figure, a summary, at least four
exercises each with a solution, references, glued (not typed) claim values, and at least
one cell whose output nbval compares.
"""
import json
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "chapters").glob("[0-9][0-9]_*.ipynb"))
TOC = (ROOT / "_toc.yml").read_text()


def load(path):
    notebook = json.loads(path.read_text(encoding="utf-8"))
    markdown = "\n".join("".join(c["source"]) for c in notebook["cells"] if c["cell_type"] == "markdown")
    code_cells = [c for c in notebook["cells"] if c["cell_type"] == "code"]
    return notebook, markdown, code_cells


def test_there_are_chapters():
    assert len(CHAPTERS) >= 1


INSTALL_CELL = "".join(load(CHAPTERS[0])[2][0]["source"]) if CHAPTERS else ""


def test_install_cell_installs_this_repository_and_what_the_chapters_import():
    """Colab or a downloaded notebook: the first cell installs advex from the repository named in _config.yml,
    at its branch, and myst-nb at the version requirements.txt pins; it does nothing where advex is installed."""
    config = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]
    assert f'"advex @ git+{config["url"]}@{config["branch"]}"' in INSTALL_CELL
    pinned = re.search(r"^myst-nb==\S+", (ROOT / "requirements.txt").read_text(), re.M).group(0)
    assert f'"{pinned}"' in INSTALL_CELL
    assert 'if importlib.util.find_spec("advex") is None:' in INSTALL_CELL
    assert '"advex.data.assets", "fetch"' in INSTALL_CELL


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_shape(path):
    notebook, markdown, code_cells = load(path)
    assert notebook["metadata"]["kernelspec"]["name"] == "python3"
    assert f"chapters/{path.stem}" in TOC, "chapter missing from _toc.yml"
    assert "What you will learn" in markdown
    install, setup = ("".join(c["source"]) for c in code_cells[:2])
    assert install == INSTALL_CELL, "the first code cell installs advex where it is missing (the same in every chapter)"
    assert "remove-cell" in code_cells[0]["metadata"].get("tags", []), "the install cell is not part of the HTML book"
    assert "seed_everything(" in setup and "use_book_style()" in setup
    sources = ["".join(c["source"]) for c in code_cells]
    assert any("eps_slider(" in s for s in sources), "no ε slider"
    slider_cells = [c for c in code_cells if "eps_slider(" in "".join(c["source"])]
    assert all("nbval-ignore-output" in c.get("metadata", {}).get("tags", []) for c in slider_cells)
    assert any(o.get("data", {}).get("image/png") for c in code_cells for o in c.get("outputs", [])), "no figure"
    assert re.search(r"^## Summary", markdown, re.M)
    exercises = re.findall(r":label: (\S+)", markdown)
    solutions = re.findall(r"\{solution(?:-start)?\} (\S+)", markdown)
    assert len(exercises) >= 4 and set(exercises) <= set(solutions), "≥ 4 exercises, each with a solution"
    assert markdown.count("{cite:") >= 2, "cite the sources"
    assert any("nbval-check-output" in c.get("metadata", {}).get("tags", []) for c in code_cells)


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_claims_in_prose_are_glued(path):
    """Every claim key (C01 ...) pasted in the prose is glued by a code cell of the same chapter."""
    _, markdown, code_cells = load(path)
    pasted = set(re.findall(r'\{eval\}`glued\("(C\d\d_\w+?)(?::[^"]*)?"\)`', markdown))
    assert pasted, "the chapter pastes no claim"
    code = "\n".join("".join(c["source"]) for c in code_cells)
    glued = set(re.findall(r"glue\(\s*[\"'](C\d\d_\w+)[\"']", code))
    # glue_rate("C10_x", ...) glues C10_x and C10_x_n, _low, _high, _ci (advex.glue.glue_rate)
    for rate in re.findall(r"glue_rate\(\s*[\"'](C\d\d_\w+)[\"']", code):
        glued |= {rate} | {f"{rate}_{suffix}" for suffix in ("n", "low", "high", "ci")}
    assert pasted <= glued, f"pasted but never glued: {sorted(pasted - glued)}"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_figures_have_alt_text_and_numbered_captions(path):
    """Every matplotlib figure has a description for screen readers (myst-nb's cell metadata mystnb.image.alt,
    written into the HTML's alt attribute), a sentence or more, and a caption with a label of its chapter
    (mystnb.figure), which the book numbers (Fig. 2.3); one figure per cell, since each output becomes a figure."""
    _, _, code_cells = load(path)
    chapter = int(path.stem[:2])
    for cell in code_cells:
        if any("image/png" in o.get("data", {}) for o in cell.get("outputs", [])):
            options = cell["metadata"].get("mystnb", {})
            alt = options.get("image", {}).get("alt", "")
            assert len(alt) >= 60, f"figure in cell {cell.get('id')} has no alt text (or a short one): {alt!r}"
            figure = options.get("figure", {})
            assert figure.get("caption") and figure.get("name", "").startswith(f"fig-ch{chapter}-"), cell.get("id")
            shown = [o for o in cell["outputs"] if o.get("output_type") in ("display_data", "execute_result")]
            assert len(shown) == 1, f"cell {cell.get('id')}: {len(shown)} outputs would share one caption"


#: solutions whose code the build does not run, each saying so in its text (they train networks, or repeat a
#: chapter's whole evaluation or a long search)
NOT_RUN = {"ch4-ex4", "ch5-ex-alpha", "ch5-ex-budget", "ch5-ex-masking", "ch6-ex-readout", "ch7-ex-targeted", "ch7-ex-rounds"}


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_solutions_run_their_code(path):
    """A solution that computes is a gated solution (solution-start … solution-end) around executed code cells,
    so the reader sees its numbers; one that shows code in markdown instead says that the build does not run it."""
    _, markdown, _ = load(path)
    fenced = re.findall(r"^(`{3,}|:{3,})\{solution\}\s*(\S+)\n(.*?)^\1[ \t]*$", markdown, re.S | re.M)
    for _, label, body in fenced:
        if "```python" not in body:
            continue
        assert label in NOT_RUN, f"{label}: its code should run in code cells between solution-start and solution-end"
        assert "Not run when the book is built" in body, f"{label}: say that the build does not run this code"
    gated = re.findall(r"\{solution-start\} (\S+)", markdown)
    assert markdown.count("{solution-end}") == len(gated), "every solution-start has its solution-end"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_harness_is_hidden_from_the_reader(path):
    """glue calls and asserts run in cells whose input the HTML book leaves out (remove-input or remove-cell),
    never in a cell the reader sees, collapsed or not: the reader sees the story, the checks still run."""
    _, _, code_cells = load(path)
    shown = [c for c in code_cells if not {"remove-input", "remove-cell"} & set(c.get("metadata", {}).get("tags", []))]
    plumbing = [line.strip() for c in shown for line in "".join(c["source"]).splitlines()
                if re.match(r"\s*(assert\b|glue\()", line) or re.search(r"[;:]\s*glue\(", line)]
    assert not plumbing, f"glue or assert in a cell the reader sees: {plumbing[:3]}"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_notebook_is_stored_executed_top_to_bottom(path):
    """The stored outputs (what the test run's book build shows) come from one run in a fresh kernel.

    Every code cell was executed, in order, counting from 1 (a fresh kernel), and no cell stored an error;
    the nbval run re-executes the notebook and compares the tagged cells with these outputs.
    """
    _, _, code_cells = load(path)
    counts = [c.get("execution_count") for c in code_cells]
    assert counts == list(range(1, len(code_cells) + 1)), f"re-execute {path.name} top to bottom and save it: {counts}"
    errors = [o for c in code_cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, f"{path.name} stores an error output"
