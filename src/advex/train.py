"""The one training loop of the book, and the sanity checks of a training run.

Defences plug in here: adversarial training as a ``loss_fn(model, x, y)``, input transforms as an
``nn.Module`` wrapped around the model.  The data live on the model's device for the whole run,
and the loop never waits for the device inside an epoch (the loss is summed on the device).
"""
from __future__ import annotations

import time
from typing import Callable

import torch
from torch import nn
from torch.nn import functional as F

from .device import device_of
from .losses import cross_entropy
from .modes import eval_mode
from .progress import progress
from .validation import check_images, check_labels, check_positive_int

LossFn = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]


def _check_lr(lr) -> float:
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not lr > 0 or lr == float("inf"):
        raise ValueError(f"lr must be a finite number > 0, got {lr!r}")
    return float(lr)


def train_classifier(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    epochs: int,
    lr: float,
    batch_size: int = 128,
    seed: int = 0,
    weight_decay: float = 0.0,
    optimizer: str = "adam",
    loss_fn: LossFn | None = None,
    monitor: Callable[[nn.Module], dict] | None = None,
    desc: str = "training",
) -> list:
    """Train ``model`` in place by minimising ``loss_fn`` (default: cross-entropy).

    ``loss_fn(model, x, y)`` receives a batch in [0, 1] pixel units on the
    model's device, so adversarial training can plug its objective in here.
    Returns the mean loss of each epoch; with ``monitor(model) -> dict`` (called in eval mode after
    every epoch, e.g. :func:`advex.defences.robustness_monitor`), one record per epoch instead:
    ``{"epoch": e, "loss": ..., "train_seconds": (cumulative, monitor excluded), **monitor(model)}``.  The shuffling order depends only on ``seed``.  The model ends in eval mode with no gradients left on its parameters.
    """
    check_images(images, "images")
    epochs = check_positive_int(epochs, "epochs")
    batch_size = check_positive_int(batch_size, "batch_size")
    lr = _check_lr(lr)
    if optimizer not in ("adam", "sgd"):
        raise ValueError(f"optimizer must be 'adam' or 'sgd', got {optimizer!r}")
    device = device_of(model)
    labels = check_labels(labels, num_classes=None, batch_size=images.shape[0], name="labels")
    loss_fn = loss_fn or cross_entropy
    params = [p for p in model.parameters() if p.requires_grad]
    opt = (torch.optim.Adam(params, lr=lr, weight_decay=weight_decay) if optimizer == "adam"
           else torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=weight_decay))
    generator = torch.Generator().manual_seed(seed)
    images, labels = images.to(device), labels.to(device)
    history, records = [], []
    clock = time.perf_counter()
    model.train()
    steps = epochs * ((len(images) + batch_size - 1) // batch_size)
    with progress(total=steps, desc=desc) as bar:
        for _ in range(epochs):
            order = torch.randperm(len(images), generator=generator).to(device)
            total = torch.zeros((), device=device)
            for start in range(0, len(images), batch_size):
                index = order[start:start + batch_size]
                loss = loss_fn(model, images[index], labels[index])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += loss.detach() * len(index)
                bar.update(1)
            history.append(total.item() / len(images))   # one synchronisation per epoch
            bar.set_postfix(loss=f"{history[-1]:.4f}")
            if monitor is not None:
                seconds = time.perf_counter() - clock   # training time only, the monitor's own time excluded
                with eval_mode(model):
                    records.append({"epoch": len(history), "loss": history[-1], "train_seconds": seconds, **monitor(model)})
                clock = time.perf_counter() - seconds
    model.eval()
    model.zero_grad(set_to_none=True)
    return records if monitor is not None else history


def sgd_loss_curve(
    build: Callable[[], nn.Module],
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    lr: float,
    steps: int,
    batch_size: int = 128,
    seed: int = 0,
) -> list[float]:
    """Mini-batch loss at every step of plain SGD (no momentum) from ``build()``'s initialisation.

    The first entry is the loss before any update.  A loss that starts far
    above ln(#classes) flags a bad initialisation; one that grows or becomes
    ``nan`` flags a learning rate that is too large (Karpathy 2015's recipe).
    """
    check_images(images, "images")
    steps = check_positive_int(steps, "steps")
    batch_size = check_positive_int(batch_size, "batch_size")
    lr = _check_lr(lr)
    labels = check_labels(labels, num_classes=None, batch_size=images.shape[0], name="labels")
    torch.manual_seed(seed)
    model = build()
    device = device_of(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    images, labels = images.to(device), labels.to(device)
    model.train()
    losses = []
    for step in range(steps + 1):
        index = torch.randint(len(images), (batch_size,), generator=generator).to(device)
        loss = F.cross_entropy(model(images[index]), labels[index])
        losses.append(loss.detach())
        if step == steps:
            break
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return torch.stack(losses).tolist()   # one synchronisation, at the end
