"""TRADES (Zhang et al. 2019) as a training objective ``loss_fn(model, x, y)`` for :func:`advex.train_classifier`.

TRADES splits the robust error into the natural error and a boundary term, and trains on
CE(f(x), y) + β · KL(f(x) ‖ f(x̃)), where x̃ maximises the KL divergence between the model's
predictions at x and at a point of the ε-ball (Zhang et al. 2019, eq. 5).  β trades clean accuracy for
robustness (their MNIST setting: β = 6).  The inner maximisation runs as the attacks do: in eval mode with
the parameters frozen (:func:`advex.attacks.attack_mode`), from x plus small Gaussian noise (their start),
by signed-gradient steps projected onto the ball and the box.  Its randomness comes from torch's global
generator, which :func:`advex.models.trained` seeds.
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from ..modes import attack_mode
from ..validation import check_eps, check_positive_int

__all__ = ["trades_adversarial_examples", "trades_loss"]

#: The standard deviation of TRADES' random start (Zhang et al.'s released code).
START_NOISE = 0.001


def _check_beta(beta) -> float:
    if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not (beta >= 0 and math.isfinite(beta)):
        raise ValueError(f"beta must be a finite number >= 0, got {beta!r}")
    return float(beta)


def trades_adversarial_examples(model: nn.Module, x: torch.Tensor, *, eps: float, steps: int,
                                step_size: float) -> torch.Tensor:
    """x̃ ≈ argmax_{‖x̃ − x‖∞ ≤ ε, x̃ ∈ [0, 1]} KL(f(x) ‖ f(x̃)) by ``steps`` signed-gradient steps (no autograd history)."""
    with attack_mode(model):
        with torch.no_grad():
            clean_probabilities = F.softmax(model(x), dim=1)
        x_adv = (x + START_NOISE * torch.randn_like(x)).clamp(x - eps, x + eps).clamp(0.0, 1.0).detach()
        for _ in range(steps):
            x_adv.requires_grad_(True)
            divergence = F.kl_div(F.log_softmax(model(x_adv), dim=1), clean_probabilities, reduction="sum")
            (gradient,) = torch.autograd.grad(divergence, x_adv)
            x_adv = (x_adv.detach() + step_size * gradient.sign()).clamp(x - eps, x + eps).clamp(0.0, 1.0)
    return x_adv.detach()


def trades_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float, beta: float = 6.0,
                steps: int = 10, step_size: float | None = None) -> torch.Tensor:
    """CE(f(x), y) + β · KL(f(x) ‖ f(x̃)) averaged over the batch (Zhang et al. 2019, eq. 5).

    ``step_size`` defaults to 2.5 ε / steps, as :func:`advex.defences.pgd_adversarial_loss`.  Both terms
    are differentiated with respect to the parameters (the clean prediction inside the KL term too, as in
    Zhang et al.'s code); x̃ is a constant input.
    """
    eps, beta, steps = check_eps(eps), _check_beta(beta), check_positive_int(steps, "steps")
    step_size = 2.5 * eps / steps if step_size is None else check_eps(step_size, "step_size")
    x_adv = trades_adversarial_examples(model, x, eps=eps, steps=steps, step_size=step_size)
    clean_logits = model(x)
    boundary = F.kl_div(F.log_softmax(model(x_adv), dim=1), F.softmax(clean_logits, dim=1), reduction="batchmean")
    return F.cross_entropy(clean_logits, y) + beta * boundary
