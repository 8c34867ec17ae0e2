"""Ensembles of classifiers, the (weak) defence of Goodfellow, Shlens & Szegedy (2015, §9).

The ensemble predicts with the mean of its members' softmax probabilities,
p(y | x) = (1/K) Σₖ softmax(fₖ(x))_y.  Goodfellow et al. found that it barely resists FGSM:
an ensemble of 12 maxout networks still erred on 91.1 % of the adversarial examples crafted against
the ensemble as a whole, and on 87.9 % of those crafted against only one of its members.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["Ensemble"]


class Ensemble(nn.Module):
    """log((1/K) Σₖ softmax(fₖ(x))): the log of the members' mean probability, as logits.

    Its argmax is the vote by averaged probability, and its cross-entropy is the loss of the
    ensemble as a whole, so every attack of :mod:`advex.attacks` attacks the whole ensemble.
    :meth:`member` gives one member back, to craft examples against it alone (the transfer setting).
    """

    def __init__(self, members: Sequence[nn.Module]):
        super().__init__()
        if not isinstance(members, (list, tuple, nn.ModuleList)):   # a lone model is a mistake, not an ensemble of one
            raise ValueError(f"members must be a non-empty list of nn.Module, got {type(members).__name__}")
        members = list(members)
        if not members or not all(isinstance(m, nn.Module) for m in members):
            kinds = sorted({type(m).__name__ for m in members})
            raise ValueError(f"members must be a non-empty list of nn.Module, got {len(members)} items of {kinds}")
        self.members = nn.ModuleList(members)

    def __len__(self) -> int:
        return len(self.members)

    def member(self, i: int) -> nn.Module:
        """The i-th member (0-based)."""
        if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < len(self.members):
            raise ValueError(f"i must be an integer in [0, {len(self.members) - 1}], got {i!r}")
        return self.members[i]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # log-sum-exp of the members' log-probabilities: the mean probability without underflow
        log_probabilities = torch.stack([F.log_softmax(member(x), dim=1) for member in self.members])
        return torch.logsumexp(log_probabilities, dim=0) - math.log(len(self.members))
