"""Tests of the L0 attacks (advex.attacks.sparse) on tiny models and 1×6×6 images."""
from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

from advex.attacks.sparse import greedy_pixels, one_pixel_exhaustive
from advex.evaluate import correct, pixels_changed, pixels_to_fool

torch.set_num_threads(1)

CLASSES = 3
SHAPE = (1, 6, 6)


def tiny_model(seed: int, channels: int = 1) -> nn.Module:
    """A random MLP with dropout (so eval mode matters), left in training mode."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(channels * 36, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, CLASSES))
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(3.0)
    return model.train()


def batch(seed: int, n: int = 8, shape=SHAPE):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand((n, *shape), generator=g)
    x[x < 0.5] = 0.0  # like MNIST: many pixels already at a candidate value
    return x, torch.randint(0, CLASSES, (n,), generator=g)


def margins(model, x, y):
    with torch.no_grad():
        logits = model.eval()(x)
    true = logits.gather(1, y[:, None])[:, 0]
    return true - logits.scatter(1, y[:, None], -torch.inf).max(1).values


def changed_pixels(x_adv, x):
    return (x_adv != x).any(1).flatten(1).sum(1)


def check_contract(model, x, x_before, x_adv, values):
    assert torch.equal(x, x_before), "input mutated"
    assert model.training, "model mode not restored"
    assert all(p.grad is None and p.requires_grad for p in model.parameters())
    assert x_adv.shape == x.shape and x_adv.min() >= 0 and x_adv.max() <= 1
    changed = x_adv != x
    assert torch.isin(x_adv[changed], torch.tensor(values)).all(), "changed values outside the allowed set"


@pytest.mark.parametrize("seed", range(4))
def test_one_pixel_contract_and_optimality(seed):
    model, (x, y) = tiny_model(seed), batch(seed)
    values = (0.0, 1.0)
    x_before = x.clone()
    x_adv = one_pixel_exhaustive(model, x, y, values, batch_size=7)
    check_contract(model, x, x_before, x_adv, values)
    assert (changed_pixels(x_adv, x) <= 1).all()
    assert torch.equal(pixels_changed(x, x_adv), changed_pixels(x_adv, x))
    # brute force: every position × value, one image at a time
    model.eval()
    for i in range(len(x)):
        best = margins(model, x[i:i + 1], y[i:i + 1]).item()
        for r, c, v in itertools.product(range(6), range(6), values):
            candidate = x[i:i + 1].clone()
            candidate[0, :, r, c] = v
            best = min(best, margins(model, candidate, y[i:i + 1]).item())
        assert margins(model, x_adv[i:i + 1], y[i:i + 1]).item() == pytest.approx(best, abs=1e-5)


def test_one_pixel_sets_all_channels():
    model, (x, y) = tiny_model(5, channels=3), batch(5, shape=(3, 6, 6))
    x_adv = one_pixel_exhaustive(model, x, y, (0.0, 0.5, 1.0))
    assert (changed_pixels(x_adv, x) <= 1).all()
    diff = (x_adv != x).any(1)
    for i in range(len(x)):
        if diff[i].any():
            r, c = diff[i].nonzero()[0]
            assert (x_adv[i, :, r, c] == x_adv[i, 0, r, c]).all()


@pytest.mark.parametrize("seed", range(4))
def test_greedy_pixels(seed):
    model, (x, y) = tiny_model(seed), batch(seed, n=12)
    x_before = x.clone()
    k = 3
    x_adv = greedy_pixels(model, x, y, max_pixels=k, values=(1.0,))
    check_contract(model, x, x_before, x_adv, (1.0,))
    assert (changed_pixels(x_adv, x) <= k).all()
    pixels = pixels_to_fool(model, x, x_adv, y)
    with torch.no_grad():
        fooled = model.eval()(x_adv).argmax(1) != y
        wrong_clean = model(x).argmax(1) != y
    assert torch.equal(fooled, pixels <= k) and torch.equal(~fooled, torch.isinf(pixels))
    assert torch.equal(wrong_clean, pixels == 0)
    assert torch.equal(x_adv[wrong_clean], x[wrong_clean])     # images already wrong are left alone
    # one greedy step is the exhaustive one-pixel attack
    one = greedy_pixels(model, x, y, max_pixels=1, values=(1.0,))
    exhaustive = one_pixel_exhaustive(model, x, y, (1.0,))
    assert torch.equal(one[~wrong_clean], exhaustive[~wrong_clean])
    # an image fooled after one pixel stays as it was: more pixels never fool fewer images
    one_fooled = ~correct(model, one, y)
    assert torch.equal(x_adv[one_fooled], one[one_fooled])


def test_bad_arguments():
    model, (x, y) = tiny_model(0), batch(0)
    for values in ((0.0, 1.5), (-0.1,), (), ("a",), (float("nan"),)):
        with pytest.raises(ValueError, match="values"):
            one_pixel_exhaustive(model, x, y, values)
    for max_pixels in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="max_pixels"):
            greedy_pixels(model, x, y, max_pixels=max_pixels)
    with pytest.raises(ValueError, match="batch_size"):
        one_pixel_exhaustive(model, x, y, batch_size=0)
    with pytest.raises(ValueError, match="x"):
        one_pixel_exhaustive(model, x * 2, y)
    with pytest.raises(ValueError, match="x"):
        one_pixel_exhaustive(nn.Sequential(nn.Flatten(), nn.Linear(36, 3)), x.flatten(1), y)
    with pytest.raises(ValueError, match="y"):
        one_pixel_exhaustive(model, x, y[:-1])
