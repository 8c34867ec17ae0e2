"""The course assignments (assignments/, graded with nbgrader; see book/instructors.md).

* ``scripts/assignments.py check`` (run once for the whole session) grades, per assignment, the instructor
  version (full marks, no cell losing points), the student version made by ``nbgrader generate_assignment``
  (0, without crashing the grader), every planted wrong solution (assignments/planted/ID.json: below full
  marks, with feedback naming the mistake), and a class of other submissions (assignments/submissions/ID.json):
  correct solutions written differently, which must get full marks, and tampering attempts, which must score
  no more than the honest wrong solution they wrap; the feedback pages it generates show no hidden test; and
  grading takes at most two minutes of CPU time per submission;
* the committed student versions (shown in the book) are what nbgrader generates: no solution code and no
  hidden test, stubs that raise ``NotImplementedError``;
* students write the attacks: the cells a student edits or runs pass the submission check;
* the instructors' page lists each assignment with the points its graded cells carry.
"""
from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
COURSE = REPO / "assignments"
IDS = sorted(p.name for p in (COURSE / "source").iterdir() if (p / f"{p.name}.ipynb").exists())
sys.path.insert(0, str(COURSE))
from grading.submission_check import check_notebook  # noqa: E402

# The first test of an assignment grades all its submissions (up to about 400 CPU-seconds on this machine)
# while the other xdist worker executes chapters: give it an hour rather than the run's 30-minute default, so a
# slow machine is not reported as a failure.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(3600)]


def course_script():
    """scripts/assignments.py as a module (loaded by path: the name ``assignments`` is also the course folder)."""
    spec = importlib.util.spec_from_file_location("assignments_script", REPO / "scripts" / "assignments.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def nbgrader_meta(cell: dict) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def test_there_are_four_assignments_one_per_stage():
    assert IDS == ["a1_linear_by_hand", "a2_pgd_from_scratch", "a3_adversarial_training", "a4_break_or_certify"]


def _newest_input(assignment: str) -> float:
    """When the inputs of one assignment's check (its notebook, fixtures, the grading code) last changed."""
    files = [COURSE / "nbgrader_config.py", REPO / "scripts" / "assignments.py",
             COURSE / "planted" / f"{assignment}.json", COURSE / "submissions" / f"{assignment}.json",
             *(COURSE / "source" / assignment).rglob("*"), *(COURSE / "grading").glob("*.py")]
    return max(p.stat().st_mtime for p in files if p.is_file())


_SUMMARIES: dict[str, dict] = {}


def _reported(assignment: str) -> dict | None:
    """The summary of ``assignment`` from a check run named in ADVEX_ASSIGNMENTS_REPORT, if one is newer than
    the last change to its inputs."""
    for name in filter(None, os.environ.get("ADVEX_ASSIGNMENTS_REPORT", "").split(",")):
        path = Path(name)
        if path.exists() and path.stat().st_mtime > _newest_input(assignment):
            for summary in json.loads(path.read_text()):
                if summary["assignment"] == assignment:
                    return summary
    return None


@pytest.fixture
def check_report(tmp_path_factory, assignment) -> dict:
    """``{assignment: summary}``: the summary of ``scripts/assignments.py check`` for this test's assignment.

    Each assignment is graded once per worker process, and tests/conftest.py makes each assignment's tests one
    xdist work unit, so the four gradings run side by side with the notebooks.  ADVEX_ASSIGNMENTS_REPORT may
    name, comma-separated, the JSON files of check runs made with --json after the last change to the inputs
    of the assignments they cover (to avoid grading twice in one session)."""
    if assignment not in _SUMMARIES:
        summary = _reported(assignment)
        if summary is None:
            out = tmp_path_factory.mktemp(assignment) / "check.json"
            result = subprocess.run([sys.executable, str(REPO / "scripts" / "assignments.py"), "check", assignment,
                                     "--json", str(out)], cwd=REPO, capture_output=True, text=True)
            if not out.exists():
                pytest.fail(f"scripts/assignments.py check crashed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
            summary = json.loads(out.read_text())[0]
        _SUMMARIES[assignment] = summary
    return {assignment: _SUMMARIES[assignment]}


@pytest.mark.parametrize("assignment", IDS)
def test_autograding_catches_the_planted_mistakes(check_report, assignment):
    summary = check_report[assignment]
    assert summary["problems"] == [], "\n".join(summary["problems"])
    report = summary["report"]
    assert report["instructor"]["score"] == report["instructor"]["max_score"] > 0
    assert report["instructor"]["lost"] == {} and report["instructor"]["refused"] == {}
    assert report["student-version"]["score"] == 0
    assert summary["planted"] >= 5, "at least five planted wrong solutions per assignment"
    for student, result in report.items():
        if student.startswith("planted-"):
            assert result["lost"] and all(why for why in result["lost"].values()), \
                f"{student}: every cell that lost points must say why"


@pytest.mark.parametrize("assignment", IDS)
def test_a_class_of_other_submissions_gets_the_right_verdicts(check_report, assignment):
    """Correct variants: full marks, nothing refused. Tampering: never more than the honest wrong solution."""
    summary = check_report[assignment]
    assert summary["correct"] >= 4 and summary["tamper"] >= 4 and summary["correct"] + summary["tamper"] >= 10
    report = summary["report"]
    for student, result in report.items():
        if student.startswith("correct-"):
            assert result["score"] == result["max_score"] and not result["lost"] and not result["refused"], \
                f"{student}: {result['lost']} {result['refused']}"
    entries = {f"tamper-{e['name']}": e for e in json.loads((COURSE / "submissions" / f"{assignment}.json").read_text())
               if e["kind"] == "tamper"}
    for student, entry in entries.items():
        assert report[student]["score"] <= report[f"planted-{entry['wraps']}"]["score"], student


@pytest.mark.parametrize("assignment", IDS)
def test_feedback_never_shows_hidden_tests(check_report, assignment):
    leaks = check_report[assignment]["feedback_leaks"]
    assert leaks and all(found == [] for found in leaks.values()), leaks


@pytest.mark.parametrize("assignment", IDS)
def test_grading_takes_at_most_two_minutes_of_cpu_per_submission(check_report, assignment):
    """CPU time of nbgrader and its kernels (the machine is shared, so wall time would measure the others)."""
    summary = check_report[assignment]
    assert summary["cpu_seconds"] / summary["submissions"] <= 120


@pytest.mark.parametrize("assignment", IDS)
def test_released_student_version_is_nbgraders_output_without_solutions(assignment, tmp_path):
    source = load(COURSE / "source" / assignment / f"{assignment}.ipynb")
    committed = load(COURSE / "release" / assignment / f"{assignment}.ipynb")
    # regenerate with nbgrader itself and compare what students see
    course = tmp_path / "course"
    (course / "source").mkdir(parents=True)
    (course / "nbgrader_config.py").write_text((COURSE / "nbgrader_config.py").read_text())
    (course / "source" / assignment).mkdir()
    (course / "source" / assignment / f"{assignment}.ipynb").write_text(json.dumps(source))
    fresh = load(course_script().release([assignment], course)[0])
    assert ["".join(c["source"]) for c in committed["cells"]] == ["".join(c["source"]) for c in fresh["cells"]], \
        f"assignments/release/{assignment} is stale: run python scripts/assignments.py release"
    text = "\n".join("".join(c["source"]) for c in committed["cells"])
    assert "BEGIN SOLUTION" not in text and "HIDDEN TESTS" not in text
    released = {nbgrader_meta(c).get("grade_id"): "".join(c["source"]) for c in committed["cells"]}
    for cell in source["cells"]:
        blocks = re.findall(r"### BEGIN SOLUTION(.*?)### END SOLUTION", "".join(cell["source"]), re.S)
        outside = re.sub(r"### BEGIN SOLUTION.*?### END SOLUTION", "", "".join(cell["source"]), flags=re.S)
        solution_only = {line.strip() for block in blocks for line in block.splitlines()
                         if line.strip() and line.strip() not in outside}
        stub = released.get(nbgrader_meta(cell).get("grade_id"), "")
        leaked = sorted(solution_only & {line.strip() for line in stub.splitlines()} - {"", "pass"})
        assert not leaked, f"solution code in the student version of {nbgrader_meta(cell).get('grade_id')}: {leaked[:3]}"
    stubs = [c for c in committed["cells"] if nbgrader_meta(c).get("solution") and c["cell_type"] == "code"]
    assert stubs and all("raise NotImplementedError()" in "".join(c["source"]) for c in stubs)
    assert all(not c.get("outputs") for c in committed["cells"] if c["cell_type"] == "code"), "release without outputs"


@pytest.mark.parametrize("assignment", IDS)
def test_students_write_the_attacks(assignment):
    """Every cell a student edits or runs besides the locked ones passes the submission check, which refuses
    the book's attacks and defences in any spelling; only the locked setup cell names the grader's references."""
    notebook = load(COURSE / "release" / assignment / f"{assignment}.ipynb")
    source = load(COURSE / "source" / assignment / f"{assignment}.ipynb")
    assert check_notebook(notebook, source) == {}
    setup = "".join(next(c for c in notebook["cells"] if nbgrader_meta(c).get("grade_id") == "setup")["source"])
    assert "_REFERENCES = " in setup and "def _reference(path)" in setup, \
        "the setup cell must take the grader's references before any student cell runs"


@pytest.mark.parametrize("assignment", IDS)
def test_instructors_page_lists_the_points_of_each_assignment(assignment):
    source = load(COURSE / "source" / assignment / f"{assignment}.ipynb")
    points = sum(nbgrader_meta(c).get("points", 0) for c in source["cells"] if nbgrader_meta(c).get("grade"))
    page = (REPO / "book" / "instructors.md").read_text(encoding="utf-8")
    row = re.search(rf"^\|[^\n]*{assignment}[^\n]*\|\s*(\d+)\s*\|\s*$", page, re.M)
    assert row, f"book/instructors.md has no table row for {assignment}"
    assert int(row.group(1)) == points, f"the page says {row.group(1)} points, the notebook's graded cells {points}"
    first = "".join(source["cells"][0]["source"])
    for heading in ("Learning goals", "Follows", "Estimated time", "Points"):
        assert heading in first, f"{assignment}: the first cell must state {heading!r}"


def test_planted_fixtures_name_real_cells():
    for assignment in IDS:
        source = load(COURSE / "source" / assignment / f"{assignment}.ipynb")
        solution_ids = {nbgrader_meta(c)["grade_id"] for c in source["cells"] if nbgrader_meta(c).get("solution")}
        for mistake in load(COURSE / "planted" / f"{assignment}.json"):
            assert {"name", "description", "cell", "old", "new", "feedback"} <= set(mistake)
            assert mistake["cell"] in solution_ids, f"{assignment}/{mistake['name']}: {mistake['cell']} is not a solution cell"
