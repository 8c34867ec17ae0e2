"""Transfer as a black-box attack: train a substitute on the target's labels, attack the substitute.

Papernot, McDaniel, Goodfellow, Jha, Celik & Swami (2017; bib key papernot2017practical) attack a model they
can only ask for labels.  They label a small seed set by querying it, train a *substitute* on those labels,
and grow the set where the substitute's decision is most likely to change — Jacobian-based dataset
augmentation, their eq. (4):

    S_{ρ+1} = S_ρ ∪ { x + λ · sign(∇ₓ F_{Õ(x)}(x)) : x ∈ S_ρ },

where Õ(x) is the oracle's (the target's) label and F the substitute's output for that class.  Every new
point is labelled by one more query, so after ρ rounds the attacker has spent |S₀| · 2^ρ queries.  White-box
attacks on the substitute then transfer to the target (chapter 4 measured how often).

:func:`jacobian_augmentation` is eq. (4); :func:`oracle_labels` is the only place the target is queried;
:func:`train_substitute` runs the rounds (cached, keyed by the target's weights, the seed set and every
setting).
"""
from __future__ import annotations

from numbers import Real
from typing import Callable

import torch
from torch import nn

from ..cache import cached_model
from ..device import device_of, get_device
from ..models.recipe import describe_callable, tensor_digest
from ..modes import attack_mode
from ..train import train_classifier
from ..validation import check_images, check_positive_int
from .core import input_gradient

__all__ = ["jacobian_augmentation", "oracle_labels", "train_substitute"]


def _check_lam(lam) -> float:
    if isinstance(lam, bool) or not isinstance(lam, Real) or not 0 < float(lam) <= 1:
        raise ValueError(f"lam must be a number in (0, 1] (a step in pixel units), got {lam!r}")
    return float(lam)


def oracle_labels(target: nn.Module, x: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """The target's predicted labels for ``x``: one query per example (the only thing the attacker sees)."""
    check_images(x, "x")
    with attack_mode(target), torch.no_grad():
        device = device_of(target)
        return torch.cat([target(x[i:i + batch_size].to(device)).argmax(1).to(x.device)
                          for i in range(0, len(x), batch_size)])


def _class_score(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """F_label(x) for every example: the substitute's logit of the oracle's label (the loss to ascend)."""
    return logits.gather(1, labels[:, None])[:, 0]


def jacobian_augmentation(substitute: nn.Module, x: torch.Tensor, labels: torch.Tensor, lam: float = 0.1
                          ) -> torch.Tensor:
    """New points x + λ · sign(∇ₓ F_{label}(x)) (Papernot et al. 2017, eq. 4), clipped to the box [0, 1].

    ``labels`` are the oracle's labels of ``x``; the step moves each point along the substitute's gradient
    for that class, towards where the substitute is least sure.  Papernot et al. use λ = 0.1 on MNIST.
    """
    lam = _check_lam(lam)
    check_images(x, "x")
    device = device_of(substitute)
    with attack_mode(substitute):
        grad = input_gradient(substitute, x.to(device), labels.to(device), loss_fn=_class_score)
    return (x + lam * grad.sign().to(x.device)).clamp(0.0, 1.0)


def train_substitute(target: nn.Module, seed_images: torch.Tensor, build: Callable[[], nn.Module], *,
                     rounds: int = 6, lam: float = 0.1, epochs: int = 10, lr: float = 1e-3, seed: int = 0,
                     name: str = "substitute", verbose: bool = True) -> tuple[nn.Module, list[dict]]:
    """A substitute for ``target`` trained only on labels the target returned (Papernot et al. 2017, Alg. 1).

    Round 0 labels ``seed_images`` by querying the target and trains ``build()`` on them; each of the
    ``rounds`` further rounds doubles the set with :func:`jacobian_augmentation` (step ``lam``), labels the new
    half by querying the target and trains again from the current weights (``epochs`` epochs of Adam at
    ``lr``).  Returns ``(substitute, log)`` where ``log`` has one record per round: the set size and the
    queries spent so far (= the set size: each point was labelled once).  Cached: the key holds the target's
    weights, the seed set and every setting.
    """
    check_images(seed_images, "seed_images")
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 0:
        raise ValueError(f"rounds must be an integer >= 0, got {rounds!r}")
    epochs = check_positive_int(epochs, "epochs")
    lam = _check_lam(lam)
    config = {
        "target": tensor_digest(*target.state_dict().values()), "target_architecture": repr(target),
        "seed_images": tensor_digest(seed_images), "build": describe_callable(build),
        "rounds": rounds, "lam": lam, "epochs": epochs, "lr": lr, "seed": seed,
    }

    def seeded_build() -> nn.Module:
        torch.manual_seed(seed)
        return build()

    def train(substitute: nn.Module) -> list[dict]:
        device = get_device()
        images = seed_images.to(device)
        labels = oracle_labels(target, images)
        log = []
        for round_ in range(rounds + 1):
            if round_ > 0:   # eq. (4): one new point per old one, labelled by one query each
                new = jacobian_augmentation(substitute, images, labels, lam)
                images, labels = torch.cat([images, new]), torch.cat([labels, oracle_labels(target, new)])
            train_classifier(substitute, images, labels, epochs=epochs, lr=lr, seed=seed + round_,
                             desc=f"substitute round {round_}")
            log.append({"round": round_, "examples": len(images), "queries": len(images)})
        return log

    return cached_model(name, config, seeded_build, train, verbose=verbose, return_log=True)
