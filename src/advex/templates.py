"""Class templates: the weights of a linear classifier, and the input gradients of a deep one.

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

import math
from typing import Callable, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from .attacks import attack_mode, attack_succeeded, check_attack_inputs, input_gradient, num_classes_of
from .train import predict
from .validation import check_eps, check_images, check_labels, check_positive_int


def _device_of(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def _as_class_tensor(classes, batch_size: int, num_classes: int, device, name: str) -> torch.Tensor:
    """An int, or one class per example, as an int64 tensor of length ``batch_size``."""
    if isinstance(classes, int) and not isinstance(classes, bool):
        classes = torch.full((batch_size,), classes, dtype=torch.int64)
    check_labels(classes, num_classes, batch_size=batch_size, name=name)
    return classes.to(device=device, dtype=torch.int64)


# --------------------------------------------------------------------------- linear templates

def linear_layer_of(model: nn.Module) -> nn.Linear:
    """The single ``nn.Linear`` of a linear classifier (e.g. ``Sequential(Flatten(), Linear(784, 10))``)."""
    layers = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if len(layers) != 1:
        raise ValueError(f"model must contain exactly one nn.Linear layer (a linear classifier), found {len(layers)}")
    return layers[0]


def linear_templates(model: nn.Module, image_shape: Sequence[int] = (1, 28, 28)) -> torch.Tensor:
    """The rows w_c of a linear classifier's weight matrix, reshaped to images: (classes, *image_shape).

    Karpathy (2015): "the weights can be thought of as a template"; the score
    of class c is the dot product of its template with the image.
    """
    weight = linear_layer_of(model).weight.detach()
    if math.prod(image_shape) != weight.shape[1]:
        raise ValueError(f"image_shape {tuple(image_shape)} has {math.prod(image_shape)} pixels but the layer takes {weight.shape[1]} inputs")
    return weight.reshape(weight.shape[0], *image_shape).cpu().clone()


def neighbour_correlation(templates: torch.Tensor) -> torch.Tensor:
    """Smoothness of each template: the correlation between horizontally and vertically adjacent pixels.

    ``templates`` is (N, H, W) or (N, C, H, W); returns N values in [-1, 1]:
    close to 1 for smooth, blob-like templates, about 0 for white noise.
    Pearson correlation is invariant to the scale of the weights, so a model
    is not called "smooth" merely because regularisation made its weights small.
    """
    if not isinstance(templates, torch.Tensor) or templates.dim() not in (3, 4):
        raise ValueError("templates must be a tensor of shape (N, H, W) or (N, C, H, W)")
    if templates.shape[-1] < 2 or templates.shape[-2] < 2:
        raise ValueError(f"templates must be at least 2×2 images, got shape {tuple(templates.shape)}")
    t = templates.detach().double().reshape(templates.shape[0], -1, *templates.shape[-2:])
    # Pairs (pixel, right neighbour) and (pixel, lower neighbour), pooled over channels.
    left = torch.cat([t[..., :, :-1].flatten(1), t[..., :-1, :].flatten(1)], dim=1)
    right = torch.cat([t[..., :, 1:].flatten(1), t[..., 1:, :].flatten(1)], dim=1)
    left = left - left.mean(1, keepdim=True)
    right = right - right.mean(1, keepdim=True)
    denominator = (left.square().sum(1) * right.square().sum(1)).sqrt()
    if (denominator == 0).any():
        raise ValueError("templates must not be constant images (their neighbour correlation is undefined)")
    return ((left * right).sum(1) / denominator).float()


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
    alpha = check_eps(alpha, "alpha")
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

def class_scores_gradient(model: nn.Module, x: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """∇ₓ s_c(x) for each example's class c (raw scores, i.e. logits); the model's mode is left alone."""
    x = x.detach().clone().requires_grad_(True)
    scores = model(x).gather(1, classes.view(-1, 1)).sum()
    (grad,) = torch.autograd.grad(scores, x)
    return grad


def local_templates(model: nn.Module, x: torch.Tensor, classes) -> torch.Tensor:
    """Local template of class c at image x: ∇ₓ s_c(x), the weights of the first-order Taylor model.

    s_c(x + η) ≈ s_c(x) + ∇ₓ s_c(x)ᵀη, so near x the network scores class c
    like a linear classifier whose template is this gradient (Karpathy 2015;
    Goodfellow, Shlens & Szegedy 2015, §3).  For a linear model it equals w_c
    everywhere.  ``classes`` is one class index for all or one per example;
    the result has the shape of ``x`` and lies on the model's device.
    """
    check_images(x, "x")
    if x.dim() < 2:
        raise ValueError(f"x must be a batch (N, ...), got shape {tuple(x.shape)}")
    device = _device_of(model)
    x = x.to(device)
    classes = _as_class_tensor(classes, x.shape[0], num_classes_of(model, x), device, "classes")
    with attack_mode(model):
        return class_scores_gradient(model, x, classes)


def follow_local_template(model: nn.Module, x: torch.Tensor, target, alpha: float, steps: int = 1) -> torch.Tensor:
    """Add the target class's local template, re-estimated ``steps`` times (Karpathy 2015).

    x₀ = x, x_{k+1} = clip₍₀,₁₎(x_k + (α/steps) · g_k / ‖g_k‖∞) with g_k = ∇ₓ s_t(x_k).
    With ``steps=1`` this is :func:`add_template` with the local template; for a
    linear model every step adds the same w_t.  Each step changes any pixel by
    at most α/steps, so ‖x̃ − x‖∞ ≤ α.
    """
    alpha = check_eps(alpha, "alpha")
    steps = check_positive_int(steps, "steps")
    check_images(x, "x")
    device = _device_of(model)
    x = x.to(device)
    target = _as_class_tensor(target, x.shape[0], num_classes_of(model, x), device, "target")
    adversarial = x.detach().clone()
    with attack_mode(model):
        for _ in range(steps):
            gradient = class_scores_gradient(model, adversarial, target)
            adversarial = (adversarial + (alpha / steps) * unit_max(gradient)).clamp(0.0, 1.0)
    return adversarial.detach()


def fgsm_direction(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, targeted: bool = False) -> torch.Tensor:
    """sign(∇ₓ J(θ, x, y)) (Goodfellow, Shlens & Szegedy 2015, §4): FGSM at ε is clip(x + ε · this).

    It does not depend on ε, so one gradient serves a whole sweep over ε.
    With ``targeted=True``, ``y`` holds target classes and the sign descends their loss.
    """
    check_attack_inputs(model, x, y, 0.0)
    device = _device_of(model)
    with attack_mode(model):
        return input_gradient(model, x.to(device), y.to(device), targeted).sign()


# --------------------------------------------------------------------------- how large must a perturbation be?

@torch.no_grad()
def minimal_flip_size(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    direction: torch.Tensor,
    sizes: Sequence[float],
    *,
    target: torch.Tensor | None = None,
    batch_size: int = 2000,
) -> torch.Tensor:
    """Smallest size on the grid ``sizes`` at which clip₍₀,₁₎(x + size · direction) is misclassified.

    Misclassified means: predicted class ≠ ``y`` (untargeted), or = ``target``
    when given.  ``direction`` has the shape of ``x`` (e.g. :func:`fgsm_direction`
    or unit-max templates).  Returns one value per example, ``inf`` where no
    size on the grid succeeds; the resolution is the grid's spacing.
    """
    check_images(x, "x")
    sizes = [check_eps(s, "sizes") for s in sizes]
    if not sizes or any(b <= a for a, b in zip(sizes, sizes[1:])):
        raise ValueError("sizes must be a non-empty, strictly increasing sequence of numbers >= 0")
    if direction.shape != x.shape:
        raise ValueError(f"direction must have the shape of x {tuple(x.shape)}, got {tuple(direction.shape)}")
    num_classes = num_classes_of(model, x.to(_device_of(model)))
    check_labels(y, num_classes, batch_size=x.shape[0], name="y")
    if target is not None:
        check_labels(target, num_classes, batch_size=x.shape[0], name="target")
    result = torch.full((x.shape[0],), math.inf)
    for size in sizes:
        pending = torch.isinf(result).nonzero().flatten()
        if len(pending) == 0:
            break
        moved = (x[pending] + size * direction[pending].to(x.device)).clamp(0.0, 1.0)
        goal = target if target is not None else y
        success = attack_succeeded(predict(model, moved, batch_size).cpu(), goal[pending].cpu(), targeted=target is not None)
        result[pending[success]] = size
    return result


def median_flip_size(sizes: torch.Tensor) -> float:
    """Median of :func:`minimal_flip_size` results (``inf`` counts as larger than every size)."""
    return float(sizes.double().median()) if len(sizes) else math.nan


# --------------------------------------------------------------------------- training sanity

@torch.no_grad()
def mean_loss(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 2000) -> float:
    """Mean cross-entropy of ``model`` on a data set (e.g. at initialisation: expect ln(#classes))."""
    check_images(images, "images")
    device = _device_of(model)
    was_training = model.training
    model.eval()
    try:
        total = sum(
            F.cross_entropy(model(images[i:i + batch_size].to(device)), labels[i:i + batch_size].to(device), reduction="sum").item()
            for i in range(0, len(images), batch_size)
        )
    finally:
        model.train(was_training)
    return total / len(images)


def sgd_loss_curve(
    build: Callable[[], nn.Module],
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    lr: float,
    steps: int,
    batch_size: int = 128,
    seed: int = 0,
) -> list[float]:
    """Mini-batch loss at every step of plain SGD (no momentum) from ``build()``'s initialisation.

    The first entry is the loss before any update.  A loss that starts far
    above ln(#classes) flags a bad initialisation; one that grows or becomes
    ``nan`` flags a learning rate that is too large (Karpathy 2015's recipe).
    """
    check_images(images, "images")
    steps = check_positive_int(steps, "steps")
    batch_size = check_positive_int(batch_size, "batch_size")
    if not lr > 0:
        raise ValueError(f"lr must be > 0, got {lr!r}")
    torch.manual_seed(seed)
    model = build()
    device = _device_of(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    losses = []
    for step in range(steps + 1):
        index = torch.randint(len(images), (batch_size,), generator=generator)
        loss = F.cross_entropy(model(images[index].to(device)), labels[index].to(device))
        losses.append(loss.item())
        if step == steps:
            break
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return losses
