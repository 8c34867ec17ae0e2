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

* ``correct-<name>`` and ``tamper-<name>``: a class's worth of other submissions, from
  ``assignments/submissions/ID.json`` (see ``submission()``): correct solutions written differently (per-example
  loops, other RNG calls, slow but right), which must get full marks, and tampering attempts (a library
  shortcut, a patched test helper, a kernel hook), each wrapping the honest wrong solution ``wraps`` (a planted
  mistake) or none, which must score no more than that honest solution.

Grading goes through ``assignments/nbgrader_config.py``, so it uses the same submission check
(``assignments/grading``) and stderr handling as an instructor's own ``nbgrader autograde``. For every
submission the report lists each grade cell that lost points and why (the test's message, a flagged cell, or
text the cell wrote to stderr). It prints one line per submission and writes the summary as JSON
(``--json PATH``) for the tests. Time is measured as the CPU time of nbgrader and its kernels (the machine may
be shared, so wall time says little), per submission. The kernels keep torch's default thread count, the one
the chapters' model cache is keyed by, so grading never retrains a chapter's model.
"""
from __future__ import annotations

import argparse
import html
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

COURSE = Path(__file__).resolve().parents[1] / "assignments"
sys.path.insert(0, str(COURSE))
from grading import submission_check  # noqa: E402

NBGRADER = [sys.executable, "-m", "nbgrader"]


def assignment_ids() -> list[str]:
    return sorted(p.name for p in (COURSE / "source").iterdir() if (p / f"{p.name}.ipynb").exists())


def run_nbgrader(course: Path, *args: str) -> tuple[subprocess.CompletedProcess, float]:
    """Run ``nbgrader ARGS --force`` in ``course``; the result and the CPU seconds it and its kernels used."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        process = subprocess.Popen([*NBGRADER, *args, "--force"], cwd=course, stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(process.pid, 0)       # the rusage of this child and the kernels it reaped
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0), err.seek(0)
        result = subprocess.CompletedProcess(process.args, process.returncode, out.read(), err.read())
    if result.returncode != 0:
        raise RuntimeError(f"nbgrader {' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result, usage.ru_utime + usage.ru_stime


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


def submissions_of(assignment: str) -> list[dict]:
    """The correct-variant and tampering submissions of ``assignments/submissions/ID.json``."""
    path = COURSE / "submissions" / f"{assignment}.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else []


def submission(source: dict, entry: dict, mistakes: dict[str, dict]) -> dict:
    """The notebook a submission ``entry`` describes, built from the instructor version ``source``.

    ``entry``: ``{"name", "kind": "correct" | "tamper", "description", "edits": [...], "wraps": planted name or
    null}``; each edit either replaces a solution cell's whole source (``{"cell", "source"}``), replaces text in
    it (``{"cell", "old", "new"}``, ``old`` once), or adds a student cell after the cell ``after``
    (``{"after", "source"}``). A tampering entry starts from the planted mistake it ``wraps``."""
    notebook = plant(source, mistakes[entry["wraps"]]) if entry.get("wraps") else json.loads(json.dumps(source))
    for edit in entry["edits"]:
        if "after" in edit:
            index = next(i for i, c in enumerate(notebook["cells"])
                         if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == edit["after"])
            notebook["cells"].insert(index + 1, {"cell_type": "code", "execution_count": None, "metadata": {},
                                                 "outputs": [], "source": edit["source"]})
        elif "source" in edit:
            cells = [c for c in notebook["cells"]
                     if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == edit["cell"]]
            if len(cells) != 1:
                raise ValueError(f"submission {entry['name']!r}: no single cell {edit['cell']!r}")
            cells[0]["source"] = edit["source"]
        else:
            notebook = plant(notebook, {"name": entry["name"], **edit})
    return notebook


def grades(course: Path, assignment: str, student: str) -> dict:
    """Score, maximum, the grade cells that lost points (grade_id -> why) and the cells the check refused."""
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        submission_ = gradebook.find_submission(assignment, student)
        score, max_score = submission_.score, submission_.max_score
        cell_scores = {grade.name: (grade.score, grade.max_score) for notebook in submission_.notebooks
                       for grade in notebook.grades}
    graded = json.loads((course / "autograded" / student / assignment / f"{assignment}.ipynb").read_text(encoding="utf-8"))
    failures, lost, refused = {}, {}, {}
    for index, cell in enumerate(graded["cells"]):
        meta = cell.get("metadata", {}).get("nbgrader", {})
        name = meta.get("grade_id", f"cell {index}")
        errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
        stderr = "".join("".join(o.get("text", "")) for o in cell.get("outputs", [])   # text: a str or a list of lines
                         if o.get("output_type") == "stream" and o.get("name") == "stderr")
        if errors:
            failures[name] = f"{errors[0]['ename']}: {errors[0]['evalue']}"
        if "submission check: this cell was not run" in "".join(cell.get("source", "")):
            refused[name] = failures.get(name, "refused by the submission check")
        if name in cell_scores and cell_scores[name][0] < cell_scores[name][1]:
            why = failures.get(name) or (f"wrote to stderr: {stderr[:300]}" if stderr else "no error shown")
            lost[name] = f"{cell_scores[name][0]:g}/{cell_scores[name][1]:g}: {why}"
    return {"score": score, "max_score": max_score, "failures": failures, "lost": lost, "refused": refused}


def hidden_lines(source: dict) -> set[str]:
    """The distinctive lines of the source's hidden tests (those that do not also occur outside them)."""
    hidden, visible = set(), set()
    for cell in source["cells"]:
        text = "".join(cell["source"])
        for block in re.findall(r"### BEGIN HIDDEN TESTS(.*?)### END HIDDEN TESTS", text, re.S):
            hidden |= {line.strip() for line in block.splitlines() if len(line.strip()) > 25}
        outside = re.sub(r"### BEGIN HIDDEN TESTS.*?### END HIDDEN TESTS", "", text, flags=re.S)
        visible |= {line.strip() for line in outside.splitlines()}
    return hidden - visible


def feedback_leaks(page: Path, source: dict) -> list[str]:
    """What a feedback page shows of the hidden tests: their markers and any of their distinctive lines."""
    text = html.unescape(re.sub(r"<[^>]+>", "", page.read_text(encoding="utf-8")))
    found = ["the marker HIDDEN TESTS"] if "HIDDEN TESTS" in text else []
    return found + sorted(line for line in hidden_lines(source) if line in text)


def warm_model_cache(source: dict) -> float:
    """Run the assignment's setup cell (its first code cell) once, outside nbgrader, and return its seconds.

    A setup cell that loads a trained model (a4: chapter 4's CNN) trains it on a cold cache, which on a busy
    machine can outlast nbgrader's per-cell timeout and fail every submission.  Run here first, with torch's
    default thread count like the grading kernels (the cache key includes it), the model lands in the cache
    and the graded setup cells only load it.
    """
    code = next("".join(cell["source"]) for cell in source["cells"] if cell["cell_type"] == "code")
    code = "\n".join(line for line in code.splitlines() if not line.lstrip().startswith(("%", "!")))
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True,
                   env=dict(os.environ, MPLBACKEND="Agg"))
    return time.perf_counter() - start


def check(assignment: str) -> dict:
    """Autograde the instructor and student versions, the planted mistakes and the other submissions; report
    every submission whose verdict is not the expected one."""
    with tempfile.TemporaryDirectory() as tmp:
        course = Path(tmp)
        shutil.copy(COURSE / "nbgrader_config.py", course)
        shutil.copytree(COURSE / "grading", course / "grading", ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copytree(COURSE / "source" / assignment, course / "source" / assignment)
        release([assignment], course)
        source = json.loads((course / "source" / assignment / f"{assignment}.ipynb").read_text(encoding="utf-8"))
        notebooks = {"instructor": source,
                     "student-version": json.loads((course / "release" / assignment / f"{assignment}.ipynb").read_text())}
        mistakes = planted_mistakes(assignment)
        by_name = {mistake["name"]: mistake for mistake in mistakes}
        for mistake in mistakes:
            notebooks[f"planted-{mistake['name']}"] = plant(source, mistake)
        others = submissions_of(assignment)
        for entry in others:
            notebooks[f"{entry['kind']}-{entry['name']}"] = submission(source, entry, by_name)
        for student, notebook in notebooks.items():
            folder = course / "submitted" / student / assignment
            folder.mkdir(parents=True)
            (folder / f"{assignment}.ipynb").write_text(json.dumps(notebook, indent=1), encoding="utf-8")
        warm_model_cache(source)
        start = time.perf_counter()
        _, cpu_seconds = run_nbgrader(course, "autograde", assignment)
        seconds = time.perf_counter() - start
        report = {student: grades(course, assignment, student) for student in notebooks}
        leaks = {}
        for student in ("instructor", f"planted-{mistakes[0]['name']}" if mistakes else "student-version"):
            run_nbgrader(course, "generate_feedback", assignment, "--student", student)
            leaks[student] = feedback_leaks(course / "feedback" / student / assignment / f"{assignment}.html", source)
    problems = []
    instructor = report["instructor"]
    if instructor["score"] != instructor["max_score"]:
        problems.append(f"instructor version scores {instructor['score']}/{instructor['max_score']}: {instructor['lost']}")
    if report["student-version"]["score"] != 0:
        problems.append(f"student version scores {report['student-version']['score']}, not 0")
    for mistake in mistakes:
        result = report[f"planted-{mistake['name']}"]
        if result["score"] >= result["max_score"]:
            problems.append(f"planted {mistake['name']!r} gets full marks")
        elif not any(mistake["feedback"] in message for message in result["failures"].values()):
            problems.append(f"planted {mistake['name']!r}: no failure message contains {mistake['feedback']!r}: "
                            f"{result['failures']}")
    for entry in others:
        result = report[f"{entry['kind']}-{entry['name']}"]
        if entry["kind"] == "correct":
            if result["score"] != result["max_score"] or result["refused"]:
                problems.append(f"correct {entry['name']!r} scores {result['score']:g}/{result['max_score']:g}: "
                                f"lost {result['lost']}, refused {result['refused']}")
        else:
            honest = report[f"planted-{entry['wraps']}"]["score"] if entry.get("wraps") else 0.0
            if result["score"] > honest:
                problems.append(f"tamper {entry['name']!r} scores {result['score']:g}, more than the honest "
                                f"solution it wraps ({entry.get('wraps') or 'none'}: {honest:g})")
    for student, found in leaks.items():
        if found:
            problems.append(f"the feedback of {student} shows hidden tests: {found[:3]}")
    return {"assignment": assignment, "seconds": seconds, "feedback_leaks": leaks, "cpu_seconds": cpu_seconds,
            "submissions": len(notebooks), "report": report, "planted": len(mistakes),
            "correct": sum(e["kind"] == "correct" for e in others), "tamper": sum(e["kind"] == "tamper" for e in others),
            "problems": problems}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["release", "check"])
    parser.add_argument("ids", nargs="*", help="assignment ids (default: all)")
    parser.add_argument("--json", help="write the check summary to this file")
    parser.add_argument("--jobs", type=int, default=1,
                        help="assignments checked at once (default 1; their kernels keep torch's default threads)")
    args = parser.parse_args()
    ids = args.ids or assignment_ids()
    if args.command == "release":
        for path in release(ids):
            print(path.relative_to(COURSE.parent))
        return 0
    if args.jobs < 1:
        parser.error(f"--jobs must be at least 1, got {args.jobs}")
    with ThreadPoolExecutor(max_workers=min(args.jobs, len(ids))) as pool:   # each check waits on its own nbgrader
        summaries = list(pool.map(check, ids))
    for summary in summaries:
        assignment = summary["assignment"]
        print(f"{assignment}: {summary['submissions']} submissions autograded in {summary['seconds']:.0f} s wall, "
              f"{summary['cpu_seconds']:.0f} s CPU ({summary['cpu_seconds'] / summary['submissions']:.1f} s CPU "
              f"per submission)")
        for student, result in summary["report"].items():
            print(f"  {student:<44} {result['score']:g}/{result['max_score']:g}")
            for cell, why in sorted(result["lost"].items()):
                print(f"      lost {cell}: {why[:220]}")
            for cell, why in sorted(result["refused"].items()):
                print(f"      refused {cell}: {why[:220]}")
        for problem in summary["problems"]:
            print(f"  PROBLEM: {problem}")
    if args.json:
        Path(args.json).write_text(json.dumps(summaries, indent=1), encoding="utf-8")
    return 1 if any(s["problems"] for s in summaries) else 0


if __name__ == "__main__":
    sys.exit(main())
