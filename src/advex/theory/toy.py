"""Karpathy's 10-d toy: a linear (logistic) classifier small enough to fool by hand, in closed form.

Karpathy's 10-dimensional example (Karpathy 2015): score s = wᵀx + b,
P(class 1 | x) = σ(s).  For a linear score every question about the worst
perturbation has a closed form, which is what makes it the right first example.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ..device import get_device
from ..validation import check_eps, check_finite, check_positive_int

__all__ = ["KARPATHY_W", "KARPATHY_X", "fit_loglog_slope", "flip_eps_by_dimension", "min_flip_l0", "min_flip_l2",
           "min_flip_linf", "score", "sigmoid", "worst_case_linf"]

#: Karpathy's toy input and weights (his blog post, "Breaking linear classifiers on ImageNet").
KARPATHY_X = np.array([2, -1, 3, -2, 2, 2, 1, -4, 5, 1], dtype=np.float64)
KARPATHY_W = np.array([-1, -1, 1, -1, 1, -1, 1, 1, -1, 1], dtype=np.float64)


def _vector(v, name: str) -> np.ndarray:
    array = np.asarray(v, dtype=np.float64)
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D vector, got shape {array.shape}")
    check_finite(array, name)
    return array


def _pair(w, x) -> tuple[np.ndarray, np.ndarray]:
    w, x = _vector(w, "w"), _vector(x, "x")
    if w.shape != x.shape:
        raise ValueError(f"w and x must have the same length, got {w.size} and {x.size}")
    return w, x


def score(w, x, b: float = 0.0) -> float:
    """The linear score s = wᵀx + b."""
    w, x = _pair(w, x)
    return float(w @ x + b)


def sigmoid(s: float) -> float:
    """σ(s) = 1 / (1 + e^(−s)), computed without overflow."""
    return float(0.5 * (1.0 + math.tanh(0.5 * s)))


def worst_case_linf(w, eps: float) -> np.ndarray:
    """η = ε · sign(w): the perturbation with ‖η‖∞ ≤ ε that raises wᵀx the most.

    By Hölder's inequality wᵀη ≤ ‖w‖₁ ‖η‖∞ = ε‖w‖₁, with equality exactly here
    (Goodfellow et al. 2015, §3).
    """
    return check_eps(eps) * np.sign(_vector(w, "w"))


def min_flip_linf(w, x, b: float = 0.0) -> tuple[float, np.ndarray]:
    """Smallest max-norm perturbation that moves the score to the boundary s = 0.

    Every coordinate moves by ε against the current decision, so
    ε* = |s| / ‖w‖₁ and η* = −sign(s) ε* sign(w).
    """
    w, x = _pair(w, x)
    s = score(w, x, b)
    eps = float(abs(s) / np.abs(w).sum())
    return eps, -np.sign(s) * eps * np.sign(w)


def min_flip_l2(w, x, b: float = 0.0) -> tuple[float, np.ndarray]:
    """Smallest Euclidean perturbation to the boundary: straight along w.

    The distance from x to the hyperplane wᵀx + b = 0 is |s| / ‖w‖₂, reached by
    η* = −s w / ‖w‖₂².
    """
    w, x = _pair(w, x)
    s = score(w, x, b)
    return float(abs(s) / np.linalg.norm(w)), -s * w / (w @ w)


def min_flip_l0(w, x, b: float = 0.0, max_change: float = math.inf) -> tuple[int, np.ndarray]:
    """Fewest coordinates to change to reach the boundary, each by at most ``max_change``.

    Greedy is optimal here: coordinate i can move the score by at most
    max_change·|wᵢ|, so use the largest |wᵢ| first.  With no bound one
    coordinate is enough (if its weight is non-zero).  Returns (count, η).
    """
    w, x = _pair(w, x)
    if not max_change > 0:
        raise ValueError(f"max_change must be > 0, got {max_change!r}")
    s = score(w, x, b)
    eta = np.zeros_like(w)
    remaining = abs(s)
    for i in np.argsort(-np.abs(w), kind="stable"):
        if remaining <= 0:
            break
        if w[i] == 0:
            break
        step = min(max_change, remaining / abs(w[i]))
        eta[i] = -np.sign(s) * np.sign(w[i]) * step
        remaining -= step * abs(w[i])
    if remaining > 1e-12:
        raise ValueError(f"no perturbation with max_change={max_change} per coordinate reaches the boundary")
    return int(np.count_nonzero(eta)), eta


def flip_eps_by_dimension(
    dims, *, trials: int = 200, confidence: float = 0.95, seed: int = 0, fix_confidence: bool = True
) -> np.ndarray:
    """Median ε (max-norm) that moves a confident decision to the boundary, for each input size n.

    For each n: weights w ~ N(0, 1) and inputs x ~ U(0, 1), n-dimensional.  With
    ``fix_confidence`` the bias is set so that σ(wᵀx + b) = ``confidence`` —
    the model is equally sure at every n, as a trained model would be — and
    then ε* = logit(confidence) / ‖w‖₁ ≈ logit(confidence) / (m n), falling like
    1/n.  Without it (b = 0) the score itself grows like √n and ε* falls only
    like n^(−1/2).  Runs batched on :func:`get_device`.
    """
    trials = check_positive_int(trials, "trials")
    if not 0.5 < confidence < 1:
        raise ValueError(f"confidence must be in (0.5, 1), got {confidence!r}")
    device = get_device()
    generator = torch.Generator(device="cpu").manual_seed(seed)
    target_score = math.log(confidence / (1 - confidence))
    medians = []
    for n in dims:
        n = check_positive_int(n, "dims")
        w = torch.randn(trials, n, generator=generator, dtype=torch.float64).to(device)
        x = torch.rand(trials, n, generator=generator, dtype=torch.float64).to(device)
        s = torch.full((trials,), target_score, dtype=torch.float64, device=device) if fix_confidence else (w * x).sum(1)
        medians.append((s.abs() / w.abs().sum(1)).median().item())
    return np.array(medians)


def fit_loglog_slope(x, y) -> float:
    """Least-squares slope of log y against log x (−1 means y ∝ 1/x)."""
    x, y = _vector(x, "x"), _vector(y, "y")
    if (x <= 0).any() or (y <= 0).any():
        raise ValueError("x and y must be positive for a log-log fit")
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])
