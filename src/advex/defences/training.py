"""Adversarial training, and the controls that look like it but are not, as training objectives.

Each objective is ``loss_fn(model, x, y) -> scalar`` with its settings as keywords, handed to
:func:`advex.models.trained` with ``functools.partial`` (so the cache key records ε, α, steps ...).
The adversarial examples are made in eval mode with frozen parameters (the attacks'
:func:`~advex.attacks.attack_mode`), so dropout does not randomise the attack and no gradient of the
attack lands on the weights; the only path from the weights to the update is the loss at the
adversarial point, which is taken as a constant input (as in every paper here).

Randomness (noise, random starts) is drawn from torch's global generator, which :func:`trained`
seeds before training: a run is reproducible, and every minibatch gets fresh noise.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn
from torch.nn import functional as F

from ..attacks import fgsm, fgsm_direction, pgd
from ..evaluate import accuracy, robust_accuracy
from ..modes import attack_mode
from ..validation import check_eps, check_fraction, check_non_negative, check_positive_int

__all__ = ["fast_adversarial_loss", "goodfellow_adversarial_loss", "noise_augmented_loss", "pgd_adversarial_loss",
           "robustness_monitor"]


# The objectives call the attacks' undecorated inner functions (``pgd.inner`` ...): the trainer hands them a
# checked batch on the model's device, so the attack contract's checks (which wait for the device) and its
# class-counting forward pass are not repeated on every minibatch.  They run in attack mode, without gradients,
# as the decorated attacks would.


def _fresh_seed() -> int:
    # attacks take a seed for their own generator; drawing it from the global generator (seeded by
    # `trained`) gives every minibatch a new random start and the whole run a fixed one
    return int(torch.randint(0, 2**62, (1,)))


def _mixed_loss(model: nn.Module, x: torch.Tensor, x_other: torch.Tensor, y: torch.Tensor, alpha: float) -> torch.Tensor:
    """α J(θ, x, y) + (1 − α) J(θ, x_other, y): the clean loss anchoring the loss at a perturbed copy."""
    return alpha * F.cross_entropy(model(x), y) + (1 - alpha) * F.cross_entropy(model(x_other), y)


def goodfellow_adversarial_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float,
                                alpha: float = 0.5) -> torch.Tensor:
    """J̃(θ, x, y) = α J(θ, x, y) + (1 − α) J(θ, x + ε sign(∇ₓ J(θ, x, y)), y)  (Goodfellow et al. 2015, eq. 6).

    The FGSM example is recomputed for every minibatch from the current parameters.
    """
    eps, alpha = check_eps(eps), check_fraction(alpha, "alpha")
    with attack_mode(model), torch.no_grad():
        x_adv = fgsm.inner(model, x, y, eps)
    return _mixed_loss(model, x, x_adv, y, alpha)


def noise_augmented_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float, noise: str,
                         alpha: float = 0.5) -> torch.Tensor:
    """The control for :func:`goodfellow_adversarial_loss`: the same objective with random instead of adversarial η.

    ``noise='sign'``: η = ±ε per pixel, each sign a coin flip; ``noise='uniform'``: η ~ U(−ε, ε)
    (Goodfellow et al. 2015, §6).  Both have the adversarial example's max-norm budget, but a random η
    is almost orthogonal to the loss gradient in 784 dimensions, so it barely moves the loss.
    """
    eps, alpha = check_eps(eps), check_fraction(alpha, "alpha")
    if noise == "sign":
        eta = eps * (2 * torch.randint(0, 2, x.shape, device=x.device, dtype=x.dtype) - 1)
    elif noise == "uniform":
        eta = eps * (2 * torch.rand(x.shape, device=x.device, dtype=x.dtype) - 1)
    else:
        raise ValueError(f"noise must be 'sign' or 'uniform', got {noise!r}")
    return _mixed_loss(model, x, (x + eta).clamp(0.0, 1.0), y, alpha)


def pgd_adversarial_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float, steps: int,
                         step_size: float | None = None) -> torch.Tensor:
    """min_θ E max_{‖δ‖∞ ≤ ε} J(θ, x + δ, y), the inner max by PGD from a random start (Madry et al. 2018, eq. 2.1).

    ``step_size`` defaults to 2.5 ε / steps (Madry et al.'s rule of thumb).
    """
    eps, steps = check_eps(eps), check_positive_int(steps, "steps")
    seed = _fresh_seed()
    with attack_mode(model), torch.no_grad():
        x_adv = pgd.inner(model, x, y, eps, steps=steps, step_size=step_size, random_start=True, seed=seed)
    return F.cross_entropy(model(x_adv), y)


def fast_adversarial_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float,
                          step_size: float | None = None, random_start: bool = True) -> torch.Tensor:
    """"Fast is better than free" (Wong, Rice & Kolter 2020, Algorithm 3): one FGSM step from a random start.

    δ ~ U(−ε, ε)ᵈ (``random_start``; else δ = 0), δ ← clip_{[−ε, ε]}(δ + α sign(∇_δ J(θ, x + δ, y))),
    loss J(θ, clip₍₀,₁₎(x + δ), y), with α = ``step_size`` (default 1.25 ε).  Without the random start,
    or with a much larger step, it overfits catastrophically: FGSM stops working on the model while PGD
    still does (:func:`robustness_monitor` shows it epoch by epoch).
    """
    eps = check_eps(eps)
    step_size = 1.25 * eps if step_size is None else check_non_negative(step_size, "step_size")
    delta = eps * (2 * torch.rand(x.shape, device=x.device, dtype=x.dtype) - 1) if random_start else torch.zeros_like(x)
    start = (x + delta).clamp(0.0, 1.0)
    with attack_mode(model), torch.no_grad():
        direction = fgsm_direction.inner(model, start, y)
    x_adv = (start + step_size * direction).clamp(x - eps, x + eps).clamp(0.0, 1.0)
    return F.cross_entropy(model(x_adv), y)


def robustness_monitor(x: torch.Tensor, y: torch.Tensor, eps: float, *, pgd_steps: int = 10,
                       ) -> Callable[[nn.Module], dict[str, float]]:
    """A per-epoch check for :func:`advex.train_classifier`'s ``monitor``: clean, FGSM and PGD accuracy on (x, y).

    Catastrophic overfitting (Wong et al. 2020, §5) shows as FGSM accuracy climbing towards the clean
    accuracy while PGD accuracy collapses to ≈ 0 within an epoch: the model has learnt to defeat the one
    step it is trained on, not the threat.  A held-out batch of a few hundred images is enough to see it.
    """
    eps, pgd_steps = check_eps(eps), check_positive_int(pgd_steps, "pgd_steps")

    def monitor(model: nn.Module) -> dict[str, float]:
        fgsm_images = fgsm(model, x, y, eps)
        return {"clean": accuracy(model, x, y), "fgsm": accuracy(model, fgsm_images, y),
                "pgd": robust_accuracy(model, x, y, eps, steps=pgd_steps).robust_accuracy}

    monitor.description = f"robustness_monitor(eps={eps}, pgd_steps={pgd_steps}, n={len(x)})"
    return monitor
