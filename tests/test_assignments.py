"""The course assignments (assignments/, graded with nbgrader; see book/instructors.md).

* the instructor version of each assignment scores full marks under ``nbgrader autograde``; the student
  version made by ``nbgrader generate_assignment`` scores 0 without crashing the grader; every planted wrong
  solution (assignments/planted/ID.json) scores below full marks with feedback that names its mistake, all
  within two minutes per submission (``scripts/assignments.py check``, run once for the whole session);
* the committed student versions (shown in the book) are what nbgrader generates: no solution code and no
  hidden test, stubs that raise ``NotImplementedError``;
* students write the attacks: visible cells import only advex's data, model and defence-model helpers;
* the instructors' page lists each assignment with the points its graded cells carry.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
COURSE = REPO / "assignments"
IDS = sorted(p.name for p in (COURSE / "source").iterdir() if (p / f"{p.name}.ipynb").exists())
FORBIDDEN_IMPORTS = re.compile(r"advex\.(attacks|evaluate|sanity|smoothness)|advex\.defences\.smoothing|"
                               r"from advex\.defences import [^\n]*(certify|sample_counts|clopper|Straight|Expectation)")

pytestmark = pytest.mark.slow


def load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def nbgrader_meta(cell: dict) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def test_there_are_four_assignments_one_per_stage():
    assert IDS == ["a1_linear_by_hand", "a2_pgd_from_scratch", "a3_adversarial_training", "a4_break_or_certify"]


@pytest.fixture(scope="session")
def check_report(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("assignments") / "check.json"
    result = subprocess.run([sys.executable, str(REPO / "scripts" / "assignments.py"), "check", "--json", str(out)],
                            cwd=REPO, capture_output=True, text=True)
    if not out.exists():
        pytest.fail(f"scripts/assignments.py check crashed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    return {summary["assignment"]: summary for summary in json.loads(out.read_text())}


@pytest.mark.parametrize("assignment", IDS)
def test_autograding_catches_the_planted_mistakes(check_report, assignment):
    summary = check_report[assignment]
    assert summary["problems"] == [], "\n".join(summary["problems"])
    report = summary["report"]
    assert report["instructor"]["score"] == report["instructor"]["max_score"] > 0
    assert report["student-version"]["score"] == 0
    assert summary["planted"] >= 5, "at least five planted wrong solutions per assignment"
    assert summary["seconds"] / summary["submissions"] <= 120, "autograding must take at most 2 minutes per submission"


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
    sys.path.insert(0, str(REPO / "scripts"))
    try:
        from assignments import release
    finally:
        sys.path.pop(0)
    fresh = load(release([assignment], course)[0])
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
    notebook = load(COURSE / "release" / assignment / f"{assignment}.ipynb")
    visible = "\n".join("".join(c["source"]) for c in notebook["cells"] if c["cell_type"] == "code")
    assert not FORBIDDEN_IMPORTS.search(visible), FORBIDDEN_IMPORTS.search(visible).group(0)


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
