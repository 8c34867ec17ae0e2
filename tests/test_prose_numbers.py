"""Every number the prose states about an experiment is glued, not typed (the style guide's rule, enforced).

The rule, applied to every markdown cell of every chapter (exercises and solutions included):

* a *candidate* is a number written with a decimal point (``0.25``, ``74.5``) or with a percent sign
  (``68%``, ``95 %``) — the forms in which measured results appear; plain integers (years, section and
  figure numbers, counts of images chosen by the author, grid sizes) are not candidates;
* it is fine where it is not prose: inside a glued role ``{eval}`glued(...)```, any other role
  (``{cite:t}``, ``{doc}``, ...), inline code, inline or display math ``$...$`` / ``$$...$$``, a code fence,
  a directive's option line (``:label:``), or a link target;
* it is fine as a *setting* the reader is told, not a result: directly after ``ε =`` (or α, λ, σ, δ, or the
  relations ≤ ≥ < > ∈), e.g. "FGSM at ε = 0.25";
* it is fine as a confidence level ("95% interval", "95% CI");
* it is fine as a *paper value that names its source*: the same sentence cites it with a ``{cite...}`` role,
  or names it with "paper", "report"/"reports"/"reported", "et al." or an author's possessive ("Karpathy's");
* anything else must be glued, or be listed in ``ALLOWED`` below with a comment saying why it is not an
  experiment number.

The allowlist is per line: an entry (chapter prefix, text) allows the candidates on the lines of that chapter
that contain the text.  Every entry must still match something, so that a stale one is noticed.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "chapters").glob("[0-9][0-9]_*.ipynb"))

# A number with a decimal point, or with a percent sign (optionally after a space).
CANDIDATE = re.compile(r"(?<![\w.])(?:\d[\d,]*(?:\.\d+)?\s?%|\d[\d,]*\.\d+)")
# A setting the reader is told: a parameter symbol followed by a relation, then the number.
SETTING = re.compile(r"(?:[εαλσδ]|eps|epsilon)\s*(?:_\w+)?\s*(?:=|≤|≥|<|>|∈)\s*[\[{(]?\s*"
                     r"(?:[−-]?\s*\d[\d.]*\s*(?:,|and|or)\s*)*[−-]?\s*$")   # also lists: σ = 0.25, 0.5 and 1

# A confidence level, not a result: "95% interval", "95% CI".
LEVEL = re.compile(r"\s*(?:confidence\s+|Wilson\s+|Clopper.Pearson\s+)?(?:intervals?|CI)\b")
# A sentence that names the source of a paper value.
SOURCE = re.compile(r"\{cite[^}]*\}|\bpaper'?s?\b|\breport(?:s|ed)?\b|\bet al\.|\b[A-Z][a-z]+'s\b")

# (chapter file prefix, text on the line) -> why the numbers on that line are not experiment numbers.
ALLOWED: dict[tuple[str, str], str] = {
    # --- chapters 1-4 ---
    ("03_", "Reproducing these needs the 1.2 million ImageNet training images"):
        "the size of the ImageNet training set, a fact about the data, not a result",
}

# chapters 5-7: settings, illustrations, arithmetic and sourced values the rule cannot see as such
ALLOWED_CH57: dict[tuple[str, str], str] = {
    ('05_', 'centres initialised at the class means, initial precisions 0'): "a hyperparameter of the RBF recipe",
    ('06_', 'near 0 or 1, so an L∞ change of 0.2 cannot move them across '): "an attack budget, a setting",
    ('06_', "stroke's edge can flip. A budget of 0.5 (any pixel can flip)"): "an attack budget, a setting",
    ('06_', 'The second check rests on a simple bound. An L∞ ball of radius 0.5'): "the radius of the sanity check's ball",
    ('06_', 'for the smoothed probability, and $\\Phi^{-1}$ of it stretche'): "illustrative probabilities, not results",
    ('06_', 'to 99.9% is a large step on the $\\Phi^{-1}$ scale but a tiny'): "illustrative probabilities, not results",
    ('06_', 'alone says nothing about accuracy: a classifier that always '): "a hypothetical classifier's output",
    ('06_', 'confidence between neighbouring scales (0.05 apart) has a me'): "the spacing of the grid of scales, a setting",
    ('06_', 'yet its largest probability still averages {eval}`glued("ch6_top_at_05'): "a digit scale at which the glued value is read",
    ('06_', 'becomes unsure as the digit recedes instead of confidently w'): "a digit scale, a setting",
    ('06_', 'gives about 0.75, 1.23, 1.60 and 1.91 for σ = 0.5. A radius '): "closed-form values of σΦ⁻¹(α^(1/n)), not measurements",
    ('06_', 'σ = 0.5 has an L2 length of about 0.5 × 28 = 14 per image, f'): "arithmetic on the noise level, not a measurement",
    ('06_', '(its training perturbations have L2 length at most 0.3 × 28 '): "arithmetic on the training budget",
    ('07_', 'are near white (at least 0.9)'): "the thresholds that define 'near white' and 'near black'",
    ('07_', 'near black (at most 0.1);'): "the thresholds that define 'near white' and 'near black'",
    ('07_', 'How does that compare with the "68%" of the Hackaday headlin'): "the Hackaday article's headline figure, named",
    ('07_', 'changed the label of about 68% of the CIFAR-10 test images S'): "Su et al.'s reported success rate, named",
    ('07_', '0.2% of a 224 × 224 photograph.'): "arithmetic on the image size",
}
ALLOWED.update(ALLOWED_CH57)


def strip_non_prose(text: str) -> str:
    """The markdown with everything that is not running prose replaced by spaces (line structure kept)."""
    def blank(match: re.Match) -> str:
        return re.sub(r"[^\n]", " ", match.group(0))

    text = re.sub(r"^(`{3,})(?![`{])[^\n]*\n.*?^\1\s*$", blank, text, flags=re.M | re.S)   # code fences (not directives)
    text = re.sub(r"^\s*:[\w-]+:.*$", blank, text, flags=re.M)                          # directive options
    text = re.sub(r"\$\$.*?\$\$", blank, text, flags=re.S)                               # display math
    text = re.sub(r"(?<!\\)\$[^$\n]+?(?<!\\)\$", blank, text)                            # inline math
    text = re.sub(r"\{[\w:-]+\}`[^`]*`", blank, text)                                    # roles: eval, cite, doc...
    text = re.sub(r"`[^`\n]*`", blank, text)                                             # inline code
    text = re.sub(r"\]\([^)]*\)", blank, text)                                           # link targets
    return text


def sentence_around(text: str, start: int, end: int) -> str:
    """The sentence of ``text`` that holds text[start:end] (sentences end at '. ', ';' or a blank line)."""
    boundary = re.compile(r"\.\s|;|\n\s*\n")
    left = max((m.end() for m in boundary.finditer(text, 0, start)), default=0)
    right = boundary.search(text, end)
    return text[left:right.start() if right else len(text)]


def unglued_numbers(markdown: str) -> list[tuple[int, str, str]]:
    """(line number, number, original line) for every candidate the rule does not excuse."""
    found = []
    stripped = strip_non_prose(markdown)      # same length as markdown: every position is kept
    lines = markdown.split("\n")
    for match in CANDIDATE.finditer(stripped):
        line_start = stripped.rfind("\n", 0, match.start()) + 1
        if SETTING.search(stripped[line_start:match.start()]):
            continue
        if LEVEL.match(stripped, match.end()):
            continue
        if SOURCE.search(sentence_around(markdown, match.start(), match.end())):
            continue
        number = stripped.count("\n", 0, match.start())
        found.append((number, match.group(0), lines[number]))
    return found


def markdown_of(path: Path) -> list[str]:
    notebook = json.loads(path.read_text(encoding="utf-8"))
    return ["".join(cell["source"]) for cell in notebook["cells"] if cell["cell_type"] == "markdown"]


def violations(path: Path, allowed: dict[tuple[str, str], str], used: set) -> list[str]:
    out = []
    for cell in markdown_of(path):
        for _, number, line in unglued_numbers(cell):
            keys = [key for key in allowed if path.name.startswith(key[0]) and key[1] in line]
            used.update(keys)
            if not keys:
                out.append(f"{number!r} in: {line.strip()[:160]}")
    return out


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_prose_states_no_unglued_experiment_number(path):
    found = violations(path, ALLOWED, set())
    assert not found, ("numbers in the prose that are neither glued nor excused (glue them, put them in math, "
                       "name their source, or allowlist them in tests/test_prose_numbers.py with a reason):\n"
                       + "\n".join(found))


def test_every_allowlist_entry_is_used():
    used: set = set()
    for path in CHAPTERS:
        violations(path, ALLOWED, used)
    stale = [key for key in ALLOWED if key not in used and any(p.name.startswith(key[0]) for p in CHAPTERS)]
    assert not stale, f"allowlist entries that match nothing any more (remove them): {stale}"


def test_rule_catches_a_planted_unglued_number():
    planted = ("The maxout network misclassifies 89.4% of the FGSM images.\n"
               "Its clean accuracy is 0.981 on the test set.")
    assert [n for _, n, _ in unglued_numbers(planted)] == ["89.4%", "0.981"]


def test_rule_excuses_glued_math_settings_and_sourced_values():
    fine = ("The error is {eval}`glued(\"C07_error:.1%\")` at $\\varepsilon = 0.25$ and at ε = 0.1;\n"
            "Goodfellow et al. report 89.4% and 97.6%.\n"
            "The paper reports 1.6% {cite:p}`goodfellow2015explaining`.\n"
            "Run `pgd(model, x, y, 0.3)` in 2017, section 3.\n"
            "```python\nprint(0.5)\n```")
    assert unglued_numbers(fine) == []


def test_rule_still_flags_a_result_next_to_a_setting():
    # the setting excuses only the number right after "ε =", not the result that follows it
    assert [n for _, n, _ in unglued_numbers("At ε = 0.1 the error is 74.5%.")] == ["74.5%"]
