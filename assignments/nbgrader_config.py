"""nbgrader configuration of the book's assignments (https://nbgrader.readthedocs.io).

The course directory is this folder: ``source/<assignment>/`` holds the instructor versions (solutions
between ``### BEGIN SOLUTION`` / ``### END SOLUTION``, hidden tests between ``### BEGIN HIDDEN TESTS`` /
``### END HIDDEN TESTS``); ``nbgrader generate_assignment <assignment>`` writes the student version to
``release/<assignment>/``; submissions go to ``submitted/<student>/<assignment>/`` and
``nbgrader autograde <assignment>`` grades them into ``gradebook.db``.  See book/instructors.md.
"""
import os

c = get_config()  # noqa: F821 (provided by nbgrader)
c.CourseDirectory.course_id = "advex-book"
c.CourseDirectory.root = os.path.dirname(os.path.abspath(__file__))
# every assignment autogrades in well under two minutes on two CPU cores; a stuck submission is cut off
c.Execute.timeout = 120
c.Execute.allow_errors = True
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
