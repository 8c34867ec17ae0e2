"""The shallow RBF network of Goodfellow, Shlens & Szegedy (2015, §7): one radial basis unit per class.

p(y = c | x) = exp(−Σⱼ β_cj (xⱼ − w_cj)²), with a learned centre w_c and learned positive precisions β_c
for every class.  (The paper prints the exponent without its minus sign; with it, p ≤ 1 and p = 1
exactly at the centre.)  A unit answers only near its centre, so the model cannot be confident
far from the data: Goodfellow et al. report that FGSM at ε = .25 fools it on 55.4 % of MNIST test images,
but with a mean confidence of only 1.2 % on those mistakes.  Its linear cousins are confident
everywhere along a line; the RBF unit's response is not linear in x, which is the point of §7.

The outputs are *independent*: each p(y = c | x) is a class's own probability, not a softmax share,
so the probabilities need not sum to one and may all be tiny.  ``forward`` returns their logarithms,
log p(y = c | x) = −Σⱼ β_cj (xⱼ − w_cj)², as the "logits": argmax, the attacks and
:mod:`advex.evaluate` work on them unchanged; :func:`rbf_confidence` turns them back into the
per-class probabilities and :func:`rbf_loss` is the matching one-vs-rest training objective.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from ..validation import check_eps, check_labels, check_positive_int

__all__ = ["RBFNetwork", "class_means", "rbf_confidence", "rbf_loss"]


class RBFNetwork(nn.Module):
    """log p(y = c | x) = −Σⱼ β_cj (xⱼ − w_cj)² on flattened inputs (Goodfellow et al. 2015, §7).

    in_features: the number of values of one input (784 for N×1×28×28 MNIST batches; any N×... shape
                 whose trailing dimensions hold that many values is flattened).
    centres:     initial centres w, shape (num_classes, in_features) or (num_classes, ...) with that
                 many values per class, e.g. :func:`class_means` of the training set; default
                 0.5 plus small uniform noise (every centre mid-grey, so no class starts favoured).
    precision:   initial β, the same for every class and input (default 1 / in_features, so that
                 the log-probability starts as minus the *mean* squared distance, of order −0.1).

    β = exp(ρ) is trained through its logarithm ρ: it stays positive, and a multiplicative
    parameterisation suits a scale that may range over orders of magnitude.
    """

    def __init__(self, in_features: int = 28 * 28, num_classes: int = 10, *, centres: torch.Tensor | None = None,
                 precision: float | None = None):
        super().__init__()
        self.in_features = check_positive_int(in_features, "in_features")
        self.num_classes = check_positive_int(num_classes, "num_classes")
        precision = 1.0 / in_features if precision is None else check_eps(precision, "precision")
        if precision <= 0:
            raise ValueError(f"precision must be > 0, got {precision}")
        self.centres = nn.Parameter(self._initial_centres(centres))
        self.log_precision = nn.Parameter(torch.full((num_classes, in_features), math.log(precision)))

    def _initial_centres(self, centres: torch.Tensor | None) -> torch.Tensor:
        shape = (self.num_classes, self.in_features)
        if centres is None:
            return 0.5 + 0.02 * (torch.rand(shape) - 0.5)
        if not isinstance(centres, torch.Tensor) or not centres.is_floating_point():
            raise ValueError(f"centres must be a floating-point torch.Tensor of shape {shape}, got {centres!r}")
        if centres.shape[0] != self.num_classes or centres[0].numel() != self.in_features:
            raise ValueError(f"centres must have shape {shape} (one centre per class), got {tuple(centres.shape)}")
        return centres.detach().reshape(shape).clone().float()

    @property
    def precision(self) -> torch.Tensor:
        """β = exp(ρ) > 0, shape (num_classes, in_features)."""
        return self.log_precision.exp()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.flatten(1)
        if flat.shape[1] != self.in_features:
            raise ValueError(f"x must hold {self.in_features} values per example, got shape {tuple(x.shape)}")
        # (N, 1, D) − (1, C, D): the exact squared distances, no expansion that could round above 0
        squared = (flat[:, None, :] - self.centres[None]).square()
        return -(squared * self.precision[None]).sum(-1)


def rbf_confidence(logits: torch.Tensor) -> torch.Tensor:
    """p(y = c | x) = exp(log p) for every class: each class's own probability, in (0, 1].

    Not softmax-normalised: far from every centre all of them are small, which is how the RBF
    network says "I do not know" (Goodfellow et al. 2015, §7 report 1.2 % on its FGSM mistakes).
    """
    return logits.exp()


def _log1mexp(log_p: torch.Tensor) -> torch.Tensor:
    """log(1 − exp(l)) for l ≤ 0, accurate at both ends (Mächler 2012).

    log(−expm1(l)) near 0, where 1 − exp(l) would cancel; log1p(−exp(l)) below −log 2.
    """
    # at l = 0 (x exactly on a wrong class's centre) the loss is +∞; stop one rounding step short of it
    log_p = log_p.clamp(max=-torch.finfo(log_p.dtype).eps)
    near_zero = log_p > -math.log(2)
    return torch.where(near_zero, torch.log(-torch.expm1(log_p)), torch.log1p(-torch.exp(log_p)))


def rbf_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """−[log p_y + Σ_{c≠y} log(1 − p_c)], mean over the batch: independent (one-vs-rest) binary cross-entropy.

    The RBF outputs are separate probabilities, so each is trained as a yes/no answer: the true
    class's unit should fire (p_y → 1), every other unit should stay silent (p_c → 0).  ``model``
    returns log-probabilities, e.g. :class:`RBFNetwork`.  Signature as :mod:`advex.losses`.
    """
    log_p = model(x)
    y = check_labels(y, log_p.shape[1], batch_size=log_p.shape[0], name="y").to(log_p.device)
    is_true = torch.zeros_like(log_p, dtype=torch.bool).scatter_(1, y[:, None], True)
    per_class = torch.where(is_true, log_p, _log1mexp(log_p))
    return -per_class.sum(1).mean()


def class_means(x: torch.Tensor, y: torch.Tensor, num_classes: int = 10) -> torch.Tensor:
    """The mean input of every class, shape (num_classes, values per example): natural initial centres."""
    num_classes = check_positive_int(num_classes, "num_classes")
    y = check_labels(y, num_classes, batch_size=x.shape[0], name="y").to(x.device)
    flat = x.detach().flatten(1).float()
    counts = torch.bincount(y, minlength=num_classes)
    if (counts == 0).any():
        missing = (counts == 0).nonzero().flatten().tolist()
        raise ValueError(f"y must hold every class in [0, {num_classes - 1}] at least once; missing {missing}")
    sums = torch.zeros(num_classes, flat.shape[1], device=x.device).index_add_(0, y, flat)
    return sums / counts[:, None]
