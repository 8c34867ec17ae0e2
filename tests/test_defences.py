"""Adversarial training objectives (advex.defences.training): the gradient they give, the mode the
attack runs in, no leaked gradients, seeded randomness, and the per-epoch robustness monitor."""
from __future__ import annotations

import functools

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from advex.defences import (fast_adversarial_loss, goodfellow_adversarial_loss, noise_augmented_loss,
                            pgd_adversarial_loss, robustness_monitor)
from advex.models import trained, trained_with_log

torch.set_num_threads(1)


def tiny_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.Tanh(), nn.Linear(8, 3))


def batch(n: int = 12, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 4, 4, generator=g), torch.randint(0, 3, (n,), generator=g)


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("ADVEX_HOME", str(tmp_path))
    return tmp_path


def parameter_gradients(model, loss):
    model.zero_grad(set_to_none=True)
    loss.backward()
    return [p.grad.clone() for p in model.parameters()]


@pytest.mark.parametrize("alpha", [0.0, 0.5, 1.0])
def test_goodfellow_objective_gradient_matches_autograd_of_the_formula(alpha):
    model, (x, y), eps = tiny_model(), batch(), 0.25
    got = parameter_gradients(model, goodfellow_adversarial_loss(model, x, y, eps=eps, alpha=alpha))
    # by hand: x̃ = clip(x + ε sign ∇ₓ J) is a constant input; J̃ = α J(x) + (1 − α) J(x̃)
    x_req = x.clone().requires_grad_(True)
    (grad_x,) = torch.autograd.grad(F.cross_entropy(model(x_req), y, reduction="sum"), x_req)
    x_adv = (x + eps * grad_x.sign()).clamp(0, 1).detach()
    expected = parameter_gradients(model, alpha * F.cross_entropy(model(x), y) + (1 - alpha) * F.cross_entropy(model(x_adv), y))
    for g, e in zip(got, expected):
        torch.testing.assert_close(g, e, rtol=1e-5, atol=1e-7)


class ModeRecorder(nn.Module):
    """Records, for every forward pass, whether it ran in training mode and whether x needed a gradient."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.Dropout(0.5), nn.ReLU(), nn.Linear(8, 3))
        self.calls = []

    def forward(self, x):
        self.calls.append((self.training, x.requires_grad))
        return self.body(x)


OBJECTIVES = {
    "goodfellow": functools.partial(goodfellow_adversarial_loss, eps=0.25),
    "pgd": functools.partial(pgd_adversarial_loss, eps=0.3, steps=3),
    "fast": functools.partial(fast_adversarial_loss, eps=0.3),
    "fast_no_start": functools.partial(fast_adversarial_loss, eps=0.3, random_start=False),
}


@pytest.mark.parametrize("name", sorted(OBJECTIVES))
def test_attack_runs_in_eval_mode_and_leaves_no_gradient_on_the_parameters(name):
    torch.manual_seed(0)
    model, (x, y) = ModeRecorder(), batch()
    model.train()
    loss = OBJECTIVES[name](model, x, y)
    attack_calls = [c for c in model.calls if c[1]]         # the passes that differentiate w.r.t. x
    training_calls = [c for c in model.calls if not c[1]]
    assert attack_calls and all(not training for training, _ in attack_calls), "attack must run in eval mode"
    assert training_calls[-1][0], "the loss itself is computed in training mode (dropout on)"
    assert model.training, "the model's mode is restored"
    assert all(p.grad is None for p in model.parameters()), "making the examples left gradients on the weights"
    assert loss.requires_grad and loss.dim() == 0


def test_fast_adversarial_examples_stay_in_the_ball_and_the_box(monkeypatch):
    model, (x, y) = tiny_model(), batch()
    seen = []
    original = model.forward
    monkeypatch.setattr(model, "forward", lambda inp: (seen.append(inp.detach()), original(inp))[1])
    fast_adversarial_loss(model, x, y, eps=0.3, step_size=0.6)
    x_adv = seen[-1]
    assert (x_adv - x).abs().max() <= 0.3 + 1e-6 and x_adv.min() >= 0 and x_adv.max() <= 1


@pytest.mark.parametrize("noise", ["sign", "uniform"])
def test_noise_control_has_the_same_budget_and_fresh_noise_each_batch(noise, monkeypatch):
    model, (x, y) = tiny_model(), batch()
    x = x.clamp(0.3, 0.7)   # away from the box, so the noise is not clipped
    seen = []
    original = model.forward
    monkeypatch.setattr(model, "forward", lambda inp: (seen.append(inp.detach()), original(inp))[1])
    noise_augmented_loss(model, x, y, eps=0.25, noise=noise)
    noise_augmented_loss(model, x, y, eps=0.25, noise=noise)
    first, second = seen[1] - x, seen[3] - x
    assert first.abs().max() <= 0.25 + 1e-6
    if noise == "sign":
        torch.testing.assert_close(first.abs(), torch.full_like(first, 0.25))
    assert not torch.equal(first, second)


def test_training_with_random_starts_is_reproducible_and_follows_the_seed(home):
    x, y = batch(48)
    loss = functools.partial(fast_adversarial_loss, eps=0.3)
    train = functools.partial(trained, "tiny-fast", tiny_model, (x, y), epochs=2, lr=1e-2, batch_size=16,
                              loss_fn=loss, verbose=False)
    a = train()
    for p in (home / "models").glob("*.pt"):
        p.unlink()
    b = train()
    c = train(seed=1)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert not all(torch.equal(p, q) for p, q in zip(a.parameters(), c.parameters()))


def test_monitor_log_is_recorded_per_epoch_cached_and_does_not_change_the_weights(home):
    x, y = batch(48)
    monitor = robustness_monitor(x[:8], y[:8], 0.3, pgd_steps=2)
    model, log = trained_with_log("tiny-monitored", tiny_model, (x, y), epochs=3, lr=1e-2, batch_size=16,
                                  monitor=monitor, verbose=False)
    assert [r["epoch"] for r in log] == [1, 2, 3]
    assert all({"loss", "train_seconds", "clean", "fgsm", "pgd"} <= set(r) for r in log)
    assert all(a["train_seconds"] < b["train_seconds"] for a, b in zip(log, log[1:]))
    assert all(0 <= r["pgd"] <= r["clean"] <= 1 for r in log)
    again, log_again = trained_with_log("tiny-monitored", tiny_model, (x, y), epochs=3, lr=1e-2, batch_size=16,
                                        monitor=monitor, verbose=False)
    assert log_again == log
    plain = trained("tiny-monitored", tiny_model, (x, y), epochs=3, lr=1e-2, batch_size=16, verbose=False)
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), plain.parameters()))


@pytest.mark.parametrize("call, name", [
    (lambda m, x, y: goodfellow_adversarial_loss(m, x, y, eps=-0.1), "eps"),
    (lambda m, x, y: goodfellow_adversarial_loss(m, x, y, eps=0.1, alpha=1.5), "alpha"),
    (lambda m, x, y: noise_augmented_loss(m, x, y, eps=0.1, noise="gaussian"), "noise"),
    (lambda m, x, y: pgd_adversarial_loss(m, x, y, eps=0.1, steps=0), "steps"),
    (lambda m, x, y: fast_adversarial_loss(m, x, y, eps=0.1, step_size=float("nan")), "step_size"),
])
def test_bad_settings_are_rejected_by_name(call, name):
    model, (x, y) = tiny_model(), batch()
    with pytest.raises(ValueError, match=name):
        call(model, x, y)
