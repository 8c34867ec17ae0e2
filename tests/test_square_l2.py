"""Tests of the L2 Square attack (Andriushchenko, Croce, Flammarion & Hein 2020, Algorithm 3) on tiny models.

The contract of advex.attacks (box, L2 ball, input untouched, modes and flags restored, no gradients, deterministic
for a seed); the query budget, counted by advex.attacks.queries.QueryCounter and per image; early exit; a linear
model fooled at a few times its closed-form minimal L2 distance; no autograd (a model answering detached
probabilities); the proposal's bookkeeping (‖δ‖₂ = ε after moving mass between two windows, even at the image's
edges), its pattern and its initialisation tested on their own; bad norms rejected by name.
"""
from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from advex.attacks import square_attack, square_attack_with_stats
from advex.attacks.queries import QueryCounter, ScoresOnly
from advex.attacks.square import (_concentric_squares, _l2_proposal, _l2_start, _l2_window_side, _move_mass, _paste,
                                  _window_mask, _window_pattern)
from gradient_free import RefusesGradients

# tiny models gain nothing from threads, and a busy 2-core machine loses a lot to them
torch.set_num_threads(1)

CLASSES = 10
CASES = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def tiny_model(seed: int, channels: int = 1, dtype=torch.float32) -> nn.Module:
    """A random MLP on channels × 8 × 8 with dropout (so eval mode matters), left in *training* mode."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(channels * 64, 16), nn.ReLU(), nn.Dropout(0.3),
                          nn.Linear(16, CLASSES))
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(3.0)   # larger weights: predictions that change inside small balls
    return model.to(dtype).train()


def batch(seed: int, n: int = 8, channels: int = 1, dtype=torch.float32):
    generator = torch.Generator().manual_seed(seed)
    x = torch.rand((n, channels, 8, 8), generator=generator).to(dtype)
    return x, torch.randint(0, CLASSES, (n,), generator=generator)


def fooled(model, x_adv, y) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(x_adv).argmax(1) != y


def l2(t: torch.Tensor) -> torch.Tensor:
    return t.flatten(1).norm(dim=1)


# --------------------------------------------------------------------------- the contract

@CASES
@given(seed=st.integers(0, 10_000), eps=st.floats(0.0, 4.0), channels=st.sampled_from([1, 3]),
       double=st.booleans())
def test_l2_square_stays_in_the_box_and_the_ball_and_keeps_the_contract(seed, eps, channels, double):
    dtype = torch.float64 if double else torch.float32
    model, (x, y) = tiny_model(seed, channels, dtype), batch(seed, channels=channels, dtype=dtype)
    x_before = x.clone()
    model[1].weight.requires_grad_(False)   # a frozen layer must stay frozen
    x_adv = square_attack(model, x, y, eps, norm="2", queries=25, seed=seed)
    assert x_adv.shape == x.shape and x_adv.dtype == x.dtype and not x_adv.requires_grad
    assert torch.equal(x, x_before), "input mutated"
    assert model.training and model[3].training, "model mode not restored"
    assert [p.requires_grad for p in model.parameters()] == [False, True, True, True]
    assert all(p.grad is None for p in model.parameters()), "gradient left on parameters"
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    rounding = 1e-12 if double else 1e-6
    assert (l2(x_adv - x) <= eps * (1 + rounding) + rounding).all(), f"left the ball: {l2(x_adv - x).max()} > {eps}"


def test_deterministic_for_a_seed_works_under_no_grad_and_zero_eps_returns_x():
    model, (x, y) = tiny_model(1, 3), batch(1, channels=3)
    first = square_attack(model, x, y, 1.0, norm="2", queries=30)
    with torch.no_grad():
        assert torch.equal(square_attack(model, x, y, 1.0, norm="2", queries=30), first)
    assert not torch.equal(square_attack(model, x, y, 1.0, norm="2", queries=30, seed=1), first), "the seed matters"
    x_adv, _, used = square_attack_with_stats(model, x, y, 0.0, norm="2", queries=30)
    assert torch.equal(x_adv, x) and (used == 1).all()


def test_norm_spellings_and_the_p_init_default_per_norm():
    model, (x, y) = tiny_model(2, 3), batch(2, channels=3)
    expected = square_attack(model, x, y, 1.0, norm="2", queries=30, p_init=0.1)
    for norm in (2, "l2", "L2", 2.0):
        assert torch.equal(square_attack(model, x, y, 1.0, norm=norm, queries=30), expected)
    # L∞ keeps its default of 0.8
    assert torch.equal(square_attack(model, x, y, 0.1, queries=30),
                       square_attack(model, x, y, 0.1, norm="inf", queries=30, p_init=0.8))


@pytest.mark.parametrize("norm", ["1", "banana", 1, "l0"])
def test_a_bad_norm_is_rejected_by_name(norm):
    model, (x, y) = tiny_model(0), batch(0)
    with pytest.raises(ValueError, match="^norm must be one of"):
        square_attack(model, x, y, 0.5, norm=norm)
    assert model.training


# --------------------------------------------------------------------------- queries

class PerImage(nn.Module):
    """Counts the rows it is asked about per clean image (the one within ε in L2), and checks each is in a ball."""

    def __init__(self, model: nn.Module, x: torch.Tensor, eps: float):
        super().__init__()
        self.model, self.clean, self.eps = model, x.flatten(1), eps
        self.counts = torch.zeros(len(x), dtype=torch.int64)

    def forward(self, rows):
        distance = torch.cdist(rows.flatten(1).double(), self.clean.double())   # (rows, images)
        assert (distance.min(1).values <= self.eps * (1 + 1e-6)).all(), "queried a point outside every ε-ball"
        self.counts += torch.bincount(distance.argmin(1), minlength=len(self.clean))
        return self.model(rows)


@pytest.mark.parametrize("queries", [1, 2, 3, 40])
@pytest.mark.parametrize("seed", range(2))
def test_queries_are_counted_per_image_and_never_exceed_the_budget(seed, queries):
    model, (x, y) = tiny_model(seed, channels=3), batch(seed, n=12, channels=3)
    with torch.no_grad():
        y[:3] = (model.eval()(x[:3]).argmax(1) + 1) % CLASSES   # three images misclassified from the start
    per_image = PerImage(model, x, 0.5)
    counter = QueryCounter(per_image)
    x_adv, success, used = square_attack_with_stats(counter, x, y, 0.5, norm="2", queries=queries, seed=seed)
    assert used.dtype == torch.int64 and success.dtype == torch.bool
    assert counter.queries == used.sum().item(), "the reported queries are the examples the model was asked about"
    assert torch.equal(per_image.counts, used)
    assert (used <= queries).all() and counter.calls <= queries
    assert (used[:3] == 1).all() and success[:3].all() and torch.equal(x_adv[:3], x[:3])
    assert torch.equal(success, fooled(model, x_adv, y))
    assert (used[~success] == queries).all(), "an image not fooled uses the whole budget"


def test_misclassified_images_cost_one_query_and_the_search_stops_when_all_are_fooled():
    model, (x, y) = tiny_model(4), batch(4)
    with torch.no_grad():
        y = (model.eval()(x).argmax(1) + 1) % CLASSES                # every image misclassified
    counter = QueryCounter(model)
    x_adv, success, used = square_attack_with_stats(counter, x, y, 1.0, norm="2", queries=50)
    assert counter.calls == 1 and counter.queries == len(x) and (used == 1).all()
    assert success.all() and torch.equal(x_adv, x)


def linear_model(seed: int, n: int = 16, channels: int = 3):
    """A linear classifier, clean images in [0.3, 0.7] and, per image, the closed-form minimal L2 distance to another
    class, min_k (z_y − z_k) / ‖w_y − w_k‖ (the box can only make it larger)."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(channels * 64, CLASSES))
    generator = torch.Generator().manual_seed(seed)
    x = 0.3 + 0.4 * torch.rand((n, channels, 8, 8), generator=generator)
    with torch.no_grad():
        logits, w = model(x), model[1].weight
        y = logits.argmax(1)
        distance = (logits.gather(1, y[:, None]) - logits) / (w[y][:, None] - w[None]).norm(dim=2)
        distance[torch.arange(n), y] = torch.inf
    return model, x, y, distance.min(1).values


@pytest.mark.parametrize("seed", range(3))
def test_l2_square_fools_a_linear_model_at_three_times_the_minimal_distance_and_stops_early(seed):
    model, x, y, minimal = linear_model(seed)
    eps = 3 * minimal.max().item()
    counter = QueryCounter(model)
    x_adv, success, used = square_attack_with_stats(counter, x, y, eps, norm="2", queries=200, seed=seed)
    assert success.all() and torch.equal(success, fooled(model, x_adv, y))
    assert used.float().mean() < 100 and counter.calls == used.max() < 200, "fooled images leave the batch"
    assert (l2(x_adv - x) >= minimal * (1 - 1e-5)).all(), "closer than the closed-form minimal distance"


# --------------------------------------------------------------------------- no gradients

def test_l2_square_needs_scores_only_and_no_autograd():
    model, (x, y) = tiny_model(3, channels=3), batch(3, channels=3)
    x_adv = square_attack(RefusesGradients(model), x.clone().requires_grad_(True), y, 1.0, norm="2", queries=20)
    assert torch.equal(x_adv, square_attack(model, x, y, 1.0, norm="2", queries=20))
    x_adv, success, _ = square_attack_with_stats(ScoresOnly(model), x, y, 1.0, norm="2", queries=20)
    assert not x_adv.requires_grad and torch.equal(success, fooled(model, x_adv, y))
    assert (l2(x_adv - x) <= 1.0 + 1e-6).all()


# --------------------------------------------------------------------------- the pieces of Algorithm 3

def test_concentric_squares_by_hand():
    # K = 3 squares about the centre (2, 2): 1 + 1/4 + 1/9 at the centre, 1/4 + 1/9 at distance 1, 1/9 at 2
    a, b, c = 1 + 1 / 4 + 1 / 9, 1 / 4 + 1 / 9, 1 / 9
    expected = torch.tensor([[c, c, c, c, c], [c, b, b, b, c], [c, b, a, b, c], [c, b, b, b, c], [c, c, c, c, c]],
                            dtype=torch.float64)
    assert torch.allclose(_concentric_squares(5, 5), expected / expected.norm())
    assert _concentric_squares(0, 4).shape == (0, 4)


@pytest.mark.parametrize("side", range(1, 13))
def test_window_pattern_is_two_opposite_bumps_of_equal_energy(side):
    eta, half = _window_pattern(side), side // 2
    assert eta.shape == (side, side) and torch.isclose(eta.norm(), torch.tensor(1.0, dtype=torch.float64))
    top, bottom = eta[:half], eta[half:]
    assert (top > 0).all() and (bottom < 0).all()
    if half:
        assert torch.isclose(top.norm(), bottom.norm())
        assert top[half // 2, side // 2] == top.max()
    assert bottom[(side - half) // 2, side // 2] == bottom.min()


def test_window_side_is_odd_at_least_three_and_fits_the_image():
    assert [_l2_window_side(p, 28, 28) for p in (1.0, 0.8, 0.1, 0.05, 0.001)] == [27, 25, 9, 7, 3]
    assert [_l2_window_side(p, 8, 8) for p in (1.0, 0.1, 0.01)] == [7, 3, 3]
    assert _l2_window_side(1.0, 9, 30) == 9 and _l2_window_side(1.0, 2, 2) == 1 and _l2_window_side(0.5, 1, 7) == 1


def test_paste_puts_each_window_at_its_corner_and_cuts_it_at_the_edges():
    patterns = torch.arange(2 * 2 * 3 * 3, dtype=torch.float64).view(2, 2, 3, 3) + 1
    top, left = torch.tensor([1, -1]), torch.tensor([4, 6])
    pasted, mask = _paste(patterns, top, left, 6, 8), _window_mask(top, left, 3, 6, 8)
    assert torch.equal(pasted[0, :, 1:4, 4:7], patterns[0]) and pasted[0].count_nonzero() == 2 * 9
    assert torch.equal(pasted[1, :, 0:2, 6:8], patterns[1, :, 1:3, 0:2]) and pasted[1].count_nonzero() == 2 * 4
    assert torch.equal(mask, (pasted != 0)[:, :1])


#: (top, left) of W₁ and W₂ in an 8 × 8 image, side 3: corners, edges, overlapping, equal, cut by the edges
WINDOWS = [((0, 0), (5, 5)), ((5, 5), (0, 0)), ((0, 5), (5, 0)), ((2, 2), (3, 3)), ((4, 1), (4, 1)),
           ((-2, -1), (6, 7)), ((7, 6), (-1, -2)), ((6, -2), (6, -2))]


@pytest.mark.parametrize("first, second", WINDOWS)
@pytest.mark.parametrize("fill", [1.0, 0.6, 0.0])
def test_moving_mass_keeps_the_norm_at_eps_even_at_the_edges(first, second, fill):
    """‖δ_new‖₂ = ε exactly (to float64 rounding) from any ‖δ‖ ≤ ε; only W₁ and W₂ change; W₂ ∖ W₁ is emptied."""
    generator = torch.Generator().manual_seed(0)
    n, c, side, eps = 4, 3, 3, 2.0
    delta = torch.randn((n, c, 8, 8), generator=generator, dtype=torch.float64)
    delta[1, :, :4] = 0.0                                          # an image with empty windows for some positions
    delta = fill * eps * delta / l2(delta).view(-1, 1, 1, 1)       # ‖δ‖ = ε, 0.6 ε (budget left unused) or 0
    (top1, left1), (top2, left2) = (tuple(torch.full((n,), k) for k in corner) for corner in (first, second))
    in1, in2 = _window_mask(top1, left1, side, 8, 8), _window_mask(top2, left2, side, 8, 8)
    signs = torch.tensor([1.0, -1.0, 1.0], dtype=torch.float64).view(1, c, 1, 1)
    pattern = _paste(_window_pattern(side).expand(n, c, side, side) * signs, top1, left1, 8, 8)
    moved = _move_mass(delta, eps, in1, in2, pattern)
    assert torch.allclose(l2(moved), torch.full((n,), eps, dtype=torch.float64), rtol=1e-12, atol=0)
    assert torch.equal(moved[~(in1 | in2).expand_as(moved)], delta[~(in1 | in2).expand_as(delta)])
    assert (moved[(in2 & ~in1).expand_as(moved)] == 0).all()
    # the channels share what was unused equally and keep what their windows held
    unused = (eps ** 2 - l2(delta) ** 2).clamp(min=0).view(-1, 1) / c
    held = (delta * (in1 | in2)).flatten(2).norm(dim=2) ** 2
    assert torch.allclose((moved * in1).flatten(2).norm(dim=2) ** 2, held + unused, rtol=1e-12, atol=1e-15)


def test_moving_mass_turns_a_window_that_held_minus_its_pattern():
    """u = η + δ_W₁ / ‖δ_W₁‖ vanishes when W₁ held −η: the window turns over to η rather than dividing by zero."""
    top, left = torch.tensor([2]), torch.tensor([3])
    in1 = _window_mask(top, left, 3, 8, 8)
    pattern = _paste(_window_pattern(3).expand(1, 1, 3, 3), top, left, 8, 8)
    delta = torch.zeros((1, 1, 8, 8), dtype=torch.float64)
    delta[0, 0, 0, 0] = 0.5
    delta = delta - 0.5 * pattern
    moved = _move_mass(delta, 1.0, in1, in1, pattern)
    assert torch.isfinite(moved).all() and torch.isclose(l2(moved)[0], torch.tensor(1.0, dtype=torch.float64))
    assert torch.allclose(moved * in1, pattern * (1 - 0.5 ** 2) ** 0.5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("side", [1, 3, 5, 8])
def test_the_proposal_is_on_the_sphere_and_never_outside_the_ball(side, dtype):
    """‖δ‖₂ = ε to rounding, through a chain of proposals from any ‖δ‖ ≤ ε, windows anywhere in the image."""
    generator = torch.Generator().manual_seed(side)
    eps, rounding = 1.5, (1e-6 if dtype == torch.float32 else 1e-12)
    delta = torch.randn((64, 3, 8, 8), generator=generator, dtype=dtype)
    delta = eps * delta * torch.rand((64, 1, 1, 1), generator=generator, dtype=dtype) / l2(delta).view(-1, 1, 1, 1)
    for _ in range(20):                                             # a chain of proposals, as in the search
        delta = _l2_proposal(delta, eps, side, generator)
        assert torch.allclose(l2(delta), torch.tensor(eps, dtype=dtype), rtol=rounding, atol=0)
        assert (l2(delta) <= eps * (1 + rounding)).all()


def test_the_start_is_a_centred_five_by_five_grid_on_the_sphere():
    generator = torch.Generator().manual_seed(0)
    grey = torch.full((3, 2, 28, 28), 0.5, dtype=torch.float64)       # ε = 1 is too small to reach the box
    delta = _l2_start(grey, 1.0, generator) - grey
    assert torch.allclose(l2(delta), torch.ones(3, dtype=torch.float64))
    inside = torch.zeros(28, 28, dtype=torch.bool)
    inside[1:26, 1:26] = True                                       # 5 tiles of side 5, centred
    assert (delta[..., inside] != 0).all() and (delta[..., ~inside] == 0).all()
    # each tile is ±η or ±ηᵀ, one sign per channel
    eta = _window_pattern(5)
    tile = delta[0, 1, 6:11, 11:16]
    tile = tile / tile.norm()
    assert any(torch.allclose(tile, sign * t) for sign in (1, -1) for t in (eta, eta.T))
    small = _l2_start(torch.full((1, 1, 8, 8), 0.5), 0.5, generator) - 0.5   # tiles of one pixel
    assert small[0, 0, 1:6, 1:6].count_nonzero() == 25 and small.count_nonzero() == 25
