"""Argument checks shared by attacks, models and plots.

Every check raises ``ValueError`` that names the argument and says what is
allowed: nothing is silently clipped or ignored.
"""
from __future__ import annotations

import math
from numbers import Real

import numpy as np
import torch

__all__ = ["check_eps", "check_finite", "check_fraction", "check_images", "check_labels", "check_model",
           "check_non_negative", "check_norm", "check_positive", "check_positive_int", "check_shape"]

_NORMS = ("inf", "2")


def check_non_negative(value, name: str) -> float:
    """A finite real number >= 0 (a weight λ, a step size, a tolerance ...); a one-element tensor is accepted."""
    if isinstance(value, bool) or not isinstance(value, (Real, np.floating, np.integer)):
        if isinstance(value, torch.Tensor) and value.numel() == 1:
            value = value.item()
        else:
            raise ValueError(f"{name} must be a real number >= 0, got {value!r}")
    value = float(value)
    if math.isnan(value) or math.isinf(value):
        raise ValueError(f"{name} must be finite and >= 0, got {value}")
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return value


def check_eps(eps, name: str = "eps") -> float:
    """A perturbation size ε (or a list of them, named by ``name``): a finite real number >= 0.

    Only for budgets; other numbers >= 0 go through :func:`check_non_negative`.
    """
    return check_non_negative(eps, name)


def check_positive(value, name: str) -> float:
    """A finite real number > 0 (a standard deviation, a weight c, a learning rate ...)."""
    try:
        checked = check_non_negative(value, name)
    except ValueError:
        checked = 0.0
    if not checked > 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return checked


def check_fraction(value, name: str, *, open_interval: bool = False, meaning: str = "") -> float:
    """A number in [0, 1], or in (0, 1) with ``open_interval``; ``meaning`` (e.g. "the weight of the clean
    loss") is added to the error message."""
    number = not isinstance(value, bool) and isinstance(value, (Real, np.floating, np.integer))
    if not number or not ((0 < value < 1) if open_interval else (0 <= value <= 1)):
        interval = "(0, 1)" if open_interval else "[0, 1]"
        raise ValueError(f"{name} must be a number in {interval}{f' ({meaning})' if meaning else ''}, got {value!r}")
    return float(value)


def check_positive_int(value, name: str) -> int:
    """An integer >= 1 (a number of steps, restarts, samples ...)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


def check_norm(norm) -> str:
    """'inf' (also accepts float('inf'), np.inf, 'linf') or '2' (also 2, 'l2')."""
    key = str(norm).lower().removeprefix("l")
    if key in ("inf", "nf"):
        return "inf"
    if key in ("2", "2.0"):
        return "2"
    raise ValueError(f"norm must be one of 'inf' or '2', got {norm!r}")


def check_finite(x: torch.Tensor | np.ndarray, name: str) -> None:
    """No NaN or infinity anywhere."""
    finite = torch.isfinite(x).all() if isinstance(x, torch.Tensor) else np.isfinite(x).all()
    if not bool(finite):
        raise ValueError(f"{name} contains NaN or infinite values")


def check_images(x: torch.Tensor, name: str = "x", low: float = 0.0, high: float = 1.0) -> None:
    """A float tensor of images, finite, with every value inside [low, high]."""
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor with values in [{low}, {high}], got dtype {x.dtype}")
    check_finite(x, name)
    if x.numel() and (x.min() < low or x.max() > high):
        raise ValueError(
            f"{name} must lie in [{low}, {high}] (pixel units); got values in "
            f"[{x.min().item():.4g}, {x.max().item():.4g}]"
        )


def check_shape(x, expected: tuple, name: str) -> None:
    """``expected`` may hold None for 'any size' in that position."""
    shape = tuple(x.shape)
    if len(shape) != len(expected) or any(e is not None and e != s for e, s in zip(expected, shape)):
        want = "(" + ", ".join("any" if e is None else str(e) for e in expected) + ")"
        raise ValueError(f"{name} must have shape {want}, got {shape}")


def check_labels(y, num_classes: int | None, batch_size: int | None = None, name: str = "y") -> torch.Tensor:
    """Integer class labels in [0, num_classes) (only >= 0 when ``num_classes`` is None).

    Any integer dtype (int8 ... int64, uint8 ...) is accepted; the labels come back as an
    int64 tensor on the same device, the dtype ``cross_entropy`` and ``gather`` need.
    Floating-point, complex and boolean tensors are rejected: a float label is a mistake.
    """
    if not isinstance(y, torch.Tensor):
        raise ValueError(f"{name} must be an integer torch.Tensor of class indices, got {type(y).__name__}")
    if y.dtype.is_floating_point or y.dtype.is_complex or y.dtype == torch.bool:
        raise ValueError(f"{name} must be an integer torch.Tensor of class indices, got dtype {y.dtype}")
    if y.dim() != 1:
        raise ValueError(f"{name} must be one-dimensional (one label per example), got shape {tuple(y.shape)}")
    if batch_size is not None and y.shape[0] != batch_size:
        raise ValueError(f"{name} has {y.shape[0]} labels but the batch has {batch_size} examples")
    y = y.long()
    if y.numel() and num_classes is None and y.min() < 0:
        raise ValueError(f"{name} must hold non-negative class indices, got {y.min().item()}")
    if y.numel() and num_classes is not None and (y.min() < 0 or y.max() >= num_classes):
        raise ValueError(
            f"{name} must hold class indices in [0, {num_classes - 1}], got values in "
            f"[{y.min().item()}, {y.max().item()}]"
        )
    return y


def check_model(model, name: str = "model") -> torch.nn.Module:
    """A classifier: a ``torch.nn.Module`` (whose outputs are logits)."""
    if not isinstance(model, torch.nn.Module):
        raise ValueError(f"{name} must be a torch.nn.Module returning logits, got {type(model).__name__}")
    return model
