"""Certified training (IBP objective and schedule), the Lipschitz-margin loss, and verified ≤ empirical."""
from __future__ import annotations

import functools

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from advex.data import load_mnist
from advex.evaluate import robust_accuracy
from advex.models import trained
from advex.verify import (IBPSchedule, LipschitzMLP, ibp_loss, lipschitz_margin_loss, survives_attacks,
                          verified_by_crown, verified_by_ibp, verified_by_lipschitz)
from advex.verify.training import RECIPES, ibp_trained, main


def test_schedule_warms_up_ramps_and_holds():
    schedule = IBPSchedule(0.2, warmup_steps=10, ramp_steps=20, kappa_end=0.5)
    assert schedule.at(0) == (0.0, 1.0) and schedule.at(10) == (0.0, 1.0)
    eps, kappa = schedule.at(20)
    assert eps == pytest.approx(0.1) and kappa == pytest.approx(0.75)
    assert schedule.at(30) == (0.2, 0.5) and schedule.at(10_000) == (0.2, 0.5)
    before = repr(schedule)
    schedule.next(), schedule.next()
    assert schedule.step == 2 and repr(schedule) == before   # the cache key does not see the counter


@pytest.mark.parametrize("kwargs, name", [({"eps": -1.0, "warmup_steps": 0, "ramp_steps": 1}, "eps"),
                                          ({"eps": 0.1, "warmup_steps": -1, "ramp_steps": 1}, "warmup_steps"),
                                          ({"eps": 0.1, "warmup_steps": 0, "ramp_steps": 0}, "ramp_steps"),
                                          ({"eps": 0.1, "warmup_steps": 0, "ramp_steps": 1, "kappa_end": 1.5}, "kappa_end")])
def test_schedule_rejects_bad_settings(kwargs, name):
    eps = kwargs.pop("eps")
    with pytest.raises(ValueError, match=name):
        IBPSchedule(eps, **kwargs)


def test_ibp_loss_is_cross_entropy_at_zero_radius_and_grows_with_it():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 3))
    x, y = torch.rand(20, 1, 4, 4), torch.randint(0, 3, (20,))
    at_zero = ibp_loss(model, x, y, schedule=IBPSchedule(0.0, warmup_steps=0, ramp_steps=1, kappa_end=0.0))
    assert at_zero.item() == pytest.approx(F.cross_entropy(model(x), y).item(), abs=1e-5)
    wide = IBPSchedule(0.2, warmup_steps=0, ramp_steps=1, kappa_end=0.0)
    wide.step = 5
    assert ibp_loss(model, x, y, schedule=wide).item() > at_zero.item()
    with pytest.raises(ValueError, match="schedule"):
        ibp_loss(model, x, y, schedule=0.1)
    with pytest.raises(ValueError, match="temperature"):
        lipschitz_margin_loss(LipschitzMLP(hidden=(4,), in_features=16, num_classes=3), x, y, eps=0.1, temperature=0)


def test_smoke_recipe_runs_and_verified_never_exceeds_empirical():
    result = main(["--smoke"])
    assert set(result) >= {"clean", "verified", "eps", "n"} and 0 <= result["verified"] <= result["clean"] <= 1
    model = ibp_trained("smoke", verbose=False)
    images, labels = load_mnist("test")
    x, y = images[:60], labels[:60]
    eps = RECIPES["smoke"]["test_eps"]
    empirical = survives_attacks(model, x, y, eps)   # chapter 5's ensemble, per example
    for verified in (verified_by_ibp(model, x, y, eps), verified_by_crown(model, x, y, eps)):
        assert not (verified & ~empirical).any()   # a proved digit that an attack flips would be a bug
        assert verified.float().mean() <= empirical.float().mean()
    assert verified.any(), "the smoke model should certify a few digits, or this test checks nothing"


def test_lipschitz_model_verified_never_exceeds_empirical_in_l2():
    images, labels = load_mnist("train")
    build = functools.partial(LipschitzMLP, hidden=(32,))
    model = trained("lipschitz-smoke", build, (images[:512], labels[:512]), epochs=3, lr=3e-3, verbose=False,
                    loss_fn=functools.partial(lipschitz_margin_loss, eps=0.5, temperature=8.0))
    test_images, test_labels = load_mnist("test")
    x, y = test_images[:60], test_labels[:60]
    eps = 0.3
    verified = verified_by_lipschitz(model, x, y, eps)
    empirical = robust_accuracy(model, x, y, eps, norm="2", steps=40, restarts=3).robust   # L2 PGD (the ensemble is slow here)
    assert verified.any()
    assert not (verified & ~empirical).any()


@pytest.mark.parametrize("size", ["tiny", "small", "large"])
def test_every_recipe_network_is_verifiable(size):
    from advex.verify.bounds import interval_margin_bounds
    from advex.verify.training import ibp_network

    torch.manual_seed(0)
    model = ibp_network(size)
    x, y = torch.rand(2, 1, 28, 28), torch.tensor([3, 7])
    assert model(x).shape == (2, 10)
    margins = interval_margin_bounds(model, x, y, 0.1)
    assert margins.shape == (2, 10) and torch.isfinite(margins).all()


def test_gpu_recipe_refuses_to_run_without_cuda():
    if torch.cuda.is_available():
        pytest.skip("a GPU is present: the recipe would train for real")
    with pytest.raises(SystemExit, match="CUDA"):
        main(["--recipe", "gpu"])
    with pytest.raises(ValueError, match="recipe"):
        ibp_trained("tpu")
