"""Test helpers shared by the black-box attack tests: a model that fails if anything asks it for a gradient,
and the small random MLP on 8 × 8 images that the label- and score-based attack tests run against.

Imported by the test modules (pytest puts ``tests/`` on the path); it holds no tests itself.
"""
from __future__ import annotations

import torch
from torch import nn

CLASSES = 10


class NoGradient(torch.autograd.Function):
    """The identity, whose backward pass fails: a gradient-free attack never calls it."""

    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        raise AssertionError("the attack asked for a gradient")


class RefusesGradients(nn.Module):
    """``model`` behind :class:`NoGradient`, asserting that autograd is not even recording."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        assert not torch.is_grad_enabled() and not x.requires_grad, "autograd is recording"
        return self.model(NoGradient.apply(x))


def tiny_mlp(seed: int, classes: int = CLASSES, dtype=torch.float32) -> nn.Module:
    """A random MLP on 1 × 8 × 8 with dropout (so eval mode matters), left in *training* mode."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, classes))
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(3.0)
    return model.to(dtype).train()


def predict(model, x) -> torch.Tensor:
    """The model's labels, in eval mode (and left in eval mode: the callers' models are attacked next)."""
    with torch.no_grad():
        return model.eval()(x).argmax(1)


def self_labelled_batch(seed: int, model: nn.Module, n: int = 8, dtype=torch.float32):
    """Images and the model's own labels for them (so the attack has something to do)."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.rand((n, 1, 8, 8), generator=generator).to(dtype)
    return x, predict(model, x)
