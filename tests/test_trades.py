"""advex.defences.trades: the TRADES objective (Zhang et al. 2019), the fallback of chapter 5's GPU recipe."""
from __future__ import annotations

import math

import pytest
import torch
from torch.nn import functional as F

from advex.defences.trades import trades_adversarial_examples, trades_loss
from advex.models import SmallCNN
from advex.train import train_classifier


def _model_and_batch(n=16):
    torch.manual_seed(0)
    model = SmallCNN(channels=(4, 8), hidden=16)
    generator = torch.Generator().manual_seed(1)
    return model, torch.rand(n, 1, 28, 28, generator=generator), torch.randint(0, 10, (n,), generator=generator)


def test_beta_zero_is_the_clean_cross_entropy():
    model, x, y = _model_and_batch()
    model.eval()
    assert torch.equal(trades_loss(model, x, y, eps=0.3, beta=0.0, steps=2), F.cross_entropy(model(x), y))


def test_inner_maximisation_stays_in_the_ball_and_box_and_raises_the_divergence():
    model, x, y = _model_and_batch()
    model.eval()
    original = x.clone()
    x_adv = trades_adversarial_examples(model, x, eps=0.3, steps=5, step_size=0.075)
    assert torch.equal(x, original) and not x_adv.requires_grad
    assert (x_adv - x).abs().max() <= 0.3 + 1e-6 and x_adv.min() >= 0 and x_adv.max() <= 1

    def divergence(point):
        with torch.no_grad():
            return F.kl_div(F.log_softmax(model(point), 1), F.softmax(model(x), 1), reduction="sum").item()
    assert divergence(x_adv) > 10 * divergence((x + 0.001 * torch.randn_like(x)).clamp(0, 1))


def test_loss_leaves_mode_and_parameters_as_found_and_trains():
    model, x, y = _model_and_batch(32)
    model.train()
    loss = trades_loss(model, x, y, eps=0.3, steps=2)
    assert model.training and all(p.requires_grad and p.grad is None for p in model.parameters())
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())
    history = train_classifier(model, x, y, epochs=2, lr=1e-3, batch_size=16,
                               loss_fn=lambda m, a, b: trades_loss(m, a, b, eps=0.3, steps=2), precision="bf16")
    assert len(history) == 2 and all(math.isfinite(h) for h in history)


@pytest.mark.parametrize("settings, name", [({"eps": -0.1}, "eps"), ({"beta": -1.0}, "beta"), ({"beta": math.nan}, "beta"),
                                            ({"beta": True}, "beta"), ({"steps": 0}, "steps"), ({"step_size": -1.0}, "step_size")])
def test_bad_settings_are_refused_naming_the_argument(settings, name):
    model, x, y = _model_and_batch(4)
    with pytest.raises(ValueError, match=name):
        trades_loss(model, x, y, **{"eps": 0.3, **settings})
