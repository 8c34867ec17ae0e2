"""The attack contract is carried out once, at the public entry: internal callers (the training losses, the
evaluator's PGD path) use the attacks' ``.inner`` and so pay for no check, no class-counting forward pass and
no host synchronisation per minibatch."""
from __future__ import annotations

import functools

import pytest
import torch
from torch import nn

import advex.attacks.core
import advex.evaluate
from advex.defences import fast_adversarial_loss, goodfellow_adversarial_loss, pgd_adversarial_loss
from advex.evaluate import robust_accuracy


class CountingModel(nn.Module):
    """Counts its forward passes by batch size (a one-example pass is the class-counting probe)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 4))
        self.sizes: list[int] = []

    def forward(self, x):
        self.sizes.append(len(x))
        return self.net(x)


def data(n: int = 6):
    generator = torch.Generator().manual_seed(2)
    return torch.rand((n, 1, 4, 4), generator=generator), torch.randint(0, 4, (n,), generator=generator)


def refuse(*args, **kwargs):
    raise AssertionError("a check ran on the internal path")


@pytest.mark.parametrize("loss", [functools.partial(pgd_adversarial_loss, eps=0.1, steps=3),
                                  functools.partial(fast_adversarial_loss, eps=0.1),
                                  functools.partial(goodfellow_adversarial_loss, eps=0.1)],
                         ids=["pgd", "fast", "goodfellow"])
def test_the_training_losses_check_nothing_per_minibatch(loss, monkeypatch):
    model, (x, y) = CountingModel(), data()
    monkeypatch.setattr(advex.attacks.core, "check_images", refuse)
    monkeypatch.setattr(advex.attacks.core, "check_labels", refuse)
    monkeypatch.setattr(advex.attacks.core, "num_classes_of", refuse)
    model.train()
    value = loss(model, x, y)
    value.backward()
    assert 1 not in model.sizes, "the class-counting probe ran"
    assert model.training, "the model's mode was not given back"
    assert all(p.grad is not None for p in model.parameters())


def test_the_decorated_attack_still_checks(monkeypatch):
    model, (x, y) = CountingModel(), data()
    with pytest.raises(ValueError, match="eps must be >= 0"):
        advex.attacks.pgd(model, x, y, -0.1)
    with pytest.raises(ValueError, match=r"x must lie in \[0.0, 1.0\]"):
        advex.attacks.pgd(model, x + 2, y, 0.1)
    with pytest.raises(ValueError, match=r"y must hold class indices in \[0, 3\]"):
        advex.attacks.pgd(model, x, y + 4, 0.1)


def test_robust_accuracy_counts_the_classes_once_per_call_not_per_batch():
    model, (x, y) = CountingModel(), data(12)
    robust_accuracy(model, x, y, 0.1, steps=2, batch_size=4, early_stop=False)   # no batch shrinks to 1 example
    assert model.sizes.count(1) == 1, model.sizes   # the one probe that checks the labels, for 3 batches
    assert set(model.sizes) == {1, 4}


def test_correct_compares_on_the_device_and_returns_on_the_cpu():
    model, (x, y) = CountingModel(), data()
    result = advex.evaluate.correct(model, x, y)
    assert result.device.type == "cpu" and result.dtype == torch.bool
    assert torch.equal(result, model(x).argmax(1) == y)
