"""Build the two course archives from the repository: what students get, and what only instructors get.

    python scripts/build_course.py [--out DIR]     # default DIR: _build/course

* ``advex-assignments-student.zip``: the student versions only (``assignments/release/ID/ID.ipynb``, what
  ``nbgrader generate_assignment`` makes: no solution, no hidden test) and a README. Hand this out, or put it
  in the repository your JupyterHub's launch link (nbgitpuller) clones, never the book's repository itself.
* ``advex-assignments-instructor.zip``: the course directory (``nbgrader_config.py``, ``source/`` with the
  solutions and hidden tests, ``planted/`` and ``submissions/``, the grading helpers in ``grading/``, the
  student versions in ``release/``) with ``scripts/assignments.py`` and the instructors' page. Keep it private.

The student versions are regenerated first (``scripts/assignments.py release``) and the student archive is
checked before it is written: a notebook with a solution block, a hidden test or a line of a solution refuses
the build (exit 1).
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import re
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COURSE = REPO / "assignments"
STUDENT_README = """# Assignments of "Adversarial Examples: an executable book"

One folder per assignment, each with the notebook to complete (the student version). Install the book's
package and its offline assets first (see the book's README: `pip install` of the repository, then
`python -m advex.data.assets fetch`), open the notebook in JupyterLab, write code where it says
`# YOUR CODE HERE`, and run it from the top (Kernel > Restart Kernel and Run All Cells) before you submit.
"""


def _course_script():
    spec = importlib.util.spec_from_file_location("assignments_script", REPO / "scripts" / "assignments.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def solution_lines(source: dict) -> set[str]:
    """Distinctive lines of the solutions and hidden tests (those that do not also occur outside them)."""
    inside, outside = set(), set()
    for cell in source["cells"]:
        text = "".join(cell["source"])
        pattern = r"### BEGIN (SOLUTION|HIDDEN TESTS)(.*?)### END (SOLUTION|HIDDEN TESTS)"
        for _, block, _ in re.findall(pattern, text, re.S):
            inside |= {line.strip() for line in block.splitlines() if len(line.strip()) > 20}
        outside |= {line.strip() for line in re.sub(pattern, "", text, flags=re.S).splitlines()}
    return inside - outside


def leaks(notebook_text: str, source: dict) -> list[str]:
    """What a student notebook shows of the solutions or the hidden tests."""
    notebook = json.loads(notebook_text)
    text = "\n".join("".join(c["source"]) for c in notebook["cells"])
    found = [marker for marker in ("BEGIN SOLUTION", "HIDDEN TESTS") if marker in text]
    lines = {line.strip() for line in text.splitlines()}
    return found + sorted(solution_lines(source) & lines)


def build(out: Path, regenerate: bool = True) -> tuple[Path, Path]:
    script = _course_script()
    ids = script.assignment_ids()
    if regenerate:
        script.release(ids)
    out.mkdir(parents=True, exist_ok=True)
    student, instructor = out / "advex-assignments-student.zip", out / "advex-assignments-instructor.zip"
    with zipfile.ZipFile(student, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("README.md", STUDENT_README)
        for assignment in ids:
            text = (COURSE / "release" / assignment / f"{assignment}.ipynb").read_text(encoding="utf-8")
            source = json.loads((COURSE / "source" / assignment / f"{assignment}.ipynb").read_text(encoding="utf-8"))
            found = leaks(text, source)
            if found:
                raise SystemExit(f"refusing to build the student archive: {assignment} shows {found[:3]}")
            archive.writestr(f"{assignment}/{assignment}.ipynb", text)
    with zipfile.ZipFile(instructor, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(COURSE.rglob("*")):
            relative = path.relative_to(COURSE)
            if path.is_file() and "__pycache__" not in relative.parts and relative.parts[0] in {
                    "nbgrader_config.py", "grading", "source", "release", "planted", "submissions"}:
                archive.write(path, f"assignments/{relative.as_posix()}")
        archive.write(REPO / "scripts" / "assignments.py", "scripts/assignments.py")
        archive.write(REPO / "book" / "instructors.md", "INSTRUCTORS.md")
    return student, instructor


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(REPO / "_build" / "course"), help="folder for the two archives")
    args = parser.parse_args()
    for path in build(Path(args.out)):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
