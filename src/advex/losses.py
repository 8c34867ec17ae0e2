"""Training objectives ``loss_fn(model, x, y) -> scalar`` for :func:`advex.train_classifier`.

Each is a plain function of the model and a batch; objectives with a setting (ε, λ) take it as a
keyword and are passed to the trainer with ``functools.partial``, so a cached model's key records it.

A bottom-layer module: it imports only :mod:`advex.tensors` and :mod:`advex.validation` (the models import it
for their default objectives).  The logistic losses need only a model with ``logit`` and ``l1_norm``, such as
:class:`advex.models.LogisticRegression`.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn
from torch.nn import functional as F

from .tensors import signed_labels
from .validation import check_eps, check_non_negative

if TYPE_CHECKING:   # for the annotations only: the models sit above the losses
    from .models.linear import LogisticRegression

__all__ = ["adversarial_logistic_loss", "cross_entropy", "l1_logistic_loss", "l2_penalised_cross_entropy",
           "logistic_loss", "sigmoid_loss"]


def cross_entropy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of the model's logits (the default objective)."""
    return F.cross_entropy(model(x), y)


def l2_penalised_cross_entropy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, l2: float) -> torch.Tensor:
    """Cross-entropy + (λ/2)·Σ w² over every weight matrix and kernel (biases are not penalised)."""
    l2 = check_non_negative(l2, "l2")
    penalty = sum(p.square().sum() for name, p in model.named_parameters() if not name.endswith("bias"))
    return F.cross_entropy(model(x), y) + l2 / 2 * penalty


def sigmoid_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Independent binary cross-entropy per class (one-vs-rest sigmoid outputs, Goodfellow et al. 2015, App. A)."""
    logits = model(x)
    return F.binary_cross_entropy_with_logits(logits, F.one_hot(y, logits.shape[1]).float(), reduction="sum") / len(x)


def logistic_loss(model: LogisticRegression, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """E ζ(−y(wᵀx + b)), the standard logistic loss (Goodfellow et al. 2015, §5)."""
    return F.softplus(-signed_labels(y) * model.logit(x)).mean()


def adversarial_logistic_loss(model: LogisticRegression, x: torch.Tensor, y: torch.Tensor, *, eps: float) -> torch.Tensor:
    """E ζ(ε‖w‖₁ − y(wᵀx + b)): the logistic loss at the worst point of the ε max-norm ball.

    Goodfellow et al. (2015, §5) print it as E ζ(y(ε‖w‖₁ − wᵀx − b)); for
    y = +1 the two agree, for y = −1 the printed form would *help* the model, because
    the adversary lowers the margin y(wᵀx + b) by ε‖w‖₁ whatever the label.
    Without the [0, 1] box this equals :func:`logistic_loss` at the FGSM point exactly.
    """
    eps = check_eps(eps)
    margin = signed_labels(y) * model.logit(x)
    return F.softplus(eps * model.l1_norm() - margin).mean()


def l1_logistic_loss(model: LogisticRegression, x: torch.Tensor, y: torch.Tensor, *, weight_decay: float) -> torch.Tensor:
    """E ζ(−y(wᵀx + b)) + λ‖w‖₁: L1 weight decay, which Goodfellow et al. (2015, §5) contrast with adversarial training."""
    weight_decay = check_non_negative(weight_decay, "weight_decay")
    return logistic_loss(model, x, y) + weight_decay * model.l1_norm()
