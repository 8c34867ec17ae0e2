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
    """Number of outputs of ``model`` (one forward pass on one example).

    Runs in eval mode, so that probing a model in training mode neither updates its
    batch-norm statistics nor draws dropout masks.
    """
    device = next(model.parameters()).device
    with attack_mode(model), torch.no_grad():
        return model(x[:1].to(device)).shape[1]


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


# --- building blocks shared by the iterative and minimal-perturbation attacks -------------------

def _per_example(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Reshape one value per example so it broadcasts against a batch shaped like ``like``."""
    return values.view(-1, *([1] * (like.dim() - 1)))


def l2_norms(t: torch.Tensor) -> torch.Tensor:
    """‖t_i‖₂ of every example of a batch."""
    return t.flatten(1).norm(dim=1)


def attack_succeeded(logits: torch.Tensor, y: torch.Tensor, targeted: bool) -> torch.Tensor:
    """Per example: predicted class ≠ y (untargeted) or = y (targeted, ``y`` holds the targets)."""
    predicted = logits.argmax(1)
    return predicted == y if targeted else predicted != y


def steepest_ascent(grad: torch.Tensor, norm: str) -> torch.Tensor:
    """The unit-norm direction d maximising ⟨∇, d⟩: sign(∇) for L∞, ∇/‖∇‖₂ for L2."""
    if norm == "inf":
        return grad.sign()
    return grad / _per_example(l2_norms(grad).clamp_min(1e-12), grad)


def project(x_adv: torch.Tensor, x: torch.Tensor, eps: float, norm: str) -> torch.Tensor:
    """Π onto {x' : ‖x' − x‖ ≤ ε} ∩ [0, 1]ᵈ (clipping to the box after the ball never leaves the ball)."""
    delta = x_adv - x
    if norm == "inf":
        delta = delta.clamp(-eps, eps)
    else:
        delta = delta * _per_example((eps / l2_norms(delta).clamp_min(1e-12)).clamp(max=1.0), delta)
    return (x + delta).clamp(0.0, 1.0)


def random_offset(x: torch.Tensor, eps: float, norm: str, generator: torch.Generator) -> torch.Tensor:
    """A uniform random point of the ε-ball (drawn on the CPU so a seed gives the same start on every device)."""
    shape = x.shape
    if norm == "inf":
        offset = (2 * torch.rand(shape, generator=generator) - 1) * eps
    else:  # uniform in the L2 ball: Gaussian direction, radius ε·u^(1/d)
        direction = torch.randn(shape, generator=generator)
        direction = direction / _per_example(l2_norms(direction).clamp_min(1e-12), direction)
        radius = eps * torch.rand(shape[0], generator=generator) ** (1.0 / x[0].numel())
        offset = direction * _per_example(radius, direction)
    return offset.to(device=x.device, dtype=x.dtype)
