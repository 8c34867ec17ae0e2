"""One recipe for every trained model in the book: build, train with the one loop, cache.

``trained(name, build, data, loss_fn=..., epochs=..., lr=...)`` returns ``build()`` trained by
:func:`advex.train_classifier` on ``data``, training only when the model cache has no entry for
exactly this model.  The cache key holds everything that determines the weights, read off the
objects themselves rather than trusted to a description: the architecture (the module tree) and a
digest of its seeded initial weights, a digest of the training images and labels, the loss
function (its source, and the settings bound by ``functools.partial`` or a closure), every
hyperparameter, the advex source (:mod:`advex.cache`), the device type and the torch version.
"""
from __future__ import annotations

import functools
import hashlib
import inspect
from typing import Callable

import torch
from torch import nn

from ..cache import cached_model
from ..train import LossFn, train_classifier
from ..validation import check_images, check_labels

__all__ = ["describe_callable", "tensor_digest", "trained", "trained_with_log"]


def tensor_digest(*tensors: torch.Tensor) -> str:
    """A short digest of the values, dtypes and shapes of tensors (on any device)."""
    digest = hashlib.blake2b(digest_size=16)
    for t in tensors:
        t = t.detach().cpu().contiguous()
        digest.update(f"{t.dtype}{tuple(t.shape)}".encode())
        digest.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


def describe_callable(fn) -> str:
    """What a loss function computes, as text: its source and the values it closes over or is bound to."""
    if fn is None:
        return "advex.losses.cross_entropy"
    if isinstance(fn, functools.partial):
        keywords = ", ".join(f"{k}={v!r}" for k, v in sorted(fn.keywords.items()))
        return f"partial({describe_callable(fn.func)}, args={fn.args!r}, {keywords})"
    try:
        source = inspect.getsource(fn)
    except (OSError, TypeError):
        source = ""
    name = f"{getattr(fn, '__module__', '')}.{getattr(fn, '__qualname__', type(fn).__name__)}"
    closure = getattr(fn, "__closure__", None) or ()
    bound = [repr(cell.cell_contents) for cell in closure
             if isinstance(cell.cell_contents, (int, float, str, bool, tuple, type(None)))]
    defaults = repr(getattr(fn, "__defaults__", None))
    return f"{name}\n{source}\nclosure={bound}\ndefaults={defaults}"


def trained(name: str, build: Callable[[], nn.Module], data: tuple[torch.Tensor, torch.Tensor], *,
            epochs: int, lr: float, loss_fn: LossFn | None = None, batch_size: int = 128, optimizer: str = "adam",
            weight_decay: float = 0.0, seed: int = 0, verbose: bool = True) -> nn.Module:
    """``build()`` (called right after ``torch.manual_seed(seed)``) trained on ``data = (images, labels)``.

    Training is :func:`advex.train_classifier` with ``loss_fn`` (default cross-entropy; pass a
    setting such as ε with ``functools.partial``) and the given hyperparameters, on
    :func:`advex.get_device`.  The result comes from the model cache when an identical model was
    trained before; it is returned in eval mode.
    """
    model, _ = trained_with_log(name, build, data, epochs=epochs, lr=lr, loss_fn=loss_fn, batch_size=batch_size,
                                optimizer=optimizer, weight_decay=weight_decay, seed=seed, verbose=verbose)
    return model


def trained_with_log(name: str, build: Callable[[], nn.Module], data: tuple[torch.Tensor, torch.Tensor], *,
                     epochs: int, lr: float, loss_fn: LossFn | None = None, batch_size: int = 128,
                     optimizer: str = "adam", weight_decay: float = 0.0, seed: int = 0,
                     monitor: Callable[[nn.Module], dict] | None = None, verbose: bool = True
                     ) -> tuple[nn.Module, list]:
    """``build()`` (called right after ``torch.manual_seed(seed)``) trained on ``data = (images, labels)``.

    Training is :func:`advex.train_classifier` with ``loss_fn`` (default cross-entropy; pass a
    setting such as ε with ``functools.partial``) and the given hyperparameters, on
    :func:`advex.get_device`.  The result comes from the model cache when an identical model was
    trained before; it is returned in eval mode.  Also returns the training log: the mean loss of each
    epoch, or with ``monitor`` the per-epoch records of :func:`advex.train_classifier` (cached with the
    weights; the monitor does not touch the random generators, so it does not change the weights).
    """
    if not isinstance(name, str) or not name or "/" in name:
        raise ValueError(f"name must be a non-empty string without '/', got {name!r}")
    if not (isinstance(data, (tuple, list)) and len(data) == 2):
        raise ValueError("data must be a pair (images, labels) of tensors")
    images, labels = data
    check_images(images, "images")
    labels = check_labels(labels, num_classes=None, batch_size=images.shape[0], name="labels")

    def seeded_build() -> nn.Module:
        torch.manual_seed(seed)
        return build()

    initial = seeded_build()
    config = {
        "architecture": repr(initial),
        "initial_weights": tensor_digest(*initial.state_dict().values()),
        "data": tensor_digest(images, labels),
        "loss": describe_callable(loss_fn),
        "epochs": epochs, "lr": lr, "batch_size": batch_size, "optimizer": optimizer,
        "weight_decay": weight_decay, "seed": seed,
    }
    if monitor is not None:   # the weights do not depend on it, the log does
        config["monitor"] = getattr(monitor, "description", None) or describe_callable(monitor)

    def train(model: nn.Module) -> list:
        return train_classifier(model, images, labels, epochs=epochs, lr=lr, batch_size=batch_size, seed=seed,
                                weight_decay=weight_decay, optimizer=optimizer, loss_fn=loss_fn, monitor=monitor,
                                desc=f"training {name}")

    return cached_model(name, config, seeded_build, train, verbose=verbose, return_log=True)
