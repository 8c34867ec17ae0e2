"""Counting what a black-box attacker pays for: queries to the model.

A black-box attack is judged by how many times it asks the model, so the book measures queries rather
than trusting an attack's own bookkeeping.  :class:`QueryCounter` wraps any classifier and counts the
examples it is asked about (one image in a batch of 100 is one query; a batch of 100 is 100 queries) and
the forward calls (batches).  The wrapper is an ``nn.Module`` with the wrapped model as its only child, so
attacks treat it like the model itself: eval mode, frozen parameters and devices all pass through.

:func:`labels_only` and :func:`scores_only` restrict what the attacker sees, for the decision-based and
score-based settings: the first returns one-hot "logits" (the predicted label and nothing else), the
second returns probabilities (what a prediction API returns).
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ..validation import check_model

__all__ = ["LabelsOnly", "QueryCounter", "ScoresOnly"]


class QueryCounter(nn.Module):
    """``model`` with a meter: ``queries`` counts examples passed forward, ``calls`` counts forward calls.

    ``reset()`` sets both to zero.  Example::

        counted = QueryCounter(model)
        x_adv = square_attack(counted, x, y, eps=0.1, queries=500)
        assert counted.queries <= 500 * len(x)
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = check_model(model)
        self.queries = 0
        self.calls = 0

    def reset(self) -> None:
        self.queries = 0
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.queries += int(x.shape[0])
        self.calls += 1
        return self.model(x)


class LabelsOnly(nn.Module):
    """The decision-based setting: the model answers with its top-1 label only, as a one-hot vector.

    An attack that reads these outputs can learn the predicted class and nothing more (no confidence,
    no gradient: the output is piecewise constant, so its gradient is zero almost everywhere).
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = check_model(model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.model(x)
        return F.one_hot(logits.argmax(1), logits.shape[1]).to(logits.dtype)


class ScoresOnly(nn.Module):
    """The score-based setting: the model answers with its class probabilities (softmax), detached.

    Detaching makes the gradient unavailable, as behind a prediction API: an attack that tries to
    backpropagate through it gets an error rather than a silent white-box advantage.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = check_model(model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x).softmax(1).detach()
