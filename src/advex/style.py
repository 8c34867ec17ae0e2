"""One plotting style for the whole book.

Call :func:`use_book_style` once at the top of a chapter.  Colours have fixed
roles so that "clean", "adversarial", "positive" and "negative" look the same
in every figure.
"""
from __future__ import annotations

import matplotlib as mpl
import numpy as np

PALETTE = {
    "clean": "#1b6ca8",        # blue: unperturbed inputs and models
    "adversarial": "#d1495b",  # red: perturbed inputs, attacks
    "defended": "#2e8b57",     # green: defended / robust models
    "neutral": "#6c757d",
    "positive": "#d1495b",
    "negative": "#1b6ca8",
}
CYCLE = ["#1b6ca8", "#d1495b", "#2e8b57", "#edae49", "#6a4c93", "#00798c", "#6c757d", "#8c564b", "#e377c2", "#17becf"]
DIVERGING = "RdBu_r"  # perturbations and weights: red positive, blue negative, white zero


def use_book_style() -> None:
    """Apply the book's matplotlib style (fonts, grid, colour cycle, figure size)."""
    mpl.rcParams.update({
        "figure.figsize": (6.4, 3.6),
        "figure.dpi": 100,
        "savefig.dpi": 110,
        "savefig.bbox": "tight",
        "axes.prop_cycle": mpl.cycler(color=CYCLE),
        "axes.spines.top": False,
        "axes.spines.right": False,
        "axes.grid": True,
        "grid.alpha": 0.3,
        "axes.titlesize": 11,
        "axes.labelsize": 10,
        "legend.frameon": False,
        "image.cmap": "gray",
        "image.interpolation": "nearest",
    })


def show_signed(ax, values, scale: float | None = None, title: str | None = None):
    """Draw a signed array (weights, perturbations) on a symmetric diverging scale."""
    values = np.asarray(values)
    scale = float(np.abs(values).max()) if scale is None else scale
    image = ax.imshow(values, cmap=DIVERGING, vmin=-scale, vmax=scale)
    ax.set_xticks([]); ax.set_yticks([]); ax.grid(False)
    if title:
        ax.set_title(title)
    return image


def show_image(ax, image, title: str | None = None):
    """Draw an image in [0, 1] (grey (H, W), or RGB as (H, W, 3) or (3, H, W))."""
    image = np.asarray(image.detach().cpu() if hasattr(image, "detach") else image)
    if image.ndim == 3 and image.shape[0] in (1, 3):
        image = np.moveaxis(image, 0, -1)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    ax.imshow(image, cmap="gray", vmin=0, vmax=1)
    ax.set_xticks([]); ax.set_yticks([]); ax.grid(False)
    if title:
        ax.set_title(title)
