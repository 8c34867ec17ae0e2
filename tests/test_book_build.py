"""The whole book builds with warnings as errors, and its pages need no network."""
import re

import pytest

pytestmark = pytest.mark.slow


def test_book_builds_with_zero_warnings(built_book):
    assert (built_book / "index.html").exists()
    assert (built_book / "chapters" / "01_a_dot_product_you_can_fool.html").exists()
    assert (built_book / "_static" / "mathjax" / "tex-chtml.js").exists(), "MathJax must be served locally"


def test_pages_load_no_remote_scripts_or_styles(built_book):
    for page in built_book.rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        remote = re.findall(r'<(?:script|link)[^>]+(?:src|href)="(https?://[^"]+)"', text)
        assert remote == [], f"{page.name} loads {remote}"


def test_paper_vs_book_shows_the_computed_values(built_book):
    from advex.theory import toy

    html = (built_book / "book" / "paper_vs_book.html").read_text(encoding="utf-8")
    text = re.sub(r"<[^>]+>", "", html)
    assert "{glue" not in text and "::C0" not in text and 'glued("' not in text, "an unresolved glue reference"
    p_before = toy.sigmoid(toy.score(toy.KARPATHY_W, toy.KARPATHY_X))
    assert f"{p_before:.4f}" in text  # inserted from chapter 1's computation


def test_exercises_are_numbered_per_chapter(built_book):
    """Chapter 2's first exercise reads "Exercise 2.1", chapter 7's "Exercise 7.1": numbered within the chapter."""
    for number, page in ((2, "02_linear_models_on_mnist"), (7, "07_attacks_without_gradients")):
        text = re.sub(r"<[^>]+>", "", (built_book / "chapters" / f"{page}.html").read_text(encoding="utf-8"))
        found = re.findall(r"Exercise (\d+(?:\.\d+)?)", text)
        assert found and found[0] == f"{number}.1", f"{page}: exercises numbered {found[:3]}"


def test_figures_keep_their_aspect_ratio_on_a_narrow_screen(built_book):
    """Retina figures carry a fixed width and height; the book's stylesheet lets the height follow the width."""
    page = (built_book / "chapters" / "02_linear_models_on_mnist.html").read_text(encoding="utf-8")
    assert re.search(r'<img[^>]+style="width: \d+px; height: \d+px;"', page), "a figure with its retina size"
    assert re.search(r'href="[^"]*_static/advex\.css', page), "the book's stylesheet is linked"
    css = (built_book / "_static" / "advex.css").read_text(encoding="utf-8")
    assert re.search(r"\.cell_output img\s*\{[^}]*height:\s*auto\s*!important", css)


def test_figures_carry_their_alt_text_and_solutions_their_outputs(built_book):
    """The alt text in a figure cell's metadata reaches the page, and a solution's code runs inside its dropdown."""
    page = (built_book / "chapters" / "01_a_dot_product_you_can_fool.html").read_text(encoding="utf-8")
    assert re.search(r'<img alt="Two line plots against the per-coordinate budget', page)
    assert re.search(r'<span class="caption-number">Fig\. 1\.1 </span>', page), "figures numbered per chapter"
    solution = re.search(r'<div class="solution dropdown admonition"[^>]*>\s*<p class="admonition-title">Solution to'
                         r'<a [^>]*href="#ch1-ex3".*?</section>', page, re.S)
    assert solution and 'class="cell_output' in solution.group(0), "the solution of exercise 1.3 shows its output"
