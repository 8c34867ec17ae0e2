"""The core every attack is built from: argument checks, input gradients, steepest-ascent
directions, projection onto the ε-ball ∩ box, random starts and the success test.
"""
from __future__ import annotations

import functools
import inspect
from typing import Callable

import torch
from torch import nn
from torch.nn import functional as F

from ..device import device_of
from ..modes import attack_mode, eval_mode
from ..validation import check_eps, check_images, check_labels

__all__ = [
    "attack_inputs", "attack_mode", "attack_succeeded", "input_gradient", "l2_norms", "logit_margins",
    "num_classes_of", "per_example", "project", "random_offset", "returns_on_input_device", "steepest_ascent",
]


def returns_on_input_device(attack: Callable) -> Callable:
    """Decorator: the attack computes on the model's device, its tensors come back on the device of ``x``.

    So a caller who keeps data on the CPU and the model on a GPU gets CPU results that mix with the
    rest of their CPU tensors; a caller who keeps everything on the GPU pays no copy.
    """
    signature = inspect.signature(attack)

    @functools.wraps(attack)
    def wrapper(*args, **kwargs):
        x = signature.bind_partial(*args, **kwargs).arguments.get("x")
        result = attack(*args, **kwargs)
        if not isinstance(x, torch.Tensor):
            return result
        move = (lambda t: t.to(x.device) if isinstance(t, torch.Tensor) else t)
        return tuple(move(t) for t in result) if isinstance(result, tuple) else move(result)

    return wrapper


def num_classes_of(model: nn.Module, x: torch.Tensor) -> int:
    """Number of outputs of ``model`` (one forward pass on one example, in eval mode, no gradient)."""
    with eval_mode(model), torch.no_grad():
        return model(x[:1].to(device_of(model))).shape[1]


def attack_inputs(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float = 0.0, *, y_name: str = "y"
                  ) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Validate the arguments every attack shares and move them to the model's device.

    Returns ``(x, y, eps)``: ``x`` detached on the model's device (never the caller's
    tensor modified), ``y`` as int64 there, ``eps`` as a float >= 0.  ``y_name`` names the
    labels in error messages (e.g. "target").
    """
    eps = check_eps(eps)
    check_images(x, "x")
    if x.dim() < 2:
        raise ValueError(f"x must be a batch (N, ...), got shape {tuple(x.shape)}")
    device = device_of(model)
    x = x.detach().to(device)
    y = check_labels(y, num_classes_of(model, x), batch_size=x.shape[0], name=y_name).to(device)
    return x, y, eps


def cross_entropy_per_example(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """J(θ, x, y) for every example: the loss an untargeted attack ascends."""
    return F.cross_entropy(logits, y, reduction="none")


def input_gradient(model: nn.Module, x: torch.Tensor, y: torch.Tensor, targeted: bool = False,
                   loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = cross_entropy_per_example
                   ) -> torch.Tensor:
    """∇ₓ of the per-example loss to *increase*: ``loss_fn(logits, y)`` (default cross-entropy), negated if targeted.

    The model's mode is left alone (call it inside :func:`attack_mode`); works under
    ``torch.no_grad()``; the result carries no autograd history.  Computed on the model's device
    (``x`` and ``y`` are moved there), returned on the device of ``x``.
    """
    device = device_of(model)
    with torch.enable_grad():
        x_model = x.detach().to(device).clone().requires_grad_(True)
        loss = loss_fn(model(x_model), y.to(device)).sum()
        (grad,) = torch.autograd.grad(-loss if targeted else loss, x_model)
    return grad.to(x.device)


def per_example(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Reshape one value per example so it broadcasts against a batch shaped like ``like``."""
    return values.view(-1, *([1] * (like.dim() - 1)))


def l2_norms(t: torch.Tensor) -> torch.Tensor:
    """‖t_i‖₂ of every example of a batch."""
    return t.flatten(1).norm(dim=1)


def attack_succeeded(logits: torch.Tensor, y: torch.Tensor, targeted: bool) -> torch.Tensor:
    """Per example: predicted class ≠ y (untargeted) or = y (targeted, ``y`` holds the targets)."""
    predicted = logits.argmax(1)
    return predicted == y if targeted else predicted != y


def logit_margins(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Logit of class y minus the largest other logit, per example (< 0: the model does not predict y)."""
    true = logits.gather(1, y[:, None])[:, 0]
    others = logits.scatter(1, y[:, None], -torch.inf)
    return true - others.max(1).values


def steepest_ascent(grad: torch.Tensor, norm: str) -> torch.Tensor:
    """The unit-norm direction d maximising ⟨∇, d⟩: sign(∇) for L∞, ∇/‖∇‖₂ for L2."""
    if norm == "inf":
        return grad.sign()
    return grad / per_example(l2_norms(grad).clamp_min(1e-12), grad)


def project(x_adv: torch.Tensor, x: torch.Tensor, eps: float, norm: str) -> torch.Tensor:
    """Π onto {x' : ‖x' − x‖ ≤ ε} ∩ [0, 1]ᵈ (clipping to the box after the ball never leaves the ball)."""
    delta = x_adv - x
    if norm == "inf":
        delta = delta.clamp(-eps, eps)
    else:
        delta = delta * per_example((eps / l2_norms(delta).clamp_min(1e-12)).clamp(max=1.0), delta)
    return (x + delta).clamp(0.0, 1.0)


def random_offset(x: torch.Tensor, eps: float, norm: str, generator: torch.Generator) -> torch.Tensor:
    """A uniform random point of the ε-ball (drawn on the CPU so a seed gives the same start on every device)."""
    shape = x.shape
    if norm == "inf":
        offset = (2 * torch.rand(shape, generator=generator) - 1) * eps
    else:  # uniform in the L2 ball: Gaussian direction, radius ε·u^(1/d)
        direction = torch.randn(shape, generator=generator)
        direction = direction / per_example(l2_norms(direction).clamp_min(1e-12), direction)
        radius = eps * torch.rand(shape[0], generator=generator) ** (1.0 / x[0].numel())
        offset = direction * per_example(radius, direction)
    return offset.to(device=x.device, dtype=x.dtype)
