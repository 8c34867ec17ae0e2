"""Closed forms for logistic regression under a max-norm attack (Goodfellow, Shlens & Szegedy 2015, §5).

With labels y ∈ {−1, +1} and margin m = y(wᵀx + b), the loss ζ(−m) has input gradient along −y·w,
so the FGSM perturbation is η = −ε·y·sign(w) and it lowers the margin by exactly ε‖w‖₁ (unless
clipping to [0, 1] intervenes).  These functions compute that algebra directly; the attack itself
is :func:`advex.attacks.fgsm`.
"""
from __future__ import annotations

import torch

from ..device import device_of
from ..models.linear import LogisticRegression
from ..tensors import signed_labels
from ..validation import check_eps

__all__ = ["adversarial_penalty_weight", "margin_drop", "margins", "signed_labels", "worst_case_perturbation"]


def worst_case_perturbation(model: LogisticRegression, y: torch.Tensor, eps: float) -> torch.Tensor:
    """η = −ε·y·sign(w), the exact maximiser of the loss over ‖η‖∞ ≤ ε (no box), as N×1×H×W."""
    eps = check_eps(eps)
    direction = model.linear.weight.detach().sign().reshape(1, 1, *model.shape)
    return -eps * signed_labels(y).to(direction.device).reshape(-1, 1, 1, 1) * direction


def margins(model: LogisticRegression, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The margin m = y(wᵀx + b) of every image: positive exactly when it is classified correctly."""
    device = device_of(model)
    with torch.no_grad():
        return signed_labels(y).to(device) * model.logit(x.to(device))


def margin_drop(model: LogisticRegression, x: torch.Tensor, x_adv: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """How much the margin y(wᵀx + b) fell from ``x`` to ``x_adv``, per image (ε‖w‖₁ at most)."""
    device = device_of(model)
    with torch.no_grad():
        x, x_adv, s = x.to(device), x_adv.to(device), signed_labels(y).to(device)
        return s * (model.logit(x) - model.logit(x_adv))


def adversarial_penalty_weight(model: LogisticRegression, x: torch.Tensor, y: torch.Tensor, eps: float) -> torch.Tensor:
    """∂ζ(ε‖w‖₁ − m)/∂‖w‖₁ ÷ ε = σ(ε‖w‖₁ − m) per example, m the margin y(wᵀx + b).

    How strongly each example pushes ‖w‖₁ down under adversarial training: near 1
    for mistakes and near 0 for confidently correct examples (the penalty switches
    off).  L1 weight decay pushes with the same weight λ on every example.
    """
    eps = check_eps(eps)
    device = device_of(model)
    with torch.no_grad():
        margin = signed_labels(y).to(device) * model.logit(x.to(device))
        return torch.sigmoid(eps * model.l1_norm() - margin)
