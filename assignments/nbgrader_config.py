"""nbgrader configuration of the book's assignments (https://nbgrader.readthedocs.io).

The course directory is this folder: ``source/<assignment>/`` holds the instructor versions (solutions
between ``### BEGIN SOLUTION`` / ``### END SOLUTION``, hidden tests between ``### BEGIN HIDDEN TESTS`` /
``### END HIDDEN TESTS``); ``nbgrader generate_assignment <assignment>`` writes the student version to
``release/<assignment>/``; submissions go to ``submitted/<student>/<assignment>/`` and
``nbgrader autograde <assignment>`` grades them into ``gradebook.db``.  See book/instructors.md.
"""
import os
import sys

from nbconvert.preprocessors import ClearMetadataPreprocessor, CSSHTMLHeaderPreprocessor
from nbgrader.preprocessors import (AssignLatePenalties, CheckCellMetadata, Execute, GetGrades, IgnorePattern,
                                    LimitOutput, SaveAutoGrades)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))   # the grading helpers beside this file
from grading.preprocessors import FeedbackWithoutHiddenTests, StderrAsOutput, SubmissionCheck  # noqa: E402

c = get_config()  # noqa: F821 (provided by nbgrader)
c.CourseDirectory.course_id = "advex-book"
c.CourseDirectory.root = os.path.dirname(os.path.abspath(__file__))
# every assignment autogrades in well under two minutes on two CPU cores; a stuck submission is cut off
c.Execute.timeout = 120
c.Execute.allow_errors = True
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}

# Autograde: nbgrader's own steps, plus the submission check before the kernel runs anything (a student cell that
# imports the book's attacks, reaches the kernel or patches a library is replaced by a raise naming the rule), and
# stderr text of grade cells kept as output instead of zeroing the cell (a harmless warning is not a failure).
c.Autograde.autograde_preprocessors = [SubmissionCheck, Execute, StderrAsOutput, IgnorePattern,
                                       ClearMetadataPreprocessor, LimitOutput, SaveAutoGrades, AssignLatePenalties,
                                       CheckCellMetadata]
# Feedback: never the hidden tests (nbgrader's feedback keeps them by default), and failures as messages only.
c.GenerateFeedback.preprocessors = [GetGrades, FeedbackWithoutHiddenTests, CSSHTMLHeaderPreprocessor]
