"""Where the book keeps downloaded assets and trained models.

``ADVEX_HOME`` overrides everything.  Otherwise a source checkout keeps its
files in ``<repo>/.advex`` (so a fresh clone starts with an empty cache, as CI
does), and an installed package uses ``~/.cache/advex``.
"""
from __future__ import annotations

import os
from pathlib import Path


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
