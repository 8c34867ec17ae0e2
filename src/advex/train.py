"""The one training loop of the book, and the sanity checks of a training run.

Defences plug in here: adversarial training as a ``loss_fn(model, x, y)``, input transforms as an
``nn.Module`` wrapped around the model.  The data live on the model's device for the whole run,
and the loop never waits for the device inside an epoch: arguments are checked once per call, the
loss is summed on the device and read once per epoch, the shuffling order is drawn on the CPU.

Two recipe settings exist for fast training on a GPU: ``precision="bf16"`` (bfloat16 autocast around
the loss function, i.e. the forward and backward passes and any attack inside the loss) and
``lr_schedule="one-cycle"``.  Their defaults (``"fp32"``, ``"constant"``) leave the loop exactly as it
was, so the weights of every cached model and the chapters' stored numbers do not move.
"""
from __future__ import annotations

import contextlib
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


__all__ = ["LR_SCHEDULES", "PRECISIONS", "sgd_loss_curve", "train_classifier"]


def _check_lr(lr) -> float:
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not lr > 0 or lr == float("inf"):
        raise ValueError(f"lr must be a finite number > 0, got {lr!r}")
    return float(lr)


PRECISIONS = ("fp32", "bf16")
LR_SCHEDULES = ("constant", "one-cycle")


def _check_choice(value, allowed: tuple[str, ...], name: str) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{name} must be one of {list(allowed)}, got {value!r}")
    return value


def _precision_context(precision: str, device: torch.device):
    """bf16 autocast on CUDA and on the CPU alike (torch supports both), fp32 = no context at all.

    bf16 is allowed on the CPU too so that the GPU recipe's code path runs in the CPU tests; it is
    not faster there on most CPUs, so the CPU recipes of the chapters keep fp32.
    """
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


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
    precision: str = "fp32",
    lr_schedule: str = "constant",
) -> list:
    """Train ``model`` in place by minimising ``loss_fn`` (default: cross-entropy).

    ``loss_fn(model, x, y)`` receives a batch in [0, 1] pixel units on the
    model's device, so adversarial training can plug its objective in here.
    Returns the mean loss of each epoch; with ``monitor(model) -> dict`` (called in eval mode after
    every epoch, e.g. :func:`advex.defences.robustness_monitor`), one record per epoch instead:
    ``{"epoch": e, "loss": ..., "train_seconds": (cumulative, monitor excluded), **monitor(model)}``.  The shuffling order depends only on ``seed``.  The model ends in eval mode with no gradients left on its parameters.

    precision:   ``"fp32"`` (default) or ``"bf16"``: bfloat16 autocast around ``loss_fn`` only (its
                 forward/backward and an inner attack); the optimiser step, the parameters and the
                 monitor stay fp32 (evaluation is always fp32).
    lr_schedule: ``"constant"`` (default) or ``"one-cycle"``: ``lr`` is the peak of a one-cycle schedule
                 over all steps of the run (Smith & Topin 2019; ``torch.optim.lr_scheduler.OneCycleLR``).
    Timing and the monitor's clock wait for the device once per epoch, never per mini-batch.
    """
    check_images(images, "images")
    epochs = check_positive_int(epochs, "epochs")
    batch_size = check_positive_int(batch_size, "batch_size")
    lr = _check_lr(lr)
    if optimizer not in ("adam", "sgd"):
        raise ValueError(f"optimizer must be 'adam' or 'sgd', got {optimizer!r}")
    precision = _check_choice(precision, PRECISIONS, "precision")
    lr_schedule = _check_choice(lr_schedule, LR_SCHEDULES, "lr_schedule")
    if monitor is not None and not callable(monitor):
        raise ValueError(f"monitor must be a callable monitor(model) -> dict or None, got {type(monitor).__name__}")
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
    schedule = (torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
                if lr_schedule == "one-cycle" else None)
    with progress(total=steps, desc=desc) as bar:
        for _ in range(epochs):
            order = torch.randperm(len(images), generator=generator).to(device)
            total = torch.zeros((), device=device)
            for start in range(0, len(images), batch_size):
                index = order[start:start + batch_size]
                with _precision_context(precision, device):
                    loss = loss_fn(model, images[index], labels[index])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                if schedule is not None:
                    schedule.step()
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
