"""Tests of the NES attack (Ilyas, Engstrom, Athalye & Lin 2018), the score-based attack of
advex.attacks.estimation, on tiny models.

The contract of advex.attacks (box, ε-ball in L∞ and L2, input untouched, modes and flags restored, no gradients,
no autograd history, deterministic for a seed); the estimator against the true gradient of a linear model; the
query budget, counted by the model itself; the same attack through ScoresOnly, with autograd never called; on a
linear model, success exactly where the closed form says it is possible (with room for the estimate's noise);
bad arguments rejected by name.
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

from advex.attacks.estimation import margin_loss, nes_attack, nes_attack_with_stats, nes_gradient
from advex.attacks.queries import QueryCounter, ScoresOnly
from gradient_free import CLASSES, RefusesGradients, predict, self_labelled_batch, tiny_mlp

# tiny models gain nothing from threads, and a busy 2-core machine loses a lot to them
torch.set_num_threads(1)


def linear_two_class(seed: int, n: int = 32):
    """A linear 2-class model (float64) and images near the centre of the box, where a ball of radius ≤ 0.1 never
    meets the box's faces, and the margins m = z_y − z_k and weight differences w = w_y − w_k."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 2)).double()
    generator = torch.Generator().manual_seed(seed)
    x = 0.4 + 0.2 * torch.rand((n, 1, 8, 8), generator=generator, dtype=torch.float64)
    with torch.no_grad():
        logits = model(x)
        y = logits.argmax(1)
        margin = logits.gather(1, y[:, None])[:, 0] - logits.gather(1, 1 - y[:, None])[:, 0]
        w = model[1].weight[y] - model[1].weight[1 - y]
    return model, x, y, margin, w


def sizes(x_adv, x, norm) -> torch.Tensor:
    delta = (x_adv - x).flatten(1)
    return delta.norm(dim=1) if norm == "2" else delta.abs().amax(dim=1)


# --------------------------------------------------------------------------- the contract

@pytest.mark.parametrize("norm, eps", [("inf", 0.0), ("inf", 0.05), ("inf", 0.5), ("2", 0.3), ("2", 2.0)])
@pytest.mark.parametrize("seed", range(2))
def test_contract(seed, norm, eps):
    model = tiny_mlp(seed)
    x, y = self_labelled_batch(seed, model)
    x_before = x.clone()
    model[1].weight.requires_grad_(False)   # a frozen layer must stay frozen
    x_adv = nes_attack(model.train(), x, y, eps, norm=norm, queries=200, samples=10, seed=seed)
    assert x_adv.shape == x.shape and x_adv.dtype == x.dtype and not x_adv.requires_grad
    assert torch.equal(x, x_before), "input mutated"
    assert model.training and model[3].training, "model mode not restored"
    assert [p.requires_grad for p in model.parameters()] == [False, True, True, True]
    assert all(p.grad is None for p in model.parameters()), "gradient left on parameters"
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    assert (sizes(x_adv, x, norm) <= eps * (1 + 1e-5) + 1e-6).all(), "left the ε-ball"


def test_deterministic_for_a_seed_works_under_no_grad_and_zero_eps_returns_x():
    model = tiny_mlp(1)
    x, y = self_labelled_batch(1, model)
    first = nes_attack(model, x, y, 0.05, queries=100, samples=8, seed=0)
    with torch.no_grad():
        assert torch.equal(nes_attack(model, x, y, 0.05, queries=100, samples=8, seed=0), first)
    assert not torch.equal(nes_attack(model, x, y, 0.05, queries=100, samples=8, seed=1), first)
    assert torch.equal(nes_attack(model, x, y, 0.0, queries=100, samples=8), x)


def test_labels_of_any_integer_dtype_and_inputs_that_require_grad():
    model = tiny_mlp(2)
    x, y = self_labelled_batch(2, model)
    expected = nes_attack(model, x, y, 0.1, queries=60, samples=10)
    for dtype in (torch.int32, torch.uint8):
        assert torch.equal(nes_attack(model, x, y.to(dtype), 0.1, queries=60, samples=10), expected)
    x_adv = nes_attack(model, x.clone().requires_grad_(True), y, 0.1, queries=60, samples=10)
    assert torch.equal(x_adv, expected) and x_adv.grad_fn is None


# --------------------------------------------------------------------------- the estimator

def test_margin_loss_on_hand_computed_scores():
    scores = torch.tensor([[3.0, 1.0, 0.0], [3.0, 1.0, 0.0], [0.2, 0.5, 0.3]])
    assert torch.allclose(margin_loss(scores, torch.tensor([0, 1, 2])), torch.tensor([-2.0, 2.0, 0.2]))


def test_nes_gradient_is_unbiased_on_a_linear_model():
    """For the 2-class linear model L(x) = −w·x + c, L(x + σu) − L(x − σu) = 2σ u·∇L exactly, so the estimate
    is ĝ = (2/n) Σ_{i ≤ n/2} u_i u_iᵀ ∇L: unbiased (E uuᵀ = I), and with many samples close to ∇L = −w."""
    model, x, y, _, w = linear_two_class(0, n=4)
    g = nes_gradient(model.eval(), x, y, samples=4000, sigma=0.001, generator=torch.Generator().manual_seed(0))
    cosine = torch.nn.functional.cosine_similarity(g.flatten(1), -w, dim=1)
    assert (cosine > 0.95).all(), cosine.tolist()
    assert torch.allclose(g.flatten(1).norm(dim=1), w.norm(dim=1), rtol=0.1)


# --------------------------------------------------------------------------- queries

@pytest.mark.parametrize("queries, samples", [(1, 2), (10, 10), (11, 10), (100, 10), (300, 50)])
@pytest.mark.parametrize("seed", range(2))
def test_query_budget_is_counted_by_the_model(seed, queries, samples):
    """Query 1 is the clean image; every iteration costs ``samples`` + 1; an image stops when fooled or when
    the budget cannot pay for another iteration."""
    model = tiny_mlp(seed)
    x, y = self_labelled_batch(seed, model, n=12)
    y[:3] = (y[:3] + 1) % CLASSES                  # three images misclassified from the start
    counter = QueryCounter(model)
    x_adv, success, used = nes_attack_with_stats(counter, x, y, 0.1, queries=queries, samples=samples, seed=seed)
    assert used.dtype == torch.int64 and success.dtype == torch.bool
    assert counter.queries == used.sum(), "the reported queries are the queries the model answered"
    assert (used <= queries).all() and ((used - 1) % (samples + 1) == 0).all()
    assert (used[:3] == 1).all() and success[:3].all() and torch.equal(x_adv[:3], x[:3])
    assert torch.equal(success, predict(model, x_adv) != y), "success is the model's verdict on x_adv"
    iterations = (queries - 1) // (samples + 1)
    assert (used[~success] == 1 + iterations * (samples + 1)).all(), "an image not fooled uses every iteration"


@pytest.mark.parametrize("norm, eps", [("inf", 0.08), ("2", 0.6)])
def test_works_on_scores_only_without_autograd(norm, eps):
    model, x, y, _, _ = linear_two_class(2, n=16)
    scores = ScoresOnly(model)
    x_adv, success, used = nes_attack_with_stats(RefusesGradients(scores), x.clone().requires_grad_(True), y, eps,
                                                 norm=norm, queries=600)
    assert success.sum() >= 4 and torch.equal(success, predict(model, x_adv) != y)
    assert (sizes(x_adv, x, norm) <= eps * (1 + 1e-9)).all()
    # with two classes the margin of the probabilities, tanh(m/2), rises with the margin m of the logits: the
    # estimates point the same way (σ is small), and here the searches end alike
    _, success_on_logits, used_on_logits = nes_attack_with_stats(model, x, y, eps, norm=norm, queries=600)
    assert torch.equal(success_on_logits, success) and torch.equal(used_on_logits, used)


# --------------------------------------------------------------------------- when it succeeds

@pytest.mark.parametrize("norm, eps", [("inf", 0.04), ("2", 0.3)])
@pytest.mark.parametrize("seed", range(2))
def test_succeeds_on_a_linear_model_where_the_closed_form_says_it_can(seed, norm, eps):
    """Inside the box, the largest drop of the margin m within the ε-ball is ε‖w‖₁ (L∞) or ε‖w‖₂ (L2),
    w = w_y − w_k: an image is fooled only if m < ε‖w‖, and NES, with enough queries, fools every image with
    m < 0.7 ε‖w‖ (the rest of the ball is room for the noise of the estimate)."""
    model, x, y, margin, w = linear_two_class(seed)
    reach = eps * (w.abs().sum(1) if norm == "inf" else w.norm(dim=1))
    x_adv, success, used = nes_attack_with_stats(model, x, y, eps, norm=norm, queries=1000, seed=seed)
    assert torch.equal(success, predict(model, x_adv) != y)
    assert not success[margin >= reach].any(), "fooled beyond what the ε-ball allows"
    easy = margin < 0.7 * reach
    assert easy.sum() >= 8 and success[easy].all()


# --------------------------------------------------------------------------- bad arguments

@pytest.mark.parametrize("call, message", [
    (lambda m, x, y: nes_attack(m, x, y, -0.1), "eps must be >= 0"),
    (lambda m, x, y: nes_attack(m, x, y, float("inf")), "eps must be finite"),
    (lambda m, x, y: nes_attack(m, x, y, 0.1, norm="1"), "norm must be one of"),
    (lambda m, x, y: nes_attack(m, x, y, 0.1, queries=0), "queries must be an integer >= 1"),
    (lambda m, x, y: nes_attack(m, x, y, 0.1, samples=3), "samples must be an even integer >= 2"),
    (lambda m, x, y: nes_attack(m, x, y, 0.1, samples=0), "samples must be an even integer >= 2"),
    (lambda m, x, y: nes_attack(m, x, y, 0.1, sigma=0.0), "sigma must be a finite number > 0"),
    (lambda m, x, y: nes_attack(m, x, y, 0.1, sigma=float("nan")), "sigma must be a finite number > 0"),
    (lambda m, x, y: nes_attack(m, x, y, 0.1, step_size=-1.0), "step_size must be a finite number > 0"),
    (lambda m, x, y: nes_attack(m, x * float("nan"), y, 0.1), "x contains NaN"),
    (lambda m, x, y: nes_attack(m, x + 1, y, 0.1), r"x must lie in \[0.0, 1.0\]"),
    (lambda m, x, y: nes_attack(m, x[0, 0, 0], y, 0.1), r"x must be a batch \(N, ...\)"),
    (lambda m, x, y: nes_attack(m, x, y + CLASSES, 0.1), r"y must hold class indices in \[0, 9\]"),
    (lambda m, x, y: nes_attack(m, x, y.float(), 0.1), "y must be an integer torch.Tensor"),
    (lambda m, x, y: nes_attack(m, x, y[:3], 0.1), "labels but the batch has"),
])
def test_bad_arguments_raise_clear_errors(call, message):
    model = tiny_mlp(0)
    x, y = self_labelled_batch(0, model)
    with pytest.raises(ValueError, match=message):
        call(model.train(), x, y)
    assert model.training
