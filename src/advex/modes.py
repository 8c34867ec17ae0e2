"""Model modes during evaluation and attacks, restored exactly afterwards.

``model.train(was_training)`` would put *every* sub-module into one mode; a model
may legitimately mix them (a frozen BatchNorm inside a model that is training).
So these contexts record the mode of each sub-module and give each its own back.
"""
from __future__ import annotations

from contextlib import ExitStack, contextmanager

import torch
from torch import nn

__all__ = ["attack_mode", "eval_mode", "frozen_parameters"]


@contextmanager
def eval_mode(model: nn.Module):
    """Every sub-module in eval mode for the duration; each gets its own mode back afterwards."""
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, training in modes:
            module.training = training


@contextmanager
def frozen_parameters(model: nn.Module):
    """``requires_grad=False`` on every parameter for the duration (so no gradient lands on them)."""
    flags = [(p, p.requires_grad) for p in model.parameters()]
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield model
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


def _has_cuda_rnn(model: nn.Module) -> bool:
    return any(isinstance(m, nn.RNNBase) and any(p.is_cuda for p in m.parameters()) for m in model.modules())


@contextmanager
def attack_mode(model: nn.Module):
    """Eval mode and frozen parameters for the duration of an attack, then restore both.

    cuDNN computes an RNN's backward pass only in training mode, so for a model with
    recurrent layers on CUDA, cuDNN is switched off inside the context (PyTorch's own
    kernels then compute the input gradient of the eval-mode RNN).
    """
    with ExitStack() as stack:
        stack.enter_context(eval_mode(model))
        stack.enter_context(frozen_parameters(model))
        if _has_cuda_rnn(model):
            stack.enter_context(torch.backends.cudnn.flags(enabled=False))
        yield model
