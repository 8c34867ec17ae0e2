"""MNIST as tensors: the book's verified copy, or a reader's own idx files.

Images come back as float32 in [0, 1] (pixel / 255), shape (N, 1, 28, 28), so
that an ε of 0.1 means "a tenth of the pixel range" in every chapter; labels
are int64.  The book's copy is ``mnist.npz`` from :mod:`advex.data.assets`
(60,000 training and 10,000 test images, the official split).
"""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import torch

from torch.nn import functional as F

from .assets import asset_path
from ..validation import check_images, check_labels, check_positive_int

__all__ = ["MNIST_CLASSES", "SPLITS", "binary_digits", "gaussian_rubbish", "load_mnist", "load_mnist_idx", "read_idx",
           "resample_images"]

MNIST_CLASSES = tuple("0123456789")
SPLITS = ("train", "test")

_IDX_MAGIC = {"images": 0x00000803, "labels": 0x00000801}  # ubyte data, 3 or 1 dimensions
_IDX_PREFIX = {"train": "train", "test": "t10k"}


def _check_split(split) -> str:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    return split


def _to_tensors(images: np.ndarray, labels: np.ndarray, device) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 (N, 28, 28) -> float (N, 1, 28, 28) / 255 on ``device`` (converted there: 4x less to copy)."""
    device = torch.device("cpu") if device is None else torch.device(device)
    x = torch.from_numpy(np.ascontiguousarray(images)).to(device).unsqueeze(1).float().div_(255.0)
    y = torch.from_numpy(np.asarray(labels, dtype=np.int64)).to(device)
    return x, y


def load_mnist(split: str, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """The book's MNIST split as (images N×1×28×28 float32 in [0, 1], labels int64).

    ``split`` is ``"train"`` (60,000) or ``"test"`` (10,000).  Tensors are on the
    CPU unless ``device`` is given: the whole set fits on a GPU, but chapters
    usually move only the batches they need.
    """
    split = _check_split(split)
    with np.load(asset_path("mnist"), allow_pickle=False) as archive:
        images, labels = archive[f"x_{split}"], archive[f"y_{split}"]
    return _to_tensors(images, labels, device)


def read_idx(path: str | Path, kind: str) -> np.ndarray:
    """Read one idx file (``kind`` "images": N×rows×cols uint8, "labels": N uint8), gzipped or not."""
    if kind not in _IDX_MAGIC:
        raise ValueError(f"kind must be 'images' or 'labels', got {kind!r}")
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        data = handle.read()
    ndim = 3 if kind == "images" else 1
    if len(data) < 4 + 4 * ndim:
        raise ValueError(f"{path} is too short to be an idx {kind} file ({len(data)} bytes)")
    magic = int.from_bytes(data[:4], "big")
    if magic != _IDX_MAGIC[kind]:
        raise ValueError(
            f"{path} has magic number 0x{magic:08x}, but an idx {kind} file of unsigned bytes "
            f"starts with 0x{_IDX_MAGIC[kind]:08x}; is it the right file (and not an HTML error page)?"
        )
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    body = data[4 + 4 * ndim:]
    if len(body) != int(np.prod(shape)):
        raise ValueError(f"{path} declares shape {shape} ({int(np.prod(shape))} bytes) but holds {len(body)} bytes of data")
    return np.frombuffer(body, dtype=np.uint8).reshape(shape).copy()  # writable, as torch wants


def _find_idx(folder: Path, split: str, kind: str) -> Path:
    stem = f"{_IDX_PREFIX[split]}-{kind}"
    suffix = "idx3-ubyte" if kind == "images" else "idx1-ubyte"
    candidates = [folder / f"{stem}{sep}{suffix}{gz}" for sep in ("-", ".") for gz in ("", ".gz")]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise ValueError(f"folder {folder} has no {stem}-{suffix}[.gz] (looked for {[c.name for c in candidates]})")


def load_mnist_idx(folder: str | Path, split: str, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Your own MNIST-format idx files, returned exactly like :func:`load_mnist`.

    ``folder`` holds the standard files, e.g. ``train-images-idx3-ubyte`` and
    ``train-labels-idx1-ubyte`` (``t10k-...`` for ``split="test"``), gzipped or
    not.  Any 28×28 idx data set works, e.g. Fashion-MNIST.
    """
    split = _check_split(split)
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise ValueError(f"folder must be an existing directory of idx files, got {str(folder)!r}")
    images = read_idx(_find_idx(folder, split, "images"), "images")
    labels = read_idx(_find_idx(folder, split, "labels"), "labels")
    if images.shape[1:] != (28, 28):
        raise ValueError(f"idx images in {folder} are {images.shape[1]}×{images.shape[2]}, expected 28×28")
    if len(images) != len(labels):
        raise ValueError(f"idx files in {folder} hold {len(images)} images but {len(labels)} labels")
    if labels.size and labels.max() > 9:
        raise ValueError(f"idx labels in {folder} must be classes 0..9, found {int(labels.max())}")
    return _to_tensors(images, labels, device)


# --------------------------------------------------------------------------- derived data sets

def binary_digits(images: torch.Tensor, labels: torch.Tensor, negative: int = 3, positive: int = 7
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Only the images of two digits, relabelled 0 (``negative``) and 1 (``positive``)."""
    labels = check_labels(labels, 10, batch_size=images.shape[0], name="labels")
    for name, digit in (("negative", negative), ("positive", positive)):
        if digit not in range(10):
            raise ValueError(f"{name} must be a digit 0..9, got {digit!r}")
    if negative == positive:
        raise ValueError(f"negative and positive must differ, got {negative} twice")
    keep = (labels == negative) | (labels == positive)
    return images[keep], (labels[keep] == positive).long()


def resample_images(images: torch.Tensor, size: int) -> torch.Tensor:
    """N×1×H×W images in [0, 1] resampled to size×size.

    Shrinking averages blocks of pixels (area interpolation: what a coarser
    sensor would record); enlarging interpolates bilinearly (a smooth image at
    more pixels, with no new detail).  Values stay in [0, 1].
    """
    check_images(images, "images")
    size = check_positive_int(size, "size")
    if images.dim() != 4:
        raise ValueError(f"images must be N×C×H×W, got shape {tuple(images.shape)}")
    if size == images.shape[-1] and size == images.shape[-2]:
        return images.clone()
    shrinking = size < images.shape[-1]
    out = (F.interpolate(images, size=(size, size), mode="area") if shrinking
           else F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False))
    return out.clamp(0.0, 1.0)


def gaussian_rubbish(count: int, shape: tuple[int, ...] = (1, 28, 28), seed: int = 0) -> torch.Tensor:
    """``count`` samples of N(0, I) shaped like images (Goodfellow et al. 2015, App. A).

    Deliberately *not* in [0, 1]: the paper feeds raw Gaussian vectors, which no
    digit resembles.
    """
    count = check_positive_int(count, "count")
    generator = torch.Generator().manual_seed(seed)
    return torch.randn((count, *shape), generator=generator)
