"""How fast a classifier's loss and confidence change around an input.

* :func:`loss_surface` — the loss on a 2-D grid spanned by two directions (the gradient's sign and a
  random sign vector, say): a smooth bowl for an honest model, a staircase or static for a defence
  that masks its gradient (Athalye, Carlini & Wagner 2018, §3; Engstrom et al. 2018).
* :func:`confidence_slopes` — Bram Cohen's criterion (2019): the confidence of a trustworthy classifier
  may change at most in proportion to the L2 size of the change to the input,
  |p(x') − p(x)| ≤ L ‖x' − x‖₂.  We measure the largest ratio that an L2 attack finds at several radii.
  A measured ratio is a lower bound on the true L (an attack may miss the steepest change).
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from .attacks import attack_mode, pgd
from .tensors import l2_norms
from .device import device_of
from .validation import check_eps, check_images, check_labels, check_non_negative, check_positive_int

__all__ = ["confidence_slopes", "loss_surface", "true_class_probability"]


@torch.no_grad()
def loss_surface(model: nn.Module, x: torch.Tensor, y: int, first: torch.Tensor, second: torch.Tensor, *,
                 extent: float, points: int = 41, batch_size: int = 1000) -> torch.Tensor:
    """Cross-entropy J(x + a·first + b·second, y) for a, b on a ``points`` × ``points`` grid in [−extent, extent].

    ``x`` is one image (C, H, W); the directions have its shape.  The points are clipped to the image
    box [0, 1], as an attack's would be.  Returns the losses as a (points, points) tensor, rows indexed by b.
    """
    check_images(x, "x")
    for name, direction in (("first", first), ("second", second)):
        if direction.shape != x.shape:
            raise ValueError(f"{name} must have the shape of x {tuple(x.shape)}, got {tuple(direction.shape)}")
    extent, points = check_non_negative(extent, "extent"), check_positive_int(points, "points")
    device = device_of(model)
    steps = torch.linspace(-extent, extent, points, device=device)
    b, a = torch.meshgrid(steps, steps, indexing="ij")
    grid = (x.to(device) + a.reshape(-1, *[1] * x.dim()) * first.to(device)
            + b.reshape(-1, *[1] * x.dim()) * second.to(device)).clamp(0.0, 1.0)
    labels = torch.full((len(grid),), int(y), device=device)
    losses = []
    with attack_mode(model):
        for start in range(0, len(grid), batch_size):
            losses.append(F.cross_entropy(model(grid[start:start + batch_size]), labels[start:start + batch_size],
                                          reduction="none"))
    return torch.cat(losses).view(points, points).cpu()


@torch.no_grad()
def true_class_probability(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """softmax(model(x))_y for every example (the model's confidence in the label)."""
    with attack_mode(model):
        return F.softmax(model(x.to(device_of(model))), dim=1).gather(1, y.to(device_of(model)).view(-1, 1)).squeeze(1)


def confidence_slopes(model: nn.Module, x: torch.Tensor, y: torch.Tensor, radii: Sequence[float], *,
                      steps: int = 20, confidence: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
                      seed: int = 0) -> torch.Tensor:
    """|p(x') − p(x)| / ‖x' − x‖₂ for x' found by L2 PGD at each radius: a (N, len(radii)) tensor.

    p is ``confidence(x, y)`` (default :func:`true_class_probability` of ``model``); the attack
    (:func:`advex.attacks.pgd`, ``norm='2'``, ``steps`` steps, seeded) ascends ``model``'s loss, which
    lowers p.  For a random defence pass an EOT surrogate as ``model`` and a low-variance estimate of its
    probability as ``confidence``.  The maximum over the radii (``.amax(1)``) is the steepest change found,
    a lower bound on the Lipschitz constant L of Cohen's criterion.  Examples whose attack did not move
    (‖x' − x‖₂ = 0) get a slope of 0.
    """
    check_images(x, "x")
    y = check_labels(y, num_classes=None, batch_size=x.shape[0])
    radii = [check_eps(r, "radii") for r in radii]
    if not radii or min(radii) == 0:
        raise ValueError(f"radii must be a non-empty list of radii > 0, got {radii}")
    confidence = confidence or (lambda inputs, labels: true_class_probability(model, inputs, labels))
    before = confidence(x, y)
    slopes = []
    for radius in radii:
        x_adv = pgd(model, x, y, radius, norm="2", steps=steps, seed=seed)
        distance = l2_norms(x_adv - x).to(before.device)
        change = (confidence(x_adv, y) - before).abs()
        slopes.append(torch.where(distance > 0, change / distance.clamp_min(1e-12), torch.zeros_like(change)))
    return torch.stack(slopes, dim=1).cpu()
