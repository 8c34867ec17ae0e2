"""Tests of the substitute-model attack (Papernot et al. 2017): Jacobian-based augmentation is eq. (4) on a
model whose gradient is known, the target is queried exactly once per labelled point and never for gradients,
the substitute comes from the cache on the second call (no queries), and bad arguments are rejected by name.
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

from advex.attacks.queries import LabelsOnly, QueryCounter, ScoresOnly
from advex.attacks.transfer import jacobian_augmentation, oracle_labels, train_substitute
from advex.device import device_of

torch.set_num_threads(1)


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("ADVEX_HOME", str(tmp_path))
    return tmp_path


def linear(seed: int = 0, d: int = 16, classes: int = 3) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(d, classes))


def images(n: int = 12, seed: int = 0) -> torch.Tensor:
    return torch.rand((n, 1, 4, 4), generator=torch.Generator().manual_seed(seed)) * 0.6 + 0.2


def test_augmentation_is_a_signed_step_along_the_weights_of_the_oracle_label():
    model, x = linear(), images()
    labels = torch.arange(len(x)) % 3
    new = jacobian_augmentation(model, x, labels, lam=0.1)
    w = model[1].weight.detach()
    expected = (x + 0.1 * w[labels].sign().view(-1, 1, 4, 4)).clamp(0, 1)   # ∇ₓ F_c(x) = w_c for a linear F
    assert torch.allclose(new, expected)


def test_augmentation_stays_in_the_box_and_leaves_x_alone():
    model, x = linear(), torch.rand((20, 1, 4, 4), generator=torch.Generator().manual_seed(1))
    before = x.clone()
    new = jacobian_augmentation(model, x, torch.zeros(20, dtype=torch.long), lam=1.0)
    assert new.min() >= 0 and new.max() <= 1
    assert torch.equal(x, before)
    assert all(p.grad is None for p in model.parameters())


def test_oracle_labels_cost_one_query_per_example_and_work_on_a_labels_only_model():
    target = QueryCounter(LabelsOnly(linear(3)))
    x = images(25)
    labels = oracle_labels(target, x, batch_size=10)
    assert target.queries == 25 and target.calls == 3
    assert torch.equal(labels, linear(3)(x).argmax(1))


def test_substitute_spends_seed_size_times_two_to_the_rounds_queries_then_none_from_the_cache(home):
    target = QueryCounter(LabelsOnly(linear(5)))
    seed_x = images(12)

    def build():
        return linear(7)

    substitute, log = train_substitute(target, seed_x, build, rounds=2, epochs=2, verbose=False)
    assert [r["examples"] for r in log] == [12, 24, 48]
    assert target.queries == log[-1]["queries"] == 12 * 2 ** 2
    again, log_again = train_substitute(target, seed_x, build, rounds=2, epochs=2, verbose=False)
    assert target.queries == 48            # served by the cache: no new queries
    assert log_again == log
    for a, b in zip(substitute.parameters(), again.parameters()):
        assert torch.equal(a, b)


def test_substitute_learns_a_linear_target(home):
    target = linear(11, classes=2)
    seed_x = torch.rand((40, 1, 4, 4), generator=torch.Generator().manual_seed(2))
    substitute, _ = train_substitute(target, seed_x, lambda: linear(12, classes=2), rounds=3, epochs=20, lr=0.05,
                                     verbose=False)
    test_x = torch.rand((500, 1, 4, 4), generator=torch.Generator().manual_seed(3))
    # the substitute is trained where advex computes (ADVEX_DEVICE), the target stays where it was made
    answers = substitute(test_x.to(device_of(substitute))).argmax(1).cpu()
    agreement = (answers == target(test_x).argmax(1)).float().mean().item()
    assert agreement > 0.85   # a random linear substitute agrees about half the time


@pytest.mark.parametrize("kwargs, name", [({"lam": 0.0}, "lam"), ({"lam": float("nan")}, "lam"), ({"lam": 2}, "lam"),
                                          ({"rounds": -1}, "rounds"), ({"rounds": 1.5}, "rounds"),
                                          ({"epochs": 0}, "epochs")])
def test_bad_settings_are_rejected_by_name(home, kwargs, name):
    with pytest.raises(ValueError, match=name):
        train_substitute(linear(), images(), linear, verbose=False, **kwargs)


def test_seed_images_outside_the_box_are_rejected(home):
    with pytest.raises(ValueError, match="seed_images"):
        train_substitute(linear(), images() + 1.0, linear, verbose=False)


@pytest.mark.parametrize("wrapper", [QueryCounter, LabelsOnly, ScoresOnly])
def test_query_wrappers_reject_a_model_that_is_not_a_module(wrapper):
    with pytest.raises(ValueError, match="model must be a torch.nn.Module"):
        wrapper(lambda x: x)
