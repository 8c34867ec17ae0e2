"""A small, seeded mini-batch training loop shared by every chapter."""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn
from torch.nn import functional as F

from .device import get_device
from .progress import progress
from .validation import check_images, check_labels, check_positive_int


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
    loss_fn: Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    desc: str = "training",
) -> list[float]:
    """Train ``model`` in place by minimising ``loss_fn`` (default: cross-entropy).

    ``loss_fn(model, x, y)`` receives a batch in [0, 1] pixel units on the
    model's device, so adversarial training can plug its objective in here.
    Returns the mean loss of each epoch.  The shuffling order depends only on
    ``seed``.
    """
    check_images(images, "images")
    epochs = check_positive_int(epochs, "epochs")
    batch_size = check_positive_int(batch_size, "batch_size")
    if not lr > 0:
        raise ValueError(f"lr must be > 0, got {lr!r}")
    if optimizer not in ("adam", "sgd"):
        raise ValueError(f"optimizer must be 'adam' or 'sgd', got {optimizer!r}")
    first_parameter = next(model.parameters(), None)
    device = first_parameter.device if first_parameter is not None else get_device()
    check_labels(labels, num_classes=None, batch_size=images.shape[0], name="labels")
    loss_fn = loss_fn or (lambda m, x, y: F.cross_entropy(m(x), y))
    params = [p for p in model.parameters() if p.requires_grad]
    opt = (torch.optim.Adam(params, lr=lr, weight_decay=weight_decay) if optimizer == "adam"
           else torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=weight_decay))
    generator = torch.Generator().manual_seed(seed)
    images, labels = images.to(device), labels.to(device)
    history = []
    model.train()
    steps = epochs * ((len(images) + batch_size - 1) // batch_size)
    with progress(total=steps, desc=desc) as bar:
        for _ in range(epochs):
            order = torch.randperm(len(images), generator=generator).to(device)
            total, count = 0.0, 0
            for start in range(0, len(images), batch_size):
                index = order[start:start + batch_size]
                loss = loss_fn(model, images[index], labels[index])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += loss.item() * len(index)
                count += len(index)
                bar.update(1)
            history.append(total / count)
            bar.set_postfix(loss=f"{history[-1]:.4f}")
    model.eval()
    model.zero_grad(set_to_none=True)
    return history


@torch.no_grad()
def predict(model: nn.Module, images: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """Softmax probabilities of ``model`` on ``images`` (batched, on the model's device, eval mode)."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        out = [F.softmax(model(images[i:i + batch_size].to(device)), dim=1) for i in range(0, len(images), batch_size)]
    finally:
        model.train(was_training)
    return torch.cat(out)


def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 1000) -> float:
    """Top-1 accuracy of ``model`` (a fraction in [0, 1])."""
    probs = predict(model, images, batch_size)
    return (probs.argmax(1).cpu() == labels.cpu()).float().mean().item()
