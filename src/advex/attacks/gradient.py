"""Gradient attacks in an L∞ or L2 ball: FGSM, BIM / I-FGSM and PGD (random start, restarts, targeted).

Every iterate is scored and each example gets back its best one: a successful iterate if there was
any, else the one of highest loss.  So more steps (same step size and seed) or more restarts can
never make the attack weaker on any example, and a PGD run whose first step is an FGSM step is
never weaker than FGSM.

The loops are written for accelerators: no host synchronisation inside a step (the best iterate is
kept with ``torch.where``, not boolean indexing).  With ``early_stop``, images already fooled leave the
batch: on the CPU after every step (a host synchronisation costs nothing there, a wasted gradient
does); on an accelerator the survivors are counted only every few steps and the batch is compacted
only when they have halved (each count stalls the device's queue).
"""
from __future__ import annotations

import torch
from torch import nn

from .core import (attack, attack_succeeded, cross_entropy_per_example, input_gradient, per_example, project,
                   random_offset, steepest_ascent)
from ..validation import check_non_negative, check_norm, check_positive_int

__all__ = ["COMPACT_BELOW", "SURVIVOR_CHECK_EVERY", "bim", "bim_steps", "fgsm", "fgsm_direction", "pgd", "pgd_with_stats"]

#: with ``early_stop`` on an accelerator: count the survivors every this many steps, compact when they
#: are at most this share of the batch (on the CPU: every step, at any shrink)
SURVIVOR_CHECK_EVERY, COMPACT_BELOW = 4, 0.5


@attack(eps=False)
def fgsm_direction(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, targeted: bool = False) -> torch.Tensor:
    """sign(∇ₓ J(θ, x, y)) (Goodfellow, Shlens & Szegedy 2015, §4): FGSM at ε is clip(x + ε · this).

    It does not depend on ε, so one gradient serves a whole sweep over ε (or a line through x).
    With ``targeted=True``, ``y`` holds target classes and the sign descends their loss.
    """
    return input_gradient(model, x, y, targeted).sign()


@attack()
def fgsm(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, *, targeted: bool = False) -> torch.Tensor:
    """Fast gradient sign method (Goodfellow, Shlens & Szegedy 2015, §4).

    x̃ = clip₍₀,₁₎(x + ε · sign(∇ₓ J(θ, x, y))), the exact maximiser of the
    first-order change of the loss J under ‖η‖∞ ≤ ε.  With ``targeted=True``,
    ``y`` holds the target classes and the step goes down their loss.
    """
    return (x + eps * input_gradient(model, x, y, targeted).sign()).clamp(0.0, 1.0)


class _Best:
    """The best iterate seen so far for every example of a batch (kept on the device, updated without syncs)."""

    def __init__(self, x: torch.Tensor):
        n = x.shape[0]
        self.x_adv = x.clone()
        self._spare = torch.empty_like(x)   # double buffer: the best is rewritten every step without allocating
        self.objective = torch.full((n,), -torch.inf, device=x.device, dtype=x.dtype)
        self.success = torch.zeros(n, dtype=torch.bool, device=x.device)

    def update(self, rows: torch.Tensor | None, x_adv, objective, success, alive) -> None:
        """Keep a candidate when it succeeds where the best did not, or ties on success with a higher loss.

        ``rows``: the batch rows the candidates belong to (None: all, in order); ``alive``: which
        candidates may update at all (early stopping freezes an example at its first success).
        """
        old_x = self.x_adv if rows is None else self.x_adv[rows]
        old_objective = self.objective if rows is None else self.objective[rows]
        old_success = self.success if rows is None else self.success[rows]
        better = alive & ((success & ~old_success) | ((success == old_success) & (objective > old_objective)))
        new_objective = torch.where(better, objective, old_objective)
        new_success = old_success | (better & success)
        if rows is None:
            torch.where(per_example(better, x_adv), x_adv, old_x, out=self._spare)
            self.x_adv, self._spare = self._spare, self.x_adv
            self.objective, self.success = new_objective, new_success
        else:
            new_x = torch.where(per_example(better, x_adv), x_adv, old_x)
            self.x_adv[rows], self.objective[rows], self.success[rows] = new_x, new_objective, new_success


def _ascend(model, x, y, start, best: _Best, *, eps, norm, steps, step_size, targeted, early_stop, rows) -> int:
    """One PGD run from ``start``; updates ``best``; returns the per-example gradients computed.

    ``rows`` maps the examples of ``x`` to rows of ``best`` (None: the identity).
    """
    x_adv = project(start, x, eps, norm)
    alive = torch.ones(len(x), dtype=torch.bool, device=x.device)
    check_every, compact_below = (1, 1.0) if x.device.type == "cpu" else (SURVIVOR_CHECK_EVERY, COMPACT_BELOW)
    gradients = 0
    for step in range(steps + 1):
        last = step == steps
        with torch.enable_grad():
            x_now = x_adv.detach().requires_grad_(not last)
            logits = model(x_now)
            objective = cross_entropy_per_example(logits, y)
            objective = -objective if targeted else objective
            total = objective.sum()   # inside enable_grad, so that it works when called under no_grad
        success = attack_succeeded(logits.detach(), y, targeted)
        best.update(rows, x_now.detach(), objective.detach(), success, alive)
        if last:
            break
        (grad,) = torch.autograd.grad(total, x_now)
        gradients += len(x)
        # x^{t+1} = Π_{B(x, ε) ∩ [0,1]} (x^t + α · d(∇ₓ J))
        x_next = project(x_now.detach() + step_size * steepest_ascent(grad, norm), x, eps, norm)
        if not early_stop:
            x_adv = x_next
            continue
        alive = alive & ~success
        x_adv = torch.where(per_example(alive, x_next), x_next, x_now.detach())
        if (step + 1) % check_every == 0:
            survivors = int(alive.sum())          # the one host synchronisation of a step
            if survivors == 0:
                break
            if survivors < len(x) and survivors <= compact_below * len(x):   # stop paying for examples lost
                keep = alive.nonzero().flatten()
                x, y, x_adv, alive = x[keep], y[keep], x_adv[keep], alive[keep]
                rows = keep if rows is None else rows[keep]
    return gradients


@attack()
def pgd_with_stats(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, *, norm="inf", steps: int = 40,
                   step_size: float | None = None, random_start: bool = True, restarts: int = 1, targeted: bool = False,
                   early_stop: bool = False, seed: int = 0, already_lost: torch.Tensor | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor, int]:
    """:func:`pgd`, also returning per-example success and the number of per-example gradients computed.

    already_lost: with ``early_stop``, examples (bool mask) counted as successes without being attacked
    (e.g. misclassified when clean).  The random starts are still drawn for the whole batch, so every
    other example gets exactly the starts it would get without the mask.
    """
    norm = check_norm(norm)
    steps = check_positive_int(steps, "steps")
    restarts = check_positive_int(restarts, "restarts")
    step_size = 2.5 * eps / steps if step_size is None else check_non_negative(step_size, "step_size")
    generator = torch.Generator().manual_seed(seed)   # on the CPU: the same starts on every device (random_offset)
    best, gradients = _Best(x), 0
    if already_lost is not None and early_stop:
        best.success |= already_lost.to(x.device)
    for _ in range(restarts):
        start = x + random_offset(x, eps, norm, generator) if random_start else x
        if early_stop:  # a restart only helps the examples not fooled yet, and only they are attacked
            rows = (~best.success).nonzero().flatten()
            if len(rows) == 0:
                break
            if len(rows) == len(x):
                rows = None
        else:
            rows = None
        pick = (lambda t: t) if rows is None else (lambda t: t[rows])
        gradients += _ascend(model, pick(x), pick(y), pick(start), best, eps=eps, norm=norm, steps=steps,
                             step_size=step_size, targeted=targeted, early_stop=early_stop, rows=rows)
    return best.x_adv.detach(), best.success, gradients


@attack()
def pgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, *, norm="inf", steps: int = 40,
        step_size: float | None = None, random_start: bool = True, restarts: int = 1, targeted: bool = False,
        early_stop: bool = False, seed: int = 0) -> torch.Tensor:
    """Projected gradient descent on the loss (Madry et al. 2018, eq. 2 and §2.1).

    x⁰ = x + δ, δ uniform in the ε-ball (``random_start``), then
    xᵗ⁺¹ = Π_{B_p(x, ε) ∩ [0,1]} (xᵗ + α · d(∇ₓ J(θ, xᵗ, y))),  d = sign for p = ∞, ∇/‖∇‖₂ for p = 2,
    with α = ``step_size`` (default 2.5 ε / steps).  ``restarts`` independent runs (seeded by ``seed``;
    the random starts are drawn on the CPU, so a seed gives the same starts on every device); each example keeps its best iterate over
    all of them.  ``targeted=True`` descends the loss of the target classes ``y``.  ``early_stop``
    freezes an example at its first successful iterate.
    """
    x_adv, _, _ = pgd_with_stats.inner(model, x, y, eps, norm=norm, steps=steps, step_size=step_size, random_start=random_start,
                                 restarts=restarts, targeted=targeted, early_stop=early_stop, seed=seed)
    return x_adv


def bim_steps(eps: float) -> int:
    """Kurakin et al.'s number of iterations, min(255ε + 4, 1.25 · 255ε), at least 1."""
    return max(1, int(min(255 * eps + 4, 1.25 * 255 * eps)))


@attack()
def bim(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, *, steps: int | None = None,
        step_size: float = 1 / 255, targeted: bool = False, early_stop: bool = False) -> torch.Tensor:
    """Basic iterative method, also called I-FGSM (Kurakin, Goodfellow & Bengio 2017, §2.1).

    x⁰ = x,  xᵗ⁺¹ = Clip_{x, ε} {xᵗ + α · sign(∇ₓ J(θ, xᵗ, y))}: FGSM repeated in small steps
    α (default one grey level, 1/255) and clipped back to the ε-box and [0, 1] after each one.
    ``steps`` defaults to :func:`bim_steps` (ε).  It is PGD L∞ without the random start.
    """
    steps = bim_steps(eps) if steps is None else steps
    return pgd.inner(model, x, y, eps, norm="inf", steps=steps, step_size=step_size, random_start=False,
               targeted=targeted, early_stop=early_stop)
