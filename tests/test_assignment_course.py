"""What an instructor runs and what students get (issue 27).

* the local recipe of book/instructors.md, run as written on a fresh clone of the repository: it releases,
  autogrades a stand-in submission to full marks, writes feedback without hidden tests and exports grades;
* the student archive of scripts/build_course.py holds the student notebooks and a README, nothing else, and
  no solution or hidden test; the instructor archive holds the course directory;
* the assignment pages of the book keep only the buttons that open the one student notebook.
"""
from __future__ import annotations

import csv
import importlib.util
import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
COURSE = REPO / "assignments"


def _module(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def local_recipe() -> str:
    """The first bash block of the page's section on grading on your own machine."""
    page = (REPO / "book" / "instructors.md").read_text(encoding="utf-8")
    section = page.split("## Releasing and grading on your own machine", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", section, re.S)
    assert blocks, "book/instructors.md: no bash block in 'Releasing and grading on your own machine'"
    return blocks[0]


@pytest.mark.slow
def test_the_instructors_local_recipe_runs_on_a_fresh_clone(tmp_path):
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(clone)], check=True)
    # the committed state of this branch, with the environment of scripts/setup.sh (the venv running the tests)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(["bash", "-e", "-c", local_recipe()], cwd=clone, env=env, capture_output=True, text=True,
                            timeout=900)
    assert result.returncode == 0, f"the recipe failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    course = clone / "assignments"
    rows = list(csv.DictReader((course / "grades.csv").open()))
    demo = [r for r in rows if r["student_id"] == "demo-student" and r["assignment"] == "a1_linear_by_hand"]
    assert demo and float(demo[0]["score"]) == float(demo[0]["max_score"]) > 0, rows
    feedback = (course / "feedback" / "demo-student" / "a1_linear_by_hand" / "a1_linear_by_hand.html").read_text()
    assert "HIDDEN TESTS" not in feedback and "margin_change" in feedback
    source = json.loads((course / "source" / "a1_linear_by_hand" / "a1_linear_by_hand.ipynb").read_text())
    script = _module("assignments_script_recipe", REPO / "scripts" / "assignments.py")
    assert script.feedback_leaks(course / "feedback" / "demo-student" / "a1_linear_by_hand" / "a1_linear_by_hand.html",
                                 source) == []


def test_the_student_archive_holds_student_notebooks_only(tmp_path):
    builder = _module("build_course", REPO / "scripts" / "build_course.py")
    student, instructor = builder.build(tmp_path, regenerate=False)
    ids = sorted(p.name for p in (COURSE / "source").iterdir() if p.is_dir())
    with zipfile.ZipFile(student) as archive:
        names = sorted(archive.namelist())
        assert names == sorted(["README.md", *[f"{a}/{a}.ipynb" for a in ids]])
        for assignment in ids:
            text = archive.read(f"{assignment}/{assignment}.ipynb").decode()
            assert text == (COURSE / "release" / assignment / f"{assignment}.ipynb").read_text(encoding="utf-8")
            source = json.loads((COURSE / "source" / assignment / f"{assignment}.ipynb").read_text(encoding="utf-8"))
            assert builder.leaks(text, source) == []
    with zipfile.ZipFile(instructor) as archive:
        names = set(archive.namelist())
    for assignment in ids:
        assert f"assignments/source/{assignment}/{assignment}.ipynb" in names
        assert f"assignments/planted/{assignment}.json" in names
    assert {"assignments/nbgrader_config.py", "assignments/grading/submission_check.py", "scripts/assignments.py",
            "INSTRUCTORS.md"} <= names


def test_the_leak_check_would_refuse_a_solution(tmp_path):
    builder = _module("build_course_refuse", REPO / "scripts" / "build_course.py")
    source = json.loads((COURSE / "source" / "a1_linear_by_hand" / "a1_linear_by_hand.ipynb").read_text())
    assert builder.leaks(json.dumps(source), source)          # the instructor version is not a student version


def test_assignment_pages_keep_only_single_notebook_buttons():
    pages = _module("assignment_pages", REPO / "book" / "_ext" / "assignment_pages.py")
    buttons = [
        {"type": "group", "label": "download-buttons", "buttons": [{"text": ".ipynb"}]},
        {"type": "group", "label": "launch-buttons", "buttons": [
            {"text": "Binder", "url": "https://mybinder.org/v2/gh/o/r/main?urlpath=lab/tree/x.ipynb"},
            {"text": "JupyterHub", "url": "https://hub/hub/user-redirect/git-pull?repo=..."},
            {"text": "Colab", "url": "https://colab.research.google.com/github/o/r/blob/main/x.ipynb"}]},
        {"type": "group", "label": "source-buttons", "buttons": [{"text": "Repository"}]},
        {"type": "link", "label": "source-repository-button", "url": "https://github.com/o/r"},
    ]
    kept = pages.keep_single_notebook_buttons(buttons)
    assert [b["label"] for b in kept] == ["download-buttons", "launch-buttons"]
    assert [b["text"] for b in kept[1]["buttons"]] == ["Colab"]
    context = {"header_buttons": buttons}
    pages._restrict(None, "chapters/01_a_dot_product_you_can_fool", "page.html", context, None)
    assert context["header_buttons"] is buttons, "chapter pages keep every button"
