"""Release and check the book's assignments with nbgrader (the instructor's tool; see book/instructors.md).

    python scripts/assignments.py release [ID ...]    # student versions -> assignments/release/ID/ID.ipynb
    python scripts/assignments.py check [ID ...]      # grade the instructor version, the student version and
                                                      # every planted wrong solution; exit 1 on a surprise

``check`` works in a temporary copy of the course directory, so the repository's gradebook stays clean.
It autogrades, with nbgrader's own ``autograde`` command, three kinds of submission:

* ``instructor``: the source notebook itself, which must score full marks;
* ``student-version``: the released notebook untouched (its stubs raise ``NotImplementedError``), which must
  be graded without crashing the grader and score 0;
* ``planted-<name>``: the source with one mistake students really make, from ``assignments/planted/ID.json``
  (a list of ``{"name", "description", "cell", "old", "new", "feedback"}``: in the solution cell whose
  ``grade_id`` is ``cell``, ``old`` is replaced by ``new``), which must score below full marks with a test
  failure whose message contains ``feedback``.

It prints one line per submission and writes the summary as JSON (``--json PATH``) for the tests.
The assignments are checked in parallel (``--jobs``, default: one per CPU core), each in its own course
directory; their kernels share the cores (``OMP_NUM_THREADS`` = cores / jobs unless it is set).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

COURSE = Path(__file__).resolve().parents[1] / "assignments"
NBGRADER = [sys.executable, "-m", "nbgrader"]


def assignment_ids() -> list[str]:
    return sorted(p.name for p in (COURSE / "source").iterdir() if (p / f"{p.name}.ipynb").exists())


def run_nbgrader(course: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    result = subprocess.run([*NBGRADER, *args, "--force"], cwd=course, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        raise RuntimeError(f"nbgrader {' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def release(ids: list[str], course: Path = COURSE) -> list[Path]:
    """``nbgrader generate_assignment`` for each assignment: the student versions, in ``course/release``."""
    paths = []
    for assignment in ids:
        subprocess.run([*NBGRADER, "db", "assignment", "add", assignment], cwd=course, capture_output=True, text=True)
        run_nbgrader(course, "generate_assignment", assignment)
        paths.append(course / "release" / assignment / f"{assignment}.ipynb")
    return paths


def planted_mistakes(assignment: str) -> list[dict]:
    path = COURSE / "planted" / f"{assignment}.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else []


def plant(notebook: dict, mistake: dict) -> dict:
    """The notebook with ``mistake`` applied to the solution cell it names (which must contain ``old`` once)."""
    notebook = json.loads(json.dumps(notebook))
    cells = [c for c in notebook["cells"] if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == mistake["cell"]]
    if len(cells) != 1:
        raise ValueError(f"planted mistake {mistake['name']!r}: no single cell with grade_id {mistake['cell']!r}")
    source = "".join(cells[0]["source"])
    if source.count(mistake["old"]) != 1:
        raise ValueError(f"planted mistake {mistake['name']!r}: {mistake['old']!r} occurs {source.count(mistake['old'])} "
                         f"times in cell {mistake['cell']!r}, not once")
    cells[0]["source"] = source.replace(mistake["old"], mistake["new"])
    return notebook


def grades(course: Path, assignment: str, student: str) -> dict:
    """Score, maximum and the failing graded cells (grade_id -> error message) of one autograded submission."""
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        submission = gradebook.find_submission(assignment, student)
        score, max_score = submission.score, submission.max_score
    graded = json.loads((course / "autograded" / student / assignment / f"{assignment}.ipynb").read_text(encoding="utf-8"))
    failures = {}
    for cell in graded["cells"]:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
        if errors:
            failures[meta.get("grade_id", "?")] = f"{errors[0]['ename']}: {errors[0]['evalue']}"
    return {"score": score, "max_score": max_score, "failures": failures}


def check(assignment: str, threads: int | None = None) -> dict:
    """Autograde the instructor version, the student version and every planted mistake; report surprises.

    ``threads``: the CPU threads each grading kernel may use (``OMP_NUM_THREADS``), when several checks share
    the machine; None leaves the environment as it is."""
    with tempfile.TemporaryDirectory() as tmp:
        course = Path(tmp)
        shutil.copy(COURSE / "nbgrader_config.py", course)
        shutil.copytree(COURSE / "source" / assignment, course / "source" / assignment)
        release([assignment], course)
        source = json.loads((course / "source" / assignment / f"{assignment}.ipynb").read_text(encoding="utf-8"))
        submissions = {"instructor": source,
                       "student-version": json.loads((course / "release" / assignment / f"{assignment}.ipynb").read_text())}
        mistakes = planted_mistakes(assignment)
        for mistake in mistakes:
            submissions[f"planted-{mistake['name']}"] = plant(source, mistake)
        for student, notebook in submissions.items():
            folder = course / "submitted" / student / assignment
            folder.mkdir(parents=True)
            (folder / f"{assignment}.ipynb").write_text(json.dumps(notebook, indent=1), encoding="utf-8")
        start = time.perf_counter()
        env = None if threads is None else {**os.environ, "OMP_NUM_THREADS": str(threads)}
        run_nbgrader(course, "autograde", assignment, env=env)
        seconds = time.perf_counter() - start
        report = {student: grades(course, assignment, student) for student in submissions}
    problems = []
    instructor = report["instructor"]
    if instructor["score"] != instructor["max_score"]:
        problems.append(f"instructor version scores {instructor['score']}/{instructor['max_score']}: {instructor['failures']}")
    if report["student-version"]["score"] != 0:
        problems.append(f"student version scores {report['student-version']['score']}, not 0")
    for mistake in mistakes:
        result = report[f"planted-{mistake['name']}"]
        if result["score"] >= result["max_score"]:
            problems.append(f"planted {mistake['name']!r} gets full marks")
        elif not any(mistake["feedback"] in message for message in result["failures"].values()):
            problems.append(f"planted {mistake['name']!r}: no failure message contains {mistake['feedback']!r}: "
                            f"{result['failures']}")
    return {"assignment": assignment, "seconds": seconds, "submissions": len(submissions), "report": report,
            "planted": len(mistakes), "problems": problems}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["release", "check"])
    parser.add_argument("ids", nargs="*", help="assignment ids (default: all)")
    parser.add_argument("--json", help="write the check summary to this file")
    parser.add_argument("--jobs", type=int, default=None,
                        help="assignments checked at once (default: one per CPU core, at most one per assignment)")
    args = parser.parse_args()
    ids = args.ids or assignment_ids()
    if args.command == "release":
        for path in release(ids):
            print(path.relative_to(COURSE.parent))
        return 0
    if args.jobs is not None and args.jobs < 1:
        parser.error(f"--jobs must be at least 1, got {args.jobs}")
    cores = os.cpu_count() or 1
    jobs = min(args.jobs or cores, len(ids))
    # the kernels of parallel checks share the cores instead of each starting one thread per core
    threads = None if jobs == 1 or "OMP_NUM_THREADS" in os.environ else max(1, cores // jobs)
    with ThreadPoolExecutor(max_workers=jobs) as pool:     # each check waits on its own nbgrader process
        summaries = list(pool.map(lambda assignment: check(assignment, threads), ids))
    for summary in summaries:
        assignment = summary["assignment"]
        print(f"{assignment}: {summary['submissions']} submissions autograded in {summary['seconds']:.0f} s")
        for student, result in summary["report"].items():
            failed = ", ".join(sorted(result["failures"])) or "none"
            print(f"  {student:<40} {result['score']:g}/{result['max_score']:g}  failing: {failed}")
        for problem in summary["problems"]:
            print(f"  PROBLEM: {problem}")
    if args.json:
        Path(args.json).write_text(json.dumps(summaries, indent=1), encoding="utf-8")
    return 1 if any(s["problems"] for s in summaries) else 0


if __name__ == "__main__":
    sys.exit(main())
