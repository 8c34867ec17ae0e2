"""Gradient attacks on classifiers that take images in [0, 1].

Conventions (the ones users of cleverhans and foolbox rely on):

* inputs ``x`` are in the valid box [0, 1] (pixel units); ``eps`` is in the same units;
* the model runs in eval mode during the attack and gets its mode back afterwards;
* the result is clipped to the box and lies inside the ε-ball around ``x``;
* ``x`` is never modified and no gradient is left on the model's parameters.
"""
from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn
from torch.nn import functional as F

from .validation import check_eps, check_images, check_labels


@contextmanager
def attack_mode(model: nn.Module):
    """Eval mode and frozen parameters for the duration of an attack, then restore both."""
    was_training = model.training
    requires_grad = [p.requires_grad for p in model.parameters()]
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    try:
        yield model
    finally:
        for p, flag in zip(model.parameters(), requires_grad):
            p.requires_grad_(flag)
        model.train(was_training)


def num_classes_of(model: nn.Module, x: torch.Tensor) -> int:
    """Number of outputs of ``model`` (one forward pass on one example)."""
    with torch.no_grad():
        return model(x[:1]).shape[1]


def check_attack_inputs(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float) -> float:
    """Validate the arguments every attack shares; returns ``eps`` as a float."""
    eps = check_eps(eps)
    check_images(x, "x")
    if x.dim() < 2:
        raise ValueError(f"x must be a batch (N, ...), got shape {tuple(x.shape)}")
    check_labels(y, num_classes_of(model, x), batch_size=x.shape[0], name="y")
    return eps


def input_gradient(model: nn.Module, x: torch.Tensor, y: torch.Tensor, targeted: bool = False) -> torch.Tensor:
    """∇ₓ of the loss to *increase*: cross-entropy of ``y`` (untargeted) or its negative (targeted)."""
    x = x.detach().clone().requires_grad_(True)
    loss = F.cross_entropy(model(x), y, reduction="sum")
    (grad,) = torch.autograd.grad(-loss if targeted else loss, x)
    return grad


def fgsm(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, *, targeted: bool = False) -> torch.Tensor:
    """Fast gradient sign method (Goodfellow, Shlens & Szegedy 2015, §4).

    x̃ = clip₍₀,₁₎(x + ε · sign(∇ₓ J(θ, x, y))), the exact maximiser of the
    first-order change of the loss J under ‖η‖∞ ≤ ε.  With ``targeted=True``,
    ``y`` holds the target classes and the step goes down their loss.
    """
    eps = check_attack_inputs(model, x, y, eps)
    device = next(model.parameters()).device
    x, y = x.to(device), y.to(device)
    with attack_mode(model):
        grad = input_gradient(model, x, y, targeted)
    return (x + eps * grad.sign()).clamp(0.0, 1.0).detach()
