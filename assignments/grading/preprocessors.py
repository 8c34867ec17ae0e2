"""nbgrader preprocessors for the book's assignments, switched on in ../nbgrader_config.py.

* ``SubmissionCheck`` (autograde, before the kernel starts): every code cell the grader does not restore from
  the source (solution cells and cells the student added) is checked with ``submission_check``; a cell that
  breaks a rule is replaced by a ``raise`` that says which rule, so it does not run.
* ``StderrAsOutput`` (autograde, after execution): nbgrader scores a grade cell 0 as soon as it wrote anything
  to stderr, so a harmless library warning in a correct solution would cost all of the cell's points. Stderr
  text in a grade cell becomes ordinary output, marked as such (errors, which carry the tests' verdicts, stay).
* ``FeedbackWithoutHiddenTests`` (generate_feedback): the feedback page shows the test cells without their
  hidden part, and failures as the test's message only (a traceback would quote the hidden test's code).
"""
from __future__ import annotations

from nbgrader.api import Gradebook
from nbgrader.preprocessors import ClearHiddenTests, NbGraderPreprocessor

from . import submission_check

STDERR_NOTE = "[written to stderr; not counted as a failure]\n"


def _source_notebook(resources: dict) -> dict:
    """The source notebook's locked and grade cells, as the gradebook knows them (in the nbformat shape)."""
    info = resources["nbgrader"]
    with Gradebook(info["db_url"]) as gradebook:
        notebook = gradebook.find_notebook(info["notebook"], info["assignment"])
        graded = {cell.name for cell in notebook.grade_cells}
        cells = [{"cell_type": cell.cell_type, "source": cell.source or "",
                  "metadata": {"nbgrader": {"grade_id": cell.name, "locked": bool(cell.locked),
                                            "grade": cell.name in graded}}}
                 for cell in notebook.source_cells]
    return {"cells": cells}


class SubmissionCheck(NbGraderPreprocessor):
    """Replace every student code cell that breaks a rule of ``submission_check`` by a ``raise`` naming it."""

    def preprocess(self, nb, resources):
        source = _source_notebook(resources)
        flagged = submission_check.check_notebook(nb, source)
        for index, violations in flagged.items():
            cell = nb.cells[index]
            cell.source = submission_check.refusal(violations)
            cell.metadata.setdefault("submission_check", [str(v) for v in violations])
            self.log.warning("submission check: cell %d not run: %s", index, "; ".join(map(str, violations)))
        resources.setdefault("submission_check", {})[resources["nbgrader"]["notebook"]] = {
            str(index): [str(v) for v in violations] for index, violations in flagged.items()}
        return nb, resources


class StderrAsOutput(NbGraderPreprocessor):
    """Turn stderr text of grade cells into stdout, marked, so that a warning does not zero a correct cell."""

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type == "code" and cell.metadata.get("nbgrader", {}).get("grade"):
            for output in cell.get("outputs", []):
                if output.get("output_type") == "stream" and output.get("name") == "stderr":
                    output["name"] = "stdout"
                    output["text"] = STDERR_NOTE + output["text"]
        return cell, resources


class FeedbackWithoutHiddenTests(ClearHiddenTests):
    """ClearHiddenTests for the feedback page, and each error shown as its message only (no traceback)."""

    def preprocess_cell(self, cell, resources, index):
        cell, resources = super().preprocess_cell(cell, resources, index)
        if cell.cell_type == "code":
            for output in cell.get("outputs", []):
                if output.get("output_type") == "error":
                    output["traceback"] = [f"{output.get('ename', 'Error')}: {output.get('evalue', '')}"]
        return cell, resources
