"""Randomised smoothing (Cohen, Rosenfeld & Kolter 2019; bib key cohen2019certified): a certified L2 defence.

The smoothed classifier g(x) = argmax_c P(f(x + δ) = c), δ ~ N(0, σ² I), answers with the class the base
classifier f (argmax of a model's logits) outputs most often under Gaussian noise.  If the top class A has
P(f(x + δ) = A) ≥ p̲_A > ½, then g(x + η) = A for every ‖η‖₂ < R = σ Φ⁻¹(p̲_A) (Cohen et al. 2019, Theorem 1
with p̄_B = 1 − p̲_A).  The probabilities are estimated by Monte Carlo, so :func:`certify` and :func:`predict`
are right with probability ≥ 1 − α over the noise, and may abstain (:data:`ABSTAIN`).

As in Cohen et al.'s code, the noisy copies x + δ are not clipped to [0, 1] (the theorem holds for any f, so a
model may clip inside its forward pass).  :func:`gaussian_noise_loss` trains f for the noise; the differentiable
:class:`SmoothedSoftClassifier` is what an attacker differentiates (SmoothAdv, Salman et al. 2019).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from scipy import stats
from torch import nn
from torch.nn import functional as F

from ..attacks.core import returns_on_input_device
from ..device import device_of
from ..modes import attack_mode
from ..progress import progress
from ..validation import check_eps, check_fraction, check_images, check_labels, check_model, check_positive, check_positive_int
from .transforms import ExpectationOverTransform

__all__ = ["ABSTAIN", "SmoothedSoftClassifier", "certified_accuracy", "certify", "clopper_pearson_lower",
           "gaussian_noise_loss", "predict", "sample_counts", "smoothed_probability"]

#: the class :func:`predict` and :func:`certify` return when they cannot decide at level α
ABSTAIN = -1


def _check_sigma(sigma) -> float:
    return check_positive(sigma, "sigma")   # the standard deviation of the noise


def _check_alpha(alpha) -> float:
    return check_fraction(alpha, "alpha", open_interval=True, meaning="the probability of a wrong answer")


def _generator(generator, device: torch.device) -> torch.Generator:
    """A torch.Generator on ``device``: the one given, or a new one seeded by an int (default 0)."""
    if generator is None or (isinstance(generator, (int, np.integer)) and not isinstance(generator, bool)):
        return torch.Generator(device=device).manual_seed(0 if generator is None else int(generator))
    if not isinstance(generator, torch.Generator):
        raise ValueError(f"generator must be a torch.Generator or an int seed, got {type(generator).__name__}")
    if generator.device.type != device.type:
        raise ValueError(f"generator must be on the model's device {device}, got one on {generator.device}")
    return generator


def gaussian_noise_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, sigma: float) -> torch.Tensor:
    """J(θ, x + δ, y), δ ~ N(0, σ² I) not clipped: how Cohen et al. (2019, §4) train the base classifier.

    Fresh noise for every minibatch, from torch's global generator (seeded by :func:`advex.models.trained`).
    """
    return F.cross_entropy(model(x + _check_sigma(sigma) * torch.randn_like(x)), y)


@returns_on_input_device
def sample_counts(model: nn.Module, x: torch.Tensor, sigma: float, n: int, *, batch_size: int = 10_000,
                  generator: torch.Generator | int | None = None) -> torch.Tensor:
    """counts[i, c] = #{j ≤ n : f(x_i + δ_j) = c}, δ_j ~ N(0, σ² I): int64 (num_images, num_classes).

    The B·n noisy copies are laid out image by image (copy k belongs to image k // n) and sent through the
    model in chunks of at most ``batch_size`` (a chunk may span images), so memory holds ``batch_size``
    inputs at a time.  The model runs in eval mode with frozen parameters, under ``torch.no_grad()``.
    Noise comes from ``generator`` (a torch.Generator on the model's device, or an int seed, default 0):
    the same seed, ``batch_size`` and device give the same counts; a Generator passed in advances.
    """
    model, sigma, n = check_model(model), _check_sigma(sigma), check_positive_int(n, "n")
    batch_size = check_positive_int(batch_size, "batch_size")
    check_images(x, "x")
    if x.dim() < 2 or len(x) == 0:
        raise ValueError(f"x must be a non-empty batch (N, ...), got shape {tuple(x.shape)}")
    device = device_of(model)
    x, generator = x.detach().to(device), _generator(generator, device)
    total, counts = len(x) * n, None
    chunks = range(0, total, batch_size)   # a progress bar only when there are enough chunks to wait for
    with attack_mode(model), torch.no_grad():
        for start in progress(chunks, desc="noisy copies", disable=len(chunks) < 10):
            image = torch.arange(start, min(start + batch_size, total), device=device) // n
            noise = torch.randn((len(image), *x.shape[1:]), generator=generator, device=device, dtype=x.dtype)
            logits = model(x[image] + sigma * noise)
            if counts is None:
                classes = logits.shape[1]
                counts = torch.zeros(len(x) * classes, dtype=torch.int64, device=device)
            counts += torch.bincount(image * classes + logits.argmax(1), minlength=len(x) * classes)
    return counts.view(len(x), classes)


def clopper_pearson_lower(k, n, alpha: float) -> float | np.ndarray:
    """The one-sided (1 − α) Clopper–Pearson lower bound on p from k successes in n trials.

    p̲ = B⁻¹(α; k, n − k + 1), the α-quantile of a Beta distribution (0 when k = 0; α^(1/n) when k = n).  It is
    Cohen et al.'s ``proportion_confint(k, n, alpha=2α, method="beta")[0]``.  k and n: integers or arrays.
    """
    alpha = _check_alpha(alpha)
    k, n = (np.asarray(v.cpu() if isinstance(v, torch.Tensor) else v) for v in (k, n))
    for name, value in (("k", k), ("n", n)):
        if not np.issubdtype(value.dtype, np.integer):
            raise ValueError(f"{name} must be an integer or an array of integers, got dtype {value.dtype}")
    if np.any(n < 1) or np.any(k < 0) or np.any(k > n):
        raise ValueError(f"k must lie in [0, n] and n must be >= 1, got k={k.tolist()}, n={n.tolist()}")
    # Beta(0, ·) is undefined: no success gives the bound 0
    bound = np.where(k == 0, 0.0, stats.beta.ppf(alpha, np.maximum(k, 1), n - k + 1))
    return float(bound) if bound.ndim == 0 else bound


@returns_on_input_device
def predict(model: nn.Module, x: torch.Tensor, sigma: float, n: int, alpha: float, *, batch_size: int = 10_000,
            generator: torch.Generator | int | None = None) -> torch.Tensor:
    """PREDICT (Cohen et al. 2019, Pseudocode): g(x), or :data:`ABSTAIN`; wrong with probability ≤ α.

    Of n noisy copies the top two classes get n_A ≥ n_B; A is returned when the two-sided binomial test of
    n_A successes in n_A + n_B trials rejects p = ½ at level α, else the prediction abstains.
    """
    alpha = _check_alpha(alpha)
    counts = sample_counts(model, x, sigma, n, batch_size=batch_size, generator=generator).cpu()
    top = counts.topk(min(2, counts.shape[1]), dim=1)
    n_a, n_b = top.values[:, 0], top.values[:, 1] if counts.shape[1] > 1 else 0 * top.values[:, 0]
    p_values = [stats.binomtest(a, a + b, 0.5).pvalue for a, b in zip(n_a.tolist(), n_b.tolist())]
    decided = torch.tensor(p_values, dtype=torch.float64) <= alpha
    return torch.where(decided, top.indices[:, 0], ABSTAIN)


@returns_on_input_device
def certify(model: nn.Module, x: torch.Tensor, sigma: float, n0: int, n: int, alpha: float, *,
            batch_size: int = 10_000, generator: torch.Generator | int | None = None
            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """CERTIFY (Cohen et al. 2019, Pseudocode): (class, radius, p̲_A) per image, float64 radius and bound.

    ĉ_A = the most frequent class of n0 noisy copies; p̲_A = the (1 − α) Clopper–Pearson lower bound from n
    *fresh* copies (the guess must not see the sample it is tested on); if p̲_A > ½, g = ĉ_A on the L2 ball
    of radius σ Φ⁻¹(p̲_A) with probability ≥ 1 − α, else :data:`ABSTAIN` with radius 0.
    """
    sigma, alpha = _check_sigma(sigma), _check_alpha(alpha)
    n0, n = check_positive_int(n0, "n0"), check_positive_int(n, "n")
    generator = _generator(generator, device_of(check_model(model)))   # one stream: the two samples differ
    guess = sample_counts(model, x, sigma, n0, batch_size=batch_size, generator=generator).argmax(1).cpu()
    counts = sample_counts(model, x, sigma, n, batch_size=batch_size, generator=generator).cpu()
    n_a = counts.gather(1, guess[:, None])[:, 0]
    p_lower = torch.from_numpy(np.atleast_1d(clopper_pearson_lower(n_a, n, alpha)))
    certified = p_lower > 0.5
    radius = torch.where(certified, sigma * torch.special.ndtri(p_lower), 0.0)
    return torch.where(certified, guess, ABSTAIN), radius, p_lower


def certified_accuracy(classes: torch.Tensor, radii: torch.Tensor, labels: torch.Tensor,
                       r: float | Sequence[float]) -> float | np.ndarray:
    """Share of images certified correct at radius r: class = label and radius ≥ r (an abstention never counts).

    A sequence of radii gives an array, one accuracy per radius (the certified-accuracy curve).
    """
    labels = check_labels(labels, None, name="labels")   # ABSTAIN (−1) is never a label
    for name, value in (("classes", classes), ("radii", radii)):
        if not isinstance(value, torch.Tensor) or value.shape != labels.shape or len(labels) == 0:
            raise ValueError(f"{name} must be a tensor of shape {tuple(labels.shape)} like labels, non-empty")
    r = r.tolist() if isinstance(r, torch.Tensor) else r
    if np.ndim(r) == 1:
        return np.array([certified_accuracy(classes, radii, labels, radius) for radius in r])
    certified = (classes.to(labels.device) == labels) & (radii.to(labels.device) >= check_eps(r, "r"))
    return certified.double().mean().item()


class _GaussianNoise(nn.Module):
    """f(x + δ), δ ~ N(0, σ² I) from torch's global generator, not clipped (the base classifier under smoothing noise)."""

    def __init__(self, base: nn.Module, sigma: float):
        super().__init__()
        self.base, self.sigma = base, sigma

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x + self.sigma * torch.randn_like(x))


class SmoothedSoftClassifier(ExpectationOverTransform):
    """log( (1/m) Σ_j softmax(f(x + δ_j)) ), δ_j ~ N(0, σ² I), m = ``samples``: the soft smoothed classifier.

    Differentiable, so it is what an attacker differentiates to attack g (expectation over transformation;
    SmoothAdv, Salman et al. 2019): :class:`~advex.defences.transforms.ExpectationOverTransform` of the base
    classifier under unclipped Gaussian noise.  The noise comes from torch's global generator at every call,
    so two calls on the same x differ; all m·B noisy copies go through the base model at once (mind the memory).
    """

    def __init__(self, base: nn.Module, sigma: float, samples: int):
        super().__init__(_GaussianNoise(check_model(base, "base"), _check_sigma(sigma)), samples)
        self.sigma = self.model.sigma

    @property
    def base(self) -> nn.Module:
        return self.model.base

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_images(x, "x")
        return super().forward(x)

    def extra_repr(self) -> str:
        return f"sigma={self.sigma}, samples={self.samples}"


@torch.no_grad()
def smoothed_probability(base: nn.Module, x: torch.Tensor, y: torch.Tensor, *, sigma: float, samples: int = 64,
                         seed: int = 0) -> torch.Tensor:
    """E_δ[softmax(f(x + δ))_y] for every example, estimated with ``samples`` fixed noise draws.

    The same draws (from ``torch.Generator().manual_seed(seed)``, on the CPU, so every device gets them)
    are used for every input: comparing two inputs then compares the same function, so the estimated
    *difference* p(x') − p(x) has far less Monte Carlo noise than the probabilities themselves (common random
    numbers).  This is the smoothed confidence of Bram Cohen's criterion, measured in chapter 6.
    """
    base, sigma = check_model(base, "base"), _check_sigma(sigma)
    samples = check_positive_int(samples, "samples")
    check_images(x, "x")
    y = check_labels(y, None, batch_size=x.shape[0])
    device = device_of(base)
    noise = sigma * torch.randn((samples, *x.shape[1:]), generator=torch.Generator().manual_seed(seed))
    x, y = x.to(device), y.to(device).view(-1, 1)
    total = torch.zeros(len(x), device=device)
    with attack_mode(base):
        for delta in noise.to(device):
            total += F.softmax(base(x + delta), dim=1).gather(1, y).squeeze(1)
    return total / samples
