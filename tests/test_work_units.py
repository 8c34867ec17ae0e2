"""How tests/conftest.py shares the test run out between pytest-xdist workers (see its comment)."""
from __future__ import annotations

import json
import re
from pathlib import Path

import conftest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(p.relative_to(REPO).as_posix() for p in (REPO / "chapters").glob("*.ipynb"))


def calls_mnist_classifier(path: str) -> bool:
    cells = json.loads((REPO / path).read_text(encoding="utf-8"))["cells"]
    return any("mnist_classifier(" in "".join(c["source"]) for c in cells if c["cell_type"] == "code")


def test_notebooks_sharing_model_cache_entries_are_one_unit_and_the_others_their_own():
    for path in NOTEBOOKS:
        expected = conftest.SHARED_MODELS_GROUP if calls_mnist_classifier(path) else path
        assert conftest.work_unit(path) == expected, path
    shared = [p for p in NOTEBOOKS if conftest.work_unit(p) == conftest.SHARED_MODELS_GROUP]
    assert "chapters/04_attacking_deep_networks.ipynb" in shared and len(shared) < len(NOTEBOOKS)


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
    order = sorted({conftest.work_unit(p) for p in NOTEBOOKS} | {"tests/test_glue.py", conftest.BUILT_BOOK_GROUP},
                   key=conftest._unit_rank)
    assert order[0] == conftest.SHARED_MODELS_GROUP
    assert order[-1] == "tests/test_glue.py"
    assert all(unit.endswith(".ipynb") for unit in order[1:-2])
