"""How tests/conftest.py shares the test run out between pytest-xdist workers (see its comment)."""
from __future__ import annotations

import json
import re
from pathlib import Path

import conftest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(p.relative_to(REPO).as_posix() for p in (REPO / "chapters").glob("*.ipynb"))


def test_every_notebook_is_its_own_unit():
    """Notebooks that train the same cached model may run side by side: the cache locks an entry while one
    process trains it (tests/test_cache.py checks that two processes train it once)."""
    assert [conftest.work_unit(f"{path}::Cell 3") for path in NOTEBOOKS] == NOTEBOOKS


def test_each_assignment_is_its_own_unit():
    ids = ["a1_linear_by_hand", "a4_break_or_certify"]
    units = {conftest.work_unit(f"tests/test_assignments.py::test_feedback_never_shows_hidden_tests[{i}]") for i in ids}
    same = {conftest.work_unit(f"tests/test_assignments.py::{test}[a1_linear_by_hand]")
            for test in ("test_autograding_catches_the_planted_mistakes", "test_students_write_the_attacks")}
    assert len(units) == 2 and len(same) == 1
    assert conftest.work_unit("tests/test_assignments.py::test_planted_fixtures_name_real_cells") == \
        "tests/test_assignments.py"


def test_every_expected_unit_exists():
    """The longest-first table names units that exist (a renamed notebook would silently lose its rank)."""
    for unit in conftest.EXPECTED_MINUTES:
        if unit.endswith(".ipynb"):
            assert (REPO / unit).exists(), unit
        elif unit.startswith("tests/test_assignments.py["):
            assert (REPO / "assignments" / "source" / unit[len("tests/test_assignments.py["):-1]).is_dir(), unit


def test_a_test_module_is_one_unit_and_the_built_book_users_share_one():
    assert conftest.work_unit("tests/test_glue.py") == "tests/test_glue.py"
    units = {conftest.work_unit(path) for path in conftest.BUILT_BOOK_USERS}
    assert units == {conftest.BUILT_BOOK_GROUP}
    assert all((REPO / path).exists() for path in conftest.BUILT_BOOK_USERS)


def test_every_test_module_using_the_built_book_is_in_the_built_book_unit():
    uses = re.compile(r"def \w+\([^)]*\bbuilt_book\b")     # a test or fixture that takes the built book
    users = {p.relative_to(REPO).as_posix() for p in (REPO / "tests").glob("test_*.py")
             if uses.search(p.read_text(encoding="utf-8"))}
    assert "tests/test_browser.py" in users
    assert users <= set(conftest.BUILT_BOOK_USERS)


def test_units_run_longest_first():
    units = {conftest.work_unit(p) for p in NOTEBOOKS} | {"tests/test_glue.py", conftest.BUILT_BOOK_GROUP}
    order = sorted(units, key=conftest._unit_rank)
    minutes = [conftest.EXPECTED_MINUTES[u] for u in order if u in conftest.EXPECTED_MINUTES]
    assert minutes == sorted(minutes, reverse=True)
    assert order[0] == max(conftest.EXPECTED_MINUTES.keys() & units, key=conftest.EXPECTED_MINUTES.get)
    assert order[-1] == "tests/test_glue.py"
