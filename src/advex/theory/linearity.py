"""How linear is a network along a line through an input?  (Goodfellow, Shlens & Szegedy 2015, §6 and Fig. 4)

The linear explanation predicts that the logits change almost linearly as an input moves along the
fast-gradient-sign direction, and that a wrong class, once reached, holds over a wide interval of ε.
These functions measure exactly that: the logits along the line, the R² of a (piecewise) linear fit,
and the width of the widest interval of one wrong class.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import nn

from ..device import device_of
from ..modes import eval_mode

__all__ = ["linearity_summary", "logits_along_direction", "longest_wrong_run", "piecewise_linear_r2"]


@torch.no_grad()
def logits_along_direction(model: nn.Module, x: torch.Tensor, direction: torch.Tensor,
                           eps_values: Sequence[float]) -> np.ndarray:
    """Logits of x + ε·direction for every ε (no clipping: the line leaves the box on purpose).

    ``x`` and ``direction`` are (N, ...) batches; returns an array (N, len(eps_values), classes).
    One batch of N × len(eps_values) inputs, on the model's device, in eval mode.
    """
    if direction.shape != x.shape:
        raise ValueError(f"direction must have the shape of x {tuple(x.shape)}, got {tuple(direction.shape)}")
    device = device_of(model)
    x, direction = x.to(device), direction.to(device)
    eps = torch.as_tensor(np.asarray(eps_values, dtype=np.float64), dtype=x.dtype, device=device)
    eps = eps.view(1, -1, *([1] * (x.dim() - 1)))                     # (1, E, 1, ...)
    path = x.unsqueeze(1) + eps * direction.unsqueeze(1)                 # (N, E, ...)
    with eval_mode(model):
        return model(path.flatten(0, 1)).view(len(x), eps.shape[1], -1).cpu().numpy()


def piecewise_linear_r2(eps: np.ndarray, values: np.ndarray, pieces: int = 1) -> float:
    """Mean R², over the columns of ``values`` (one per class), of a least-squares fit that is linear
    on each of ``pieces`` equal runs of ε (``pieces=1``: one straight line)."""
    eps, values = np.asarray(eps, dtype=np.float64), np.asarray(values, dtype=np.float64)
    residual = 0.0
    for index in np.array_split(np.arange(len(eps)), pieces):
        design = np.stack([eps[index], np.ones(len(index))], axis=1)
        coefficients = np.linalg.lstsq(design, values[index], rcond=None)[0]
        residual = residual + ((values[index] - design @ coefficients) ** 2).sum(0)
    total = ((values - values.mean(0)) ** 2).sum(0)
    return float(np.mean(1 - residual / total))


def longest_wrong_run(eps: np.ndarray, prediction: np.ndarray, label: int) -> float:
    """Width of the widest interval of ε > 0 on which one and the same wrong class is predicted."""
    best, start = 0.0, None
    for i in np.flatnonzero(np.asarray(eps) > 0):
        same = start is not None and prediction[i] == prediction[i - 1]
        if prediction[i] != label and not same:
            start = eps[i]
        elif prediction[i] == label:
            start = None
        if start is not None:
            best = max(best, eps[i] - start)
    return best


def linearity_summary(logits: np.ndarray, labels: np.ndarray, eps: np.ndarray, near: float = 0.25) -> dict[str, float]:
    """For logits along lines (from :func:`logits_along_direction`): mean R² of one line, of two lines,
    of one line on |ε| ≤ ``near``, and the median width of one wrong class."""
    eps = np.asarray(eps, dtype=np.float64)
    close = np.abs(eps) <= near + 1e-9
    return {
        "R² one line": float(np.mean([piecewise_linear_r2(eps, l, 1) for l in logits])),
        "R² two lines": float(np.mean([piecewise_linear_r2(eps, l, 2) for l in logits])),
        f"R² one line, |ε| ≤ {near:g}": float(np.mean([piecewise_linear_r2(eps[close], l[close], 1) for l in logits])),
        "median width of one wrong class": float(np.median([longest_wrong_run(eps, l.argmax(1), t)
                                                            for l, t in zip(logits, labels)])),
    }
