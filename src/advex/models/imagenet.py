"""A pretrained ImageNet classifier (MobileNetV2) that attacks can use in pixel space.

torchvision cannot be imported beside this project's torch, so MobileNetV2 is
written here in plain PyTorch with torchvision's module names: torchvision's
IMAGENET1K_V1 weights (fetched by :mod:`advex.data.assets`) load with
``strict=True``.  :class:`ImageNetClassifier` normalises inside the model, so
callers pass images in [0, 1] and an ε is measured in pixel units, as in the
MNIST chapters.
"""
from __future__ import annotations

import difflib
import functools
import json

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..data.assets import asset_path
from ..device import device_of, get_device
from ..modes import eval_mode
from ..validation import check_positive_int

__all__ = ["ConvBNReLU", "IMAGENET_MEAN", "IMAGENET_STD", "ImageNetClassifier", "InvertedResidual", "MobileNetV2",
           "class_index", "imagenet_class_names", "load_mobilenet_v2", "top_k"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


# --------------------------------------------------------------------------- architecture

class ConvBNReLU(nn.Sequential):
    """torchvision's Conv2dNormActivation: conv (no bias), batch norm, ReLU6 as children 0, 1, 2."""

    def __init__(self, inp: int, out: int, kernel: int = 3, stride: int = 1, groups: int = 1):
        super().__init__(
            nn.Conv2d(inp, out, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
            nn.BatchNorm2d(out),
            nn.ReLU6(inplace=True),
        )


class InvertedResidual(nn.Module):
    """Expand (1×1), depthwise (3×3), project (1×1, linear); a skip when shapes allow."""

    def __init__(self, inp: int, out: int, stride: int, expand_ratio: int):
        super().__init__()
        hidden = inp * expand_ratio
        self.use_res_connect = stride == 1 and inp == out
        layers: list[nn.Module] = [ConvBNReLU(inp, hidden, kernel=1)] if expand_ratio != 1 else []
        layers += [
            ConvBNReLU(hidden, hidden, stride=stride, groups=hidden),
            nn.Conv2d(hidden, out, 1, bias=False),
            nn.BatchNorm2d(out),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


class MobileNetV2(nn.Module):
    """MobileNetV2 (width 1.0), same module tree as ``torchvision.models.mobilenet_v2``."""

    SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))

    def __init__(self, num_classes: int = 1000, dropout: float = 0.2):
        super().__init__()
        layers: list[nn.Module] = [ConvBNReLU(3, 32, stride=2)]
        channels = 32
        for t, c, n, s in self.SETTINGS:
            for i in range(n):
                layers.append(InvertedResidual(channels, c, s if i == 0 else 1, t))
                channels = c
        layers.append(ConvBNReLU(channels, 1280, kernel=1))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(1280, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.adaptive_avg_pool2d(self.features(x), 1)
        return self.classifier(torch.flatten(x, 1))


class ImageNetClassifier(nn.Module):
    """Pixel-space wrapper: takes (N, 3, H, W) images in [0, 1], returns logits (N, 1000).

    The ImageNet normalisation is part of the model (non-persistent buffers,
    moved with ``.to(device)``), so gradients and ε are in pixel units and
    clipping to [0, 1] is the only constraint an attack has to respect.  The
    range is not checked on each call (noise-based methods legitimately leave
    it); the shape is.
    """

    def __init__(self, model: nn.Module, mean=IMAGENET_MEAN, std=IMAGENET_STD):
        super().__init__()
        self.model = model
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] != 3 or not x.is_floating_point():
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"x must be a float tensor of shape (N, 3, H, W) with values in [0, 1], got {shape}")
        return self.model((x - self.mean) / self.std)


def load_mobilenet_v2(device=None) -> ImageNetClassifier:
    """torchvision's MobileNetV2 IMAGENET1K_V1 (71.9 % top-1) in eval mode on ``device`` (default: get_device()).

    Its parameters are frozen (``requires_grad=False``): attacks need gradients
    with respect to the input only, and skipping the weight gradients makes each
    backward pass cheaper.  Call ``.requires_grad_(True)`` to fine-tune it.
    """
    device = get_device() if device is None else torch.device(device)
    state = torch.load(asset_path("mobilenet_v2"), weights_only=True, map_location="cpu")
    net = MobileNetV2()
    net.load_state_dict(state, strict=True)
    return ImageNetClassifier(net).requires_grad_(False).to(device).eval()


# --------------------------------------------------------------------------- class names

@functools.lru_cache(maxsize=1)
def _names() -> tuple[str, ...]:
    with open(asset_path("imagenet_classes"), encoding="utf-8") as handle:
        names = tuple(json.load(handle))
    if len(names) != 1000:
        raise ValueError(f"the ImageNet class-name file holds {len(names)} names, expected 1000")
    return names


def imagenet_class_names() -> list[str]:
    """The 1000 ImageNet class names in the classifier's index order (a fresh list)."""
    return list(_names())


def class_index(name_or_index) -> int:
    """Index of an ImageNet class given its name (exact, or case-insensitive) or index.

    Two names occur twice in the list ("missile": 657, 744; "sunglasses": 836,
    837); asking for one of them by name is an error that lists both indices.
    """
    names = _names()
    if isinstance(name_or_index, (int, np.integer)) and not isinstance(name_or_index, bool):
        if not 0 <= name_or_index < len(names):
            raise ValueError(f"name_or_index must be a class index in [0, 999] or a class name, got {name_or_index}")
        return int(name_or_index)
    if not isinstance(name_or_index, str):
        raise ValueError(f"name_or_index must be a class name (str) or an index (int), got {name_or_index!r}")
    matches = [i for i, n in enumerate(names) if n == name_or_index]
    if not matches:
        wanted = name_or_index.strip().lower()
        matches = [i for i, n in enumerate(names) if n.lower() == wanted]
    if len(matches) > 1:
        raise ValueError(f"name_or_index {name_or_index!r} names several classes {matches}; pass the index instead")
    if not matches:
        close = difflib.get_close_matches(name_or_index.lower(), [n.lower() for n in names], n=3)
        hint = f"; did you mean {close}?" if close else "; see imagenet_class_names()"
        raise ValueError(f"name_or_index {name_or_index!r} is not an ImageNet class name{hint}")
    return matches[0]


@torch.no_grad()
def top_k(model: nn.Module, images: torch.Tensor, k: int = 5):
    """The k most probable classes: (probs, indices, names), computed on the model's device in eval mode.

    ``images`` is (3, H, W) or (N, 3, H, W) in [0, 1]; a single image gives
    probs/indices of shape (k,) and a list of k names, a batch gives (N, k) and
    a list of N lists.  Results are on the CPU.
    """
    k = check_positive_int(k, "k")
    if k > 1000:
        raise ValueError(f"k must be at most 1000, got {k}")
    if not isinstance(images, torch.Tensor) or images.dim() not in (3, 4):
        raise ValueError("images must be a tensor of shape (3, H, W) or (N, 3, H, W)")
    single = images.dim() == 3
    batch = images.unsqueeze(0) if single else images
    with eval_mode(model):
        probs = model(batch.to(device_of(model))).softmax(dim=1)
    values, indices = probs.topk(k, dim=1)
    values, indices = values.cpu(), indices.cpu()
    names = _names()
    labels = [[names[i] for i in row] for row in indices.tolist()]
    if single:
        return values[0], indices[0], labels[0]
    return values, indices, labels
