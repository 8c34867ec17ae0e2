"""Linear templates: a linear classifier's weights are images, and how smooth they are.

A linear classifier scores class c with a dot product s_c(x) = w_cᵀx + b_c, so its weight vector
w_c, reshaped to the input's shape, is a *template*: the image the class is looking for (Karpathy
2015, "Breaking Linear Classifiers on ImageNet").  The attacks that add templates are in
:mod:`advex.attacks.templates`.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

__all__ = ["linear_layer_of", "linear_templates", "neighbour_correlation"]


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


