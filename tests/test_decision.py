"""Tests of HopSkipJump (Chen, Jordan & Wainwright 2020), the decision-based attack of advex.attacks.decision,
on tiny models.

The contract of advex.attacks (box, input untouched, modes and flags restored, no gradients, no autograd
history, deterministic for a seed); the query budget, counted by the model itself; the same result through
LabelsOnly (it reads labels only); the L2 distance shrinking with the budget and reaching the closed-form
minimum of a linear model; targeted attacks; bad arguments rejected by name.
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

from advex.attacks.decision import hop_skip_jump, hop_skip_jump_with_stats
from advex.attacks.queries import LabelsOnly, QueryCounter
from gradient_free import CLASSES, RefusesGradients, predict, self_labelled_batch, tiny_mlp

# tiny models gain nothing from threads, and a busy 2-core machine loses a lot to them
torch.set_num_threads(1)


def linear_two_class(seed: int, n: int = 8):
    """A linear 2-class model (float64) and images near the centre of the box, where the closest adversarial
    point x − m (w_y − w_k)/‖w_y − w_k‖² is inside the box: the minimal L2 distance is m/‖w_y − w_k‖₂, m the
    logit margin."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 2)).double()
    generator = torch.Generator().manual_seed(seed)
    x = 0.4 + 0.2 * torch.rand((n, 1, 8, 8), generator=generator, dtype=torch.float64)
    with torch.no_grad():
        logits, w = model(x), model[1].weight
        y = logits.argmax(1)
        margin = logits.gather(1, y[:, None])[:, 0] - logits.gather(1, 1 - y[:, None])[:, 0]
        minimal = margin / (w[y] - w[1 - y]).norm(dim=1)
        closest = x - (minimal / (w[y] - w[1 - y]).norm(dim=1)).view(-1, 1, 1, 1) * (w[y] - w[1 - y]).view_as(x)
    assert closest.min() > 0 and closest.max() < 1, "the closest adversarial point should be inside the box"
    return model, x, y, minimal


def l2(x_adv, x) -> torch.Tensor:
    return (x_adv - x).flatten(1).norm(dim=1)


# --------------------------------------------------------------------------- the contract

@pytest.mark.parametrize("targeted", [False, True])
@pytest.mark.parametrize("seed", range(3))
def test_contract(seed, targeted):
    model = tiny_mlp(seed)
    x, y = self_labelled_batch(seed, model)
    init_x, labels = (x.flip(0), predict(model, x.flip(0))) if targeted else (None, y)
    x_before = x.clone()
    model[1].weight.requires_grad_(False)   # a frozen layer must stay frozen
    x_adv = hop_skip_jump(model.train(), x, labels, targeted=targeted, init_x=init_x, queries=150, seed=seed)
    assert x_adv.shape == x.shape and x_adv.dtype == x.dtype and not x_adv.requires_grad
    assert torch.equal(x, x_before), "input mutated"
    assert model.training and model[3].training, "model mode not restored"
    assert [p.requires_grad for p in model.parameters()] == [False, True, True, True]
    assert all(p.grad is None for p in model.parameters()), "gradient left on parameters"
    assert x_adv.min() >= 0 and x_adv.max() <= 1


def test_deterministic_for_a_seed_and_works_under_no_grad():
    model = tiny_mlp(1)
    x, y = self_labelled_batch(1, model)
    first = hop_skip_jump(model, x, y, queries=200, seed=0)
    with torch.no_grad():
        assert torch.equal(hop_skip_jump(model, x, y, queries=200, seed=0), first)
    assert not torch.equal(hop_skip_jump(model, x, y, queries=200, seed=1), first), "the seed should matter"


def test_labels_of_any_integer_dtype_and_inputs_that_require_grad():
    model = tiny_mlp(2)
    x, y = self_labelled_batch(2, model)
    expected = hop_skip_jump(model, x, y, queries=60)
    for dtype in (torch.int32, torch.uint8):
        assert torch.equal(hop_skip_jump(model, x, y.to(dtype), queries=60), expected)
    x_adv = hop_skip_jump(model, x.clone().requires_grad_(True), y, queries=60)
    assert torch.equal(x_adv, expected) and x_adv.grad_fn is None


@pytest.mark.parametrize("seed", range(2))
def test_reads_labels_only(seed):
    """Through LabelsOnly (one-hot of the top label) the attack makes the same queries and returns the same."""
    model = tiny_mlp(seed)
    x, y = self_labelled_batch(seed, model)
    plain = hop_skip_jump_with_stats(model, x, y, queries=300, seed=seed)
    only_labels = hop_skip_jump_with_stats(RefusesGradients(LabelsOnly(model)), x.requires_grad_(True), y,
                                           queries=300, seed=seed)
    for a, b in zip(plain, only_labels):
        assert torch.equal(a, b)


# --------------------------------------------------------------------------- queries

@pytest.mark.parametrize("queries", [2, 3, 12, 40, 300])
@pytest.mark.parametrize("seed", range(2))
def test_query_budget_is_counted_by_the_model(seed, queries):
    model = tiny_mlp(seed)
    x, y = self_labelled_batch(seed, model, n=12)
    y[:3] = (y[:3] + 1) % CLASSES                  # three images misclassified from the start
    counter = QueryCounter(model)
    x_adv, success, used = hop_skip_jump_with_stats(counter, x, y, queries=queries, seed=seed)
    assert used.dtype == torch.int64 and success.dtype == torch.bool
    assert counter.queries == used.sum(), "the reported queries are the queries the model answered"
    assert (used <= queries).all()
    assert (used[:3] == 1).all() and success[:3].all() and torch.equal(x_adv[:3], x[:3])
    assert torch.equal(success, predict(model, x_adv) != y), "success is the model's verdict on x_adv"
    assert torch.equal(x_adv[~success], x[~success]), "an image not fooled comes back unchanged"
    if queries == 300:
        assert success[3:].sum() >= 6


def test_an_image_with_no_adversarial_start_costs_the_clean_query_and_its_tries():
    """A model that predicts class 0 everywhere but on a thin slab: noise never leaves class 0."""
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 2))
    with torch.no_grad():
        model[1].weight.zero_()
        model[1].bias.copy_(torch.tensor([1.0, 0.0]))
    x = torch.rand(3, 1, 8, 8)
    y = torch.zeros(3, dtype=torch.long)
    x_adv, success, used = hop_skip_jump_with_stats(model, x, y, queries=100, init_tries=7)
    assert not success.any() and torch.equal(x_adv, x) and (used == 1 + 7).all()


# --------------------------------------------------------------------------- how close it gets

def test_distance_never_grows_with_the_budget_and_reaches_the_minimum_of_a_linear_model():
    """On a linear model the minimal L2 perturbation is m/‖w_y − w_k‖₂ in closed form.  HopSkipJump's
    distance shrinks with the budget, and 3,200 queries (d = 64) bring it within 5% of that minimum."""
    model, x, y, minimal = linear_two_class(0)
    distances = []
    for queries in (100, 200, 400, 800, 1600, 3200):
        x_adv, success, _ = hop_skip_jump_with_stats(model, x, y, queries=queries, seed=0)
        assert success.all() and (predict(model, x_adv) != y).all()
        distances.append(l2(x_adv, x))
    distances = torch.stack(distances)
    assert (distances[1:] <= distances[:-1]).all(), "the distance grew with the budget"
    assert (distances >= minimal * (1 - 1e-9)).all(), "closer than the minimal adversarial perturbation"
    assert (distances[-1] <= 1.05 * minimal).all(), (distances[-1] / minimal).tolist()
    assert (distances[0] >= 1.3 * minimal).all(), "the test should start far from the minimum"


def test_eps_stops_an_image_once_fooled_within_eps():
    model, x, y, minimal = linear_two_class(1)
    eps = 1.2 * minimal.median().item()
    x_adv, success, used = hop_skip_jump_with_stats(model, x, y, queries=2000, eps=eps, seed=0)
    _, _, used_without = hop_skip_jump_with_stats(model, x, y, queries=2000, seed=0)
    fooled = predict(model, x_adv) != y
    assert fooled.all(), "the point found is returned, fooled, even beyond ε"
    assert torch.equal(success, fooled & (l2(x_adv, x) <= eps))
    assert torch.equal(success, minimal < eps), "the images that can be fooled within ε are, the others not"
    assert (used[success] < used_without[success]).all()


def test_targeted_attack_reaches_the_targets():
    model = tiny_mlp(3)
    x, y = self_labelled_batch(3, model, n=8)
    init_x = x.roll(1, 0)
    target = predict(model, init_x)
    keep = target != y
    x, init_x, target = x[keep], init_x[keep], target[keep]
    x_adv, success, used = hop_skip_jump_with_stats(model, x, target, targeted=True, init_x=init_x, queries=500)
    assert success.all() and torch.equal(predict(model, x_adv), target)
    assert (l2(x_adv, x) < 0.7 * l2(init_x, x)).all(), "the attack should move towards x"
    assert (used <= 500).all()


def test_query_accounting_with_init_x():
    """Clean image, init_x, then a binary search of ⌈log₂ d^(3/2)⌉ = 9 queries (d = 64); 9 queries left cannot
    pay for an iteration (2 probes, a step and a binary search: 12), so the image stops at 11."""
    model = tiny_mlp(4)
    x, y = self_labelled_batch(4, model, n=8)
    init_x = x.flip(0)
    keep = predict(model, init_x) != y
    x, y, init_x = x[keep], y[keep], init_x[keep]
    assert len(x) >= 4
    counter = QueryCounter(model)
    x_adv, success, used = hop_skip_jump_with_stats(counter, x, y, init_x=init_x, queries=20)
    assert success.all() and (used == 1 + 1 + 9).all() and counter.queries == used.sum()
    assert (l2(x_adv, x) <= l2(init_x, x)).all()
    _, _, used = hop_skip_jump_with_stats(model, x, y, init_x=init_x, queries=23)
    assert (used == 23).all(), "12 queries left pay for an iteration"


# --------------------------------------------------------------------------- bad arguments

@pytest.mark.parametrize("call, message", [
    (lambda m, x, y: hop_skip_jump(m, x, y, queries=1), "queries must be an integer >= 2"),
    (lambda m, x, y: hop_skip_jump(m, x, y, queries=2.5), "queries must be an integer >= 2"),
    (lambda m, x, y: hop_skip_jump(m, x, y, probes=1), "probes must be an integer >= 2"),
    (lambda m, x, y: hop_skip_jump(m, x, y, init_tries=0), "init_tries must be an integer >= 1"),
    (lambda m, x, y: hop_skip_jump(m, x, y, eps=-1.0), "eps must be >= 0"),
    (lambda m, x, y: hop_skip_jump(m, x, y, targeted=1), "targeted must be True or False"),
    (lambda m, x, y: hop_skip_jump(m, x, y, targeted=True), "init_x must be given for a targeted attack"),
    (lambda m, x, y: hop_skip_jump(m, x, y, init_x=x[:2]), "init_x must have the shape of x"),
    (lambda m, x, y: hop_skip_jump(m, x, y, init_x=x + 1), r"init_x must lie in \[0.0, 1.0\]"),
    (lambda m, x, y: hop_skip_jump(m, x, y, init_x=x), "init_x must be adversarial for every image"),
    (lambda m, x, y: hop_skip_jump(m, x * float("nan"), y), "x contains NaN"),
    (lambda m, x, y: hop_skip_jump(m, x + 1, y), r"x must lie in \[0.0, 1.0\]"),
    (lambda m, x, y: hop_skip_jump(m, x[0, 0, 0], y), r"x must be a batch \(N, ...\)"),
    (lambda m, x, y: hop_skip_jump(m, x, y + CLASSES), r"y must hold class indices in \[0, 9\]"),
    (lambda m, x, y: hop_skip_jump(m, x, y + CLASSES, targeted=True, init_x=x),
     r"target must hold class indices in \[0, 9\]"),
    (lambda m, x, y: hop_skip_jump(m, x, y.float()), "y must be an integer torch.Tensor"),
    (lambda m, x, y: hop_skip_jump(m, x, y[:3]), "labels but the batch has"),
])
def test_bad_arguments_raise_clear_errors(call, message):
    model = tiny_mlp(0)
    x, y = self_labelled_batch(0, model)
    with pytest.raises(ValueError, match=message):
        call(model.train(), x, y)
    assert model.training
