"""General tensor helpers shared by the attacks, the evaluator and the defences (a bottom layer: it imports
nothing of advex above :mod:`advex.device` and :mod:`advex.modes`)."""
from __future__ import annotations

import torch
from torch import nn

from .device import device_of
from .modes import eval_mode

__all__ = ["attack_succeeded", "l2_norms", "logit_margins", "num_classes_of", "per_example", "signed_labels"]


def per_example(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Reshape one value per example so it broadcasts against a batch shaped like ``like``."""
    return values.view(-1, *([1] * (like.dim() - 1)))


def l2_norms(t: torch.Tensor) -> torch.Tensor:
    """‖t_i‖₂ of every example of a batch."""
    return t.flatten(1).norm(dim=1)


def attack_succeeded(logits: torch.Tensor, y: torch.Tensor, targeted: bool) -> torch.Tensor:
    """Per example: predicted class ≠ y (untargeted) or = y (targeted, ``y`` holds the targets)."""
    predicted = logits.argmax(1)
    return predicted == y if targeted else predicted != y


def logit_margins(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Logit of class y minus the largest other logit, per example (< 0: the model does not predict y)."""
    true = logits.gather(1, y[:, None])[:, 0]
    others = logits.scatter(1, y[:, None], -torch.inf)
    return true - others.max(1).values


def signed_labels(y: torch.Tensor) -> torch.Tensor:
    """Class indices {0, 1} -> the paper's labels {−1, +1} (as floats)."""
    return 2.0 * y.float() - 1.0


def num_classes_of(model: nn.Module, x: torch.Tensor) -> int:
    """Number of outputs of ``model`` (one forward pass on one example, in eval mode, no gradient)."""
    with eval_mode(model), torch.no_grad():
        return model(x[:1].to(device_of(model))).shape[1]
