"""Sanity checks of a robustness evaluation (Carlini et al. 2019, "On evaluating adversarial robustness", §5).

A defence that hides its gradients looks robust to gradient attacks without being robust.  None of
these checks proves robustness; each one catches a way in which an evaluation can mislead:

* robust accuracy must fall as ε grows (:func:`monotone_in_eps`) and reach ≈ 0 at a large budget
  (:func:`reaches_zero`): at ε = 0.5 L∞ every [0, 1] image's ball holds the mid-grey image, so no
  classifier keeps more than one class's share of the examples, and a working attack with that much
  room is expected to leave about none; else the attack is broken or the gradients are masked;
* more effort (more steps, more restarts) must not help the model (:func:`more_effort_does_not_help`),
  and should not hurt it much either: if it does, the base attack had not converged and the number it
  reports is too high (:func:`attack_converged`);
* an iterative attack must do at least as well as a single step (:func:`iterative_beats_single_step`),
  white-box attacks at least as well as attacks that ignore the gradient
  (:func:`gradient_free_not_stronger`) or that take it from another model (:func:`white_box_beats_transfer`);
  otherwise the gradient does not point towards the adversarial examples that exist: gradient masking.

:func:`run_sanity_checks` runs them all and returns a :class:`SanityReport`.  Attacks are callables
``attack(model, x, y) -> x_adv`` (:data:`advex.evaluate.Attack`, e.g. a ``functools.partial`` with ε
inside) or factories ``make_attack(eps) -> attack``; every accuracy is a robust accuracy from
:func:`advex.evaluate.robust_accuracy` (correct on the clean input *and* on every attack's output).
Tolerances are absolute fractions of the examples: on n examples, 1/n is one example.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import torch
from torch import nn

from .attacks.gradient import fgsm, pgd
from .evaluate import Attack, correct, robust_accuracy
from .validation import check_eps, check_images, check_non_negative, check_positive_int

__all__ = [
    "Check", "SanityReport", "accuracy_vs_eps", "attack_converged", "fgsm_attack", "gradient_free_not_stronger",
    "iterative_beats_single_step", "monotone_in_eps", "more_effort_does_not_help", "pgd_attack", "reaches_zero",
    "run_sanity_checks", "white_box_beats_transfer",
]

#: An attack for a budget: ``make_attack(eps) -> attack(model, x, y) -> x_adv``.
AttackFactory = Callable[[float], Attack]

#: Default tolerance of every check: two examples in a hundred (noise between attack runs, not a finding).
TOLERANCE = 0.02


@dataclass
class Check:
    """One sanity check: its name, whether it passed, a sentence saying what was found, and the numbers."""

    name: str
    passed: bool
    detail: str
    values: dict = field(default_factory=dict)


@dataclass
class SanityReport:
    """Every check of :func:`run_sanity_checks` and the robust accuracies they were computed from."""

    checks: list[Check]
    accuracies: dict[str, float]   # robust accuracy under each attack (and "clean"), by a readable name
    eps: float

    @property
    def passed(self) -> bool:
        """True when every check passed."""
        return all(check.passed for check in self.checks)

    def failed(self) -> list[Check]:
        """The checks that failed (empty when the evaluation passed)."""
        return [check for check in self.checks if not check.passed]

    def __getitem__(self, name: str) -> Check:
        for check in self.checks:
            if check.name == name:
                return check
        raise KeyError(f"no check named {name!r}; the checks are {[c.name for c in self.checks]}")

    def rows(self) -> list[dict[str, str]]:
        """One row per check: {'check', 'result' ('pass' or 'FAIL'), 'detail'} (e.g. for a pandas DataFrame)."""
        return [{"check": c.name, "result": "pass" if c.passed else "FAIL", "detail": c.detail} for c in self.checks]

    def table(self) -> str:
        """The checks as a Markdown table (a notebook shows it with ``IPython.display.Markdown``)."""
        lines = ["| check | result | detail |", "|---|---|---|"]
        lines += [f"| {r['check']} | {r['result']} | {r['detail'].replace('|', '/')} |" for r in self.rows()]
        return "\n".join(lines)

    def accuracy_table(self) -> str:
        """The robust accuracies behind the checks, as a Markdown table."""
        lines = ["| attack | robust accuracy |", "|---|---|"]
        lines += [f"| {name} | {value:.3f} |" for name, value in self.accuracies.items()]
        return "\n".join(lines)

    def _repr_markdown_(self) -> str:
        verdict = "every check passed" if self.passed else f"{len(self.failed())} of {len(self.checks)} checks FAILED"
        return f"**Sanity checks at ε = {self.eps:g}: {verdict}**\n\n{self.table()}\n\n{self.accuracy_table()}"


# --------------------------------------------------------------------------- attacks as the checks call them

def pgd_attack(eps: float, *, steps: int = 20, restarts: int = 1, seed: int = 0) -> Attack:
    """PGD L∞ at ``eps`` as an ``attack(model, x, y)`` (:func:`advex.attacks.pgd`, default step size 2.5 ε / steps).

    Early stopping is on: it changes what the attack costs, not which examples it fools.
    """
    eps, steps, restarts = check_eps(eps), check_positive_int(steps, "steps"), check_positive_int(restarts, "restarts")
    return functools.partial(pgd, eps=eps, steps=steps, restarts=restarts, seed=seed, early_stop=True)


def fgsm_attack(eps: float) -> Attack:
    """FGSM at ``eps`` as an ``attack(model, x, y)``: the single-step baseline."""
    return functools.partial(fgsm, eps=check_eps(eps))


def _robust(model: nn.Module, x: torch.Tensor, y: torch.Tensor, attacks: Sequence[Attack]) -> torch.Tensor:
    """Per example (bool, CPU): correct clean and on every attack's output."""
    return robust_accuracy(model, x, y, attacks=list(attacks)).robust


def _fraction(mask: torch.Tensor) -> float:
    return mask.float().mean().item()


def accuracy_vs_eps(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps_values: Sequence[float],
                    make_attack: AttackFactory) -> list[float]:
    """Robust accuracy under ``make_attack(eps)`` for each ε of ``eps_values`` (one model evaluation per ε)."""
    eps_values = _check_grid(eps_values, "eps_values")
    return [_fraction(_robust(model, x, y, [make_attack(eps)])) for eps in eps_values]


# --------------------------------------------------------------------------- the checks, on numbers

def monotone_in_eps(accuracies: Sequence[float], tolerance: float = TOLERANCE, *,
                    eps_values: Sequence[float] | None = None) -> Check:
    """Robust accuracy must not rise as ε grows: a larger ball holds every point of a smaller one.

    Fails when some accuracy exceeds one at a smaller ε by more than ``tolerance`` (the largest rise
    over *any* earlier ε, so a slow creep counts as well as a jump).  A rise means the attack does
    not use the room it is given: a step size that does not scale with ε, or masked gradients.
    """
    accuracies, tolerance = [float(a) for a in accuracies], _check_tolerance(tolerance)
    if not accuracies:
        raise ValueError("accuracies must hold at least one value")
    if eps_values is not None and len(eps_values) != len(accuracies):
        raise ValueError(f"eps_values must have one value per accuracy ({len(accuracies)}), got {len(eps_values)}")
    points = ([f"point {i}" for i in range(len(accuracies))] if eps_values is None
              else [f"ε = {e:g}" for e in eps_values])
    rise, where, lowest = 0.0, None, accuracies[0]
    for i, accuracy in enumerate(accuracies[1:], start=1):
        if accuracy - lowest > rise:
            rise, where = accuracy - lowest, i
        lowest = min(lowest, accuracy)
    values = {"eps": None if eps_values is None else list(eps_values), "accuracy": accuracies, "largest_rise": rise}
    curve = ", ".join(f"{a:.2f} at {point}" for point, a in zip(points, accuracies))
    if rise <= tolerance:
        return Check("monotone_in_eps", True, f"robust accuracy does not rise with ε: {curve}", values)
    return Check("monotone_in_eps", False,
                 f"robust accuracy rises with ε, by {rise:.2f} > {tolerance:g} up to {accuracies[where]:.2f} at "
                 f"{points[where]} ({curve}): a larger budget cannot help the model, so the attack "
                 "fails to use it (a step size that does not scale with ε, or masked gradients)", values)


def reaches_zero(accuracy: float, tolerance: float = TOLERANCE, *, eps: float | None = None) -> Check:
    """At a large budget, robust accuracy must be ≈ 0 (at most ``tolerance``).

    The check rests on a bound and an expectation.  The bound: at ε = 0.5 L∞ every [0, 1] image's ball
    contains the mid-grey image (every pixel ½), which gets one label, so no classifier can keep more than
    the share of the examples whose class is that label (about a tenth on MNIST); only at ε = 1 does the
    ball hold every image.  The expectation, stricter than the bound: with that much room a working attack
    finds an adversarial example for nearly every input (Carlini et al. 2019 ask unbounded attacks for
    100% success).  An attack that leaves many examples standing is broken, or the model hides its gradients.
    """
    accuracy, tolerance = float(accuracy), _check_tolerance(tolerance)
    at = "" if eps is None else f" at ε = {eps:g}"
    values = {"eps": eps, "accuracy": accuracy}
    if accuracy <= tolerance:
        return Check("reaches_zero", True, f"the large-budget attack{at} leaves {accuracy:.2f} robust accuracy", values)
    return Check("reaches_zero", False,
                 f"the large-budget attack{at} still leaves {accuracy:.2f} > {tolerance:g} robust accuracy, where "
                 "a working attack leaves about none (at ε = 0.5 L∞ every input's ball holds the mid-grey image, "
                 "so at most one class's share can be robust): the attack is broken or the gradients are masked",
                 values)


def more_effort_does_not_help(base: float, more: float, tolerance: float = TOLERANCE, *,
                              effort: str = "4× the steps", name: str = "more_steps_do_not_help") -> Check:
    """More attack effort must not *raise* robust accuracy by more than ``tolerance``.

    ``base`` and ``more``: robust accuracies under the attack and under the attack with more effort
    (``effort`` says which, for the message).  A rise means the attack is erratic: randomness in the
    model or the attack, or a step that overshoots.
    """
    base, more, tolerance = float(base), float(more), _check_tolerance(tolerance)
    values = {"base": base, "more_effort": more}
    if more <= base + tolerance:
        return Check(name, True, f"{effort}: robust accuracy {base:.2f} → {more:.2f}, no rise", values)
    return Check(name, False,
                 f"{effort} raises robust accuracy from {base:.2f} to {more:.2f} (> {tolerance:g}): more effort "
                 "should never help the model, so the attack is erratic (a randomised model, or a step size "
                 "that overshoots); look for randomness or masked gradients", values)


def attack_converged(base: float, more: float, tolerance: float = TOLERANCE, *,
                     effort: str = "4× the steps", name: str = "converged_in_steps") -> Check:
    """More attack effort must not *lower* robust accuracy by more than ``tolerance`` either.

    If it does, the base attack had not converged and the robust accuracy it reports is too high:
    report the stronger number and raise the effort until the accuracy stops falling.
    """
    base, more, tolerance = float(base), float(more), _check_tolerance(tolerance)
    values = {"base": base, "more_effort": more}
    if base - more <= tolerance:
        return Check(name, True, f"{effort}: robust accuracy {base:.2f} → {more:.2f}, converged", values)
    return Check(name, False,
                 f"not converged: {effort} lowers robust accuracy from {base:.2f} to {more:.2f} (by "
                 f"{base - more:.2f} > {tolerance:g}), so the base attack overstates robustness; report the "
                 "stronger number and raise the effort until it stops falling", values)


def iterative_beats_single_step(iterative: float, single_step: float, tolerance: float = TOLERANCE) -> Check:
    """An iterative attack must leave no more robust accuracy than a single step (FGSM), up to ``tolerance``.

    Many small steps follow the loss where one large step cannot; when the single step wins, the
    loss surface near the data misleads the iterative attack (gradient masking), or it is misconfigured.
    """
    iterative, single_step, tolerance = float(iterative), float(single_step), _check_tolerance(tolerance)
    values = {"iterative": iterative, "single_step": single_step}
    if iterative <= single_step + tolerance:
        return Check("iterative_beats_single_step", True,
                     f"iterative {iterative:.2f} ≤ single-step {single_step:.2f} robust accuracy", values)
    return Check("iterative_beats_single_step", False,
                 f"the single-step attack ({single_step:.2f} robust accuracy) beats the iterative one "
                 f"({iterative:.2f}, by more than {tolerance:g}): gradient masking is likely (a gradient that "
                 "misleads near the data), or the iterative attack is misconfigured", values)


def gradient_free_not_stronger(white_box: float, gradient_free: float, tolerance: float = TOLERANCE, *,
                               only_gradient_free: int | None = None) -> Check:
    """Attacks that never look at the gradient must not beat the white-box attacks by more than ``tolerance``.

    A white-box attacker knows everything a gradient-free one does, and the gradient too; if the
    gradient-free attack wins, the gradient does not point towards adversarial examples that
    exist: gradient masking.  ``only_gradient_free``: examples only the gradient-free attacks broke.
    """
    white_box, gradient_free, tolerance = float(white_box), float(gradient_free), _check_tolerance(tolerance)
    values = {"white_box": white_box, "gradient_free": gradient_free, "only_gradient_free": only_gradient_free}
    broken = "" if only_gradient_free is None else f"; {only_gradient_free} examples fall only to them"
    if gradient_free >= white_box - tolerance:
        return Check("gradient_free_not_stronger", True,
                     f"gradient-free {gradient_free:.2f} ≥ white-box {white_box:.2f} robust accuracy{broken}", values)
    return Check("gradient_free_not_stronger", False,
                 f"gradient masking: the gradient-free attacks leave {gradient_free:.2f} robust accuracy, the "
                 f"white-box attacks {white_box:.2f} (gap {white_box - gradient_free:.2f} > {tolerance:g}{broken}): "
                 "the gradient does not lead to adversarial examples that exist", values)


def white_box_beats_transfer(white_box: float, transfer: float, tolerance: float = TOLERANCE) -> Check:
    """White-box attacks must leave no more robust accuracy than transfer attacks (crafted on another model).

    The gradient of the model itself should be a better guide than a surrogate's; when it is not,
    the model's own gradient is masked.
    """
    white_box, transfer, tolerance = float(white_box), float(transfer), _check_tolerance(tolerance)
    values = {"white_box": white_box, "transfer": transfer}
    if white_box <= transfer + tolerance:
        return Check("white_box_beats_transfer", True,
                     f"white-box {white_box:.2f} ≤ transfer {transfer:.2f} robust accuracy", values)
    return Check("white_box_beats_transfer", False,
                 f"transfer attacks ({transfer:.2f} robust accuracy) beat the white-box ones ({white_box:.2f}, by "
                 f"more than {tolerance:g}): a surrogate's gradient guides better than the model's own, which is "
                 "masked", values)


# --------------------------------------------------------------------------- the whole checklist

def run_sanity_checks(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, *,
                      gradient_free: Mapping[str, Attack], white_box: Mapping[str, Attack] | None = None,
                      transfer: Mapping[str, Attack] | None = None, single_step: Attack | None = None,
                      make_pgd: Callable[..., Attack] = pgd_attack, steps: int = 20, effort: int = 4,
                      large_eps: float = 0.5, eps_grid: Sequence[float] | None = None,
                      tolerance: float = TOLERANCE) -> SanityReport:
    """Run the checklist on ``model`` at budget ``eps`` (L∞ by default) and report every check.

    gradient_free: name → attack that never uses the gradient (e.g. a Square attack at ``eps``); required.
    white_box:     name → further white-box attacks at ``eps`` (e.g. APGD); PGD is always run.
    transfer:      name → attacks crafted on another model (optional; adds :func:`white_box_beats_transfer`).
    single_step:   the single-step baseline (default FGSM at ``eps``).
    make_pgd:      ``make_pgd(eps, steps=..., restarts=...) -> attack``, the iterative attack whose
                   effort is varied (default :func:`pgd_attack`).
    steps, effort: the base attack runs ``steps`` steps and 1 restart; it is compared with ``effort``×
                   the steps and with ``effort`` restarts.
    large_eps:     a budget at which robust accuracy must reach ≈ 0 (default 0.5, L∞ on [0, 1]).
    eps_grid:      the budgets of the ε curve (default ε/4, ε/2, 2ε below ``large_eps``); ``eps`` and
                   ``large_eps`` are always added, and ε = 0 stands for the clean accuracy.
    tolerance:     the noise each comparison allows (a fraction of the examples).

    Cost, in base PGD runs (``steps`` gradients per example): one per budget of the curve (``eps`` and
    ``large_eps`` included), ``effort`` for the longer run, at most ``effort`` for the restarts (early
    stopping attacks only the survivors), plus one call of the single-step and of each given attack.
    The white-box verdict is the per-example minimum over every white-box attack run here (PGD at
    every effort and ``white_box``), the gradient-free one over ``gradient_free``.
    """
    check_images(x, "x")
    eps, large_eps = check_eps(eps), check_eps(large_eps, "large_eps")
    if large_eps <= eps:
        raise ValueError(f"large_eps must be > eps ({eps:g}), got {large_eps:g}")
    steps, effort = check_positive_int(steps, "steps"), check_positive_int(effort, "effort")
    tolerance = _check_tolerance(tolerance)
    if effort < 2:
        raise ValueError(f"effort must be an integer >= 2 (the multiple of the base effort to compare), got {effort}")
    gradient_free = _check_attacks(gradient_free, "gradient_free", required=True)
    white_box, transfer = _check_attacks(white_box, "white_box"), _check_attacks(transfer, "transfer")
    grid = _default_grid(eps, large_eps) if eps_grid is None else _check_grid(eps_grid, "eps_grid")
    grid = sorted({*grid, eps, large_eps})

    clean = correct(model, x, y)
    runs: dict[tuple, torch.Tensor] = {}   # PGD runs by (ε, steps, restarts): the curve and the checks share them

    def pgd_robust(budget: float, n_steps: int, restarts: int) -> torch.Tensor:
        if (budget, n_steps, restarts) not in runs:
            attack = make_pgd(budget, steps=n_steps, restarts=restarts)
            runs[budget, n_steps, restarts] = _robust(model, x, y, [attack])
        return runs[budget, n_steps, restarts]

    grid = [e for e in grid if e > 0]      # ε = 0 is the clean accuracy, no attack run needed
    curve = [_fraction(clean)] + [_fraction(pgd_robust(e, steps, 1)) for e in grid]
    base = pgd_robust(eps, steps, 1)
    more_steps, more_restarts = pgd_robust(eps, effort * steps, 1), pgd_robust(eps, steps, effort)
    single = _robust(model, x, y, [single_step if single_step is not None else fgsm_attack(eps)])
    others = {name: _robust(model, x, y, [attack]) for name, attack in white_box.items()}
    free = {name: _robust(model, x, y, [attack]) for name, attack in gradient_free.items()}
    carried = {name: _robust(model, x, y, [attack]) for name, attack in transfer.items()}

    white = functools.reduce(torch.logical_and, [base, more_steps, more_restarts, *others.values()])
    free_all = functools.reduce(torch.logical_and, free.values())
    checks = [
        monotone_in_eps(curve, tolerance, eps_values=[0.0, *grid]),
        reaches_zero(_fraction(pgd_robust(large_eps, steps, 1)), tolerance, eps=large_eps),
        more_effort_does_not_help(_fraction(base), _fraction(more_steps), tolerance,
                                  effort=f"{effort}× the steps", name="more_steps_do_not_help"),
        attack_converged(_fraction(base), _fraction(more_steps), tolerance,
                         effort=f"{effort}× the steps", name="converged_in_steps"),
        more_effort_does_not_help(_fraction(base), _fraction(more_restarts), tolerance,
                                  effort=f"{effort} restarts", name="more_restarts_do_not_help"),
        attack_converged(_fraction(base), _fraction(more_restarts), tolerance,
                         effort=f"{effort} restarts", name="converged_in_restarts"),
        iterative_beats_single_step(_fraction(base), _fraction(single), tolerance),
        gradient_free_not_stronger(_fraction(white), _fraction(free_all), tolerance,
                                   only_gradient_free=int((white & ~free_all).sum())),
    ]
    if carried:
        carried_all = functools.reduce(torch.logical_and, carried.values())
        checks.append(white_box_beats_transfer(_fraction(white), _fraction(carried_all), tolerance))
    accuracies = {
        "clean": _fraction(clean),
        f"pgd ε={eps:g}, {steps} steps": _fraction(base),
        f"pgd ε={eps:g}, {effort * steps} steps": _fraction(more_steps),
        f"pgd ε={eps:g}, {steps} steps × {effort} restarts": _fraction(more_restarts),
        f"single step ε={eps:g}": _fraction(single),
        **{name: _fraction(mask) for name, mask in others.items()},
        "white-box (all)": _fraction(white),
        **{f"gradient-free: {name}": _fraction(mask) for name, mask in free.items()},
        **{f"transfer: {name}": _fraction(mask) for name, mask in carried.items()},
        **{f"pgd ε={e:g}, {steps} steps": _fraction(pgd_robust(e, steps, 1)) for e in grid if e != eps},
    }
    return SanityReport(checks, accuracies, eps)


# --------------------------------------------------------------------------- argument checks

def _check_tolerance(tolerance) -> float:
    tolerance = check_non_negative(tolerance, "tolerance")
    if tolerance > 1:
        raise ValueError(f"tolerance must be a fraction of the examples in [0, 1], got {tolerance:g}")
    return tolerance


def _check_grid(values, name: str) -> list[float]:
    values = [check_eps(v, name) for v in values]
    if not values or any(b <= a for a, b in zip(values, values[1:])):
        raise ValueError(f"{name} must be a non-empty, strictly increasing sequence of numbers >= 0, got {values}")
    return values


def _default_grid(eps: float, large_eps: float) -> list[float]:
    return [e for e in (eps / 4, eps / 2, 2 * eps) if 0 < e < large_eps]


def _check_attacks(attacks, name: str, required: bool = False) -> dict[str, Attack]:
    if attacks is None and not required:
        return {}
    if not isinstance(attacks, Mapping) or not all(isinstance(k, str) and callable(a) for k, a in attacks.items()):
        raise ValueError(f"{name} must be a dict of name -> attack(model, x, y) -> x_adv, got {type(attacks).__name__}")
    if required and not attacks:
        raise ValueError(f"{name} must hold at least one attack: without one, masked gradients go unnoticed")
    return dict(attacks)
