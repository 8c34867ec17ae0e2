"""Bram Cohen's training-set augmentations (Cohen 2019), as a training objective.

Cohen, B. (2019), *Neural Networks as we know them are fundamentally flawed. Here are some thoughts on
how to improve them* (essay, 13 September 2019).  His criterion: a small change to the image may change
the classifier's confidence by at most a constant times its size.  Two things follow that ordinary
training sets never teach:

* **far away means unsure.**  A cat too small in the picture cannot make the picture "definitely cat",
  since a tiny edit removes it; and the confidence must fall off *smoothly* with distance, because a
  cliff would put a big change of confidence between two nearly equal images.
  :func:`shrink_digits` moves a digit "far away"; :func:`shrink_confidence` is the smooth fall-off.
* **a picture full of small cats is only somewhat cat.**  "If we have an image consisting entirely of
  10% cats ... it should rate the image as a whole as 10% cat."  :func:`mosaic` tiles small digits into
  one image and labels it with the mixture, discounted for their size.

:func:`cohen_augmented_loss` puts both into a minibatch with soft labels (:func:`soft_cross_entropy`);
hand it to :func:`advex.models.trained` (with ``functools.partial`` for its settings) like the objectives
of :mod:`advex.defences.training`.  Randomness comes from torch's global generator, which
:func:`~advex.models.trained` seeds.  Cohen himself warns that networks notice editing artefacts; the
resampling here is anti-aliased so that a shrunk digit is not a speckled one, but it is still an edit.
"""
from __future__ import annotations

import math
from numbers import Real

import torch
from torch import nn
from torch.nn import functional as F

from ..validation import check_images, check_labels, check_positive_int

__all__ = ["cohen_augmented_loss", "mosaic", "shrink_confidence", "shrink_digits", "soft_cross_entropy"]


def _check_unit_interval(value, name: str, *, open_low: bool) -> float:
    """A real number in (0, 1] (``open_low``) or [0, 1]."""
    allowed = "(0, 1]" if open_low else "[0, 1]"
    if isinstance(value, torch.Tensor) and value.numel() == 1 and not value.dtype.is_complex:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, Real):
        raise ValueError(f"{name} must be a number in {allowed}, got {value!r}")
    value = float(value)
    if math.isnan(value) or value > 1 or value < 0 or (open_low and value == 0):
        raise ValueError(f"{name} must be a number in {allowed}, got {value}")
    return value


def _check_scale(scale, batch: int, device, dtype) -> torch.Tensor:
    """A scale in (0, 1], as a number or a (batch,) tensor: returned as a (batch,) tensor."""
    if isinstance(scale, torch.Tensor) and scale.dim() > 0:
        if not scale.is_floating_point():
            raise ValueError(f"scale must be a number or a floating-point (batch,) tensor in (0, 1], got dtype {scale.dtype}")
        if tuple(scale.shape) != (batch,):
            raise ValueError(f"scale must be a number or a tensor of shape ({batch},) (one per image), "
                             f"got shape {tuple(scale.shape)}")
        bad = torch.isnan(scale) | (scale <= 0) | (scale > 1)
        if bad.any():
            raise ValueError(f"scale must lie in (0, 1], got {scale[bad][0].item()}")
        return scale.detach().to(device=device, dtype=dtype)
    return torch.full((batch,), _check_unit_interval(scale, "scale", open_low=True), device=device, dtype=dtype)


def _tent_sum(a: torch.Tensor, half_width: torch.Tensor) -> torch.Tensor:
    """Σ_{n ∈ ℤ} max(0, 1 − |n − a| / L), the tent's weights on every whole-pixel sample (closed form)."""
    below = a - torch.floor(a)                    # distance to the nearest sample at or below a
    above = 1 - below
    n_below, n_above = torch.ceil(half_width - below), torch.ceil(half_width - above)   # samples inside the tent
    return (n_below - (n_below * below + n_below * (n_below - 1) / 2) / half_width
            + n_above - (n_above * above + n_above * (n_above - 1) / 2) / half_width)


def _axis_weights(size: int, scale: torch.Tensor, centre: torch.Tensor) -> torch.Tensor:
    """(B, size, size): output pixel m's weights on input pixels n, along one axis.

    Output pixel m (centre m + ½, in pixels) shows the input at p = size/2 + (m + ½ − centre) / scale:
    the digit shrunk by ``scale`` about its centre and moved to ``centre``.  The weights are the tent
    max(0, 1 − scale·|n + ½ − p|): bilinear interpolation at scale 1, widened to the output pixel spacing
    (1/scale input pixels) below it, the anti-aliased bilinear filter of PIL and ``interpolate(antialias=True)``.
    They are divided by the tent's total over *all* whole-pixel positions, those outside the image
    (black) included, so a uniform region stays uniform and the ink scales as scale per axis.
    """
    q = torch.arange(size, device=scale.device, dtype=scale.dtype) + 0.5
    p = size / 2 + (q[None] - centre[:, None]) / scale[:, None]                      # (B, size)
    weights = (1 - scale[:, None, None] * (q[None, None] - p[:, :, None]).abs()).clamp(min=0)
    return weights / _tent_sum(p - 0.5, 1 / scale[:, None])[:, :, None]


def _resample(x: torch.Tensor, scale: torch.Tensor, centre: torch.Tensor) -> torch.Tensor:
    """Each image shrunk by ``scale[i]`` and centred at ``centre[i]`` ((column, row) in pixels), black around.

    Separable: out = A_rows · image · A_colsᵀ with the :func:`_axis_weights` of each image, so every image
    may have its own scale and position in one batched product.
    """
    height, width = x.shape[-2:]
    rows = _axis_weights(height, scale, centre[:, 1])
    cols = _axis_weights(width, scale, centre[:, 0])
    out = rows[:, None] @ x @ cols.transpose(1, 2)[:, None]
    return out.clamp(0.0, 1.0)   # weights ≥ 0 summing to ≤ 1 along each axis: only rounding can leave [0, 1]


def shrink_digits(x: torch.Tensor, scale) -> torch.Tensor:
    """Each image of ``x`` (B×C×H×W in [0, 1]) shrunk by ``scale`` about its centre, on a black (0) background.

    "The digit moved far away": the image keeps its size H×W, the digit takes scale·H × scale·W of it.
    ``scale`` is a number in (0, 1] or a (B,) tensor of per-image scales.  Resampling is bilinear with
    the filter widened to the new pixel spacing (anti-aliased, as PIL and ``interpolate(antialias=True)``
    shrink images), so thin strokes do not break up or flicker with their position, the ink scales as
    scale², and everything is continuous in ``scale``; scale 1 returns the input exactly.  (Plain
    ``grid_sample`` would point-sample every 1/scale pixels and drop strokes.)
    """
    check_images(x, "x")
    if x.dim() != 4:
        raise ValueError(f"x must be B×C×H×W images, got shape {tuple(x.shape)}")
    scale = _check_scale(scale, x.shape[0], x.device, x.dtype)
    if x.shape[0] == 0:
        return x.clone()
    middle = torch.tensor([x.shape[-1] / 2, x.shape[-2] / 2], device=x.device, dtype=x.dtype)
    shrunk = _resample(x, scale, middle.expand(x.shape[0], 2))
    # at scale 1 the sampling grid is the pixel grid itself: return those images exactly, not up to rounding
    return torch.where((scale == 1)[:, None, None, None], x, shrunk)


def shrink_confidence(scale, *, full: float = 0.6, none: float = 0.2) -> torch.Tensor:
    """t(scale): the weight on the true class of a digit shrunk to ``scale``; the soft label is t·onehot + (1 − t)·uniform.

    t = 1 for scale ≥ ``full`` (near enough to be sure), t = 0 (the label is uniform over the classes: "could
    be anything") for scale ≤ ``none``, and linear in between, a continuous fall-off rather than Cohen's
    forbidden cliff.  ``scale``: a number or a tensor of numbers in (0, 1]; returns a float tensor of t of
    the same shape (a 0-dimensional one for a number).
    """
    full = _check_unit_interval(full, "full", open_low=False)
    none = _check_unit_interval(none, "none", open_low=False)
    if not none < full:
        raise ValueError(f"none must be smaller than full (confidence falls off between them), got none={none}, full={full}")
    if isinstance(scale, torch.Tensor) and scale.dim() > 0:
        values = _check_scale(scale.flatten(), scale.numel(), scale.device,
                              scale.dtype if scale.is_floating_point() else torch.float32)
        values = values.view(scale.shape)
    else:
        values = torch.tensor(_check_unit_interval(scale, "scale", open_low=True))
    return ((values - none) / (full - none)).clamp(0.0, 1.0)


def _mosaic_images(x: torch.Tensor, tiles: int, count: int, generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` tiles×tiles mosaics of images of ``x`` drawn with replacement; also which image fills each cell (count, tiles²)."""
    b, _, height, width = x.shape
    cells = torch.randint(0, b, (count, tiles * tiles), generator=generator).to(x.device)
    rows = ((torch.arange(height, device=x.device) + 0.5) * tiles / height).floor().long()   # cell row of each pixel
    cols = ((torch.arange(width, device=x.device) + 0.5) * tiles / width).floor().long()
    scale = torch.full((count,), 1.0 / tiles, device=x.device, dtype=x.dtype)
    out = torch.zeros(count, *x.shape[1:], device=x.device, dtype=x.dtype)
    for r in range(tiles):
        for c in range(tiles):
            centre = torch.tensor([(2 * c + 1) * width / (2 * tiles), (2 * r + 1) * height / (2 * tiles)],
                                  device=x.device, dtype=x.dtype)
            placed = _resample(x[cells[:, r * tiles + c]], scale, centre.expand(count, 2))
            inside = (rows[:, None] == r) & (cols[None, :] == c)                  # the pixels of this cell
            out = torch.where(inside, placed, out)
    return out, cells


def _mosaic_labels(y: torch.Tensor, cells: torch.Tensor, tiles: int, num_classes: int) -> torch.Tensor:
    share = F.one_hot(y[cells], num_classes).sum(1).float() / (tiles * tiles)   # (count, C): fraction of cells
    t = float(shrink_confidence(1.0 / tiles))
    return t * share + (1 - t) / num_classes


def _check_tiles(tiles) -> int:
    if isinstance(tiles, bool) or not isinstance(tiles, int) or tiles < 2:
        raise ValueError(f"tiles must be an integer >= 2 (digits per side of the mosaic), got {tiles!r}")
    return tiles


def mosaic(x: torch.Tensor, y: torch.Tensor, tiles: int = 2, num_classes: int = 10,
           generator: torch.Generator | None = None, *, count: int | None = None
           ) -> tuple[torch.Tensor, torch.Tensor]:
    """Images made of tiles×tiles small digits from the batch, with the labels of "a picture full of small cats".

    Every cell of every output image shows a digit of ``x`` picked at random (with replacement; from
    ``generator``, a CPU ``torch.Generator``, or torch's global generator) and shrunk by 1/tiles to fill
    the cell (:func:`shrink_digits`' resampling; a pixel on a seam between cells takes its own cell's
    value).  The labelling rule, with t = :func:`shrink_confidence` (1/tiles):

        q_c = t · (number of cells showing a c) / tiles²  +  (1 − t) / num_classes.

    The image is "somewhat" every class it shows, in proportion to its share of the cells, and no more
    sure of them than of one digit that small (t = 0.75 for tiles = 2, t = 0 from tiles = 5: a grid of
    tiny digits is no digit).  Each row of q sums to 1.

    Returns (images, soft labels): ``count`` images (default: as many as ``x``) shaped like those of ``x``,
    in [0, 1], and a (count, num_classes) float tensor, both on ``x``'s device.
    """
    check_images(x, "x")
    if x.dim() != 4:
        raise ValueError(f"x must be B×C×H×W images, got shape {tuple(x.shape)}")
    tiles = _check_tiles(tiles)
    num_classes = check_positive_int(num_classes, "num_classes")
    y = check_labels(y, num_classes, batch_size=x.shape[0], name="y").to(x.device)
    if x.shape[0] == 0:
        raise ValueError("x must hold at least one image to make mosaics from")
    count = x.shape[0] if count is None else check_positive_int(count, "count")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise ValueError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
    images, cells = _mosaic_images(x, tiles, count, generator)
    return images, _mosaic_labels(y, cells, tiles, num_classes)


def soft_cross_entropy(logits: torch.Tensor, soft_labels: torch.Tensor) -> torch.Tensor:
    """−Σ_c q_c log softmax(logits)_c, mean over the batch: cross-entropy against a distribution q per example.

    ``soft_labels`` q: same shape as ``logits`` (B, C), each row non-negative and summing to 1; with
    one-hot rows it is ``F.cross_entropy``.
    """
    if not isinstance(logits, torch.Tensor) or logits.dim() != 2:
        raise ValueError(f"logits must be a (B, C) tensor, got {getattr(logits, 'shape', type(logits).__name__)}")
    if not isinstance(soft_labels, torch.Tensor) or tuple(soft_labels.shape) != tuple(logits.shape):
        raise ValueError(f"soft_labels must be a tensor shaped like logits {tuple(logits.shape)}, "
                         f"got {getattr(soft_labels, 'shape', type(soft_labels).__name__)}")
    q = soft_labels.to(logits.dtype)
    sums_to_one = torch.allclose(q.sum(1), torch.ones_like(q[:, 0]), atol=1e-4)
    if soft_labels.numel() and (bool((q < 0).any()) or not sums_to_one):
        raise ValueError("soft_labels must be probability vectors: rows of non-negative values that sum to 1")
    return -(q * F.log_softmax(logits, dim=1)).sum(1).mean()


def cohen_augmented_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, shrink_fraction: float = 0.25,
                         mosaic_fraction: float = 0.25, tiles: int = 2, min_scale: float = 0.2) -> torch.Tensor:
    """Soft cross-entropy on a minibatch in which some digits moved far away and some became mosaics (Cohen 2019).

    Of the B examples, ⌊shrink_fraction · B⌋ at random positions are replaced by themselves shrunk by a
    scale ~ U(min_scale, 1) each, labelled t·onehot + (1 − t)·uniform with t = :func:`shrink_confidence`
    (scale); ⌊mosaic_fraction · B⌋ others by tiles×tiles mosaics of digits from the whole batch, labelled
    as in :func:`mosaic`; the rest stay clean with their one-hot labels.  The loss is one
    :func:`soft_cross_entropy` over the whole assembled batch (one forward pass, so BatchNorm sees it all);
    on the clean part it is the usual cross-entropy.  The number of classes is read off the model's output.
    Randomness from torch's global generators; every tensor on ``x``'s device.
    """
    shrink_fraction = _check_unit_interval(shrink_fraction, "shrink_fraction", open_low=False)
    mosaic_fraction = _check_unit_interval(mosaic_fraction, "mosaic_fraction", open_low=False)
    if shrink_fraction + mosaic_fraction > 1 + 1e-9:
        raise ValueError(f"shrink_fraction + mosaic_fraction must be at most 1, got "
                         f"{shrink_fraction} + {mosaic_fraction} = {shrink_fraction + mosaic_fraction}")
    tiles = _check_tiles(tiles)
    min_scale = _check_unit_interval(min_scale, "min_scale", open_low=True)
    check_images(x, "x")
    if x.dim() != 4:
        raise ValueError(f"x must be B×C×H×W images, got shape {tuple(x.shape)}")
    batch = x.shape[0]
    check_labels(y, None, batch_size=batch, name="y")   # the class count is checked once the model has answered
    n_shrink = math.floor(shrink_fraction * batch + 1e-9)
    n_mosaic = min(batch - n_shrink, math.floor(mosaic_fraction * batch + 1e-9))
    order = torch.randperm(batch).to(x.device)
    shrunk_at, mosaic_at = order[:n_shrink], order[n_shrink:n_shrink + n_mosaic]

    images = x.clone()
    scales = None
    if n_shrink:
        scales = min_scale + (1 - min_scale) * torch.rand(n_shrink, device=x.device, dtype=x.dtype)
        images[shrunk_at] = shrink_digits(x[shrunk_at], scales)
    cells = None
    if n_mosaic:
        tiled, cells = _mosaic_images(x, tiles, n_mosaic, None)
        images[mosaic_at] = tiled
    logits = model(images)

    num_classes = logits.shape[1]
    y = check_labels(y, num_classes, batch_size=batch, name="y").to(x.device)
    labels = F.one_hot(y, num_classes).to(logits.dtype)
    if n_shrink:
        t = shrink_confidence(scales).to(logits.dtype)[:, None]
        labels[shrunk_at] = t * labels[shrunk_at] + (1 - t) / num_classes
    if n_mosaic:
        labels[mosaic_at] = _mosaic_labels(y, cells, tiles, num_classes).to(logits.dtype)
    return soft_cross_entropy(logits, labels)
