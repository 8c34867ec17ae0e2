"""robust_accuracy(..., attacks=...) judges only attacks that stay in the threat model (the box, and the ε-ball
when ε is given): an attack that leaves it raises ValueError naming the attack and its worst violation, so an
invalid attack (a student's, or a bug) cannot lower a robust accuracy."""
from __future__ import annotations

import functools

import pytest
import torch
from torch import nn

from advex.attacks import apgd, fgsm, pgd, square_attack
from advex.evaluate import THREAT_MODEL_TOLERANCE, robust_accuracy, threat_model_violation

CLASSES = 3


def model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 12), nn.ReLU(), nn.Linear(12, CLASSES)).eval()


def data(n: int = 12):
    generator = torch.Generator().manual_seed(1)
    return torch.rand((n, 1, 4, 4), generator=generator), torch.randint(0, CLASSES, (n,), generator=generator)


def add(delta: float, *, clip: bool = True):
    """A cheating attack: x + delta everywhere (clipped to the box unless ``clip`` is False)."""
    def cheat(model, x, y):
        moved = x + delta
        return moved.clamp(0.0, 1.0) if clip else moved
    return cheat


def l2_step(size: float):
    """Moves every image by ``size`` in L2 (inside the box), whatever ε is."""
    def cheat(model, x, y):
        direction = torch.where(x > 0.5, -1.0, 1.0)
        direction = direction / direction.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
        return (x + size * direction).clamp(0.0, 1.0)
    return cheat


@pytest.mark.parametrize("norm, eps", [("inf", 0.3), ("2", 1.0)])   # +0.2 on 16 pixels: inside both balls
def test_an_attack_outside_the_box_is_refused_by_name(norm, eps):
    m, (x, y) = model(), data()
    with pytest.raises(ValueError, match=r"attacks\[1\] \(.*cheat.*\) left the threat model.*outside the box"):
        robust_accuracy(m, x, y, eps, norm=norm, attacks=[functools.partial(pgd, eps=eps, norm=norm, steps=3),
                                                          add(0.2, clip=False)])


def test_the_box_is_checked_even_without_eps():
    m, (x, y) = model(), data()
    with pytest.raises(ValueError, match=r"a pixel of 1\.19\d* lies outside the box \[0, 1\] \(by 0\.19"):
        robust_accuracy(m, x, y, attacks=add(0.2, clip=False))


def test_an_attack_outside_the_linf_ball_is_refused_with_its_worst_violation():
    m, (x, y) = model(), data()
    with pytest.raises(ValueError, match=r"attacks\[0\].*L∞ distance 0\.2.*radius 0\.1 \(by 0\.1"):
        robust_accuracy(m, x, y, 0.1, attacks=functools.partial(fgsm, eps=0.2))


def test_an_attack_outside_the_l2_ball_is_refused_with_its_worst_violation():
    m, (x, y) = model(), data()
    with pytest.raises(ValueError, match=r"attacks\[0\] \(.*cheat.*\).*L2 distance 1\.5.*radius 1 \(by 0\.5"):
        robust_accuracy(m, x, y, 1.0, norm="2", attacks=l2_step(1.5))
    # the same attack is inside an L∞ ball of radius 1: which ball is meant matters
    robust_accuracy(m, x, y, 1.0, norm="inf", attacks=l2_step(1.5))


@pytest.mark.parametrize("norm, eps", [("inf", 0.1), ("2", 1.0)])
def test_honest_attacks_pass_and_give_the_unchecked_verdict(norm, eps):
    m, (x, y) = model(), data()
    attacks = [functools.partial(pgd, eps=eps, norm=norm, steps=5, restarts=2),
               functools.partial(apgd, eps=eps, norm=norm, steps=6),
               functools.partial(square_attack, eps=eps, norm=norm, queries=30)]
    if norm == "inf":
        attacks.append(functools.partial(fgsm, eps=eps))
    checked = robust_accuracy(m, x, y, eps, norm=norm, attacks=attacks)
    unchecked = robust_accuracy(m, x, y, attacks=attacks)
    assert torch.equal(checked.robust, unchecked.robust)


def test_float_rounding_is_not_a_violation_but_a_grey_level_is():
    x = torch.full((2, 1, 4, 4), 0.5)
    assert threat_model_violation(x, x + 0.1 + THREAT_MODEL_TOLERANCE / 10, 0.1) is None
    assert threat_model_violation(x, x + 0.1 + 1 / 255, 0.1) is not None
    message, excess = threat_model_violation(x, x + 0.3, 0.1)
    assert "example 0" in message and excess == pytest.approx(0.2)


def test_an_attack_returning_the_wrong_shape_or_non_finite_values_is_refused():
    m, (x, y) = model(), data()
    with pytest.raises(ValueError, match=r"attacks\[0\].*must return a batch shaped like x"):
        robust_accuracy(m, x, y, 0.1, attacks=lambda model, x, y: x[:1])
    with pytest.raises(ValueError, match=r"NaN or infinite"):
        robust_accuracy(m, x, y, 0.1, attacks=lambda model, x, y: x * torch.nan)
