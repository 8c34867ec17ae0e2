"""Iterative gradient attacks: BIM / I-FGSM and PGD (L∞ and L2, random start, restarts, targeted).

Same conventions as :mod:`advex.attacks`: inputs and ε in [0, 1] pixel units, eval mode during the
attack, results inside the ε-ball and the box, inputs never modified, no gradients left behind.

Every iterate is scored, and each example gets back its best one: a successful iterate if there was
any, else the one of highest loss.  So more steps (same step size and seed) or more restarts can
never make the attack weaker on any example, and a PGD run whose first step is an FGSM step is
never weaker than FGSM.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from .attacks import attack_mode, attack_succeeded, check_attack_inputs, project, random_offset, steepest_ascent
from .validation import check_eps, check_norm, check_positive_int


@dataclass
class _Best:
    """The best iterate seen so far for every example of a batch."""

    x_adv: torch.Tensor
    objective: torch.Tensor   # the loss being ascended (−CE of the target when targeted)
    success: torch.Tensor

    @classmethod
    def empty(cls, x: torch.Tensor) -> "_Best":
        n = x.shape[0]
        return cls(x.clone(), torch.full((n,), -torch.inf, device=x.device, dtype=x.dtype), torch.zeros(n, dtype=torch.bool, device=x.device))

    def update(self, index: torch.Tensor, x_adv: torch.Tensor, objective: torch.Tensor, success: torch.Tensor) -> None:
        """Keep a candidate when it succeeds where the best did not, or ties on success with a higher loss."""
        old_success, old_objective = self.success[index], self.objective[index]
        better = (success & ~old_success) | ((success == old_success) & (objective > old_objective))
        chosen = index[better]
        self.x_adv[chosen] = x_adv[better].detach()
        self.objective[chosen] = objective[better].detach()
        self.success[chosen] = success[better]


def _ascend(model, x, y, start, best: _Best, index, *, eps, norm, steps, step_size, targeted, early_stop) -> int:
    """One PGD run from ``start`` on the examples ``index``; updates ``best``; returns the gradients computed."""
    x_adv = project(start, x, eps, norm)
    active = torch.arange(len(x), device=x.device)
    gradients = 0
    for step in range(steps + 1):
        x_now = x_adv[active].detach().requires_grad_(step < steps)
        with torch.set_grad_enabled(step < steps):
            logits = model(x_now)
            loss = F.cross_entropy(logits, y[active], reduction="none")
            objective = -loss if targeted else loss
        success = attack_succeeded(logits.detach(), y[active], targeted)
        best.update(index[active], x_now, objective, success)
        if step == steps:
            break
        (grad,) = torch.autograd.grad(objective.sum(), x_now)
        gradients += len(active)
        keep = ~success if early_stop else torch.ones_like(success)
        active, x_now, grad = active[keep], x_now[keep], grad[keep]
        if len(active) == 0:
            break
        # x^{t+1} = Π_{B(x, ε) ∩ [0,1]} (x^t + α · d(∇ₓ J))
        x_adv[active] = project(x_now.detach() + step_size * steepest_ascent(grad, norm), x[active], eps, norm)
    return gradients


def pgd_with_stats(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, *, norm="inf", steps: int = 40,
                   step_size: float | None = None, random_start: bool = True, restarts: int = 1, targeted: bool = False,
                   early_stop: bool = False, seed: int = 0, already_lost: torch.Tensor | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor, int]:
    """:func:`pgd`, also returning per-example success and the number of per-example gradients computed.

    already_lost: with ``early_stop``, examples (bool mask) counted as successes without being attacked
    (e.g. misclassified when clean).  The random starts are still drawn for the whole batch, so every
    other example gets exactly the starts it would get without the mask.
    """
    eps = check_attack_inputs(model, x, y, eps)
    norm = check_norm(norm)
    steps = check_positive_int(steps, "steps")
    restarts = check_positive_int(restarts, "restarts")
    step_size = 2.5 * eps / steps if step_size is None else check_eps(step_size, "step_size")
    device = next(model.parameters()).device
    x, y = x.to(device), y.to(device)
    generator = torch.Generator().manual_seed(seed)
    best, gradients = _Best.empty(x), 0
    if already_lost is not None and early_stop:
        best.success |= already_lost.to(device)
    with attack_mode(model):
        for _ in range(restarts):
            start = x + random_offset(x, eps, norm, generator) if random_start else x
            # a restart only helps examples not fooled yet; with early stopping only they are attacked
            index = (~best.success).nonzero().flatten() if early_stop else torch.arange(len(x), device=device)
            if len(index) == 0:
                break
            gradients += _ascend(model, x[index], y[index], start[index], best, index, eps=eps, norm=norm, steps=steps,
                                 step_size=step_size, targeted=targeted, early_stop=early_stop)
    return best.x_adv, best.success, gradients


def pgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, *, norm="inf", steps: int = 40,
        step_size: float | None = None, random_start: bool = True, restarts: int = 1, targeted: bool = False,
        early_stop: bool = False, seed: int = 0) -> torch.Tensor:
    """Projected gradient descent on the loss (Madry et al. 2018, eq. 2 and §2.1).

    x⁰ = x + δ, δ uniform in the ε-ball (``random_start``), then
    xᵗ⁺¹ = Π_{B_p(x, ε) ∩ [0,1]} (xᵗ + α · d(∇ₓ J(θ, xᵗ, y))),  d = sign for p = ∞, ∇/‖∇‖₂ for p = 2,
    with α = ``step_size`` (default 2.5 ε / steps).  ``restarts`` independent runs (seeded by ``seed``);
    each example keeps its best iterate over all of them.  ``targeted=True`` descends the loss of the
    target classes ``y``.  ``early_stop`` freezes an example at its first successful iterate.
    """
    x_adv, _, _ = pgd_with_stats(model, x, y, eps, norm=norm, steps=steps, step_size=step_size, random_start=random_start,
                                 restarts=restarts, targeted=targeted, early_stop=early_stop, seed=seed)
    return x_adv


def bim_steps(eps: float) -> int:
    """Kurakin et al.'s number of iterations, min(255ε + 4, 1.25 · 255ε), at least 1."""
    return max(1, int(min(255 * eps + 4, 1.25 * 255 * eps)))


def bim(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, *, steps: int | None = None,
        step_size: float = 1 / 255, targeted: bool = False, early_stop: bool = False) -> torch.Tensor:
    """Basic iterative method, also called I-FGSM (Kurakin, Goodfellow & Bengio 2017, §2.1).

    x⁰ = x,  xᵗ⁺¹ = Clip_{x, ε} {xᵗ + α · sign(∇ₓ J(θ, xᵗ, y))}: FGSM repeated in small steps
    α (default one grey level, 1/255) and clipped back to the ε-box and [0, 1] after each one.
    ``steps`` defaults to :func:`bim_steps` (ε).  It is PGD L∞ without the random start.
    """
    eps = check_eps(eps)
    steps = bim_steps(eps) if steps is None else steps
    return pgd(model, x, y, eps, norm="inf", steps=steps, step_size=step_size, random_start=False,
               targeted=targeted, early_stop=early_stop)
