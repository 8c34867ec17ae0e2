"""The other side of a proof: whether the strongest attacks we have fail, per example.

A certificate says "no input in the ball changes the label"; an attack that fails says only "this search
found none".  So on every example a sound verifier certifies, every attack must fail, and verified accuracy
can never exceed the accuracy under attack.  The attacks are chapter 5's ensemble (Croce & Hein 2020's
APGD-CE and targeted APGD-DLR, and the gradient-free Square attack of Andriushchenko et al. 2020);
an example counts as robust only when it survives all of them (the per-example minimum).
"""
from __future__ import annotations

from functools import partial

import torch
from torch import nn

from ..attacks import apgd, apgd_targeted, square_attack
from ..evaluate import robust_accuracy
from ..validation import check_eps, check_norm

__all__ = ["attack_ensemble", "survives_attacks"]


def attack_ensemble(eps, norm="inf", *, full: bool = False) -> dict:
    """APGD-CE, APGD-DLR-T and Square at radius ε; ``full`` gives AutoAttack's budgets (a GPU's), else a CPU's."""
    eps, norm = check_eps(eps), check_norm(norm)
    steps, targets, queries = (100, 9, 5000) if full else (50, 3, 1000)
    return {"APGD-CE": partial(apgd, eps=eps, norm=norm, steps=steps, loss="ce"),
            "APGD-DLR-T": partial(apgd_targeted, eps=eps, norm=norm, steps=steps, target_classes=targets),
            "Square": partial(square_attack, eps=eps, norm=norm, queries=queries)}


def survives_attacks(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps, norm="inf", *,
                     full: bool = False) -> torch.Tensor:
    """Per example (bool, CPU): classified correctly clean and on the output of every attack of the ensemble."""
    robust = [robust_accuracy(model, x, y, attacks=attack).robust for attack in attack_ensemble(eps, norm, full=full).values()]
    return torch.stack(robust).all(0)
