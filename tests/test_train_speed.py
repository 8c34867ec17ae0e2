"""The training loop's fast path: no device wait per mini-batch, bf16 only around the loss, evaluation in fp32,
and default arguments that train exactly as before (the chapters' stored numbers depend on it)."""
from __future__ import annotations

import sys
from functools import partial

import pytest
import torch
from torch.nn import functional as F

from advex.attacks import apgd
from advex.defences import pgd_adversarial_loss
from advex.evaluate import logits, robust_accuracy
from advex.models import SmallCNN
from advex.train import train_classifier


def _data(n=96, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 28, 28, generator=generator), torch.randint(0, 10, (n,), generator=generator)


def _fresh_model():
    torch.manual_seed(0)
    return SmallCNN(channels=(4, 8), hidden=16)


def _reference_loop(model, images, labels, *, epochs, lr, batch_size, seed, loss_fn):
    """The loop as it was before precision and lr_schedule existed (fp32, constant Adam step)."""
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    generator = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(images), generator=generator)
        for start in range(0, len(images), batch_size):
            index = order[start:start + batch_size]
            loss = loss_fn(model, images[index], labels[index])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    model.eval()
    return model


@pytest.mark.parametrize("loss_fn", [lambda m, x, y: F.cross_entropy(m(x), y),
                                     partial(pgd_adversarial_loss, eps=0.3, steps=2)], ids=["cross-entropy", "pgd"])
def test_default_arguments_train_bit_for_bit_as_the_plain_loop(loss_fn):
    images, labels = _data()
    expected = _reference_loop(_fresh_model(), images, labels, epochs=2, lr=1e-3, batch_size=32, seed=3, loss_fn=loss_fn)
    model = _fresh_model()   # seeds the global generator, from which PGD draws its random starts, as above
    train_classifier(model, images, labels, epochs=2, lr=1e-3, batch_size=32, seed=3, loss_fn=loss_fn)
    for name, tensor in expected.state_dict().items():
        assert torch.equal(tensor, model.state_dict()[name]), name


class _SyncCounter:
    """Counts the tensor methods that make the host wait for the device (.item(), bool(), int(), float(), .tolist()).

    Reads inside torch.optim are not counted: Adam keeps its step counter on the CPU (unless capturable) so
    that reading it never waits for a GPU."""

    METHODS = ("item", "__bool__", "__int__", "__float__", "tolist")

    def __init__(self, monkeypatch):
        self.count = 0
        for method in self.METHODS:
            original = getattr(torch.Tensor, method)

            def counted(tensor, *args, _original=original, **kwargs):
                caller = sys._getframe(1).f_code.co_filename.replace("\\", "/")
                if "torch/optim/" not in caller:
                    self.count += 1
                return _original(tensor, *args, **kwargs)
            monkeypatch.setattr(torch.Tensor, method, counted)


@pytest.mark.parametrize("settings", [{}, {"precision": "bf16", "lr_schedule": "one-cycle"}], ids=["defaults", "gpu-recipe"])
def test_one_host_read_per_epoch_whatever_the_number_of_batches(monkeypatch, settings):
    # a read of a tensor value per mini-batch would stall a GPU at every step; the loop reads the loss once an epoch
    images, labels = _data(n=80)
    counts = {}
    for epochs in (1, 3):
        counter = _SyncCounter(monkeypatch)
        train_classifier(_fresh_model(), images, labels, epochs=epochs, lr=1e-3, batch_size=8, **settings)
        counts[epochs] = counter.count
        monkeypatch.undo()
    assert counts[3] - counts[1] == 2, counts   # 10 batches per epoch: a per-batch read would add 20 or more


@pytest.mark.parametrize("name, value", [("precision", "fp16"), ("precision", "BF16"), ("precision", None),
                                         ("precision", 32), ("lr_schedule", "cosine"), ("lr_schedule", None)])
def test_bad_recipe_settings_are_refused_naming_the_argument(name, value):
    images, labels = _data(n=8)
    with pytest.raises(ValueError, match=name):
        train_classifier(_fresh_model(), images, labels, epochs=1, lr=1e-3, **{name: value})


def test_bf16_runs_the_loss_under_autocast_and_the_monitor_in_fp32():
    images, labels = _data(n=32)
    seen = {"loss": set(), "monitor": set()}

    def loss_fn(model, x, y):
        out = model(x)
        seen["loss"].add(out.dtype)
        return F.cross_entropy(out, y)

    def monitor(model):
        seen["monitor"].add(logits(model, images[:8]).dtype)
        seen["monitor"].add(model(images[:8]).dtype)
        return {}

    model = _fresh_model()
    train_classifier(model, images, labels, epochs=2, lr=1e-3, batch_size=16, loss_fn=loss_fn, monitor=monitor,
                     precision="bf16")
    assert seen == {"loss": {torch.bfloat16}, "monitor": {torch.float32}}
    assert all(p.dtype == torch.float32 for p in model.parameters())


def test_evaluation_is_fp32_inside_an_enclosing_autocast():
    images, labels = _data(n=40, seed=1)
    model = _fresh_model().eval()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert model(images).dtype == torch.bfloat16   # the context really is active here
        inside = logits(model, images)
        pgd_inside = robust_accuracy(model, images, labels, 0.1, steps=3)
        apgd_inside = robust_accuracy(model, images, labels, attacks=partial(apgd, eps=0.1, steps=3))
    assert inside.dtype == torch.float32 and torch.equal(inside, logits(model, images))
    assert torch.equal(pgd_inside.robust, robust_accuracy(model, images, labels, 0.1, steps=3).robust)
    assert torch.equal(apgd_inside.robust, robust_accuracy(model, images, labels, attacks=partial(apgd, eps=0.1, steps=3)).robust)


def test_one_cycle_schedule_peaks_at_lr_and_anneals(monkeypatch):
    images, labels = _data(n=64)
    rates = []
    original_step = torch.optim.Adam.step

    def recording_step(self, *args, **kwargs):
        rates.append(self.param_groups[0]["lr"])
        return original_step(self, *args, **kwargs)
    monkeypatch.setattr(torch.optim.Adam, "step", recording_step)
    train_classifier(_fresh_model(), images, labels, epochs=5, lr=1e-2, batch_size=8, lr_schedule="one-cycle")
    assert len(rates) == 40
    assert max(rates) == pytest.approx(1e-2)
    assert rates[0] < 1e-3 and rates[-1] < 1e-4   # starts at lr / 25, ends far below it
    rates.clear()
    train_classifier(_fresh_model(), images, labels, epochs=1, lr=1e-2, batch_size=8)
    assert set(rates) == {1e-2}
