"""Linear classifiers of images: logistic regression (two classes) and softmax regression.

Logistic regression (Goodfellow, Shlens & Szegedy 2015, §5) models
P(y = 1 | x) = σ(wᵀx + b) with labels y ∈ {−1, +1}; training minimises
E ζ(−y(wᵀx + b)) with the softplus ζ(z) = log(1 + eᶻ).  The gradient of that
loss with respect to x points along −y·w, so the FGSM perturbation is
η = −ε·y·sign(w) and it lowers the margin y(wᵀx + b) by exactly wᵀ(ε sign w) = ε‖w‖₁
(unless clipping to [0, 1] intervenes).  Training against that worst case has the
closed form E ζ(ε‖w‖₁ − y(wᵀx + b)).

Models take N×1×H×W images in [0, 1] like every model in the book, so the attacks,
:mod:`advex.evaluate` and :func:`advex.train_classifier` work on them unchanged.  The losses are
in :mod:`advex.losses`, the closed forms of the attack in :mod:`advex.theory.linear`.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ..validation import check_positive_int

__all__ = ["LogisticRegression", "SoftmaxRegression"]


class LogisticRegression(nn.Module):
    """P(y = 1 | x) = σ(wᵀx + b) on H×W images (Goodfellow et al. 2015, §5).

    ``forward`` returns the two logits (0, wᵀx + b): their softmax is
    (1 − σ(z), σ(z)) and their cross-entropy is the softplus loss ζ(−y z), so
    class 1 is the "positive" class and class 0 the "negative" one.  Weights
    start at zero: the problem is convex, and a zero start keeps the weights
    inside the span of the training images (random initial weights in the
    directions no image uses would never be trained away, yet FGSM would exploit them).
    """

    def __init__(self, height: int = 28, width: int = 28):
        super().__init__()
        self.shape = (check_positive_int(height, "height"), check_positive_int(width, "width"))
        self.linear = nn.Linear(height * width, 1)
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def logit(self, x: torch.Tensor) -> torch.Tensor:
        """z = wᵀx + b, one number per image."""
        return self.linear(x.flatten(1)).squeeze(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.logit(x)
        return torch.stack([torch.zeros_like(z), z], dim=1)

    def weight_image(self) -> torch.Tensor:
        """w as an H×W image (detached, on the CPU)."""
        return self.linear.weight.detach().cpu().reshape(self.shape)

    def l1_norm(self) -> torch.Tensor:
        """‖w‖₁, the most an ε = 1 max-norm perturbation can move the logit."""
        return self.linear.weight.abs().sum()


class SoftmaxRegression(nn.Module):
    """Multinomial logistic regression: logits Wx + b on flattened H×W images."""

    def __init__(self, height: int = 28, width: int = 28, num_classes: int = 10):
        super().__init__()
        self.shape = (check_positive_int(height, "height"), check_positive_int(width, "width"))
        self.linear = nn.Linear(height * width, check_positive_int(num_classes, "num_classes"))
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.flatten(1))

    def weight_images(self) -> torch.Tensor:
        """The class templates as a (classes, H, W) tensor (detached, on the CPU)."""
        return self.linear.weight.detach().cpu().reshape(-1, *self.shape)
