"""Property tests of every attack on tiny random models (hypothesis: hundreds of random cases).

The contract (see advex.attacks): result inside the ε-ball and the [0, 1] box, input not mutated,
model mode and requires_grad restored, no gradient left on parameters; targeted attacks raise the
target's score; more steps / PGD vs FGSM are never weaker; early stopping changes cost, not verdicts.
"""
from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from torch import nn
from torch.nn import functional as F

from advex.attacks import bim, bim_steps, cw_l2, deepfool, fgsm, lbfgs_attack, pgd, pgd_with_stats
from advex.attacks.core import logit_margins
from advex.evaluate import robust_accuracy

# tiny models gain nothing from threads, and a busy 2-core machine loses a lot to them
torch.set_num_threads(1)

CLASSES = 3
SHAPE = (1, 4, 4)
CASES = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def tiny_model(seed: int, dtype=torch.float32) -> nn.Module:
    """A random MLP with dropout (so eval mode matters), left in *training* mode like a careless caller would."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 12), nn.ReLU(), nn.Dropout(0.3), nn.Linear(12, CLASSES))
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(3.0)  # larger weights: predictions that actually change inside small balls
    return model.to(dtype).train()


def batch(seed: int, n: int = 8, dtype=torch.float32):
    generator = torch.Generator().manual_seed(seed)
    x = torch.rand((n, *SHAPE), generator=generator).to(dtype)
    y = torch.randint(0, CLASSES, (n,), generator=generator)
    return x, y


def objective(model, x, y, targeted=False):
    with torch.no_grad():
        loss = F.cross_entropy(model.eval()(x), y, reduction="none")
    return -loss if targeted else loss


ATTACKS = {
    "fgsm": lambda m, x, y, eps, seed, t: fgsm(m, x, y, eps, targeted=t),
    "bim": lambda m, x, y, eps, seed, t: bim(m, x, y, eps, steps=5, step_size=eps / 3, targeted=t),
    "pgd_inf": lambda m, x, y, eps, seed, t: pgd(m, x, y, eps, steps=5, restarts=2, seed=seed, targeted=t),
    "pgd_2": lambda m, x, y, eps, seed, t: pgd(m, x, y, eps, norm="2", steps=5, restarts=2, seed=seed, targeted=t),
    "pgd_early": lambda m, x, y, eps, seed, t: pgd(m, x, y, eps, steps=5, seed=seed, targeted=t, early_stop=True),
}
L2_ATTACKS = {"pgd_2"}


@pytest.mark.parametrize("name", sorted(ATTACKS))
@CASES
@given(seed=st.integers(0, 10_000), eps=st.floats(0.0, 1.0), targeted=st.booleans())
def test_attack_contract(name, seed, eps, targeted):
    model, (x, y) = tiny_model(seed), batch(seed)
    x_before = x.clone()
    model[1].weight.requires_grad_(False)  # a frozen layer must stay frozen
    x_adv = ATTACKS[name](model, x, y, eps, seed, targeted)
    assert x_adv.shape == x.shape and x_adv.dtype == x.dtype
    assert torch.equal(x, x_before), "input mutated"
    assert model.training, "model mode not restored"
    assert [p.requires_grad for p in model.parameters()] == [False, True, True, True]
    assert all(p.grad is None for p in model.parameters()), "gradient left on parameters"
    assert not x_adv.requires_grad
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    delta = (x_adv - x).flatten(1)
    size = delta.norm(dim=1) if name in L2_ATTACKS else delta.abs().amax(dim=1)
    assert (size <= eps * (1 + 1e-5) + 1e-6).all(), f"left the ε-ball: {size.max().item()} > {eps}"


@pytest.mark.parametrize("norm", ["inf", "2"])
@CASES
@given(seed=st.integers(0, 10_000), eps=st.floats(0.01, 1.0), steps=st.integers(1, 6))
def test_targeted_attack_raises_target_score(norm, seed, eps, steps):
    model, (x, _) = tiny_model(seed), batch(seed)
    clean_logits = model.eval()(x).detach()
    target = (clean_logits.argmax(1) + 1) % CLASSES  # a class the model does not predict
    x_adv = pgd(model, x, target, eps, norm=norm, steps=steps, random_start=False, targeted=True)
    before = F.log_softmax(clean_logits, 1).gather(1, target[:, None])
    after = F.log_softmax(model(x_adv), 1).gather(1, target[:, None]).detach()
    assert (after >= before - 1e-5).all()
    assert (after > before).any(), "the attack should raise the target's probability somewhere"


@CASES
@given(seed=st.integers(0, 10_000), eps=st.floats(0.01, 1.0), steps=st.integers(1, 5), norm=st.sampled_from(["inf", "2"]))
def test_more_steps_never_weaker(seed, eps, steps, norm):
    model, (x, y) = tiny_model(seed, torch.float64), batch(seed, dtype=torch.float64)
    common = dict(norm=norm, step_size=eps / 2, seed=seed)
    short, short_success, _ = pgd_with_stats(model, x, y, eps, steps=steps, **common)
    long, long_success, _ = pgd_with_stats(model, x, y, eps, steps=2 * steps, **common)
    assert (long_success >= short_success).all()
    both_failed = ~short_success & ~long_success
    assert (objective(model, long, y)[both_failed] >= objective(model, short, y)[both_failed] - 1e-9).all()


@CASES
@given(seed=st.integers(0, 10_000), eps=st.floats(0.01, 1.0), steps=st.integers(1, 5))
def test_pgd_never_weaker_than_fgsm(seed, eps, steps):
    model, (x, y) = tiny_model(seed, torch.float64), batch(seed, dtype=torch.float64)
    fast = fgsm(model, x, y, eps)
    iterative = pgd(model, x, y, eps, steps=steps, step_size=eps, random_start=False)  # first step = FGSM
    with torch.no_grad():
        fast_fooled = model.eval()(fast).argmax(1) != y
        iterative_fooled = model(iterative).argmax(1) != y
    assert (iterative_fooled >= fast_fooled).all()
    neither = ~fast_fooled & ~iterative_fooled
    assert (objective(model, iterative, y)[neither] >= objective(model, fast, y)[neither] - 1e-9).all()


@given(seed=st.integers(0, 10_000))
@CASES
def test_zero_eps_returns_input(seed):
    model, (x, y) = tiny_model(seed), batch(seed)
    for name, attack in ATTACKS.items():
        assert torch.equal(attack(model, x, y, 0.0, seed, False), x), name


@CASES
@given(seed=st.integers(0, 10_000), eps=st.floats(0.0, 0.6), restarts=st.integers(1, 3), norm=st.sampled_from(["inf", "2"]))
def test_early_stopping_changes_cost_not_verdict(seed, eps, restarts, norm):
    model, (x, y) = tiny_model(seed, torch.float64), batch(seed, n=16, dtype=torch.float64)
    kwargs = dict(norm=norm, steps=6, restarts=restarts, seed=seed, batch_size=7)
    fast = robust_accuracy(model, x, y, eps, early_stop=True, **kwargs)
    plain = robust_accuracy(model, x, y, eps, early_stop=False, **kwargs)
    assert torch.equal(fast.robust, plain.robust)
    assert fast.clean_accuracy == plain.clean_accuracy >= fast.robust_accuracy
    assert fast.gradients <= plain.gradients == 16 * 6 * restarts
    assert model.training


def linear_two_class(seed: int, distance: float):
    """A linear 2-class model and a point at L2 ``distance`` from its boundary, deep inside the box."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 2)).double()
    x = torch.full((1, *SHAPE), 0.5, dtype=torch.float64)
    with torch.no_grad():
        w = model[1].weight[1] - model[1].weight[0]
        margin = (w @ x.flatten()).item() + (model[1].bias[1] - model[1].bias[0]).item()
        model[1].bias[1] -= margin + distance * w.norm()  # class 0 wins, by exactly `distance`
    return model, x, torch.zeros(1, dtype=torch.long)


@CASES
@given(seed=st.integers(0, 10_000), distance=st.floats(0.01, 0.3))
def test_deepfool_is_exact_on_a_linear_model(seed, distance):
    model, x, y = linear_two_class(seed, distance)
    x_adv = deepfool(model, x, y, overshoot=0.02)
    size = (x_adv - x).norm().item()
    assert model(x_adv).argmax(1).item() == 1
    assert distance <= size <= 1.02 * distance + 1e-3


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), distance=st.floats(0.05, 0.3))
def test_lbfgs_finds_a_near_minimal_targeted_example(seed, distance):
    model, x, _ = linear_two_class(seed, distance)
    x_adv = lbfgs_attack(model, x, torch.ones(1, dtype=torch.long), search_steps=10)
    size = (x_adv - x).norm().item()
    assert model(x_adv).argmax(1).item() == 1
    assert distance <= size <= 1.5 * distance


@settings(max_examples=10, deadline=None, phases=[Phase.explicit, Phase.reuse, Phase.generate])  # C&W is too slow to shrink
@given(seed=st.integers(0, 10_000), distance=st.floats(0.02, 0.3), targeted=st.booleans(), extra=st.sampled_from([0.0, 0.1]))
def test_cw_l2_finds_a_near_minimal_example(seed, distance, targeted, extra):
    """On a 2-class linear model the smallest change reaching a logit margin κ is (|margin| + κ) / ‖w_1 − w_0‖
    = ``distance`` + ``extra`` (κ = extra · ‖w_1 − w_0‖): C&W gets within 10 % of it."""
    model, x, y = linear_two_class(seed, distance)
    w = model[1].weight.detach()
    confidence = extra * (w[1] - w[0]).norm().item()
    x_adv = cw_l2(model, x, 1 - y if targeted else y, targeted=targeted, confidence=confidence)
    size = (x_adv - x).norm().item()
    assert model(x_adv).argmax(1).item() == 1
    assert (distance + extra) * (1 - 1e-6) <= size <= 1.1 * (distance + extra)


@pytest.mark.parametrize("confidence", [0.0, 0.5])
@pytest.mark.parametrize("seed", [0, 1, 3])
def test_cw_l2_moves_exactly_the_examples_whose_target_it_reaches(seed, confidence):
    model, (x, _) = tiny_model(seed, torch.float64), batch(seed, dtype=torch.float64)
    with torch.no_grad():
        target = (model.eval()(x).argmax(1) + 1) % CLASSES  # a class the model does not predict
    x_adv = cw_l2(model, x, target, targeted=True, confidence=confidence, lr=0.05)
    with torch.no_grad():
        reached = logit_margins(model(x_adv), target) >= confidence
    moved = (x_adv != x).flatten(1).any(1)
    assert torch.equal(moved, reached), "x_adv is a success with margin >= κ, or x itself"
    assert reached.any()


@pytest.mark.parametrize("attack", [
    deepfool,
    lambda m, x, y: lbfgs_attack(m, x, (y + 1) % CLASSES, search_steps=3, max_iter=20),
    lambda m, x, y: cw_l2(m, x, y, search_steps=2, steps=20),
    lambda m, x, y: cw_l2(m, x, (y + 1) % CLASSES, targeted=True, search_steps=2, steps=20),
], ids=["deepfool", "lbfgs", "cw", "cw_targeted"])
@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_minimal_attacks_contract(attack, seed):
    model, (x, y) = tiny_model(seed), batch(seed)
    x_before = x.clone()
    x_adv = attack(model, x, y)
    assert torch.equal(x, x_before) and model.training
    assert all(p.grad is None for p in model.parameters())
    assert x_adv.min() >= 0 and x_adv.max() <= 1 and x_adv.shape == x.shape
    assert not x_adv.requires_grad and x_adv.dtype == x.dtype


@pytest.mark.parametrize("attack", [
    lambda m, x, y: lbfgs_attack(m, x, (y + 1) % CLASSES, search_steps=3, max_iter=30),
    lambda m, x, y: cw_l2(m, x, y, search_steps=3, steps=30),
    lambda m, x, y: deepfool(m, x, y),
], ids=["lbfgs", "cw", "deepfool"])
@pytest.mark.parametrize("seed", [0, 1])
def test_minimal_attacks_treat_each_example_on_its_own(attack, seed):
    """An example's result must not depend on the rest of its batch (a joint L-BFGS-B run over the batch did)."""
    model, (x, y) = tiny_model(seed, torch.float64), batch(seed, n=6, dtype=torch.float64)
    together = attack(model, x, y)
    alone = torch.cat([attack(model, x[i:i + 1], y[i:i + 1]) for i in range(len(x))])
    assert torch.allclose(together, alone, rtol=0, atol=1e-6), (together - alone).abs().max()


def twenty_class_model(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 20)).double()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_deepfool_with_all_classes_as_candidates_is_plain_deepfool(seed):
    model = twenty_class_model(seed)
    x, _ = batch(seed, n=8, dtype=torch.float64)
    y = torch.randint(0, 20, (8,), generator=torch.Generator().manual_seed(seed))
    plain = deepfool(model, x, y, candidates=None)
    assert torch.equal(deepfool(model, x, y, candidates=20), plain)
    assert torch.equal(deepfool(model, x, y, candidates=1000), plain)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_deepfool_fools_a_twenty_class_model_with_three_candidates(seed, monkeypatch):
    from advex.attacks import minimal
    model = twenty_class_model(seed)
    x = 0.25 + 0.5 * batch(seed, n=16, dtype=torch.float64)[0]   # inside the box: clipping does not get in the way
    with torch.no_grad():
        y = model(x).argmax(1)
    linearised = []
    original = minimal._class_gradients
    monkeypatch.setattr(minimal, "_class_gradients",
                        lambda m, x, classes: linearised.append(classes.shape[1]) or original(m, x, classes))
    x_adv = deepfool(model, x, y, candidates=3)
    assert set(linearised) == {4}, "3 candidates + the true class, never all 20"
    with torch.no_grad():
        assert (model(x_adv).argmax(1) != y).all()


def test_bim_default_steps_follow_kurakin():
    assert bim_steps(16 / 255) == 20 and bim_steps(0.0) == 1 and bim_steps(0.25) == 67


@pytest.mark.parametrize("call, message", [
    (lambda m, x, y: fgsm(m, x, y, -0.1), "eps must be >= 0"),
    (lambda m, x, y: pgd(m, x, y, -0.1), "eps must be >= 0"),
    (lambda m, x, y: bim(m, x, y, -0.1), "eps must be >= 0"),
    (lambda m, x, y: pgd(m, x, y, float("nan")), "eps must be finite"),
    (lambda m, x, y: pgd(m, x, y, 0.1, steps=0), "steps must be an integer >= 1"),
    (lambda m, x, y: pgd(m, x, y, 0.1, steps=2.5), "steps must be an integer >= 1"),
    (lambda m, x, y: bim(m, x, y, 0.1, steps=-1), "steps must be an integer >= 1"),
    (lambda m, x, y: pgd(m, x, y, 0.1, restarts=0), "restarts must be an integer >= 1"),
    (lambda m, x, y: pgd(m, x, y, 0.1, norm="1"), "norm must be one of"),
    (lambda m, x, y: pgd(m, x, y, 0.1, step_size=-1.0), "step_size must be >= 0"),
    (lambda m, x, y: pgd(m, x, y + CLASSES, 0.1), r"class indices in \[0, 2\]"),
    (lambda m, x, y: fgsm(m, x, y - CLASSES, 0.1), r"class indices in \[0, 2\]"),
    (lambda m, x, y: pgd(m, x, y[:3], 0.1), "labels but the batch has"),
    (lambda m, x, y: pgd(m, x * 2, y, 0.1), r"x must lie in \[0.0, 1.0\]"),
    (lambda m, x, y: pgd(m, x.numpy(), y, 0.1), "x must be a torch.Tensor"),
    (lambda m, x, y: deepfool(m, x, y, steps=0), "steps must be an integer >= 1"),
    (lambda m, x, y: deepfool(m, x, y, overshoot=-0.1), "overshoot must be >= 0"),
    (lambda m, x, y: deepfool(m, x, y + CLASSES), r"class indices in \[0, 2\]"),
    (lambda m, x, y: lbfgs_attack(m, x, y, search_steps=0), "search_steps must be an integer >= 1"),
    (lambda m, x, y: deepfool(m, x, y, candidates=0), "candidates must be an integer >= 1"),
    (lambda m, x, y: deepfool(m, x, y, candidates=2.0), "candidates must be an integer >= 1"),
    (lambda m, x, y: lbfgs_attack(m, x, y, initial_c=0.0), "initial_c must be a finite number > 0"),
    (lambda m, x, y: lbfgs_attack(m, x, y, initial_c=-1.0), "initial_c must be a finite number > 0"),
    (lambda m, x, y: lbfgs_attack(m, x, y, max_iter=0), "max_iter must be an integer >= 1"),
    (lambda m, x, y: lbfgs_attack(m, x, y + CLASSES), r"target must hold class indices in \[0, 2\]"),
    (lambda m, x, y: cw_l2(m, x, y, confidence=-1.0), "confidence must be >= 0"),
    (lambda m, x, y: cw_l2(m, x, y, confidence=float("inf")), "confidence must be finite"),
    (lambda m, x, y: cw_l2(m, x, y, initial_c=0.0), "initial_c must be a finite number > 0"),
    (lambda m, x, y: cw_l2(m, x, y, initial_c=float("nan")), "initial_c must be a finite number > 0"),
    (lambda m, x, y: cw_l2(m, x, y, search_steps=0), "search_steps must be an integer >= 1"),
    (lambda m, x, y: cw_l2(m, x, y, steps=1.5), "steps must be an integer >= 1"),
    (lambda m, x, y: cw_l2(m, x, y, lr=0.0), "lr must be a finite number > 0"),
    (lambda m, x, y: cw_l2(m, x, y, lr="fast"), "lr must be a finite number > 0"),
    (lambda m, x, y: cw_l2(m, x, y + CLASSES), r"y must hold class indices in \[0, 2\]"),
    (lambda m, x, y: cw_l2(m, x * 2, y), r"x must lie in \[0.0, 1.0\]"),
    (lambda m, x, y: robust_accuracy(m, x, y, 0.1, batch_size=0), "batch_size must be an integer >= 1"),
    (lambda m, x, y: robust_accuracy(m, x, y, -0.1), "eps must be >= 0"),
])
def test_bad_arguments_raise_clear_errors(call, message):
    model, (x, y) = tiny_model(0), batch(0)
    with pytest.raises(ValueError, match=message):
        call(model, x, y)
