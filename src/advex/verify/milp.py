"""Exact verification by mixed-integer linear programming (Tjeng, Xiao & Tedrake 2019), solved by HiGHS.

For one digit x with label y and one other class j, minimise the margin z_y − z_j over the ε-ball ∩ [0, 1]
subject to the network's equations.  A ReLU a = max(0, z) whose input is known to lie in [l, u] with
l < 0 < u becomes, with one binary δ (δ = 1: the neuron is on),

    a ≥ 0,   a ≥ z,   a ≤ z − l (1 − δ),   a ≤ u δ,

which is exact for δ ∈ {0, 1}; a neuron with l ≥ 0 is a = z and one with u ≤ 0 is a = 0, with no binary.
The tighter [l, u], the fewer binaries and the tighter the "big-M" constants l and u: they come from
:mod:`.crown` (linear bounds ∩ intervals), which is the bounds tightening that makes the program solvable.
The digit is robust when the minimum is > 0 for every j (the solver's dual bound proves it); a solution with
a negative margin is a counterexample, an input in the ball that the network misclassifies.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy.optimize import Bounds, LinearConstraint, milp
from scipy.sparse import coo_array, csr_array
from torch import nn

from ..validation import check_eps, check_positive_int
from .bounds import input_box
from .crown import crown_bounds, crown_margin_bounds
from .network import affine_relu_form, check_ball, check_targets

__all__ = ["VerificationResult", "verify_exactly"]

STATUSES = ("robust", "counterexample", "unknown")


@dataclass
class VerificationResult:
    """The verdict on one digit: 'robust' (proved), 'counterexample' (found one) or 'unknown' (ran out of time)."""

    status: str
    min_margin_lower: float            # a proved lower bound on min_j min_x (z_y − z_j) over the ball
    min_margin_found: float            # the smallest margin at a point the solver found (an upper bound)
    counterexample: torch.Tensor | None  # an input in the ball ∩ [0, 1] with margin < 0 (shape of x), or None
    seconds: float
    binaries: int                      # unstable ReLUs, one binary variable each
    targets_solved: int = 0            # classes j for which a program was solved (the rest the bounds settled)
    details: dict = field(default_factory=dict)


def _program(form, pre_bounds, x_lower, x_upper, c_last: np.ndarray):
    """Variables [x (n₀), a₁ (n₁), δ₁ (unstable₁), a₂, δ₂, …]; returns (objective c, constant, constraints, bounds, integrality)."""
    n0 = form.weights[0].shape[1]
    lows, highs, integrality = [x_lower], [x_upper], [np.zeros(n0)]
    rows, cols, vals, row_low, row_high = [], [], [], [], []
    row = 0
    prev_index = np.arange(n0)        # the variables the next affine map reads
    offset = n0
    binaries = 0

    def add_row(coef_index, coef_values, low, high):
        nonlocal row
        rows.extend([row] * len(coef_index)), cols.extend(coef_index), vals.extend(coef_values)
        row_low.append(low), row_high.append(high)
        row += 1

    for k, (lower, upper) in enumerate(pre_bounds):
        w, b = form.weights[k].cpu().numpy(), form.biases[k].cpu().numpy()
        n = w.shape[0]
        a_index = offset + np.arange(n)
        offset += n
        unstable = np.flatnonzero((lower < 0) & (upper > 0))
        d_index = np.full(n, -1)
        d_index[unstable] = offset + np.arange(len(unstable))
        offset += len(unstable)
        binaries += len(unstable)
        a_low = np.zeros(n)
        a_high = np.maximum(upper, 0.0)
        lows += [a_low, np.zeros(len(unstable))]
        highs += [a_high, np.ones(len(unstable))]
        integrality += [np.zeros(n), np.ones(len(unstable))]
        for i in range(n):
            nz = np.flatnonzero(w[i])
            wi = w[i, nz]
            if lower[i] >= 0:                       # a = z
                add_row(np.r_[a_index[i], prev_index[nz]], np.r_[1.0, -wi], b[i], b[i])
            elif upper[i] <= 0:                     # a = 0 (its bounds already say so)
                continue
            else:
                # a − z ≥ 0
                add_row(np.r_[a_index[i], prev_index[nz]], np.r_[1.0, -wi], b[i], np.inf)
                # a − z − l δ ≤ −l   (a ≤ z − l(1 − δ))
                add_row(np.r_[a_index[i], prev_index[nz], d_index[i]], np.r_[1.0, -wi, -lower[i]], -np.inf, b[i] - lower[i])
                # a − u δ ≤ 0
                add_row(np.r_[a_index[i], d_index[i]], np.r_[1.0, -upper[i]], -np.inf, 0.0)
        prev_index = a_index
    w, b = form.weights[-1].cpu().numpy(), form.biases[-1].cpu().numpy()
    objective = np.zeros(offset)
    objective[prev_index] = c_last @ w
    constant = float(c_last @ b)
    matrix = csr_array(coo_array((vals, (rows, cols)), shape=(row, offset)))
    constraints = LinearConstraint(matrix, np.array(row_low), np.array(row_high)) if row else None
    return (objective, constant, constraints, Bounds(np.concatenate(lows), np.concatenate(highs)),
            np.concatenate(integrality), binaries)


def verify_exactly(model: nn.Module, x: torch.Tensor, y: int, eps, *, time_limit: float = 60.0,
                   skip_bounded: bool = True, intermediate: str = "crown") -> VerificationResult:
    """Decide whether ``model`` keeps label ``y`` on the whole ε-ball ∩ [0, 1] around one input ``x`` (no batch axis).

    One mixed-integer program per other class j (in order of the linear bounds' margin, weakest first);
    with ``skip_bounded`` a class whose linear lower bound is already > 0 needs no program.  Stops at the
    first counterexample.  ``time_limit`` (seconds) is per program; when it runs out the verdict is 'unknown'.
    ``intermediate='ibp'`` takes the big-M constants from IBP beyond the first layer (cheaper, looser; see
    :func:`.crown.layer_bounds`).
    """
    eps = check_eps(eps)
    if not isinstance(x, torch.Tensor) or x.dim() < 1:
        raise ValueError(f"x must be one input tensor without a batch axis, got {type(x).__name__}")
    check_ball(x.unsqueeze(0), eps)
    if isinstance(time_limit, bool) or not isinstance(time_limit, (int, float)) or not time_limit > 0:
        raise ValueError(f"time_limit must be a number of seconds > 0, got {time_limit!r}")
    start = time.perf_counter()
    xb = x.unsqueeze(0).detach().to(torch.float64)
    form = affine_relu_form(model, tuple(x.shape))
    num_classes = form.widths[-1]
    if isinstance(y, torch.Tensor):
        y = int(y)
    if isinstance(y, bool) or not isinstance(y, (int, np.integer)) or not 0 <= y < num_classes:
        raise ValueError(f"y must be a class index in [0, {num_classes - 1}], got {y!r}")
    _, _, pre = crown_bounds(model, xb, eps, with_layers=True, intermediate=intermediate)
    margins = crown_margin_bounds(model, xb, torch.tensor([y]), eps, intermediate=intermediate)[0].numpy()
    pre = [(lo[0].numpy(), up[0].numpy()) for lo, up in pre]
    x_lower, x_upper = (t[0].flatten().numpy() for t in input_box(xb.cpu(), eps))
    others = sorted((j for j in range(num_classes) if j != y), key=lambda j: margins[j])
    lower_bound, found, solved = np.inf, np.inf, 0
    status, witness = "robust", None
    for j in others:
        if skip_bounded and margins[j] > 0:
            lower_bound = min(lower_bound, margins[j])
            continue
        c_last = np.zeros(num_classes)
        c_last[y], c_last[j] = 1.0, -1.0
        objective, constant, constraints, bounds, integrality, _ = _program(form, pre, x_lower, x_upper, c_last)
        result = milp(objective, constraints=constraints, bounds=bounds, integrality=integrality,
                      options={"time_limit": float(time_limit), "presolve": True})
        solved += 1
        dual = getattr(result, "mip_dual_bound", None)
        if result.status == 0 and not integrality.any():      # a plain LP: its optimum is exact
            dual = float(result.fun)
        dual = (dual + constant) if dual is not None and np.isfinite(dual) else -np.inf
        if result.x is not None:
            value = float(result.fun) + constant
            found = min(found, value)
            point = np.clip(result.x[:len(x_lower)], x_lower, x_upper)
            logits, _ = form.forward(torch.from_numpy(point).unsqueeze(0))
            # the solver's tolerances allow a margin of −1e−9 on paper; the network itself must be fooled
            if value < 0 and float(logits[0, y] - logits[0].index_fill(0, torch.tensor([y]), -np.inf).max()) < 0:
                status = "counterexample"
                witness = torch.from_numpy(point).reshape(x.shape).to(x.dtype)
                lower_bound = min(lower_bound, dual)
                break
        lower_bound = min(lower_bound, dual)
        if not dual > 0:
            status = "unknown"
    if status == "robust" and not lower_bound > 0:
        status = "unknown"
    binaries = sum(int(((lo < 0) & (up > 0)).sum()) for lo, up in pre)
    return VerificationResult(status, float(lower_bound), float(found), witness, time.perf_counter() - start,
                              int(binaries), solved, {"linear_margins": margins})
