"""Where the book keeps downloaded assets and trained models.

``ADVEX_HOME`` overrides everything.  Otherwise a source checkout keeps its
files in ``<repo>/.advex`` (so a fresh clone starts with an empty cache, as CI
does), and an installed package uses ``~/.cache/advex``.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable

__all__ = ["atomic_write", "data_dir", "home", "model_cache_dir"]


def home() -> Path:
    """Root folder for assets (``data/``) and the model cache (``models/``)."""
    override = os.environ.get("ADVEX_HOME")
    if override:
        return Path(override).expanduser().resolve()
    repo_root = Path(__file__).resolve().parents[2]
    if (repo_root / "pyproject.toml").is_file() and (repo_root / "src" / "advex").is_dir():
        return repo_root / ".advex"
    return Path.home() / ".cache" / "advex"


def data_dir() -> Path:
    """Folder of verified, converted assets (MNIST, ImageNet weights, class names)."""
    return home() / "data"


def model_cache_dir() -> Path:
    """Folder of cached trained models."""
    return home() / "models"


def atomic_write(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Create ``path`` through ``write(handle)`` so that readers never see a half-written file.

    The bytes go to a temporary file in the same folder, are flushed to disk, and
    then replace ``path`` in one step (``os.replace``); on any error the temporary
    file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        os.fchmod(fd, 0o644)  # readable like any other file (mkstemp makes it 0600)
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
