"""Progress bars for anything that takes more than a few seconds.

Bars are plain text on stderr: Jupyter shows them updating in place, and the
HTML book drops stderr (``execute.stderr_output: remove`` in ``_config.yml``),
so the published pages stay clean.  ``ADVEX_PROGRESS=0`` turns them off.
"""
from __future__ import annotations

import os
import sys

from tqdm.std import tqdm

__all__ = ["progress"]


def progress(iterable=None, **kwargs):
    """``tqdm`` with the book's defaults; disabled when ``ADVEX_PROGRESS=0``."""
    disabled = kwargs.pop("disable", False) or os.environ.get("ADVEX_PROGRESS", "1") == "0"
    kwargs.setdefault("leave", False)
    kwargs.setdefault("file", sys.stderr)
    kwargs.setdefault("mininterval", 0.5)
    return tqdm(iterable, disable=disabled, **kwargs)
