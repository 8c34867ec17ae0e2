"""Shared fixtures: the built HTML book (built once per test session)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BUILD_DIR = REPO / "_build" / "html"


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
