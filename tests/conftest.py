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
    """Build the whole book from scratch (notebooks executed through the jupyter-cache)."""
    env = dict(os.environ, ADVEX_PROGRESS="0")
    command = [str(Path(sys.executable).parent / "jupyter-book"), "build", str(REPO), "--all", "-W", "-n", "--keep-going"]
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)


@pytest.fixture(scope="session")
def built_book() -> Path:
    """Path of the built HTML book.  ``ADVEX_REUSE_BUILD=1`` reuses an existing build (for quick iteration)."""
    if os.environ.get("ADVEX_REUSE_BUILD") == "1" and (BUILD_DIR / "index.html").exists():
        return BUILD_DIR
    result = build_book()
    if result.returncode != 0:
        pytest.fail(f"jupyter-book build failed (exit {result.returncode}):\n{result.stdout[-6000:]}\n{result.stderr[-3000:]}")
    return BUILD_DIR
