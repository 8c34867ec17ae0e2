"""The core every attack is built from: the attack contract (:func:`attack`), input gradients,
steepest-ascent directions, projection onto the ε-ball ∩ box, random starts and the black-box attacks'
clean query.  The general tensor helpers (:func:`per_example`, :func:`l2_norms`, :func:`logit_margins`,
:func:`attack_succeeded`, :func:`num_classes_of`) live in :mod:`advex.tensors` and are re-exported here.
"""
from __future__ import annotations

import functools
import inspect
from typing import Callable

import torch
from torch import nn
from torch.nn import functional as F

from ..device import device_of
from ..modes import attack_mode, eval_mode
from ..tensors import attack_succeeded, l2_norms, logit_margins, num_classes_of, per_example
from ..validation import check_eps, check_images, check_labels

__all__ = [
    "attack", "attack_mode", "attack_succeeded", "clean_query", "eval_mode", "input_gradient",
    "l2_norms", "logit_margins", "num_classes_of", "per_example", "project", "random_offset",
    "returns_on_input_device", "steepest_ascent",
]


def _on_device(result, device: torch.device):
    move = (lambda t: t.to(device) if isinstance(t, torch.Tensor) else t)
    return tuple(move(t) for t in result) if isinstance(result, tuple) else move(result)


def returns_on_input_device(function: Callable) -> Callable:
    """Decorator: ``function`` computes where it likes, its tensors come back on the device of ``x``.

    For functions outside the attack contract (e.g. the certificates of :mod:`advex.defences.smoothing`);
    an attack gets the same behaviour, and the rest of the contract, from :func:`attack`.
    """
    signature = inspect.signature(function)

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        x = signature.bind_partial(*args, **kwargs).arguments.get("x")
        result = function(*args, **kwargs)
        return _on_device(result, x.device) if isinstance(x, torch.Tensor) else result

    return wrapper


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_batch(x) -> None:
    check_images(x, "x")
    if x.dim() < 2:
        raise ValueError(f"x must be a batch (N, ...), got shape {tuple(x.shape)}")


def attack(*, eps: bool = True, labels: str = "y", labels_from: str = "model", one_label_for_all: bool = False
           ) -> Callable[[Callable], Callable]:
    """Decorator: the attack contract of :mod:`advex.attacks`, carried out once for every attack.

    The decorated function ``f(model, x, <labels>, [eps,] ...)`` first checks ``eps`` (with ``eps=True``:
    a finite number >= 0), ``x`` (a batch of finite floats in [0, 1]) and the labels (integers in
    [0, number of classes); with ``labels_from="model"`` counted by one forward pass, with
    ``labels_from="query"`` left to the attack, which checks them against its clean query, see
    :func:`clean_query`; with ``one_label_for_all``, a Python int stands for that class for every example).
    It then moves ``x`` (detached) and the labels (int64) to the model's device, runs
    the attack in :func:`~advex.modes.attack_mode` under ``torch.no_grad()`` (an attack enables gradients
    where it needs them) and returns its tensors on the device of ``x``.

    The undecorated function stays available as ``f.inner``, for internal callers (other attacks, the
    evaluator, the training losses) whose inputs are already checked and on the model's device: they call
    it inside ``attack_mode(model)`` and pay for no check and no host synchronisation.
    """
    if labels_from not in ("model", "query"):
        raise ValueError(f"labels_from must be 'model' or 'query', got {labels_from!r}")

    def decorate(inner: Callable) -> Callable:
        signature = inspect.signature(inner)

        @functools.wraps(inner)
        def checked(*args, **kwargs):
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            arguments = bound.arguments
            model, x = arguments["model"], arguments["x"]
            if one_label_for_all and _is_int(arguments[labels]) and isinstance(x, torch.Tensor) and x.dim() >= 2:
                arguments[labels] = torch.full((x.shape[0],), arguments[labels], dtype=torch.int64)
            if eps:
                arguments["eps"] = check_eps(arguments["eps"])
            _check_batch(x)
            device = device_of(model)
            x_model = x.detach().to(device)
            if labels_from == "model":
                arguments[labels] = check_labels(arguments[labels], num_classes_of(model, x_model),
                                                 batch_size=x.shape[0], name=labels).to(device)
            arguments["x"] = x_model
            with attack_mode(model), torch.no_grad():
                result = inner(*bound.args, **bound.kwargs)
            return _on_device(result, x.device)

        checked.inner = inner
        return checked

    return decorate


def clean_query(model: nn.Module, x: torch.Tensor, y, *, targeted: bool = False, name: str = "y"
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Query 1 of a black-box attack: the clean images.  Returns (outputs, labels, success, queries used).

    The labels are checked against the outputs of this query, so that validation costs the attacker no
    forward pass of its own; ``success`` says which images are adversarial already (misclassified, or in
    their target class when ``targeted``), ``used`` counts one query per image.
    """
    outputs = model(x)
    y = check_labels(y, outputs.shape[1], batch_size=len(x), name=name).to(x.device)
    success = attack_succeeded(outputs, y, targeted)
    return outputs, y, success, torch.ones(len(x), dtype=torch.int64, device=x.device)


def cross_entropy_per_example(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """J(θ, x, y) for every example: the loss an untargeted attack ascends."""
    return F.cross_entropy(logits, y, reduction="none")


def input_gradient(model: nn.Module, x: torch.Tensor, y: torch.Tensor, targeted: bool = False,
                   loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = cross_entropy_per_example
                   ) -> torch.Tensor:
    """∇ₓ of the per-example loss to *increase*: ``loss_fn(logits, y)`` (default cross-entropy), negated if targeted.

    The model's mode is left alone (call it inside :func:`attack_mode`); works under
    ``torch.no_grad()``; the result carries no autograd history.  Computed on the model's device
    (``x`` and ``y`` are moved there), returned on the device of ``x``.
    """
    device = device_of(model)
    with torch.enable_grad():
        x_model = x.detach().to(device).clone().requires_grad_(True)
        loss = loss_fn(model(x_model), y.to(device)).sum()
        (grad,) = torch.autograd.grad(-loss if targeted else loss, x_model)
    return grad.to(x.device)


def steepest_ascent(grad: torch.Tensor, norm: str) -> torch.Tensor:
    """The unit-norm direction d maximising ⟨∇, d⟩: sign(∇) for L∞, ∇/‖∇‖₂ for L2."""
    if norm == "inf":
        return grad.sign()
    return grad / per_example(l2_norms(grad).clamp_min(1e-12), grad)


def project(x_adv: torch.Tensor, x: torch.Tensor, eps: float, norm: str) -> torch.Tensor:
    """Π onto {x' : ‖x' − x‖ ≤ ε} ∩ [0, 1]ᵈ (clipping to the box after the ball never leaves the ball)."""
    delta = x_adv - x
    if norm == "inf":
        delta = delta.clamp(-eps, eps)
    else:
        delta = delta * per_example((eps / l2_norms(delta).clamp_min(1e-12)).clamp(max=1.0), delta)
    return (x + delta).clamp(0.0, 1.0)


def random_offset(x: torch.Tensor, eps: float, norm: str, generator: torch.Generator) -> torch.Tensor:
    """A uniform random point of the ε-ball (drawn on the CPU so a seed gives the same start on every device)."""
    shape = x.shape
    if norm == "inf":
        offset = (2 * torch.rand(shape, generator=generator) - 1) * eps
    else:  # uniform in the L2 ball: Gaussian direction, radius ε·u^(1/d)
        direction = torch.randn(shape, generator=generator)
        direction = direction / per_example(l2_norms(direction).clamp_min(1e-12), direction)
        radius = eps * torch.rand(shape[0], generator=generator) ** (1.0 / x[0].numel())
        offset = direction * per_example(radius, direction)
    return offset.to(device=x.device, dtype=x.dtype)
