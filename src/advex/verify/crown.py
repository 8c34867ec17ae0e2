"""CROWN-style backward linear bounds (Zhang et al. 2018; the same relaxation as Wong & Kolter 2018's dual).

Write the network as z₁ = W₁x + b₁, a_k = ReLU(z_k), z_{k+1} = W_{k+1} a_k + b_{k+1}.  To bound c·z_L from
below, walk backwards and replace every ReLU by a line that stays on the right side of it over the
neuron's known interval [l, u]:

* l ≥ 0: a = z;  u ≤ 0: a = 0;
* l < 0 < u ("unstable"): a ≤ u (z − l)/(u − l) (the chord) and a ≥ α z with α = 1 if u > −l else 0.

A coefficient ≥ 0 takes the lower line, one < 0 the upper line, so c·z_L ≥ Λx + const for every x in the
box; the box then gives the minimum of Λx in closed form.  The intervals [l, u] of each layer come from
the same backward pass run on that layer (with c = ±eᵢ), intersected with the IBP intervals, and the final
bounds are intersected with IBP's too: CROWN is never looser than IBP here by construction.
"""
from __future__ import annotations

import torch
from torch import nn

from .bounds import certified, input_box, interval_bounds, interval_margin_bounds
from .network import (AffineReluForm, affine_relu_form, check_ball, check_targets, margin_matrix,
                      verifiable_layers)

__all__ = ["crown_bounds", "crown_margin_bounds", "layer_bounds", "verified_by_crown"]

Bounds = list[tuple[torch.Tensor, torch.Tensor]]


def relu_relaxation(lower: torch.Tensor, upper: torch.Tensor):
    """Slopes and intercept of the ReLU's linear bounds on [l, u]: (lower slope, upper slope, upper intercept)."""
    active, inactive = lower >= 0, upper <= 0
    unstable = ~(active | inactive)
    width = torch.where(unstable, upper - lower, torch.ones_like(upper))
    upper_slope = torch.where(active, 1.0, torch.where(unstable, upper / width, 0.0)).to(lower.dtype)
    upper_intercept = torch.where(unstable, -upper * lower / width, 0.0).to(lower.dtype)
    lower_slope = torch.where(active, 1.0, torch.where(unstable & (upper > -lower), 1.0, 0.0)).to(lower.dtype)
    return lower_slope, upper_slope, upper_intercept


def backward_lower_bound(form: AffineReluForm, spec: torch.Tensor, depth: int, pre_bounds: Bounds,
                         x_lower: torch.Tensor, x_upper: torch.Tensor) -> torch.Tensor:
    """min over the box of spec · z_depth (z_depth = output of affine map ``depth``, 0-based), a lower bound.

    spec: (N, S, n_depth); pre_bounds[k] bounds z_k for k < depth; x_lower/x_upper: (N, n₀).  Returns (N, S).
    """
    coefficients = spec
    constant = torch.zeros(spec.shape[:2], dtype=spec.dtype, device=spec.device)
    for k in range(depth, -1, -1):
        constant = constant + coefficients @ form.biases[k]
        coefficients = coefficients @ form.weights[k]
        if k == 0:
            break
        lower, upper = pre_bounds[k - 1]
        lower_slope, upper_slope, upper_intercept = relu_relaxation(lower, upper)
        positive, negative = coefficients.clamp(min=0), coefficients.clamp(max=0)
        constant = constant + (negative @ upper_intercept.unsqueeze(-1)).squeeze(-1)
        coefficients = positive * lower_slope.unsqueeze(1) + negative * upper_slope.unsqueeze(1)
    positive, negative = coefficients.clamp(min=0), coefficients.clamp(max=0)
    return constant + (positive @ x_lower.unsqueeze(-1)).squeeze(-1) + (negative @ x_upper.unsqueeze(-1)).squeeze(-1)


def layer_bounds(form: AffineReluForm, x_lower: torch.Tensor, x_upper: torch.Tensor, ibp_pre: Bounds,
                 intermediate: str = "crown") -> Bounds:
    """Bounds on the input of every ReLU layer: backward linear bounds ∩ IBP's, layer by layer.

    The first layer's intervals are exact (the image of a box under one affine map); ``intermediate='ibp'`` keeps
    IBP's intervals for every layer (CROWN-IBP, Zhang et al. 2020: far cheaper for wide convolutional layers).
    """
    if intermediate not in ("crown", "ibp"):
        raise ValueError(f"intermediate must be 'crown' or 'ibp', got {intermediate!r}")
    pre_bounds: Bounds = []
    for k, (ibp_lower, ibp_upper) in enumerate(ibp_pre):
        if k == 0:   # the image of the box under one affine map: its interval is exact
            centre = (x_upper + x_lower) / 2 @ form.weights[0].T + form.biases[0]
            radius = (x_upper - x_lower) / 2 @ form.weights[0].abs().T
            pre_bounds.append((torch.maximum(centre - radius, ibp_lower.flatten(1)),
                               torch.minimum(centre + radius, ibp_upper.flatten(1))))
            continue
        if intermediate == "ibp":
            pre_bounds.append((ibp_lower.flatten(1), ibp_upper.flatten(1)))
            continue
        n = form.weights[k].shape[0]
        eye = torch.eye(n, dtype=x_lower.dtype, device=x_lower.device)
        spec = torch.cat([eye, -eye]).expand(len(x_lower), 2 * n, n)
        both = backward_lower_bound(form, spec, k, pre_bounds, x_lower, x_upper)
        lower = torch.maximum(both[:, :n], ibp_lower.flatten(1))
        upper = torch.minimum(-both[:, n:], ibp_upper.flatten(1))
        pre_bounds.append((lower, upper))
    return pre_bounds


def _prepare(model: nn.Module, x: torch.Tensor, eps):
    eps = check_ball(x, eps)
    device = next(model.parameters()).device
    x = x.to(device, torch.float64)
    form = affine_relu_form(model, tuple(x.shape[1:]))
    x_lower, x_upper = input_box(x, eps)
    return eps, x, form, x_lower.flatten(1), x_upper.flatten(1)


def _chunks(n: int, form: AffineReluForm) -> int:
    # the backward pass holds (examples × 2·width × previous width) coefficients; keep that under ~50M numbers
    widest = max(2 * a * b for a, b in zip(form.widths, [form.weights[0].shape[1]] + form.widths))
    return max(1, min(n, 50_000_000 // max(widest, 1)))


@torch.no_grad()
def crown_bounds(model: nn.Module, x: torch.Tensor, eps, *, with_layers: bool = False, intermediate: str = "crown"):
    """Lower and upper bounds on every logit over the ε-ball ∩ [0, 1] (float64, on the CPU), ⊆ IBP's.

    With ``with_layers=True`` also the bounds on the input of every ReLU layer (flattened).
    ``intermediate``: see :func:`layer_bounds`.
    """
    if intermediate not in ("crown", "ibp"):
        raise ValueError(f"intermediate must be 'crown' or 'ibp', got {intermediate!r}")
    eps, x, form, x_lower, x_upper = _prepare(model, x, eps)
    lowers, uppers, layers = [], [], []
    step = _chunks(len(x), form)
    for first in range(0, len(x), step):
        xb = x[first:first + step]
        ibp_lower, ibp_upper, ibp_pre = interval_bounds(model, xb, eps, with_layers=True)
        xl, xu = x_lower[first:first + step], x_upper[first:first + step]
        pre = layer_bounds(form, xl, xu, ibp_pre, intermediate)
        k = form.widths[-1]
        eye = torch.eye(k, dtype=torch.float64, device=x.device)
        both = backward_lower_bound(form, torch.cat([eye, -eye]).expand(len(xb), 2 * k, k), len(form.weights) - 1,
                                    pre, xl, xu)
        lowers.append(torch.maximum(both[:, :k], ibp_lower).cpu())
        uppers.append(torch.minimum(-both[:, k:], ibp_upper).cpu())
        layers.append([(lo.cpu(), up.cpu()) for lo, up in pre])
    lower, upper = torch.cat(lowers), torch.cat(uppers)
    if not with_layers:
        return lower, upper
    merged = [(torch.cat([c[i][0] for c in layers]), torch.cat([c[i][1] for c in layers])) for i in range(len(layers[0]))]
    return lower, upper, merged


@torch.no_grad()
def crown_margin_bounds(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps, *, intermediate: str = "crown"
                        ) -> torch.Tensor:
    """(N, K) lower bounds on z_y − z_j over the ball (column y is 0), each ≥ IBP's elided bound (float64, CPU).

    ``intermediate``: see :func:`layer_bounds`.
    """
    if intermediate not in ("crown", "ibp"):
        raise ValueError(f"intermediate must be 'crown' or 'ibp', got {intermediate!r}")
    eps, x, form, x_lower, x_upper = _prepare(model, x, eps)
    num_classes = form.widths[-1]
    y = check_targets(y, x, num_classes).to(x.device)
    out = []
    step = _chunks(len(x), form)
    for first in range(0, len(x), step):
        xb, yb = x[first:first + step], y[first:first + step]
        _, _, ibp_pre = interval_bounds(model, xb, eps, with_layers=True)
        xl, xu = x_lower[first:first + step], x_upper[first:first + step]
        pre = layer_bounds(form, xl, xu, ibp_pre, intermediate)
        margins = backward_lower_bound(form, margin_matrix(yb, num_classes), len(form.weights) - 1, pre, xl, xu)
        if isinstance(verifiable_layers(model)[-1], nn.Linear):   # IBP's elided margins exist then
            margins = torch.maximum(margins, interval_margin_bounds(model, xb, yb, eps))
        margins[torch.arange(len(yb)), yb] = 0.0
        out.append(margins.cpu())
    return torch.cat(out)


def verified_by_crown(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps, *, intermediate: str = "crown"
                      ) -> torch.Tensor:
    """Per example (bool, CPU): proved to keep label y everywhere in the ε-ball ∩ [0, 1] by the linear bounds."""
    margins = crown_margin_bounds(model, x, y, eps, intermediate=intermediate)
    return certified(margins, y.cpu())
