"""Auto-PGD and the difference-of-logits-ratio loss (Croce & Hein 2020), the white-box half of AutoAttack
(bib key croce2020reliable).

PGD has a step size to choose, and a poor choice makes a defence look stronger than it is: too large
a step oscillates around the maximum, too small a step stops short of it, and cross-entropy's gradient
vanishes on a model whose softmax saturates.  APGD (their Algorithm 1) takes the choice away: it starts
with a large step, adds momentum, and at fixed checkpoints halves the step of every example whose loss
stopped improving, restarting it from its best point.  The DLR loss (their eq. 5) is a margin divided by a
spread of the top logits, so it does not change when a defence shifts or rescales its logits.

As in :mod:`.gradient`, every example gets back its best iterate: a successful (misclassified) one if there
was any, else the one of highest loss, so more restarts can never make the attack weaker.  A run holds no
host synchronisation inside a step (the step sizes, best points and restarts are chosen with
``torch.where``); restarts and further targets attack only the examples not fooled yet.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from .core import (attack, attack_succeeded, cross_entropy_per_example, logit_margins,
                   num_classes_of, per_example, project, random_offset, steepest_ascent)
from .gradient import _Best
from ..validation import check_norm, check_positive_int

__all__ = ["apgd", "apgd_checkpoints", "apgd_targeted", "dlr_loss", "targeted_dlr_loss"]

#: α, the weight of the new step against the last one (momentum 1 − α); ρ, the share of the steps since the
#: last checkpoint that must have raised the loss for the step size to be kept (Croce & Hein 2020, §3)
ALPHA, RHO = 0.75, 0.75

def _check_classes(logits: torch.Tensor, needed: int, loss: str) -> None:
    if logits.dim() != 2 or logits.shape[1] < needed:
        raise ValueError(f"logits must have shape (N, classes) with at least {needed} classes for the {loss} loss, "
                         f"got shape {tuple(logits.shape)}")


def dlr_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Difference of logits ratio, per example (Croce & Hein 2020, eq. 5):

    DLR(z, y) = −(z_y − max_{i≠y} z_i) / (z_π1 − z_π3),  π ordering the logits from the largest down.

    The numerator is minus the logit margin (positive once the example is misclassified); the denominator
    makes the loss invariant to shifting and to positive scaling of the logits, so a model cannot weaken the
    attack by inflating its logits.  ε = 1e-12 keeps it finite when z_π1 = z_π3.  Needs 3 classes or more.
    """
    _check_classes(logits, 3, "DLR")
    top = logits.topk(3, dim=1).values
    return -logit_margins(logits, y) / (top[:, 0] - top[:, 2] + 1e-12)


#: the losses :func:`apgd` ascends, by name
LOSSES = {"ce": cross_entropy_per_example, "dlr": dlr_loss}


def targeted_dlr_loss(logits: torch.Tensor, y: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Targeted difference of logits ratio, per example (Croce & Hein 2020, eq. 6):

    DLR-T(z, y, t) = −(z_y − z_t) / (z_π1 − (z_π3 + z_π4) / 2),  π ordering the logits from the largest down.

    Ascending it raises the target's logit over the true class's; needs 4 classes or more.
    """
    _check_classes(logits, 4, "targeted DLR")
    top = logits.topk(4, dim=1).values
    gap = logits.gather(1, y[:, None])[:, 0] - logits.gather(1, target[:, None])[:, 0]
    return -gap / (top[:, 0] - (top[:, 2] + top[:, 3]) / 2 + 1e-12)


def apgd_checkpoints(steps: int) -> list[int]:
    """The iterations at which APGD may halve its step size (Croce & Hein 2020, §3):

    w_j = ⌈p_j N⌉ with p_0 = 0, p_1 = 0.22, p_{j+1} = p_j + max(p_j − p_{j−1} − 0.03, 0.06),
    kept while w_j < N (a checkpoint after the last step would change nothing).  For N = 100:
    22, 41, 57, 70, 80, 87, 93, 99.  Computed in hundredths, because in floating point 0.22 · 100 is
    22.000000000000004 and its ceiling 23.
    """
    steps = check_positive_int(steps, "steps")
    previous, p, points = 0, 22, set()
    while p <= 100:
        points.add(-(-p * steps // 100))   # ⌈p · N / 100⌉
        previous, p = p, p + max(p - previous - 3, 6)
    return sorted(w for w in points if w < steps)


def _where(condition: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per example: a where ``condition``, else b (a batch or one value per example)."""
    return torch.where(per_example(condition, a), a, b)


def _loss_and_gradient(model, x_adv, y, loss_fn, gradient: bool = True):
    """f(x_adv) per example, the logits and ∇ₓ f (None without ``gradient``); nothing keeps autograd history."""
    with torch.enable_grad():   # so that it works when called under no_grad
        x_adv = x_adv.detach().requires_grad_(gradient)
        logits = model(x_adv)
        loss = loss_fn(logits, y)
        grad = torch.autograd.grad(loss.sum(), x_adv)[0] if gradient else None
    return loss.detach(), logits.detach(), grad


def _momentum_step(x, x_k, x_previous, grad, eta, alpha, eps, norm):
    """z = Π(xᵏ + η d(∇f(xᵏ))),  xᵏ⁺¹ = Π(xᵏ + α (z − xᵏ) + (1 − α)(xᵏ − xᵏ⁻¹))  (Algorithm 1, lines 7–8)."""
    z = project(x_k + per_example(eta, x_k) * steepest_ascent(grad, norm), x, eps, norm)
    return project(x_k + alpha * (z - x_k) + (1 - alpha) * (x_k - x_previous), x, eps, norm)


def _halve(increases, window, reduced_last, f_max, f_max_last) -> torch.Tensor:
    """Which examples halve their step at a checkpoint (Croce & Hein 2020, §3):

    condition 1: fewer than ρ · (w_j − w_{j−1}) of the steps since the last checkpoint raised the loss;
    condition 2: the step was not halved at the last checkpoint and the best loss has not risen since.
    """
    return (increases < RHO * window) | (~reduced_last & (f_max <= f_max_last))


def _apgd_run(model, x, y, start, loss_fn, *, eps, norm, steps) -> _Best:
    """One run of APGD from ``start`` (Croce & Hein 2020, Algorithm 1); every example's best iterate.

    The iterates xᵏ ascend ``loss_fn``; x_max (the point of highest loss) is where an example restarts when
    its step is halved; the returned best prefers a successful iterate to a higher loss.
    """
    best, everyone = _Best(x), torch.ones(len(x), dtype=torch.bool, device=x.device)
    eta = torch.full((len(x),), 2 * eps, device=x.device, dtype=x.dtype)   # η⁽⁰⁾ = 2ε
    x_k = x_previous = project(start, x, eps, norm)
    f_k, logits, grad = _loss_and_gradient(model, x_k, y, loss_fn)
    best.update(None, x_k, f_k, attack_succeeded(logits, y, False), everyone)
    x_max, f_max, grad_max = x_k, f_k, grad
    increases = torch.zeros_like(f_k)
    # at w_0 = 0 nothing is known yet: condition 2 first applies at w_2 (as in the authors' code)
    reduced_last, f_max_last, last_checkpoint = everyone, f_max, 0
    checkpoints = set(apgd_checkpoints(steps))
    for k in range(steps):
        alpha = 1.0 if k == 0 else ALPHA   # the first step has no previous step to keep momentum from
        x_next = _momentum_step(x, x_k, x_previous, grad, eta, alpha, eps, norm)
        f_next, logits, grad = _loss_and_gradient(model, x_next, y, loss_fn, gradient=k < steps - 1)
        best.update(None, x_next, f_next, attack_succeeded(logits, y, False), everyone)
        increases += f_next > f_k
        improved = f_next > f_max
        x_max, f_max = _where(improved, x_next, x_max), torch.where(improved, f_next, f_max)
        if grad is not None:
            grad_max = _where(improved, grad, grad_max)
        x_previous, x_k, f_k = x_k, x_next, f_next
        if k + 1 in checkpoints:   # Algorithm 1, lines 12–15: halve η and go back to x_max
            halve = _halve(increases, k + 1 - last_checkpoint, reduced_last, f_max, f_max_last)
            eta = torch.where(halve, eta / 2, eta)
            x_k, f_k = _where(halve, x_max, x_k), torch.where(halve, f_max, f_k)
            grad = _where(halve, grad_max, grad)   # ∇f(x_max), kept rather than computed again
            reduced_last, f_max_last, last_checkpoint = halve, f_max, k + 1
            increases = torch.zeros_like(f_k)
    return best


def _check_loss(loss, model, x) -> Callable:
    if not isinstance(loss, str) or loss not in LOSSES:
        raise ValueError(f"loss must be one of 'ce' or 'dlr', got {loss!r}")
    if loss == "dlr" and (classes := num_classes_of(model, x)) < 3:
        raise ValueError(f"loss='dlr' needs a model with at least 3 classes (it uses the third largest logit), "
                         f"got {classes}")
    return LOSSES[loss]


@attack()
def apgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, *, norm="inf", steps: int = 100,
         loss: str = "ce", restarts: int = 1, seed: int = 0) -> torch.Tensor:
    """Auto-PGD (Croce & Hein 2020, Algorithm 1), untargeted, in an L∞ or L2 ball.

    From x⁰ = x + δ (δ uniform in the ε-ball), a first step x¹ = Π(x⁰ + η d(∇f(x⁰))), then steps with momentum
    α = 0.75, xᵏ⁺¹ = Π(xᵏ + α (z − xᵏ) + (1 − α)(xᵏ − xᵏ⁻¹)), z = Π(xᵏ + η d(∇f(xᵏ))), d = sign for L∞,
    ∇/‖∇‖₂ for L2.  η starts at 2ε; at the checkpoints of :func:`apgd_checkpoints` an example whose loss
    stalled halves its η and restarts from its best point.  ``loss`` is ``"ce"`` (cross-entropy, APGD-CE) or
    ``"dlr"`` (:func:`dlr_loss`, APGD-DLR).  ``restarts`` runs from independent random starts (seeded by
    ``seed``, drawn on the CPU); each example keeps its best iterate over all of them.
    """
    norm = check_norm(norm)
    steps = check_positive_int(steps, "steps")
    restarts = check_positive_int(restarts, "restarts")
    loss_fn = _check_loss(loss, model, x)
    generator, best = torch.Generator().manual_seed(seed), _Best(x)
    for _ in range(restarts):
        # drawn for the whole batch, so that an example's starts do not depend on which others were fooled
        start = x + random_offset(x, eps, norm, generator)
        rows = (~best.success).nonzero().flatten()   # a restart only helps the examples not fooled yet
        if len(rows) == 0:
            break
        run = _apgd_run(model, x[rows], y[rows], start[rows], loss_fn, eps=eps, norm=norm, steps=steps)
        best.update(rows, run.x_adv, run.objective, run.success, torch.ones_like(run.success))
    return best.x_adv.detach()


def _check_targets(model, x, target_classes) -> int:
    target_classes = check_positive_int(target_classes, "target_classes")
    classes = num_classes_of(model, x)
    if classes < 4:
        raise ValueError(f"apgd_targeted needs a model with at least 4 classes (the targeted DLR loss uses the "
                         f"fourth largest logit), got {classes}")
    if target_classes > classes - 1:
        raise ValueError(f"target_classes must be at most the number of classes - 1 = {classes - 1}, "
                         f"got {target_classes}")
    return target_classes


@attack()
def apgd_targeted(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, *, norm="inf", steps: int = 100,
                  target_classes: int = 9, seed: int = 0) -> torch.Tensor:
    """APGD-T, the targeted APGD of AutoAttack (Croce & Hein 2020, eq. 6 and §5), still judged untargeted.

    For the classes t with the 2nd, 3rd, …, (``target_classes`` + 1)-th largest clean logit (``y`` itself is
    skipped, which changes nothing for a correctly classified example), one APGD run ascends
    :func:`targeted_dlr_loss` towards t, from its own random start.  Success means a prediction other than
    ``y``; each example keeps its first successful iterate (it is not attacked again) and otherwise the best
    iterate of the last run.  Needs a model with at least 4 classes.
    """
    norm = check_norm(norm)
    steps = check_positive_int(steps, "steps")
    target_classes = _check_targets(model, x, target_classes)
    generator = torch.Generator().manual_seed(seed)
    x_adv, success = x.clone(), torch.zeros(len(x), dtype=torch.bool, device=x.device)
    ranked = model(x).scatter(1, y[:, None], -torch.inf).topk(target_classes, dim=1).indices
    for rank in range(target_classes):
        start = x + random_offset(x, eps, norm, generator)
        rows = (~success).nonzero().flatten()
        if len(rows) == 0:
            break
        target = ranked[rows, rank]
        run = _apgd_run(model, x[rows], y[rows], start[rows],
                        lambda logits, labels: targeted_dlr_loss(logits, labels, target),
                        eps=eps, norm=norm, steps=steps)
        x_adv[rows], success[rows] = run.x_adv, run.success
    return x_adv.detach()
