"""Shared fixtures: the built HTML book (built once per test session); how pytest-xdist shares the work out."""
from __future__ import annotations

import functools
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BUILD_DIR = REPO / "_build" / "html"

# The README's test command runs on two pytest-xdist workers.  A work unit goes to one worker whole; the
# units are (``work_unit``):
#
# * each notebook (nbval collects one test per cell, and the cells share one kernel).  Notebooks that train the
#   same model-cache entry may run side by side: ``advex.cached_model`` locks an entry while it is trained, so
#   the second waits and loads it instead of training it again;
# * each assignment's tests in tests/test_assignments.py (the first grades all its submissions, about four to
#   seven minutes of CPU; the rest read that report), so the four gradings spread over the workers;
# * each other test module (its module- and session-scoped fixtures then run once, not once per worker);
# * the tests that use the built book (``built_book`` is session-scoped, so per worker).
#
# Units run longest first, so that the short ones fill the gaps at the end: xdist hands a worker its next unit
# when it is nearly done with the last, so this is greedy longest-first scheduling.  xdist's own
# ``--dist loadgroup`` cannot do this here: it marks a group by appending "@group" to a test's private
# ``_nodeid``, which pytest 9 no longer reads; so the scheduler below is xdist's ``loadscope`` with the scope of
# a test being its work unit.
BUILT_BOOK_GROUP = "built-book"
BUILT_BOOK_USERS = ("tests/test_book_build.py", "tests/test_browser.py", "tests/test_api_reference.py")
PER_ASSIGNMENT_MODULES = ("tests/test_assignments.py",)

# Rough minutes each long unit takes on one of two CPU cores (one thread per worker, run_tests.sh) from an empty
# model cache: estimates from single executions of the chapters and the grading's CPU time, not measurements of
# this scheduler; only their order matters.  A unit not listed ranks after these, notebooks by their number of
# code cells.
EXPECTED_MINUTES = {
    "chapters/05_defences_that_work.ipynb": 10,
    "chapters/06_defences_that_seem_to_work.ipynb": 6,
    "chapters/08_proving_robustness.ipynb": 5,
    "tests/test_assignments.py[a4_break_or_certify]": 5,
    "tests/test_assignments.py[a3_adversarial_training]": 5,
    "tests/test_assignments.py[a2_pgd_from_scratch]": 4,
    "tests/test_assignments.py[a1_linear_by_hand]": 4,
    BUILT_BOOK_GROUP: 4,
    "chapters/07_attacks_without_gradients.ipynb": 3,
    "chapters/04_attacking_deep_networks.ipynb": 3,
}


@functools.lru_cache(maxsize=None)
def work_unit(nodeid: str) -> str:
    """The work unit of a test, from its node id (a notebook cell, a test function, a parametrized test)."""
    path, _, rest = nodeid.partition("::")
    if path in PER_ASSIGNMENT_MODULES:
        parameter = re.search(r"\[([^\]]+)\]$", rest)
        return f"{path}[{parameter.group(1)}]" if parameter else path
    if path in BUILT_BOOK_USERS:
        return BUILT_BOOK_GROUP
    return path


@functools.lru_cache(maxsize=None)
def _unit_rank(unit: str) -> tuple:
    """Longest first: the units of EXPECTED_MINUTES by their minutes, then the other notebooks (more code cells
    first), then the rest."""
    if unit in EXPECTED_MINUTES:
        return (0, -EXPECTED_MINUTES[unit], unit)
    if unit.endswith(".ipynb"):
        cells = json.loads((REPO / unit).read_text(encoding="utf-8"))["cells"]
        return (1, -sum(cell["cell_type"] == "code" for cell in cells), unit)
    return (2, 0, unit)


def _unit_of(nodeid: str) -> str:
    return work_unit(nodeid)


def pytest_collection_modifyitems(config, items):
    # a stable sort keeps each unit's own order (a notebook's cells top to bottom); xdist hands the units out
    # in this order (with --no-loadscope-reorder)
    items.sort(key=lambda item: _unit_rank(_unit_of(item.nodeid)))


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    if config.getvalue("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class WorkUnitScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return _unit_of(nodeid)

    return WorkUnitScheduling(config, log)


def build_book() -> subprocess.CompletedProcess:
    """Build the whole book from scratch, from the outputs stored in the notebooks.

    The test run executes every notebook once, under nbval (fresh kernel, stored outputs compared where
    tagged); executing them a second time for the build would double the run for no new check.  So the
    build here reads the stored outputs (``execute_notebooks: "off"``, through a temporary copy of
    ``_config.yml`` beside it, where its relative paths still hold), and
    ``test_chapter_structure.test_notebook_is_stored_executed_top_to_bottom`` checks that those outputs come
    from one top-to-bottom run.  ``scripts/build_book.sh``, the README's build command, executes every
    notebook through the jupyter-cache as before.
    """
    config = REPO / "_config.tests.yml"
    text = (REPO / "_config.yml").read_text(encoding="utf-8")
    stored = text.replace("execute_notebooks: cache", 'execute_notebooks: "off"')
    assert stored != text, "_config.yml no longer says 'execute_notebooks: cache'; update tests/conftest.py"
    config.write_text(stored, encoding="utf-8")
    env = dict(os.environ, ADVEX_PROGRESS="0")
    command = [str(Path(sys.executable).parent / "jupyter-book"), "build", str(REPO), "--all", "-W", "-n", "--keep-going",
               "--config", str(config)]
    try:
        return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    finally:
        config.unlink(missing_ok=True)


@pytest.fixture(scope="session")
def built_book() -> Path:
    """Path of the built HTML book.  ``ADVEX_REUSE_BUILD=1`` reuses an existing build (for quick iteration)."""
    if os.environ.get("ADVEX_REUSE_BUILD") == "1" and (BUILD_DIR / "index.html").exists():
        return BUILD_DIR
    result = build_book()
    if result.returncode != 0:
        pytest.fail(f"jupyter-book build failed (exit {result.returncode}):\n{result.stdout[-6000:]}\n{result.stderr[-3000:]}")
    return BUILD_DIR
