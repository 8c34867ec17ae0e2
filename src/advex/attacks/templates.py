"""Template attacks: add the template of a class of a linear classifier, and the input gradients of a deep one.

A linear classifier scores class c with a dot product s_c(x) = w_cᵀx + b_c, so
its weight vector w_c, reshaped to the input's shape, is a *template*: the
image the class is looking for (Karpathy 2015, "Breaking Linear Classifiers
on ImageNet").  Because ∇ₓ s_c = w_c, adding a scaled template of class t to
any image raises t's score as fast as any change of the same Euclidean size
can.  A deep network is not linear, but near a given image it is well
approximated by its first-order Taylor expansion, whose template is the input
gradient ∇ₓ s_c(x) (the "local template").

Everything here works on images in [0, 1] (pixel units); attacks follow the
conventions of :mod:`advex.attacks` (eval mode, inputs never mutated, result
clipped to [0, 1] and inside the α-ball, no gradients left on parameters).
"""
from __future__ import annotations

import torch
from torch import nn

from .core import attack, input_gradient
from ..validation import check_images, check_non_negative, check_positive_int

__all__ = ["add_template", "class_score", "class_scores_gradient", "follow_local_template", "local_templates", "unit_max"]


# --------------------------------------------------------------------------- template addition

def unit_max(direction: torch.Tensor) -> torch.Tensor:
    """Scale each example's direction so that its largest |entry| is 1 (so α is in pixel units)."""
    peak = direction.flatten(1).abs().amax(1).clamp_min(torch.finfo(direction.dtype).tiny)
    return direction / peak.view(-1, *([1] * (direction.dim() - 1)))


def add_template(x: torch.Tensor, template: torch.Tensor, alpha: float) -> torch.Tensor:
    """Template-addition attack (Karpathy 2015): x̃ = clip₍₀,₁₎(x + α · w_t / ‖w_t‖∞).

    ``template`` is one template (shape of one image) or one per example. It is
    scaled so that its largest entry is 1: α is then the largest change of any
    pixel, ‖x̃ − x‖∞ ≤ α, comparable with FGSM's ε.
    """
    alpha = check_non_negative(alpha, "alpha")
    check_images(x, "x")
    if x.dim() < 2:
        raise ValueError(f"x must be a batch (N, ...), got shape {tuple(x.shape)}")
    template = template.detach().to(x.device, x.dtype)
    if template.shape == x.shape[1:]:
        template = template.unsqueeze(0)
    if template.shape[1:] != x.shape[1:] or template.shape[0] not in (1, x.shape[0]):
        raise ValueError(f"template must have the shape of one image {tuple(x.shape[1:])} or of the batch {tuple(x.shape)}, got {tuple(template.shape)}")
    return (x + alpha * unit_max(template)).clamp(0.0, 1.0)


# --------------------------------------------------------------------------- local templates

def class_score(logits: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """s_c(x): the raw score (logit) of each example's class c."""
    return logits.gather(1, classes.view(-1, 1))[:, 0]


def class_scores_gradient(model: nn.Module, x: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """∇ₓ s_c(x) for each example's class c (raw scores, i.e. logits); the model's mode is left alone."""
    return input_gradient(model, x, classes, loss_fn=class_score)


@attack(eps=False, labels="classes", one_label_for_all=True)
def local_templates(model: nn.Module, x: torch.Tensor, classes) -> torch.Tensor:
    """Local template of class c at image x: ∇ₓ s_c(x), the weights of the first-order Taylor model.

    s_c(x + η) ≈ s_c(x) + ∇ₓ s_c(x)ᵀη, so near x the network scores class c
    like a linear classifier whose template is this gradient (Karpathy 2015;
    Goodfellow, Shlens & Szegedy 2015, §3).  For a linear model it equals w_c
    everywhere.  ``classes`` is one class index for all or one per example;
    the result has the shape of ``x`` and comes back on its device.
    """
    return class_scores_gradient(model, x, classes)


@attack(eps=False, labels="target", one_label_for_all=True)
def follow_local_template(model: nn.Module, x: torch.Tensor, target, alpha: float, steps: int = 1) -> torch.Tensor:
    """Add the target class's local template, re-estimated ``steps`` times (Karpathy 2015).

    x₀ = x, x_{k+1} = clip₍₀,₁₎(x_k + (α/steps) · g_k / ‖g_k‖∞) with g_k = ∇ₓ s_t(x_k).
    With ``steps=1`` this is :func:`add_template` with the local template; for a
    linear model every step adds the same w_t.  Each step changes any pixel by
    at most α/steps, so ‖x̃ − x‖∞ ≤ α.
    """
    alpha = check_non_negative(alpha, "alpha")
    steps = check_positive_int(steps, "steps")
    adversarial = x.clone()
    for _ in range(steps):
        gradient = class_scores_gradient(model, adversarial, target)
        adversarial = (adversarial + (alpha / steps) * unit_max(gradient)).clamp(0.0, 1.0)
    return adversarial.detach()


