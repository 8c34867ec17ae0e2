"""The instructor's grading helpers for the book's assignments (not shipped to students).

``submission_check``: what a submission may not do, read from its syntax tree; ``preprocessors``: the nbgrader
preprocessors that apply it during ``nbgrader autograde`` and keep warnings from zeroing a grade cell.
"""
