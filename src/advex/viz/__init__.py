"""The presentation layer: the book's plotting style, image drawing and the ε slider.

Nothing here can change a trained model, so the model cache ignores this package.
"""
from .images import as_numpy, show_image, show_signed, tile
from .slider import Frame, eps_slider
from .style import CYCLE, DIVERGING, PALETTE, use_book_style

__all__ = ["CYCLE", "DIVERGING", "Frame", "PALETTE", "as_numpy", "eps_slider", "show_image", "show_signed", "tile",
           "use_book_style"]
