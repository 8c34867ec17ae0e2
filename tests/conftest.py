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
# * each notebook (nbval collects one test per cell, and the cells share one kernel);
# * each test module (its module- and session-scoped fixtures then run once, not once per worker);
# * the notebooks that call ``mnist_classifier``, together: they read and train the same model-cache entries
#   (chapter 2's softmax regression, chapter 4's networks), and the cache has no lock, so two workers would
#   both train an entry.  The assignments' grading kernels call it too, but ``scripts/assignments.py check``
#   runs them with one CPU thread each (two checks at once on two cores), and the cache key holds the thread
#   count, so their entries are their own: a4 trains chapter 4's CNN on one thread (about 8 CPU-seconds), and
#   keeping the check apart from the chapters lets it run beside them;
# * the tests that use the built book (``built_book`` is session-scoped, so per worker).
#
# Units run longest first (the shared-model unit, then the notebooks), so that the short ones fill the gaps.
# xdist's own ``--dist loadgroup`` cannot do this here: it marks a group by appending "@group" to a test's
# private ``_nodeid``, which pytest 9 no longer reads; so the scheduler below is xdist's ``loadscope`` with
# the scope of a test being its work unit.
SHARED_MODELS_GROUP = "mnist-classifiers"
BUILT_BOOK_GROUP = "built-book"
BUILT_BOOK_USERS = ("tests/test_book_build.py", "tests/test_browser.py", "tests/test_api_reference.py")
LONG_TEST_MODULES = ("tests/test_assignments.py",)    # autogrades every submission of four assignments
SHARED_MODEL_CALL = re.compile(r"\bmnist_classifier\(")


def _calls_shared_models(notebook: Path) -> bool:
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    return any(SHARED_MODEL_CALL.search("".join(cell["source"])) for cell in cells if cell["cell_type"] == "code")


@functools.lru_cache(maxsize=None)
def work_unit(path: str) -> str:
    """The work unit of a test file or notebook, given relative to the repository."""
    if path.endswith(".ipynb"):
        return SHARED_MODELS_GROUP if _calls_shared_models(REPO / path) else path
    if path in BUILT_BOOK_USERS:
        return BUILT_BOOK_GROUP
    return path


@functools.lru_cache(maxsize=None)
def _unit_rank(unit: str) -> tuple:
    """Longest first: the shared-model chain, the other notebooks (more code cells first), the assignments'
    grading and the book, the rest."""
    if unit == SHARED_MODELS_GROUP:
        return (0, 0, unit)
    if unit.endswith(".ipynb"):
        cells = json.loads((REPO / unit).read_text(encoding="utf-8"))["cells"]
        return (1, -sum(cell["cell_type"] == "code" for cell in cells), unit)
    return (2 if unit == BUILT_BOOK_GROUP or unit in LONG_TEST_MODULES else 3, 0, unit)


def _unit_of(nodeid: str) -> str:
    return work_unit(nodeid.split("::", 1)[0])


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
