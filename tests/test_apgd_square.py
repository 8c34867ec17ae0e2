"""Tests of AutoAttack's pieces: APGD, APGD-T and the DLR losses (Croce & Hein 2020), and the Square attack
(Andriushchenko, Croce, Flammarion & Hein 2020), on tiny models.

The contract of advex.attacks (box, ball, input untouched, modes and flags restored, no gradients, no autograd
history, deterministic for a seed); the losses on hand-computed logits; APGD never weaker than FGSM where the
optimum is known; the Square attack's query budget, counted by the model itself, and its never asking for a
gradient; bad arguments rejected by name.
"""
from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn
from torch.nn import functional as F

from advex.attacks import (apgd, apgd_targeted, dlr_loss, fgsm, pgd, square_attack, square_attack_with_stats,
                           targeted_dlr_loss)
from advex.attacks.apgd import _halve, apgd_checkpoints
from advex.attacks.square import square_fraction, square_side
from gradient_free import RefusesGradients

# tiny models gain nothing from threads, and a busy 2-core machine loses a lot to them
torch.set_num_threads(1)

CLASSES = 10
CASES = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def tiny_model(seed: int, channels: int = 1, classes: int = CLASSES, dtype=torch.float32) -> nn.Module:
    """A random MLP on channels × 8 × 8 with dropout (so eval mode matters), left in *training* mode."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(channels * 64, 16), nn.ReLU(), nn.Dropout(0.3),
                          nn.Linear(16, classes))
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(3.0)   # larger weights: predictions that change inside small balls
    return model.to(dtype).train()


def batch(seed: int, n: int = 8, channels: int = 1, classes: int = CLASSES, dtype=torch.float32):
    generator = torch.Generator().manual_seed(seed)
    x = torch.rand((n, channels, 8, 8), generator=generator).to(dtype)
    return x, torch.randint(0, classes, (n,), generator=generator)


def fooled(model, x_adv, y) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(x_adv).argmax(1) != y


#: name → (attack(model, x, y, eps, seed), norm, channels)
ATTACKS = {
    "apgd_ce_inf": (lambda m, x, y, eps, seed: apgd(m, x, y, eps, steps=8, restarts=2, seed=seed), "inf", 1),
    "apgd_ce_2": (lambda m, x, y, eps, seed: apgd(m, x, y, eps, norm="2", steps=8, seed=seed), "2", 1),
    "apgd_dlr_inf": (lambda m, x, y, eps, seed: apgd(m, x, y, eps, steps=8, loss="dlr", seed=seed), "inf", 1),
    "apgd_dlr_2": (lambda m, x, y, eps, seed: apgd(m, x, y, eps, norm="2", steps=8, loss="dlr", seed=seed), "2", 1),
    "apgd_targeted_inf": (lambda m, x, y, eps, seed: apgd_targeted(m, x, y, eps, steps=6, target_classes=3, seed=seed),
                          "inf", 1),
    "apgd_targeted_2": (lambda m, x, y, eps, seed: apgd_targeted(m, x, y, eps, norm="2", steps=6, target_classes=3,
                                                                 seed=seed), "2", 1),
    "square": (lambda m, x, y, eps, seed: square_attack(m, x, y, eps, queries=30, seed=seed), "inf", 3),
}


# --------------------------------------------------------------------------- the contract

@pytest.mark.parametrize("name", sorted(ATTACKS))
@CASES
@given(seed=st.integers(0, 10_000), eps=st.floats(0.0, 1.0))
def test_attack_contract(name, seed, eps):
    attack, norm, channels = ATTACKS[name]
    model, (x, y) = tiny_model(seed, channels), batch(seed, channels=channels)
    x_before = x.clone()
    model[1].weight.requires_grad_(False)   # a frozen layer must stay frozen
    x_adv = attack(model, x, y, eps, seed)
    assert x_adv.shape == x.shape and x_adv.dtype == x.dtype and not x_adv.requires_grad
    assert torch.equal(x, x_before), "input mutated"
    assert model.training and model[3].training, "model mode not restored"
    assert [p.requires_grad for p in model.parameters()] == [False, True, True, True]
    assert all(p.grad is None for p in model.parameters()), "gradient left on parameters"
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    delta = (x_adv - x).flatten(1)
    size = delta.norm(dim=1) if norm == "2" else delta.abs().amax(dim=1)
    assert (size <= eps * (1 + 1e-5) + 1e-6).all(), f"left the ε-ball: {size.max().item()} > {eps}"


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_deterministic_for_a_seed_works_under_no_grad_and_zero_eps_returns_x(name):
    attack, _, channels = ATTACKS[name]
    model, (x, y) = tiny_model(1, channels), batch(1, channels=channels)
    first = attack(model, x, y, 0.2, 0)
    with torch.no_grad():
        assert torch.equal(attack(model, x, y, 0.2, 0), first)
    assert not torch.equal(attack(model, x, y, 0.2, 1), first), "the seed should matter"
    assert torch.equal(attack(model, x, y, 0.0, 0), x)


def test_apgd_targeted_keeps_the_conventions_on_integer_labels_and_inputs_that_require_grad():
    """What tests/test_conventions.py checks for every attack (its 3-class model is too small for APGD-T)."""
    model, (x, y) = tiny_model(2), batch(2)
    expected = apgd_targeted(model, x, y, 0.1, steps=4, target_classes=2)
    for dtype in (torch.int32, torch.uint8):
        assert torch.equal(apgd_targeted(model, x, y.to(dtype), 0.1, steps=4, target_classes=2), expected)
    x_adv = apgd_targeted(model, x.clone().requires_grad_(True), y, 0.1, steps=4, target_classes=2)
    assert torch.equal(x_adv, expected) and x_adv.grad_fn is None
    with pytest.raises(ValueError, match="^y must be an integer torch.Tensor"):
        apgd_targeted(model, x, y.float(), 0.1, steps=4, target_classes=2)


# --------------------------------------------------------------------------- the DLR losses

def test_dlr_loss_on_hand_computed_logits():
    logits = torch.tensor([[3.0, 1.0, 0.0, -1.0],    # y = 0 predicted: −(3 − 1) / (3 − 0)
                           [3.0, 1.0, 0.0, -1.0],    # y = 1 not predicted: −(1 − 3) / (3 − 0)
                           [0.0, 2.0, 2.0, 6.0]])    # y = 2, π = (3, 1 or 2, 2 or 1, 0): −(2 − 6) / (6 − 2)
    y = torch.tensor([0, 1, 2])
    assert torch.allclose(dlr_loss(logits, y), torch.tensor([-2 / 3, 2 / 3, 1.0]))
    target = torch.tensor([3, 3, 0])
    # −(z_y − z_t) / (z_π1 − (z_π3 + z_π4) / 2)
    expected = torch.tensor([-(3 + 1) / (3 - (0 - 1) / 2), -(1 + 1) / (3 - (0 - 1) / 2), -(2 - 0) / (6 - (2 + 0) / 2)])
    assert torch.allclose(targeted_dlr_loss(logits, y, target), expected)


@pytest.mark.parametrize("seed", range(3))
def test_dlr_losses_ignore_shifting_and_scaling_the_logits(seed):
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(16, CLASSES, generator=generator, dtype=torch.float64)
    y, target = torch.randint(0, CLASSES, (2, 16), generator=generator)
    for scale, shift in [(0.01, 5.0), (7.0, -3.0), (1e3, 100.0)]:
        moved = scale * logits + shift
        assert torch.allclose(dlr_loss(moved, y), dlr_loss(logits, y), rtol=1e-9, atol=1e-9)
        assert torch.allclose(targeted_dlr_loss(moved, y, target), targeted_dlr_loss(logits, y, target),
                              rtol=1e-9, atol=1e-9)


def test_dlr_losses_need_three_and_four_classes():
    y = torch.zeros(2, dtype=torch.long)
    with pytest.raises(ValueError, match="at least 3 classes"):
        dlr_loss(torch.randn(2, 2), y)
    with pytest.raises(ValueError, match="at least 4 classes"):
        targeted_dlr_loss(torch.randn(2, 3), y, y + 1)
    x, labels = batch(0, classes=2)
    with pytest.raises(ValueError, match="loss='dlr' needs a model with at least 3 classes"):
        apgd(tiny_model(0, classes=2), x, labels, 0.1, loss="dlr")
    with pytest.raises(ValueError, match="apgd_targeted needs a model with at least 4 classes"):
        apgd_targeted(tiny_model(0, classes=3), x, labels, 0.1, target_classes=2)


# --------------------------------------------------------------------------- APGD's schedule and strength

def test_checkpoints_follow_croce_and_hein():
    assert apgd_checkpoints(100) == [22, 41, 57, 70, 80, 87, 93, 99]
    assert apgd_checkpoints(1000) == [220, 410, 570, 700, 800, 870, 930, 990]
    assert apgd_checkpoints(10) == [3, 5, 6, 7, 8, 9]   # ⌈2.2⌉, ⌈4.1⌉, ⌈5.7⌉, ...
    assert apgd_checkpoints(1) == []


def test_step_is_halved_on_either_condition():
    increases = torch.tensor([1.0, 4.0, 4.0, 4.0])   # of a window of 5 steps: ρ · 5 = 3.75
    reduced_last = torch.tensor([False, False, True, False])
    f_max_last, f_max = torch.zeros(4), torch.tensor([1.0, 0.0, 0.0, 1.0])
    # 0: condition 1 (1 < 3.75); 1: condition 2 (not halved, no progress); 2: halved last time; 3: progress
    assert _halve(increases, 5, reduced_last, f_max, f_max_last).tolist() == [True, True, False, False]


def linear_two_class(seed: int, n: int = 8, dtype=torch.float64):
    """A linear 2-class model: cross-entropy rises along w_other − w_y everywhere, so FGSM is the exact maximiser."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 2)).to(dtype)
    x, _ = batch(seed, n=n, classes=2, dtype=dtype)
    with torch.no_grad():
        y = model(x).argmax(1)
    return model, x, y


@CASES
@given(seed=st.integers(0, 10_000), eps=st.floats(0.001, 0.3))
def test_apgd_ce_is_never_weaker_than_fgsm_on_a_linear_model(seed, eps):
    model, x, y = linear_two_class(seed)
    fast, auto = fgsm(model, x, y, eps), apgd(model, x, y, eps, steps=20, seed=seed)
    assert (fooled(model, auto, y) >= fooled(model, fast, y)).all()
    with torch.no_grad():
        loss_fast, loss_auto = (F.cross_entropy(model(t), y, reduction="none") for t in (fast, auto))
    assert (loss_auto >= loss_fast - 1e-9).all()


@pytest.mark.parametrize("seed", range(3))
def test_apgd_l2_reaches_the_optimum_on_a_linear_model(seed):
    """Inside the box the best L2 step for a 2-class linear model is ε (w_other − w_y) / ‖w_other − w_y‖."""
    model, _, _ = linear_two_class(seed)
    x = torch.full((4, 1, 8, 8), 0.5, dtype=torch.float64)   # ε = 0.3 cannot reach the box's faces
    y = model(x).argmax(1).detach()
    w = model[1].weight.detach()
    direction = (w[1 - y] - w[y]).view_as(x)
    optimum = x + 0.3 * direction / direction.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
    x_adv = apgd(model, x, y, 0.3, norm="2", steps=30, seed=seed)
    with torch.no_grad():
        loss, best = (F.cross_entropy(model(t), y, reduction="none") for t in (x_adv, optimum))
    assert torch.allclose(loss, best, rtol=1e-3)


class Bowl(nn.Module):
    """Two classes; the loss of class 0, softplus(−20 ‖x − c‖²), is highest at a centre c inside the ball."""

    def __init__(self, centre: torch.Tensor):
        super().__init__()
        self.centre = nn.Parameter(centre.flatten(1))

    def forward(self, x):
        distance = ((x.flatten(1) - self.centre) ** 2).sum(1)
        return torch.stack([20 * distance, torch.zeros_like(distance)], 1)


@pytest.mark.parametrize("norm, eps", [("inf", 0.1), ("2", 0.3)])
@pytest.mark.parametrize("seed", range(2))
def test_apgd_halves_its_step_to_reach_a_maximum_inside_the_ball(seed, norm, eps):
    """A fixed step of 2ε jumps over the maximum for ever; APGD's halving (from 2ε too) homes in on it."""
    generator = torch.Generator().manual_seed(seed)
    x = 0.25 + 0.5 * torch.rand((4, 1, 8, 8), generator=generator, dtype=torch.float64)
    centre = x + (torch.rand(x.shape, generator=generator, dtype=torch.float64) - 0.5) * 0.1   # ‖c − x‖₂ < 0.3
    model, y = Bowl(centre).double(), torch.zeros(4, dtype=torch.long)
    miss = (lambda x_adv: (x_adv - centre).flatten(1).abs().amax(1).max().item())
    assert miss(apgd(model, x, y, eps, norm=norm, steps=100, seed=seed)) < 0.01
    assert miss(pgd(model, x, y, eps, norm=norm, steps=100, step_size=2 * eps, seed=seed)) > 0.04


@pytest.mark.parametrize("loss", ["ce", "dlr"])
@pytest.mark.parametrize("seed", range(3))
def test_more_restarts_or_targets_are_never_weaker(seed, loss):
    model, (x, y) = tiny_model(seed, dtype=torch.float64), batch(seed, n=16, dtype=torch.float64)
    one, two = (apgd(model, x, y, 0.05, steps=10, restarts=r, loss=loss, seed=seed) for r in (1, 2))
    assert (fooled(model, two, y) >= fooled(model, one, y)).all()
    few, more = (apgd_targeted(model, x, y, 0.05, steps=10, target_classes=k, seed=seed) for k in (1, 3))
    assert (fooled(model, more, y) >= fooled(model, few, y)).all()


# --------------------------------------------------------------------------- the Square attack

class CountsQueries(nn.Module):
    """Wraps a model and counts the rows it is asked about, per clean image (the one within ε of the row)."""

    def __init__(self, model: nn.Module, x: torch.Tensor, eps: float):
        super().__init__()
        self.model, self.clean, self.eps = model, x.flatten(1), eps
        self.counts = torch.zeros(len(x), dtype=torch.int64)

    def forward(self, rows):
        distance = (rows.flatten(1)[:, None] - self.clean[None]).abs().amax(2)   # (rows, images)
        assert (distance.min(1).values <= self.eps + 1e-6).all(), "queried a point outside every ε-ball"
        self.counts += torch.bincount(distance.argmin(1), minlength=len(self.clean))
        return self.model(rows)


@pytest.mark.parametrize("queries", [1, 2, 3, 40])
@pytest.mark.parametrize("seed", range(2))
def test_square_never_exceeds_its_query_budget(seed, queries):
    model, (x, y) = tiny_model(seed, channels=3), batch(seed, n=12, channels=3)
    with torch.no_grad():
        y[:3] = (model.eval()(x[:3]).argmax(1) + 1) % CLASSES   # three images misclassified from the start
    counter = CountsQueries(model, x, 0.1)
    x_adv, success, used = square_attack_with_stats(counter, x, y, 0.1, queries=queries, seed=seed)
    assert used.dtype == torch.int64 and success.dtype == torch.bool
    assert torch.equal(counter.counts, used), "the reported queries are the queries the model answered"
    assert (used <= queries).all() and used.sum() <= queries * len(x)
    assert (used[:3] == 1).all() and success[:3].all() and torch.equal(x_adv[:3], x[:3])
    assert torch.equal(success, fooled(model, x_adv, y))
    assert (used[~success] == queries).all(), "an image not fooled uses the whole budget"


def test_square_uses_no_gradient():
    model, (x, y) = tiny_model(3, channels=3), batch(3, channels=3)
    x_adv = square_attack(RefusesGradients(model), x.requires_grad_(True), y, 0.1, queries=20)
    assert torch.equal(x_adv, square_attack(model, x.detach(), y, 0.1, queries=20))


@pytest.mark.parametrize("seed", range(3))
def test_square_fools_a_linear_model_at_a_large_eps(seed):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 64, CLASSES))
    x, _ = batch(seed, n=16, channels=3)
    with torch.no_grad():
        y = model(x).argmax(1)
    x_adv, success, used = square_attack_with_stats(model, x, y, 0.3, queries=300, seed=seed)
    assert success.sum() >= 12 and torch.equal(success, fooled(model, x_adv, y))
    assert used[success].float().mean() < 300


def test_square_schedule_follows_the_authors_code():
    assert square_fraction(0.8, 0, 10_000) == square_fraction(0.8, 10, 10_000) == 0.8
    assert square_fraction(0.8, 11, 10_000) == 0.4 and square_fraction(0.8, 200, 10_000) == 0.2
    assert square_fraction(0.8, 9_999, 10_000) == 0.8 / 512
    assert square_fraction(0.8, 2, 1_000) == 0.4   # iteration 2 of 1,000 is iteration 20 of 10,000
    assert square_side(0.8, 8, 8) == 7 and square_side(1e-4, 8, 8) == 1 and square_side(1.0, 4, 6) == 4


# --------------------------------------------------------------------------- bad arguments

@pytest.mark.parametrize("call, message", [
    (lambda m, x, y: apgd(m, x, y, -0.1), "eps must be >= 0"),
    (lambda m, x, y: apgd(m, x * float("nan"), y, 0.1), "x contains NaN"),
    (lambda m, x, y: apgd(m, x, y, 0.1, norm="1"), "norm must be one of"),
    (lambda m, x, y: apgd(m, x, y, 0.1, steps=0), "steps must be an integer >= 1"),
    (lambda m, x, y: apgd(m, x, y, 0.1, restarts=0), "restarts must be an integer >= 1"),
    (lambda m, x, y: apgd(m, x, y, 0.1, loss="hinge"), "loss must be one of 'ce' or 'dlr'"),
    (lambda m, x, y: apgd(m, x, y + CLASSES, 0.1), r"y must hold class indices in \[0, 9\]"),
    (lambda m, x, y: apgd_targeted(m, x, y, -1.0), "eps must be >= 0"),
    (lambda m, x, y: apgd_targeted(m, x, y, 0.1, target_classes=CLASSES), "target_classes must be at most"),
    (lambda m, x, y: apgd_targeted(m, x, y, 0.1, target_classes=0), "target_classes must be an integer >= 1"),
    (lambda m, x, y: apgd_targeted(m, x, y, 0.1, steps=1.5), "steps must be an integer >= 1"),
    (lambda m, x, y: square_attack(m, x, y, -0.1), "eps must be >= 0"),
    (lambda m, x, y: square_attack(m, x * float("nan"), y, 0.1), "x contains NaN"),
    (lambda m, x, y: square_attack(m, x, y, 0.1, norm="1"), "norm must be one of"),
    (lambda m, x, y: square_attack(m, x, y, 0.1, norm="banana"), "norm must be one of"),
    (lambda m, x, y: square_attack(m, x, y, 0.1, queries=0), "queries must be an integer >= 1"),
    (lambda m, x, y: square_attack(m, x, y, 0.1, p_init=0.0), r"p_init must be a number in \(0, 1\]"),
    (lambda m, x, y: square_attack(m, x, y, 0.1, p_init=float("nan")), r"p_init must be a number in \(0, 1\]"),
    (lambda m, x, y: square_attack(m, x.flatten(1), y, 0.1), r"x must be a batch of images \(N, C, H, W\)"),
    (lambda m, x, y: square_attack(m, x, y.float(), 0.1), "y must be an integer torch.Tensor"),
    (lambda m, x, y: square_attack(m, x, y[:3], 0.1), "labels but the batch has"),
])
def test_bad_arguments_raise_clear_errors(call, message):
    model, (x, y) = tiny_model(0), batch(0)
    with pytest.raises(ValueError, match=message):
        call(model, x, y)
    assert model.training
