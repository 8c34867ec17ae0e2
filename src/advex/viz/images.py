"""Drawing images, signed arrays (weights, perturbations) and grids of images in the book's style."""
from __future__ import annotations

import numpy as np

from .style import DIVERGING

__all__ = ["as_numpy", "show_image", "show_signed", "tile"]


def as_numpy(values) -> np.ndarray:
    """A tensor on any device (or anything array-like) as a NumPy array, detached."""
    if hasattr(values, "detach"):
        values = values.detach().cpu().numpy()
    return np.asarray(values)


def _channels_last(image: np.ndarray) -> np.ndarray:
    if image.ndim == 3 and image.shape[0] in (1, 3) and image.shape[-1] not in (1, 3):
        image = np.moveaxis(image, 0, -1)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    return image


def _bare(ax, title):
    ax.set_xticks([]); ax.set_yticks([]); ax.grid(False)
    if title:
        ax.set_title(title)


def show_signed(ax, values, scale: float | None = None, title: str | None = None, *, colorbar: bool = False,
                label: str | None = None):
    """Draw a signed array (weights, perturbations) on a symmetric diverging scale: red > 0, blue < 0, white 0.

    ``values`` is (H, W), (1, H, W) or (H, W, 1), a tensor on any device or an array.  ``colorbar=True`` adds the colour key (with ``label``).
    Returns the image artist.
    """
    values = _channels_last(as_numpy(values))
    scale = float(np.abs(values).max()) if scale is None else float(scale)
    image = ax.imshow(values, cmap=DIVERGING, vmin=-scale, vmax=scale)
    _bare(ax, title)
    if colorbar:
        key = ax.figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
        key.ax.tick_params(labelsize=7)
        if label:
            key.set_label(label, fontsize=8)
    return image


def show_image(ax, image, title: str | None = None):
    """Draw an image in [0, 1] (grey (H, W), or RGB as (H, W, 3) or (3, H, W)); a tensor on any device is fine."""
    image = _channels_last(as_numpy(image))
    artist = ax.imshow(image, cmap="gray", vmin=0, vmax=1)
    _bare(ax, title)
    return artist


def tile(images, rows: int, cols: int) -> np.ndarray:
    """``rows`` × ``cols`` images side by side as one 2-D array, row by row.

    ``images`` is (N, H, W) or (N, 1, H, W) (a tensor on any device, or an array) with N ≥ rows·cols;
    the first rows·cols are used.
    """
    array = as_numpy(images)
    if array.ndim == 4 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 3 or len(array) < rows * cols:
        raise ValueError(f"images must be (N, H, W) or (N, 1, H, W) with N >= rows*cols = {rows * cols}, got shape {array.shape}")
    return np.vstack([np.hstack(list(array[r * cols:(r + 1) * cols])) for r in range(rows)])
