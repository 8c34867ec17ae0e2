"""Uncertainty of a measured rate: 95% intervals for a proportion, and when two rates differ.

Every accuracy, success rate or fraction the book reports on fewer than 10,000 examples is shown with
its n and a 95% interval (the style guide's rule).  :func:`proportion` is the one place that computes it:
the Wilson score interval by default (Wilson 1927; Brown, Cai & DasGupta 2001 recommend it for the
n of this book), or the exact Clopper–Pearson interval, which never under-covers.

Two rates measured on the *same* examples (clean vs. attacked, one attack vs. another) are compared
with McNemar's score test on the discordant pairs and Tango's interval, which inverts that same test, so
the verdict and the interval always agree (:func:`paired_difference`); rates on different
examples with Newcombe's hybrid score interval for p₁ − p₂ (:func:`unpaired_difference`).  A difference
is "a difference" only when that test says so.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy import optimize, stats

__all__ = ["Proportion", "Difference", "proportion", "paired_difference", "unpaired_difference"]

_METHODS = ("wilson", "clopper-pearson")


def _count(value, name: str) -> int:
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ValueError(f"{name} must be a single count, got a tensor of shape {tuple(value.shape)}")
        value = value.item()
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer count, got {value!r}")
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return int(value)


def _confidence(confidence) -> float:
    if isinstance(confidence, bool) or not isinstance(confidence, (int, float)) or not 0 < confidence < 1:
        raise ValueError(f"confidence must be a number in (0, 1), got {confidence!r}")
    return float(confidence)


def _outcomes(values, name: str) -> np.ndarray:
    """A boolean outcome per example, from a bool/0-1 tensor, array or list."""
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    values = np.asarray(values)
    if values.ndim != 1 or values.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-d sequence of per-example outcomes, got shape {values.shape}")
    if values.dtype != bool:
        if not np.all((values == 0) | (values == 1)):
            raise ValueError(f"{name} must hold booleans or 0/1 values")
        values = values.astype(bool)
    return values


@dataclass(frozen=True)
class Proportion:
    """k successes in n trials: the rate, its interval ``[low, high]`` and how it was computed."""

    k: int
    n: int
    low: float
    high: float
    confidence: float = 0.95
    method: str = "wilson"

    @property
    def rate(self) -> float:
        return self.k / self.n

    @property
    def half_width(self) -> float:
        return max(self.rate - self.low, self.high - self.rate)

    def interval_text(self, digits: int = 1) -> str:
        """'95% CI 70.1–78.3%, n = 500' (percentages with ``digits`` decimals, n with a thousands separator)."""
        level = f"{self.confidence:.0%}"
        return f"{level} CI {100 * self.low:.{digits}f}–{100 * self.high:.{digits}f}%, n = {self.n:,}"

    def text(self, digits: int = 1) -> str:
        """'74.2% (95% CI 70.1–78.3%, n = 500)'."""
        return f"{100 * self.rate:.{digits}f}% ({self.interval_text(digits)})"

    def __format__(self, spec: str) -> str:
        return self.text() if not spec else format(self.rate, spec)

    def __float__(self) -> float:
        return self.rate


def proportion(k, n, *, confidence: float = 0.95, method: str = "wilson") -> Proportion:
    """The rate k/n with its two-sided ``confidence`` interval.

    ``method='wilson'``: the Wilson score interval, (p̂ + z²/2n ± z√(p̂(1−p̂)/n + z²/4n²)) / (1 + z²/n);
    ``method='clopper-pearson'``: the exact interval [B⁻¹(α/2; k, n−k+1), B⁻¹(1−α/2; k+1, n−k)].
    ``k`` may also be a per-example bool tensor or array (then ``n`` must be None and is its length).
    """
    confidence = _confidence(confidence)
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}")
    if n is None:
        outcomes = _outcomes(k, "k")
        k, n = int(outcomes.sum()), outcomes.size
    k, n = _count(k, "k"), _count(n, "n")
    if n == 0:
        raise ValueError("n must be >= 1: a rate needs at least one example")
    if k > n:
        raise ValueError(f"k must lie in [0, n], got k={k}, n={n}")
    alpha = 1 - confidence
    if method == "wilson":
        z = stats.norm.ppf(1 - alpha / 2)
        p = k / n
        centre = (p + z * z / (2 * n)) / (1 + z * z / n)
        spread = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
        low, high = max(0.0, centre - spread), min(1.0, centre + spread)
        # exact ends where the data sit on the boundary
        low, high = (0.0 if k == 0 else low), (1.0 if k == n else high)
    else:
        low = 0.0 if k == 0 else float(stats.beta.ppf(alpha / 2, k, n - k + 1))
        high = 1.0 if k == n else float(stats.beta.ppf(1 - alpha / 2, k + 1, n - k))
    return Proportion(k, n, float(low), float(high), confidence, method)


@dataclass(frozen=True)
class Difference:
    """p₁ − p₂ with its interval, a two-sided p-value and the verdict at the interval's level."""

    estimate: float
    low: float
    high: float
    p_value: float
    confidence: float = 0.95
    test: str = ""

    @property
    def significant(self) -> bool:
        """True when the data say the two rates differ (p-value below 1 − confidence)."""
        return self.p_value < 1 - self.confidence

    def text(self, digits: int = 1) -> str:
        verdict = "the rates differ" if self.significant else "the run cannot tell the rates apart"
        return (f"{100 * self.estimate:+.{digits}f} points ({self.confidence:.0%} CI {100 * self.low:+.{digits}f} to "
                f"{100 * self.high:+.{digits}f}; {self.test}, p = {self.p_value:.2g}): {verdict}")


def _tango_statistic(only_first: int, only_second: int, n: int, delta: float) -> float:
    """Tango's (1998) score statistic for the hypothesis p₁ − p₂ = ``delta`` on paired outcomes.

    The variance of (b − c)/n is evaluated at the maximum-likelihood cell probabilities under the hypothesis:
    with q the probability that only ``second`` succeeds, maximising the multinomial likelihood subject to
    p₁ − p₂ = delta gives 2n·q² + B·q + C = 0, B = −b − c + (2n − b + c)·delta, C = −c·delta·(1 − delta).
    At delta = 0 the statistic is (b − c)/√(b + c), the McNemar score statistic.
    """
    b, c = only_first, only_second
    quadratic_b = -b - c + (2 * n - b + c) * delta
    quadratic_c = -c * delta * (1 - delta)
    q = (math.sqrt(max(quadratic_b ** 2 - 8 * n * quadratic_c, 0.0)) - quadratic_b) / (4 * n)
    variance = n * (2 * q + delta - delta * delta)
    return (b - c - n * delta) / math.sqrt(max(variance, 1e-300))


def paired_difference(first, second, *, confidence: float = 0.95) -> Difference:
    """Compare two rates measured on the same examples (per-example bool outcomes of equal length).

    Test and interval are one score test, so they never disagree: the interval (Tango 1998) holds every
    difference δ that the score statistic (b − c − nδ)/σ̂(δ) does not reject, and the p-value is that test at
    δ = 0, which is McNemar's asymptotic test (b − c)/√(b + c) without continuity correction.  b counts the
    examples where only ``first`` succeeds, c those where only ``second`` does.  Fagerland, Lydersen & Laake
    (2013) found this test closer to the nominal level than McNemar's exact conditional test, which is
    conservative, even for small samples, and Fagerland, Lydersen & Laake (2014) recommend Tango's interval.
    """
    confidence = _confidence(confidence)
    a, b = _outcomes(first, "first"), _outcomes(second, "second")
    if a.shape != b.shape:
        raise ValueError(f"first and second must hold the same examples, got lengths {a.size} and {b.size}")
    n = a.size
    only_first, only_second = int((a & ~b).sum()), int((~a & b).sum())
    discordant = only_first + only_second
    estimate = (only_first - only_second) / n
    z = float(stats.norm.ppf(1 - (1 - confidence) / 2))
    p_value = 1.0 if discordant == 0 else float(2 * stats.norm.sf(abs(only_first - only_second) / math.sqrt(discordant)))

    def excess(delta: float, bound: float) -> float:
        return _tango_statistic(only_first, only_second, n, delta) - bound

    # the statistic falls as delta grows; the interval's ends are where it crosses +z and -z
    edge = 1 - 1e-12
    low = -1.0 if estimate <= -edge or excess(-edge, z) <= 0 else float(optimize.brentq(excess, -edge, estimate, args=(z,), xtol=1e-12))
    high = 1.0 if estimate >= edge or excess(edge, -z) >= 0 else float(optimize.brentq(excess, estimate, edge, args=(-z,), xtol=1e-12))
    return Difference(estimate, low, high, p_value, confidence, "McNemar's score test")


def unpaired_difference(k1, n1, k2, n2, *, confidence: float = 0.95) -> Difference:
    """Compare rates k₁/n₁ and k₂/n₂ measured on different examples.

    Interval: Newcombe's (1998, method 10) hybrid score interval from the two Wilson intervals; test:
    Fisher's exact test on the 2×2 table.
    """
    confidence = _confidence(confidence)
    p1, p2 = proportion(k1, n1, confidence=confidence), proportion(k2, n2, confidence=confidence)
    estimate = p1.rate - p2.rate
    low = estimate - math.hypot(p1.rate - p1.low, p2.high - p2.rate)
    high = estimate + math.hypot(p1.high - p1.rate, p2.rate - p2.low)
    table = [[p1.k, p1.n - p1.k], [p2.k, p2.n - p2.k]]
    p_value = float(stats.fisher_exact(table).pvalue)
    return Difference(estimate, max(low, -1.0), min(high, 1.0), p_value, confidence, "Fisher's exact test")
