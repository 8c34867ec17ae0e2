"""Robust accuracy under PGD, evaluated without wasting gradients on examples already lost.

An example counts as robust when the model classifies it correctly and no iterate of the attack
changes that.  The fast evaluator never attacks an example that is misclassified to begin with,
and stops attacking an example at its first successful iterate (``early_stop``); restarts only go to
the survivors.  Because :func:`advex.attacks_iterative.pgd` keeps every example's best iterate,
the plain fixed-step loop (every example, every step, every restart) reaches the same verdict on
every example: the two differ in cost only.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from torch import nn

from .attacks import num_classes_of
from .attacks_iterative import pgd_with_stats
from .progress import progress
from .validation import check_images, check_labels, check_positive_int


@dataclass
class RobustEvaluation:
    """The outcome of :func:`robust_accuracy`."""

    robust_accuracy: float   # fraction of all examples classified correctly under attack
    clean_accuracy: float    # fraction classified correctly without attack
    robust: torch.Tensor     # per example: True when robust (on the CPU)
    gradients: int           # per-example input gradients computed (forward + backward passes)
    seconds: float


@torch.no_grad()
def _correct(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    was_training = model.training
    model.eval()
    try:
        return model(x).argmax(1) == y
    finally:
        model.train(was_training)


def robust_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, *, norm="inf", steps: int = 40,
                    step_size: float | None = None, restarts: int = 1, random_start: bool = True,
                    early_stop: bool = True, batch_size: int = 1000, seed: int = 0) -> RobustEvaluation:
    """Accuracy of ``model`` under PGD (see :func:`advex.attacks_iterative.pgd` for the attack's arguments).

    early_stop=True:  skip examples misclassified when clean, drop each example at its first
                      successful iterate, restart only the survivors (the fast evaluator);
    early_stop=False: the plain loop: every example, all ``steps`` × ``restarts`` steps.
    """
    check_images(x, "x")
    check_labels(y, num_classes=num_classes_of(model, x), batch_size=x.shape[0], name="y")
    batch_size = check_positive_int(batch_size, "batch_size")
    device = next(model.parameters()).device
    start = time.perf_counter()
    robust, clean, gradients = [], [], 0
    for first in progress(range(0, len(x), batch_size), desc=f"PGD-{steps} robust accuracy"):
        xb, yb = x[first:first + batch_size].to(device), y[first:first + batch_size].to(device)
        correct = _correct(model, xb, yb)
        survived = torch.zeros_like(correct)
        if correct.any() or not early_stop:
            # the whole batch goes in so that random starts do not depend on which examples are skipped
            _, success, used = pgd_with_stats(
                model, xb, yb, eps, norm=norm, steps=steps, step_size=step_size, random_start=random_start,
                restarts=restarts, early_stop=early_stop, seed=seed + first, already_lost=~correct)
            survived = ~success
            gradients += used
        robust.append((correct & survived).cpu())
        clean.append(correct.cpu())
    robust_all, clean_all = torch.cat(robust), torch.cat(clean)
    return RobustEvaluation(robust_all.float().mean().item(), clean_all.float().mean().item(), robust_all,
                            gradients, time.perf_counter() - start)
