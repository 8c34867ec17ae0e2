"""Everything the book measures about a model: predictions, accuracy, loss, error and confidence
under an attack, robust accuracy (per-example minimum over attacks, or a fast PGD evaluator),
rubbish rates and the smallest perturbation on a grid that flips a prediction.

Attacks only return adversarial batches; every statistic is computed here.  Each function runs the
model in eval mode (every sub-module gets its own mode back afterwards), on the model's device,
in batches of ``batch_size``.  Evaluation is always fp32: an enclosing autocast (e.g. bf16 training)
is switched off inside every function here, attacks included.
"""
from __future__ import annotations

import contextlib
import functools
import math
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from .attacks.gradient import pgd_with_stats
from .device import device_of
from .modes import attack_mode, eval_mode
from .progress import progress
from .tensors import attack_succeeded, l2_norms, num_classes_of
from .validation import check_eps, check_images, check_labels, check_non_negative, check_norm, check_positive_int

__all__ = ["Attack", "RobustEvaluation", "accuracy", "accuracy_under_attack", "correct", "error_and_confidence",
           "logits", "mean_loss", "median_flip_size", "minimal_flip_size", "pixels_changed", "pixels_to_fool",
           "predict", "robust_accuracy", "rubbish_rate", "threat_model_violation", "THREAT_MODEL_TOLERANCE"]

#: How far outside the box and the ε-ball an attack's output may lie before :func:`robust_accuracy` refuses it:
#: float32 rounding of x + δ and of a norm, not a perturbation (the smallest grey level is 1/255 ≈ 0.004).
THREAT_MODEL_TOLERANCE = 1e-5

#: An attack as :mod:`advex.evaluate` calls it: ``attack(model, x, y) -> x_adv`` (e.g. a ``functools.partial``).
Attack = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]


def _in_fp32(function: Callable) -> Callable:
    """Run ``function`` with autocast off on the CPU and on CUDA, whatever context encloses it."""
    @functools.wraps(function)
    def fp32_function(*args, **kwargs):
        with contextlib.ExitStack() as stack:
            stack.enter_context(torch.autocast("cpu", enabled=False))
            if torch.cuda.is_available():
                stack.enter_context(torch.autocast("cuda", enabled=False))
            return function(*args, **kwargs)
    return fp32_function


def _batches(n: int, batch_size: int):
    return range(0, n, check_positive_int(batch_size, "batch_size"))


@_in_fp32
@torch.no_grad()
def logits(model: nn.Module, images: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """Raw outputs of ``model`` on ``images`` (batched, eval mode, computed on the model's device),
    returned on the device of ``images``."""
    device = device_of(model)
    with eval_mode(model):
        out = torch.cat([model(images[i:i + batch_size].to(device)) for i in _batches(len(images), batch_size)])
    return out.to(images.device)


def predict(model: nn.Module, images: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """Softmax probabilities of ``model`` on ``images`` (batched, eval mode), on the device of ``images``."""
    return F.softmax(logits(model, images, batch_size), dim=1)


def _labels(model, images, labels) -> torch.Tensor:
    return check_labels(labels, num_classes_of(model, images), batch_size=images.shape[0], name="labels")


def _correct(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Per example, on the device of ``images``: is the top-1 prediction the label?  (Arguments already checked.)"""
    return logits(model, images, batch_size).argmax(1) == labels.to(images.device)


def correct(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """Per example: is the top-1 prediction the label?  A bool tensor on the CPU."""
    labels = _labels(model, images, labels)
    return _correct(model, images, labels, batch_size).cpu()


def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 1000) -> float:
    """Top-1 accuracy of ``model`` (a fraction in [0, 1])."""
    return correct(model, images, labels, batch_size).float().mean().item()


def mean_loss(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 1000) -> float:
    """Mean cross-entropy of ``model`` on a data set (e.g. at initialisation: expect ln(#classes))."""
    check_images(images, "images")
    labels = _labels(model, images, labels).to(images.device)
    return F.cross_entropy(logits(model, images, batch_size), labels, reduction="mean").item()


@_in_fp32
def error_and_confidence(model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
                         attack: Attack | None = None, batch_size: int = 1000) -> tuple[float, float]:
    """Error of ``model`` on ``attack(model, x, y)`` (clean data when None) and its mean confidence on its mistakes.

    The confidence is the probability of the predicted (wrong) class, as in Goodfellow et al.
    (2015, §4); NaN when there are no mistakes.
    """
    labels = _labels(model, images, labels)
    wrong_confidence = []
    for i in _batches(len(images), batch_size):
        x, y = images[i:i + batch_size], labels[i:i + batch_size]
        x = attack(model, x, y) if attack is not None else x
        confidence, guess = predict(model, x, batch_size).cpu().max(1)
        wrong_confidence.append(confidence[guess != y.cpu()])
    wrong = torch.cat(wrong_confidence)
    return len(wrong) / len(images), (wrong.mean().item() if len(wrong) else math.nan)


@_in_fp32
def accuracy_under_attack(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, attack: Callable,
                          eps_values: Sequence[float], batch_size: int = 1000) -> list[float]:
    """Accuracy on ``attack(model, x, y, eps)`` for each ε of ``eps_values`` (one curve of a figure)."""
    return [accuracy(model, attack(model, images, labels, check_eps(eps, "eps_values")), labels, batch_size)
            for eps in eps_values]


def rubbish_rate(model: nn.Module, inputs: torch.Tensor, threshold: float = 0.5, *, sigmoid: bool = False,
                 batch_size: int = 1000) -> tuple[float, float, torch.Tensor]:
    """How often a model calls rubbish (e.g. Gaussian noise) a class (Goodfellow et al. 2015, App. A).

    An input is "classified" when the top class gets probability > ``threshold`` (softmax outputs,
    or independent sigmoids with ``sigmoid=True``).  Returns (fraction classified, mean confidence
    on those, the classes given to them, on the CPU).
    """
    out = logits(model, inputs, batch_size)
    probabilities = (torch.sigmoid(out) if sigmoid else F.softmax(out, dim=1)).cpu()
    confidence, guess = probabilities.max(1)
    fooled = confidence > threshold
    mean_confidence = confidence[fooled].mean().item() if fooled.any() else math.nan
    return fooled.float().mean().item(), mean_confidence, guess[fooled]


# --------------------------------------------------------------------------- robust accuracy

@dataclass
class RobustEvaluation:
    """The outcome of :func:`robust_accuracy`."""

    robust_accuracy: float   # fraction of all examples classified correctly under every attack
    clean_accuracy: float    # fraction classified correctly without attack
    robust: torch.Tensor     # per example: True when robust (on the CPU)
    gradients: int           # per-example input gradients the PGD evaluator computed (0 for other attacks)
    seconds: float


def _default_batch_size(model: nn.Module) -> int:
    # a GPU is kept busy only by large batches; two CPU cores gain nothing beyond ~1000
    return 10_000 if device_of(model).type == "cuda" else 1000


def _attack_name(attack: Attack, index: int) -> str:
    """How an error message names an attack: ``attacks[i]`` and what it is (a partial shows its settings)."""
    if isinstance(attack, functools.partial):
        settings = ", ".join(f"{k}={v!r}" for k, v in attack.keywords.items())
        what = f"{getattr(attack.func, '__name__', repr(attack.func))}({settings})"
    else:
        what = getattr(attack, "__qualname__", None) or repr(attack)
    return f"attacks[{index}] ({what})"


def threat_model_violation(x: torch.Tensor, x_adv: torch.Tensor, eps: float | None, norm: str = "inf"
                           ) -> tuple[str, float] | None:
    """The worst way ``x_adv`` leaves the threat model around ``x``, or None when it stays inside.

    The threat model is the box [0, 1]ᵈ and, when ``eps`` is given, the ball ‖x_adv − x‖ ≤ ε in ``norm``
    ('inf' or '2'); both within :data:`THREAT_MODEL_TOLERANCE`.  Returns (a sentence saying where and by how
    much, the excess), the larger excess of box and ball.
    """
    tolerance = THREAT_MODEL_TOLERANCE
    x_adv, x = x_adv.detach(), x.detach().to(x_adv.device)
    if not bool(torch.isfinite(x_adv).all()):
        return "it contains NaN or infinite values", math.inf
    below, above = (-x_adv.min()).item(), (x_adv.max() - 1).item()
    worst: tuple[str, float] | None = None
    if max(below, above) > tolerance:
        value = x_adv.min().item() if below >= above else x_adv.max().item()
        worst = (f"a pixel of {value:.6g} lies outside the box [0, 1] (by {max(below, above):.3g})", max(below, above))
    if eps is not None:
        delta = (x_adv - x).flatten(1)
        sizes = delta.abs().amax(1) if norm == "inf" else l2_norms(delta)
        largest = sizes.max().item() if len(sizes) else 0.0
        excess = largest - eps
        if excess > tolerance * max(1.0, eps) and (worst is None or excess > worst[1]):
            ball = "L∞" if norm == "inf" else "L2"
            example = int(sizes.argmax())
            worst = (f"example {example} lies at {ball} distance {largest:.6g} from x, outside the ε-ball of radius "
                     f"{eps:g} (by {excess:.3g})", excess)
    return worst


def _check_attack_output(attack: Attack, index: int, x: torch.Tensor, x_adv, eps: float | None, norm: str) -> None:
    if not isinstance(x_adv, torch.Tensor) or x_adv.shape != x.shape:
        got = tuple(x_adv.shape) if isinstance(x_adv, torch.Tensor) else type(x_adv).__name__
        raise ValueError(f"{_attack_name(attack, index)} must return a batch shaped like x {tuple(x.shape)}, "
                         f"got {got}")
    violation = threat_model_violation(x, x_adv, eps, norm)
    if violation is not None:
        ball = "L∞" if norm == "inf" else "L2"
        raise ValueError(f"{_attack_name(attack, index)} left the threat model "
                         f"({'box [0, 1]' if eps is None else f'box [0, 1] and {ball} ball of radius {eps:g}'}): "
                         f"{violation[0]}; an attack must clip its result to the box and project it onto the ball")


@_in_fp32
def robust_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float | None = None, *,
                    attacks: Attack | Sequence[Attack] | None = None, norm="inf", steps: int = 40,
                    step_size: float | None = None, restarts: int = 1, random_start: bool = True,
                    early_stop: bool = True, batch_size: int | None = None, seed: int = 0) -> RobustEvaluation:
    """Accuracy of ``model`` when every example faces the attack(s).

    With ``attacks`` (one ``attack(model, x, y) -> x_adv`` or a list of them): an example is robust
    when it is classified correctly clean *and* on the output of every attack — the per-example
    minimum over the attacks.  ``eps`` and ``norm`` are then the threat model: every attack's output must lie
    in the box [0, 1] and (when ``eps`` is given) in the ``norm`` ball of radius ``eps`` around ``x``, within
    float rounding (:data:`THREAT_MODEL_TOLERANCE`); an attack that leaves it raises ``ValueError`` naming the
    attack and its worst violation, so an invalid attack cannot lower the number.  The PGD arguments are unused.

    Without ``attacks``: PGD (see :func:`advex.attacks.pgd` for ``eps`` (default 0), ``norm``, ``steps``,
    ``step_size``, ``restarts``, ``random_start``, ``seed``), evaluated fast or plainly:

    * ``early_stop=True``: misclassified examples are never attacked, each example is dropped at its
      first successful iterate, restarts go only to the survivors;
    * ``early_stop=False``: the plain loop, every example for all ``steps`` × ``restarts`` steps.

    Both keep each example's best iterate, draw the same random starts and count a success at any
    step, so they reach the same verdict on every example.  On the CPU that holds bit for bit (the
    property tests check it); on CUDA, kernels whose rounding depends on the batch size can flip
    an example that sits exactly on the decision boundary.

    ``batch_size`` defaults to 10,000 on CUDA (a GPU needs large batches) and 1,000 on the CPU.
    """
    check_images(x, "x")
    y = check_labels(y, num_classes=num_classes_of(model, x), batch_size=x.shape[0], name="y")
    batch_size = _default_batch_size(model) if batch_size is None else check_positive_int(batch_size, "batch_size")
    if attacks is None:  # validate up front, so that a bad argument fails even where no example needs attacking
        eps, norm = 0.0 if eps is None else check_eps(eps), check_norm(norm)
        check_positive_int(steps, "steps"), check_positive_int(restarts, "restarts")
        if step_size is not None:
            check_non_negative(step_size, "step_size")
    else:
        eps, norm = None if eps is None else check_eps(eps), check_norm(norm)
        attacks = [attacks] if callable(attacks) else list(attacks)
        if not attacks or not all(callable(a) for a in attacks):
            raise ValueError("attacks must be a callable attack(model, x, y) -> x_adv or a non-empty list of them")
    device = device_of(model)
    start = time.perf_counter()
    robust, clean, gradients = [], [], 0
    for first in progress(range(0, len(x), batch_size), desc="robust accuracy"):
        xb, yb = x[first:first + batch_size].detach().to(device), y[first:first + batch_size].to(device)
        if attacks is not None:
            # the attacks are the caller's and so may be the model (chapter 6's defences draw noise on every
            # forward pass): its outputs are judged through the public, checking correct(), whose passes are
            # part of the random stream a seeded run's results come from
            correct_b = correct(model, xb, yb, batch_size).to(device)
            survived = correct_b.clone()
            for index, attack in enumerate(attacks):
                x_adv = attack(model, xb, yb)
                _check_attack_output(attack, index, xb, x_adv, eps, norm)
                survived &= correct(model, x_adv, yb, batch_size).to(device)
        else:
            correct_b = _correct(model, xb, yb, batch_size)
            survived = correct_b.clone()
            if bool(correct_b.any()) or not early_stop:
                # the whole batch goes in so that random starts do not depend on which examples are skipped
                with attack_mode(model), torch.no_grad():
                    _, success, used = pgd_with_stats.inner(
                        model, xb, yb, eps, norm=norm, steps=steps, step_size=step_size, random_start=random_start,
                        restarts=restarts, early_stop=early_stop, seed=seed + first, already_lost=~correct_b)
                survived &= ~success
                gradients += used
        robust.append(survived.cpu())
        clean.append(correct_b.cpu())
    robust_all, clean_all = torch.cat(robust), torch.cat(clean)
    return RobustEvaluation(robust_all.float().mean().item(), clean_all.float().mean().item(), robust_all,
                            gradients, time.perf_counter() - start)


# --------------------------------------------------------------------------- how large must a perturbation be?

@_in_fp32
@torch.no_grad()
def minimal_flip_size(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    direction: torch.Tensor,
    sizes: Sequence[float],
    *,
    target: torch.Tensor | None = None,
    batch_size: int = 2000,
) -> torch.Tensor:
    """Smallest size on the grid ``sizes`` at which clip₍₀,₁₎(x + size · direction) is misclassified.

    Misclassified means: predicted class ≠ ``y`` (untargeted), or = ``target``
    when given.  ``direction`` has the shape of ``x`` (e.g. :func:`fgsm_direction`
    or unit-max templates).  Returns one value per example, ``inf`` where no
    size on the grid succeeds; the resolution is the grid's spacing.
    """
    check_images(x, "x")
    sizes = [check_eps(s, "sizes") for s in sizes]
    if not sizes or any(b <= a for a, b in zip(sizes, sizes[1:])):
        raise ValueError("sizes must be a non-empty, strictly increasing sequence of numbers >= 0")
    if direction.shape != x.shape:
        raise ValueError(f"direction must have the shape of x {tuple(x.shape)}, got {tuple(direction.shape)}")
    num_classes = num_classes_of(model, x)
    y = check_labels(y, num_classes, batch_size=x.shape[0], name="y")
    if target is not None:
        target = check_labels(target, num_classes, batch_size=x.shape[0], name="target")
    device = device_of(model)   # everything stays on the model's device until the end
    x_on, direction_on = x.to(device), direction.to(device)
    goal = (target if target is not None else y).to(device)
    result = torch.full((x.shape[0],), math.inf, device=device)
    for size in sizes:
        pending = torch.isinf(result).nonzero().flatten()
        if len(pending) == 0:
            break
        moved = (x_on[pending] + size * direction_on[pending]).clamp(0.0, 1.0)
        success = attack_succeeded(logits(model, moved, batch_size), goal[pending], targeted=target is not None)
        result[pending[success]] = size
    return result.to(x.device)


def pixels_changed(x: torch.Tensor, x_adv: torch.Tensor) -> torch.Tensor:
    """Per image of an (N, C, H, W) batch: how many pixel positions differ in any channel (L0 over pixels)."""
    if x.shape != x_adv.shape or x.dim() != 4:
        raise ValueError(f"x and x_adv must be (N, C, H, W) batches of one shape, got {tuple(x.shape)} and {tuple(x_adv.shape)}")
    return (x.cpu() != x_adv.cpu()).any(1).flatten(1).sum(1)


def pixels_to_fool(model: nn.Module, x: torch.Tensor, x_adv: torch.Tensor, y: torch.Tensor,
                   batch_size: int = 1000) -> torch.Tensor:
    """Per image: the pixels an L0 attack changed where ``x_adv`` fools the model (0 where ``x`` already
    did), ``inf`` where it does not fool it.  Float, on the CPU."""
    y = check_labels(y, num_classes_of(model, x_adv), batch_size=x_adv.shape[0], name="y")
    changed = pixels_changed(x, x_adv).double()
    return torch.where(correct(model, x_adv, y, batch_size), torch.full_like(changed, math.inf), changed)


def median_flip_size(sizes: torch.Tensor) -> float:
    """Median of :func:`minimal_flip_size` results (``inf`` counts as larger than every size)."""
    return float(sizes.double().median()) if len(sizes) else math.nan


