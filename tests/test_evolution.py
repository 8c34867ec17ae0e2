"""Tests of the few-pixel attack by differential evolution (Su, Vargas & Sakurai 2019), on tiny models.

The contract of advex.attacks (box, input untouched, modes and flags restored, no gradients, deterministic for a
seed) and of an L0 attack (at most k positions changed, at every query too); the query budget, counted by the
model itself, early exit and the single query of an image already fooled; the success flag; a one-pixel example
that exists is found, untargeted and targeted; bad arguments rejected by name.
"""
from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from advex.attacks.evolution import _three_others, pixel_attack, pixel_attack_with_stats
from advex.attacks.queries import QueryCounter
from gradient_free import RefusesGradients

# tiny models gain nothing from threads, and a busy 2-core machine loses a lot to them
torch.set_num_threads(1)

CLASSES = 10
CASES = settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SMALL = dict(population=8, iterations=3)   # 1 + 8 · 4 = 33 queries at most per image


def tiny_model(seed: int, channels: int = 1, dtype=torch.float64) -> nn.Module:
    """A random MLP on channels × 8 × 8 with dropout (so eval mode matters), left in *training* mode."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(channels * 64, 16), nn.ReLU(), nn.Dropout(0.3),
                          nn.Linear(16, CLASSES))
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(3.0)   # larger weights: predictions that one pixel can change
    return model.to(dtype).train()


def batch(seed: int, n: int = 6, channels: int = 1, dtype=torch.float64):
    """Random images and random labels (most of them wrong: use :func:`labelled` to attack every image)."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.rand((n, channels, 8, 8), generator=generator, dtype=dtype)
    return x, torch.randint(0, CLASSES, (n,), generator=generator)


def labelled(model, seed: int, n: int = 6, channels: int = 1):
    """Random images labelled with the model's predictions: every one is attacked."""
    x, _ = batch(seed, n, channels)
    return x, predict(model, x)


def predict(model, x) -> torch.Tensor:
    with torch.no_grad():
        was = model.training
        prediction = model.eval()(x).argmax(1)
        model.train(was)
    return prediction


def changed_positions(x_adv, x) -> torch.Tensor:
    """Per image, the spatial positions where any channel differs."""
    return (x_adv != x).any(1).flatten(1).sum(1)


class BrightPixel(nn.Module):
    """Two or three classes on 1 × 8 × 8 images: class 0 (logit 0) unless a watched pixel is brighter than 0.6.

    ``watched`` maps a class to the pixels that vote for it; its logit is 20 · (brightest of them − 0.6).  On
    images darker than 0.6 the prediction flips iff one of those pixels is set brighter than 0.6.
    """

    def __init__(self, watched: dict[int, list[tuple[int, int]]]):
        super().__init__()
        self.watched = watched
        self.scale = nn.Parameter(torch.tensor(20.0))   # a parameter, so the model has a device

    def forward(self, x):
        logits = [torch.zeros(len(x), dtype=x.dtype, device=x.device)]
        for k in range(1, len(self.watched) + 1):
            pixels = torch.stack([x[:, 0, r, c] for r, c in self.watched[k]], 1)
            logits.append(self.scale * (pixels.amax(1) - 0.6))
        return torch.stack(logits, 1)


def dark(n: int, seed: int = 0) -> torch.Tensor:
    return 0.3 * torch.rand((n, 1, 8, 8), generator=torch.Generator().manual_seed(seed))


class CountsQueries(nn.Module):
    """Counts the rows it is asked about per clean image (the one that differs from the row in fewest positions),
    and checks every row is within ``pixels`` positions of a clean image: the L0 budget holds at query time."""

    def __init__(self, model: nn.Module, x: torch.Tensor, pixels: int):
        super().__init__()
        self.model, self.clean, self.pixels = model, x, pixels
        self.counts = torch.zeros(len(x), dtype=torch.int64)

    def forward(self, rows):
        positions = (rows[:, None] != self.clean[None]).any(2).flatten(2).sum(2)   # (rows, images)
        assert (positions.min(1).values <= self.pixels).all(), "queried more than `pixels` changed positions"
        self.counts += torch.bincount(positions.argmin(1), minlength=len(self.clean))
        return self.model(rows)


# --------------------------------------------------------------------------- the contract

@CASES
@given(seed=st.integers(0, 10_000), pixels=st.integers(1, 4), channels=st.sampled_from([1, 3]),
       targeted=st.booleans())
def test_attack_contract(seed, pixels, channels, targeted):
    model = tiny_model(seed, channels)
    x, y = batch(seed, channels=channels) if targeted else labelled(model, seed, channels=channels)
    x_before = x.clone()
    model[1].weight.requires_grad_(False)   # a frozen layer must stay frozen
    x_adv, success, used = pixel_attack_with_stats(model, x, y, pixels, targeted=targeted, seed=seed, **SMALL)
    assert x_adv.shape == x.shape and x_adv.dtype == x.dtype and not x_adv.requires_grad
    assert success.dtype == torch.bool and used.dtype == torch.int64
    assert torch.equal(x, x_before), "input mutated"
    assert model.training and model[3].training, "model mode not restored"
    assert [p.requires_grad for p in model.parameters()] == [False, True, True, True]
    assert all(p.grad is None for p in model.parameters()), "gradient left on parameters"
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    assert (changed_positions(x_adv, x) <= pixels).all()
    prediction = predict(model, x_adv)
    assert torch.equal(success, prediction == y if targeted else prediction != y), "success flag disagrees"
    assert torch.equal(pixel_attack(model, x, y, pixels, targeted=targeted, seed=seed, **SMALL), x_adv)


def test_deterministic_for_a_seed_and_different_for_another():
    model = tiny_model(1, 3)
    x, y = labelled(model, 1, channels=3)
    first = pixel_attack(model, x, y, 2, seed=0, **SMALL)
    with torch.no_grad():
        assert torch.equal(pixel_attack(model, x, y, 2, seed=0, **SMALL), first)
    assert not torch.equal(pixel_attack(model, x, y, 2, seed=1, **SMALL), first), "the seed should matter"


def test_uses_no_gradient_and_accepts_inputs_that_require_grad_and_any_integer_labels():
    model = tiny_model(3)
    x, y = labelled(model, 3)
    expected = pixel_attack(model, x, y, **SMALL)
    x_adv = pixel_attack(RefusesGradients(model), x.clone().requires_grad_(True), y.to(torch.int32), **SMALL)
    assert torch.equal(x_adv, expected) and x_adv.grad_fn is None


def test_candidates_are_distinct_other_members():
    others = _three_others(50, 5, torch.Generator().manual_seed(0))
    chosen = torch.cat([torch.arange(5).expand(50, 5)[..., None], others], 2).sort(2).values
    assert (chosen[..., 1:] != chosen[..., :-1]).all() and chosen.min() >= 0 and chosen.max() < 5


# --------------------------------------------------------------------------- queries

@pytest.mark.parametrize("iterations", [0, 1, 5])
@pytest.mark.parametrize("seed", range(2))
def test_reported_queries_are_the_model_calls_and_within_budget(seed, iterations):
    population, pixels = 6, 2
    model = tiny_model(seed, 3)
    x, y = labelled(model, seed, n=10, channels=3)
    y[:3] = (predict(model, x[:3]) + 1) % CLASSES   # three images misclassified from the start
    counted = QueryCounter(CountsQueries(model, x, pixels))
    x_adv, success, used = pixel_attack_with_stats(counted, x, y, pixels, population=population,
                                                   iterations=iterations, seed=seed)
    budget = 1 + population * (iterations + 1)
    assert counted.queries == int(used.sum()), "the reported queries are the queries the model answered"
    assert torch.equal(counted.model.counts, used), "per image too"
    assert (used <= budget).all() and ((used - 1) % population == 0).all()
    assert (used[:3] == 1).all() and success[:3].all() and torch.equal(x_adv[:3], x[:3])
    assert (used[~success] == budget).all(), "an image not fooled uses the whole budget"


def test_one_batch_per_generation():
    model = tiny_model(5)
    x, y = labelled(model, 5, n=12)
    counted = QueryCounter(model)
    pixel_attack_with_stats(counted, x, y, population=5, iterations=4)
    assert counted.calls <= 1 + 5, "the clean batch, then one batch per generation for all images left"


def test_early_exit_when_easily_fooled():
    """Any pixel brighter than 0.6 fools this model: about 40 % of the first population does."""
    model = BrightPixel({1: [(r, c) for r in range(8) for c in range(8)]})
    x, y = dark(8), torch.zeros(8, dtype=torch.long)
    x_adv, success, used = pixel_attack_with_stats(model, x, y, population=20, iterations=50)
    assert success.all() and (used == 1 + 20).all(), "fooled by the initial population: no generation more"
    assert (changed_positions(x_adv, x) == 1).all() and (predict(model, x_adv) == 1).all()


# --------------------------------------------------------------------------- finding what exists

@pytest.mark.parametrize("seed", range(2))
def test_finds_the_one_pixel_that_flips_the_prediction(seed):
    """Only pixel (5, 2) set brighter than 0.6 flips the prediction: DE must find the position and the value."""
    model = BrightPixel({1: [(5, 2)]})
    x, y = dark(6, seed), torch.zeros(6, dtype=torch.long)
    x_adv, success, used = pixel_attack_with_stats(model, x, y, population=40, iterations=40, seed=seed)
    assert success.all() and (used < 1 + 40 * 41).all()
    changed = (x_adv != x)[:, 0]
    assert changed.flatten(1).sum(1).eq(1).all() and changed[:, 5, 2].all() and (x_adv[:, 0, 5, 2] > 0.6).all()


def test_targeted_reaches_the_target_and_only_the_target_counts():
    """A bright pixel anywhere in the left half makes class 1, only pixel (6, 6) bright makes the target, 2."""
    model = BrightPixel({1: [(r, c) for r in range(8) for c in range(4)], 2: [(6, 6)]})
    x, target = dark(6), torch.full((6,), 2)
    x_adv, success, used = pixel_attack_with_stats(model, x, target, targeted=True, population=40, iterations=40)
    assert success.all() and (predict(model, x_adv) == 2).all() and (used < 1 + 40 * 41).all()
    changed = (x_adv != x)[:, 0]
    assert changed.flatten(1).sum(1).eq(1).all() and changed[:, 6, 6].all()
    # an image already in its target class costs one query and comes back unchanged
    already = pixel_attack_with_stats(model, x, torch.zeros(6, dtype=torch.long), targeted=True, **SMALL)
    assert torch.equal(already[0], x) and already[1].all() and (already[2] == 1).all()


# --------------------------------------------------------------------------- bad arguments

@pytest.mark.parametrize("call, message", [
    (lambda m, x, y: pixel_attack(m, x, y, 0), "pixels must be an integer >= 1"),
    (lambda m, x, y: pixel_attack(m, x, y, -2), "pixels must be an integer >= 1"),
    (lambda m, x, y: pixel_attack(m, x, y, 1.0), "pixels must be an integer >= 1"),
    (lambda m, x, y: pixel_attack(m, x, y, 65), r"pixels must be at most H·W = 64"),
    (lambda m, x, y: pixel_attack(m, x, y, population=3), "population must be an integer >= 4"),
    (lambda m, x, y: pixel_attack(m, x, y, population=10.0), "population must be an integer >= 4"),
    (lambda m, x, y: pixel_attack(m, x, y, iterations=-1), "iterations must be an integer >= 0"),
    (lambda m, x, y: pixel_attack(m, x, y, mutation=0), r"mutation must be a number in \(0, 2\]"),
    (lambda m, x, y: pixel_attack(m, x, y, mutation=float("nan")), r"mutation must be a number in \(0, 2\]"),
    (lambda m, x, y: pixel_attack(m, x, y, mutation=2.5), r"mutation must be a number in \(0, 2\]"),
    (lambda m, x, y: pixel_attack(m, x, y, targeted="yes"), "targeted must be True or False"),
    (lambda m, x, y: pixel_attack(m, x + 1.0, y), r"x must lie in \[0.0, 1.0\]"),
    (lambda m, x, y: pixel_attack(m, x * float("nan"), y), "x contains NaN"),
    (lambda m, x, y: pixel_attack(m, x.flatten(1), y), r"x must be a batch of images \(N, C, H, W\)"),
    (lambda m, x, y: pixel_attack(m, x, y.float()), "y must be an integer torch.Tensor"),
    (lambda m, x, y: pixel_attack(m, x, y + CLASSES), r"y must hold class indices in \[0, 9\]"),
    (lambda m, x, y: pixel_attack(m, x, y[:3]), "labels but the batch has"),
])
def test_bad_arguments_raise_clear_errors(call, message):
    model, (x, y) = tiny_model(0), batch(0)
    with pytest.raises(ValueError, match=message):
        call(model, x, y)
    assert model.training
