"""Interval bound propagation (IBP; Gowal et al. 2018; the interval arithmetic of Mirman et al. 2018).

An interval [l, u] goes through an affine layer as centre and radius, μ = (u + l)/2 and r = (u − l)/2:
the output interval is W μ + b ± |W| r, which is exactly the smallest box around the image of the box.
Through a ReLU both ends are clipped at zero (ReLU is monotone).  Box after box, the bounds hold for
every input in [l, u] but loosen with depth: each layer forgets which corners of the box belonged together.
For the margin z_y − z_j the last layer is folded into the specification ("elision", Gowal et al. 2018,
§3): the interval of the penultimate layer goes through the rows W_y − W_j directly, which is tighter
than subtracting two intervals.
"""
from __future__ import annotations

import torch
from torch import nn

from .network import (apply_abs_linear_part, apply_linear_part, check_ball, check_targets, margin_matrix,
                      verifiable_layers)

__all__ = ["input_box", "interval_bounds", "interval_margin_bounds", "verified_by_ibp"]


def input_box(x: torch.Tensor, eps) -> tuple[torch.Tensor, torch.Tensor]:
    """The L∞ ball of radius ε around x intersected with the pixel box [0, 1], as (lower, upper)."""
    eps = check_ball(x, eps)
    return (x - eps).clamp(0.0, 1.0), (x + eps).clamp(0.0, 1.0)


def propagate_intervals(layers: list[nn.Module], lower: torch.Tensor, upper: torch.Tensor
                        ) -> tuple[torch.Tensor, torch.Tensor, list[tuple[torch.Tensor, torch.Tensor]]]:
    """Push [lower, upper] through the layers; also the bounds on every ReLU's input (pre-activation)."""
    pre_activations = []
    for layer in layers:
        if isinstance(layer, nn.ReLU):
            pre_activations.append((lower, upper))
            lower, upper = lower.clamp(min=0), upper.clamp(min=0)
            continue
        centre, radius = (upper + lower) / 2, (upper - lower) / 2
        centre = apply_linear_part(layer, centre, bias=True)
        radius = apply_abs_linear_part(layer, radius)
        lower, upper = centre - radius, centre + radius
    return lower, upper, pre_activations


def interval_bounds(model: nn.Module, x: torch.Tensor, eps, *, with_layers: bool = False):
    """Lower and upper bounds on every logit over the ε-ball (∩ [0, 1]) around each example of ``x``.

    Computed in ``x``'s dtype, differentiably in the weights (certified training uses it); pass float64
    inputs for certificates.  With ``with_layers=True`` also returns the bounds on the input of every ReLU.
    """
    layers = verifiable_layers(model)
    lower, upper = input_box(x, eps)
    lower, upper, pre = propagate_intervals(layers, lower, upper)
    return (lower, upper, pre) if with_layers else (lower, upper)


def interval_margin_bounds(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps) -> torch.Tensor:
    """(N, K) lower bounds on the margins z_y − z_j over the ball, with the last layer elided; column y is 0.

    The example is certified when every other column is > 0.  Differentiable in the weights.
    """
    layers = verifiable_layers(model)
    last = layers[-1]
    if not isinstance(last, nn.Linear):
        raise ValueError(f"the last layer must be nn.Linear to give the logits, got {type(last).__name__}")
    lower, upper = input_box(x, eps)
    lower, upper, _ = propagate_intervals(layers[:-1], lower, upper)
    lower, upper = lower.flatten(1), upper.flatten(1)
    y = check_targets(y, x, last.out_features)
    c = margin_matrix(y, last.out_features, dtype=x.dtype)                     # (N, K, K)
    weight = c @ last.weight.to(x.dtype)                                       # (N, K, n)
    bias = c @ last.bias.to(x.dtype) if last.bias is not None else 0.0
    centre, radius = (upper + lower) / 2, (upper - lower) / 2
    return (weight @ centre.unsqueeze(-1)).squeeze(-1) + bias - (weight.abs() @ radius.unsqueeze(-1)).squeeze(-1)


def certified(margins: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per example: is every margin lower bound z_y − z_j, j ≠ y, strictly positive?"""
    others = torch.ones_like(margins, dtype=torch.bool)
    others[torch.arange(len(y)), y] = False
    return ((margins > 0) | ~others).all(dim=1)


@torch.no_grad()
def verified_by_ibp(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps, *, batch_size: int = 1000) -> torch.Tensor:
    """Per example (bool, on the CPU): proved to keep label y everywhere in the ε-ball ∩ [0, 1], by IBP in float64."""
    check_ball(x, eps)
    device = next(model.parameters()).device
    out = []
    for first in range(0, len(x), batch_size):
        xb = x[first:first + batch_size].to(device, torch.float64)
        yb = y[first:first + batch_size].to(device)
        out.append(certified(interval_margin_bounds(model, xb, yb, eps), yb).cpu())
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.bool)
