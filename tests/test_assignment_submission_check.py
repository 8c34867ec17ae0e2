"""The submission check of the assignments (assignments/grading/submission_check.py), on its own.

It reads a student's cells as syntax trees, so the shortcuts of issue 27 must be caught however they are
spelled (an alias, a re-export, a built string, a magic), and correct solutions, including every instructor
solution and every planted mistake, must pass untouched (a refused honest cell would cost a student points).
"""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
COURSE = REPO / "assignments"
sys.path.insert(0, str(COURSE))
from grading import submission_check  # noqa: E402
from grading.submission_check import check_cell, check_notebook  # noqa: E402

_spec = importlib.util.spec_from_file_location("assignments_script", REPO / "scripts" / "assignments.py")
course_script = importlib.util.module_from_spec(_spec)   # by path: "assignments" is also the course folder
_spec.loader.exec_module(course_script)

IDS = course_script.assignment_ids()
SETUP_NAMES = {"fresh_model", "accuracy", "X_TEST", "torch", "F", "advex"}


def source(assignment: str) -> dict:
    return json.loads((COURSE / "source" / assignment / f"{assignment}.ipynb").read_text(encoding="utf-8"))


@pytest.mark.parametrize("code", [
    "import advex.attacks as a\nx = a.pgd",
    "from advex import attacks as A",
    "from advex.defences import certify as check_it",                 # a re-export under another name
    "from advex.defences import StraightThrough",
    "y = advex.pgd(model, x, y, 0.1)",                                 # the package's top-level re-export
    "y = quantised.attack_surrogate",
    "get_ipython().input_transformers_post.append(f)",
    "ip = get_ipython()\nip.events.register('pre_run_cell', f)",
    "%config InteractiveShell.ast_node_interactivity = 'none'",
    "import sys\nsys.modules['advex.attacks'].pgd = pgd",
    "torch.allclose = lambda *a, **k: True",
    "F.cross_entropy = my_loss",
    "exec('from adv' + 'ex import attacks')",
    "m = __import__('adv' + 'ex')",
    "globals()['fresh_model'] = f",
    "lib = getattr(advex, 'def' + 'ences')",
    "def accuracy(model, x, y):\n    return 0.0",                       # a setup helper redefined
    "from torch import allclose as accuracy",                            # ... or rebound by an import
    "X_TEST = X_TEST[:1]",
    "f = pgd.__globals__",
])
def test_shortcuts_and_tampering_are_flagged(code):
    assert check_cell(code, SETUP_NAMES, {("", "torch", "torch")}), f"not flagged: {code!r}"


@pytest.mark.parametrize("code", [
    "import torch\nfrom torch.nn import functional as F\n",             # repeating the setup's imports is harmless
    "def pgd(model, x, y, eps):\n    x = x.detach().clone()\n    return x",
    "class Net(torch.nn.Module):\n    def __init__(self):\n        super().__init__()\n        self.w = 1",
    "import warnings\nwarnings.warn('slow')",
    "value = getattr(model, 'training')",
    "import numpy as np\nimport math\nfrom scipy.stats import beta",
    "this is not python (",                                              # the kernel reports a syntax error itself
])
def test_honest_code_passes(code):
    assert check_cell(code, SETUP_NAMES, {("", "torch", "torch"), ("torch.nn", "functional", "F")}) == []


@pytest.mark.parametrize("assignment", IDS)
def test_instructor_solutions_and_planted_mistakes_pass_the_check(assignment):
    notebook = source(assignment)
    assert check_notebook(notebook, notebook) == {}
    for mistake in course_script.planted_mistakes(assignment):
        assert check_notebook(course_script.plant(notebook, mistake), notebook) == {}, mistake["name"]


@pytest.mark.parametrize("assignment", IDS)
def test_class_of_submissions_is_at_least_ten_and_sorted_by_the_check(assignment):
    """Every correct variant passes the check; every tampering attempt except the plain hard-coded number
    (which the tests themselves catch) is refused before it runs."""
    notebook = source(assignment)
    entries = course_script.submissions_of(assignment)
    assert len(entries) >= 10 and {e["kind"] for e in entries} == {"correct", "tamper"}
    planted = {m["name"]: m for m in course_script.planted_mistakes(assignment)}
    for entry in entries:
        assert entry["kind"] == "correct" or entry["wraps"] in planted, entry["name"]
        flagged = check_notebook(course_script.submission(notebook, entry, planted), notebook)
        if entry["kind"] == "correct":
            assert flagged == {}, (entry["name"], flagged)
        elif "hard-coded" not in entry["name"]:
            assert flagged, f"tampering {entry['name']!r} is not refused"


def test_a_refused_cell_raises_and_says_why():
    violations = check_cell("import advex.attacks as a", set())
    code = submission_check.refusal(violations)
    with pytest.raises(RuntimeError, match="imports advex.attacks"):
        exec(compile(code, "<cell>", "exec"), {})
