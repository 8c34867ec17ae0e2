"""One plotting style for the whole book.

Call :func:`use_book_style` once at the top of a chapter; draw images with :mod:`advex.viz.images`.  Colours have fixed
roles so that "clean", "adversarial", "positive" and "negative" look the same
in every figure.
"""
from __future__ import annotations

import matplotlib as mpl

__all__ = ["CYCLE", "DIVERGING", "PALETTE", "use_book_style"]

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
    _sharp_notebook_figures()


def _sharp_notebook_figures() -> None:
    """In a notebook kernel, figures as PNGs of twice the pixel density (200 dpi) shown at their usual size
    ("retina"), so that they stay sharp on high-density screens and when zoomed; elsewhere, nothing."""
    try:
        from IPython import get_ipython
        from matplotlib_inline.backend_inline import set_matplotlib_formats
    except ImportError:
        return
    shell = get_ipython()
    if shell is not None and "IPKernelApp" in shell.config:
        set_matplotlib_formats("retina")
