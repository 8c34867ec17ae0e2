"""Photographs to attack, bundled in wheels (no download), and ImageNet's evaluation preprocessing."""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from ..validation import check_positive_int

__all__ = ["PHOTOS", "load_photo", "preprocess"]

PHOTOS = ("chelsea", "coffee", "astronaut", "rocket", "grace_hopper")


def _as_pil(image) -> Image.Image:
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu().numpy()
        if image.ndim == 3 and image.shape[0] in (1, 3, 4):
            image = np.moveaxis(image, 0, -1)
    if not isinstance(image, np.ndarray):
        raise ValueError(f"image must be a PIL image or an (H, W[, 3]) array, got {type(image).__name__}")
    if image.ndim == 3 and image.shape[-1] in (1, 4):
        image = image[..., :3] if image.shape[-1] == 4 else image[..., 0]
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[-1] != 3):
        raise ValueError(f"image must have shape (H, W) or (H, W, 3), got {image.shape}")
    if image.dtype != np.uint8:
        if not np.issubdtype(image.dtype, np.floating) or image.min() < 0 or image.max() > 1:
            raise ValueError("image must be uint8 in [0, 255] or float in [0, 1]")
        image = np.rint(image * 255).astype(np.uint8)
    return Image.fromarray(image).convert("RGB")


def preprocess(image, size: int = 224, resize: int = 256) -> torch.Tensor:
    """ImageNet evaluation preprocessing without normalisation: a (3, 224, 224) float tensor in [0, 1].

    Shorter side resized to 256 (PIL bilinear), then the central 224×224 crop,
    as torchvision's ``Resize(256), CenterCrop(224), ToTensor()``; normalising
    is the model's job (see :class:`ImageNetClassifier`).
    """
    size, resize = check_positive_int(size, "size"), check_positive_int(resize, "resize")
    if resize < size:
        raise ValueError(f"resize must be >= size, got resize={resize}, size={size}")
    pil = _as_pil(image)
    w, h = pil.size
    if w <= h:
        new_w, new_h = resize, int(resize * h / w)
    else:
        new_w, new_h = int(resize * w / h), resize
    pil = pil.resize((new_w, new_h), Image.BILINEAR)
    top, left = int(round((new_h - size) / 2.0)), int(round((new_w - size) / 2.0))
    pil = pil.crop((left, top, left + size, top + size))
    return torch.from_numpy(np.asarray(pil, dtype=np.uint8).copy()).permute(2, 0, 1).float().div_(255.0)


def load_photo(name: str) -> torch.Tensor:
    """A bundled photograph, preprocessed to (3, 224, 224) in [0, 1] (no download: they ship in wheels)."""
    if name not in PHOTOS:
        raise ValueError(f"name must be one of {PHOTOS}, got {name!r}")
    if name == "grace_hopper":
        from matplotlib import cbook

        with cbook.get_sample_data("grace_hopper.jpg") as handle:
            return preprocess(Image.open(handle).convert("RGB"))
    import skimage.data

    return preprocess(getattr(skimage.data, name)())
