"""One seeding helper that every notebook calls first."""
from __future__ import annotations

import os
import random

import numpy as np
import torch

__all__ = ["seed_everything"]


def seed_everything(seed: int = 0) -> np.random.Generator:
    """Seed Python, NumPy and PyTorch (CPU and CUDA); return a NumPy generator.

    Deterministic algorithms are requested where PyTorch has them (``warn_only``
    so that an operation without a deterministic kernel still runs, with a
    warning, instead of failing on a reader's GPU).
    """
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False
    return np.random.default_rng(seed)
