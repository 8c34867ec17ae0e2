"""Choose the device every heavy computation runs on.

CUDA when it is available, else the CPU.  ``ADVEX_DEVICE`` (``cpu``, ``cuda``,
``cuda:1`` ...) overrides the choice, e.g. to check the CPU path on a GPU box.  :func:`full_recipe` says
whether the chapters run their full recipes (``ADVEX_FULL_RECIPE``, by default on CUDA only).
"""
from __future__ import annotations

import os

import torch
from torch import nn

__all__ = ["describe_device", "device_of", "full_recipe", "get_device"]


def get_device() -> torch.device:
    """Return the device named by ``ADVEX_DEVICE``, else CUDA if present, else CPU."""
    requested = os.environ.get("ADVEX_DEVICE", "").strip()
    if requested:
        try:
            device = torch.device(requested)
        except RuntimeError as err:
            raise ValueError(
                f"ADVEX_DEVICE={requested!r} is not a device; use 'cpu', 'cuda' or 'cuda:N'"
            ) from err
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"ADVEX_DEVICE={requested!r} but CUDA is not available here; use 'cpu'")
        return device
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def full_recipe() -> bool:
    """Whether to run the chapters' full recipes (larger networks, all the data, the papers' attack budgets).

    ``ADVEX_FULL_RECIPE=1`` or ``0`` decides; unset, the full recipes run on CUDA and the versions sized to
    minutes on a CPU run elsewhere.
    """
    requested = os.environ.get("ADVEX_FULL_RECIPE", "").strip()
    if requested not in ("", "0", "1"):
        raise ValueError(f"ADVEX_FULL_RECIPE={requested!r}; use '1' (full recipes) or '0' (CPU-sized ones)")
    return requested == "1" if requested else get_device().type == "cuda"


def device_of(model: nn.Module) -> torch.device:
    """The device of a model's parameters (or buffers); :func:`get_device` for a model with neither."""
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return get_device()


def describe_device() -> str:
    """A one-line human description, printed at the top of each chapter."""
    device = get_device()
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return f"cpu ({torch.get_num_threads()} threads)"
