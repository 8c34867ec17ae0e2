"""Sparse (L0) attacks: change as few pixels as possible, by exhaustive search.

Same conventions as :mod:`advex.attacks`: images in [0, 1], eval mode during the attack and the
model's mode restored afterwards, inputs never modified, no gradients left on the parameters, and
results inside the box.  A *pixel* is one spatial position of an ``(N, C, H, W)`` image: setting it
to a value sets all C channels there (for MNIST, C = 1).

Su, Vargas & Sakurai (2019) change one pixel of 32×32 CIFAR-10 images and search for its position
and colour with differential evolution, a black-box method that evaluates a few hundred candidates.
Here the search is exhaustive over a small set of values instead: every position × every value is
tried, which on a 28×28 digit with values {0, 1} is at most 1,568 forward passes per image.  Within
that set of values it cannot miss a single-pixel adversarial example, so it is a *stronger* attacker
than differential evolution (which may miss one) — but weaker than one free to choose any value.
"""
from __future__ import annotations

import torch
from torch import nn

from .core import attack, attack_succeeded, logit_margins
from ..validation import check_positive_int

__all__ = ["greedy_pixels", "one_pixel_exhaustive"]


def _check_values(values) -> torch.Tensor:
    try:
        values = torch.as_tensor([float(v) for v in values], dtype=torch.float64)
    except (TypeError, ValueError):
        raise ValueError(f"values must be a non-empty sequence of numbers in [0, 1], got {values!r}") from None
    if values.numel() == 0 or not torch.isfinite(values).all() or values.min() < 0 or values.max() > 1:
        raise ValueError(f"values must be a non-empty sequence of numbers in [0, 1], got {values.tolist()}")
    return values.unique()


def _check_inputs(x, batch_size) -> int:
    """An L0 attack has no ε; :func:`.core.attack` checked the box and labels, this the layout and batch size."""
    if x.dim() != 4:
        raise ValueError(f"x must be a batch of images (N, C, H, W), got shape {tuple(x.shape)}")
    return check_positive_int(batch_size, "batch_size")


def _best_one_pixel(model, x, y, values, batch_size):
    """One exhaustive step on a batch already on the model's device (model in eval mode, no grad)."""
    n, c, h, w = x.shape
    flat = x.reshape(n, c, h * w)
    values = values.to(device=x.device, dtype=x.dtype)
    # candidates (image, position, value) that actually change the image
    changes = (flat[:, :, :, None] != values).any(1)                      # (N, HW, V)
    image, position, value = changes.nonzero(as_tuple=True)
    margins = torch.empty(len(image), device=x.device, dtype=x.dtype)
    for start in range(0, len(image), batch_size):
        i, p, v = (t[start:start + batch_size] for t in (image, position, value))
        candidates = flat[i].clone()
        candidates[torch.arange(len(i), device=x.device), :, p] = values[v][:, None]
        margins[start:start + batch_size] = logit_margins(model(candidates.view(-1, c, h, w)), y[i])
    # the unchanged image is a candidate too, so the result is never worse than x itself
    best_margin = logit_margins(model(x), y)
    best_margin = best_margin.scatter_reduce(0, image, margins, "amin")
    is_best = margins == best_margin[image]
    first = torch.full((n,), len(image), device=x.device).scatter_reduce(
        0, image[is_best], torch.arange(len(image), device=x.device)[is_best], "amin")
    x_adv = flat.clone()
    chosen = first < len(image)
    k = first[chosen]
    x_adv[chosen.nonzero()[:, 0], :, position[k]] = values[value[k]][:, None]
    return x_adv.view_as(x)


@attack(eps=False)
def one_pixel_exhaustive(model: nn.Module, x: torch.Tensor, y: torch.Tensor, values=(0.0, 1.0), *,
                         batch_size: int = 1024) -> torch.Tensor:
    """The best single-pixel change of every image, found by trying them all.

    For each image, every pixel position is set to each of ``values`` (all channels at once), the
    candidates are run through the model in batches of ``batch_size``, and the candidate with the
    lowest true-class margin (logit of ``y`` minus the largest other logit) is kept; the unchanged
    image also counts as a candidate.  Exhaustive within ``values``, this is a stronger attacker than
    the differential evolution of Su, Vargas & Sakurai (2019; bib key su2019onepixel), which samples
    the same space (plus arbitrary colours) and may miss a successful pixel.

    Returns the adversarial images; which of them fool the model is :func:`advex.evaluate.correct`'s
    business, and :func:`advex.evaluate.pixels_to_fool` counts the pixels.
    """
    batch_size = _check_inputs(x, batch_size)
    values = _check_values(values)
    return _best_one_pixel(model, x, y, values, batch_size)


@attack(eps=False)
def greedy_pixels(model: nn.Module, x: torch.Tensor, y: torch.Tensor, max_pixels: int = 3, values=(0.0, 1.0), *,
                  batch_size: int = 1024) -> torch.Tensor:
    """Greedy multi-pixel attack: repeat the exhaustive one-pixel step on the images not yet fooled.

    Step t applies :func:`one_pixel_exhaustive`'s search to the current image of every example the
    model still classifies correctly, so after ``max_pixels`` steps each result differs from ``x`` in
    at most ``max_pixels`` pixels.  Greedy choice (lowest margin at each step) is not an optimal L0
    search, so the counts of :func:`advex.evaluate.pixels_to_fool` on the result are upper bounds on
    the fewest pixels needed (within ``values``).  An image stops changing as soon as it fools the model.

    Returns the adversarial images.
    """
    batch_size = _check_inputs(x, batch_size)
    max_pixels = check_positive_int(max_pixels, "max_pixels")
    values = _check_values(values)
    x_adv = x.clone()
    active = (~attack_succeeded(model(x), y, targeted=False)).nonzero()[:, 0]
    for _ in range(max_pixels):
        if len(active) == 0:
            break
        x_adv[active] = _best_one_pixel(model, x_adv[active], y[active], values, batch_size)
        active = active[~attack_succeeded(model(x_adv[active]), y[active], targeted=False)]
    return x_adv
