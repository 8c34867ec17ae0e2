"""Randomised smoothing (advex.defences.smoothing; Cohen, Rosenfeld & Kolter 2019) on models whose
probabilities under noise are known in closed form.

A "model" that answers by which bin the first noisy pixel x₀ + δ₀ falls into has P(class) given by Φ, so
the certified radius σ Φ⁻¹(p_A) is known; a constant model gives p̲_A = α^(1/n) exactly; a model at its
threshold has p_A = ½ and must abstain.  Also: the Clopper–Pearson bound against scipy and textbook
values, the batching of the noisy copies, seeds, modes and gradients, the soft smoothed classifier, and
bad arguments rejected by name.
"""
from __future__ import annotations

import functools
import math

import numpy as np
import pytest
import torch
from scipy import stats
from torch import nn
from torch.nn import functional as F

from advex.defences.smoothing import (ABSTAIN, SmoothedSoftClassifier, certified_accuracy, certify,
                                      clopper_pearson_lower, gaussian_noise_loss, predict, sample_counts)
from advex.device import device_of

torch.set_num_threads(1)


class BinModel(nn.Module):
    """Class i when the first pixel of the input lies in the i-th bin cut by ``edges`` (one-hot logits).

    Records the size and the extremes of every batch it sees, and whether it ran in training mode."""

    def __init__(self, edges):
        super().__init__()
        self.edges, self.sizes, self.inputs, self.modes = torch.tensor(edges), [], [], []

    def forward(self, z):
        self.sizes.append(len(z))
        self.inputs.append(z.detach().clone())
        self.modes.append(self.training)
        bins = torch.bucketize(z.flatten(1)[:, 0].contiguous(), self.edges.to(z))   # class i: edges[i-1] < z₀ ≤ edges[i]
        return F.one_hot(bins, len(self.edges) + 1).to(z.dtype)


class Constant(nn.Module):
    def __init__(self, c: int, classes: int = 3):
        super().__init__()
        self.c, self.classes = c, classes

    def forward(self, z):
        return F.one_hot(torch.full((len(z),), self.c, device=z.device), self.classes).float()


def tiny_mlp(seed: int = 0) -> nn.Module:
    """Random MLP with dropout on 1 × 4 × 4, large weights so that noise changes its answer; in training mode."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 16), nn.ReLU(), nn.Dropout(0.5), nn.Linear(16, 4))
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(4.0)
    return model.train()


def images(first_pixels) -> torch.Tensor:
    """1 × 4 × 4 images at 0.5 whose first pixel is given."""
    x = torch.full((len(first_pixels), 1, 4, 4), 0.5)
    x[:, 0, 0, 0] = torch.tensor(first_pixels)
    return x


# --- Clopper–Pearson ---------------------------------------------------------------------------------------

def test_clopper_pearson_matches_scipy_beta_quantile_and_textbook_values():
    k, n = np.array([1, 3, 17, 50, 99]), 100
    np.testing.assert_allclose(clopper_pearson_lower(k, n, 0.05), stats.beta.ppf(0.05, k, n - k + 1), rtol=1e-12)
    # the two-sided 95% Clopper–Pearson intervals of 5/10 and 50/100 are (0.187, 0.813) and (0.398, 0.602)
    assert clopper_pearson_lower(5, 10, 0.025) == pytest.approx(0.1871, abs=1e-4)
    assert clopper_pearson_lower(50, 100, 0.025) == pytest.approx(0.3983, abs=1e-4)
    for n, alpha in [(1, 0.05), (10, 0.01), (1000, 0.001)]:   # all successes: P(p̂ = 1 | p) = pⁿ = α
        assert clopper_pearson_lower(n, n, alpha) == pytest.approx(alpha ** (1 / n), rel=1e-12)
    assert clopper_pearson_lower(0, 10, 0.05) == 0.0
    assert isinstance(clopper_pearson_lower(3, 10, 0.05), float)


def test_clopper_pearson_is_increasing_in_k_and_below_the_estimate():
    n = 40
    bounds = clopper_pearson_lower(np.arange(n + 1), n, 0.01)
    assert bounds.shape == (n + 1,) and bounds[0] == 0
    assert np.all(np.diff(bounds) > 0)
    assert np.all(bounds <= np.arange(n + 1) / n)
    np.testing.assert_allclose(clopper_pearson_lower(torch.arange(n + 1), n, 0.01), bounds)


# --- certify and predict against closed forms --------------------------------------------------------------

def test_certify_radius_matches_the_closed_form():
    """P(x₀ + δ₀ > t) = Φ((x₀ − t)/σ), so the radius is σ Φ⁻¹(p̲) ≈ σ Φ⁻¹(p) = x₀ − t (or t − x₀ for class 0)."""
    t, sigma, n, alpha = 0.4, 0.25, 100_000, 0.001
    x0 = [0.6, 0.9, 0.45, 0.1]
    classes, radii, p_lower = certify(BinModel([t]), images(x0), sigma, 100, n, alpha, generator=3)
    assert classes.tolist() == [1, 1, 1, 0]
    p_true = torch.tensor([stats.norm.cdf(abs(a - t) / sigma) for a in x0], dtype=torch.float64)
    # p̲ is below p (a 1 − α bound; fixed seed) and within ~4 standard errors of it
    assert (p_lower <= p_true).all() and (p_true - p_lower < 4 * (p_true * (1 - p_true) / n).sqrt() + 1e-3).all()
    torch.testing.assert_close(radii, torch.tensor([abs(a - t) for a in x0], dtype=torch.float64), atol=0.01, rtol=0)
    torch.testing.assert_close(radii, sigma * torch.special.ndtri(p_lower))


def test_certify_bound_is_clopper_pearson_of_a_fresh_estimation_sample():
    """Replaying the generator: n0 selection copies, then n estimation copies; p̲ comes from the second.

    With n0 = 1 at the threshold the guess is a coin flip, so a certify that took its guess from the
    estimation sample (the bias Cohen et al. avoid) gives different bounds."""
    model, x, sigma, n0, n, alpha = BinModel([0.5]), images([0.5] * 6 + [0.7, 0.3]), 0.3, 1, 400, 0.01
    _, _, p_lower = certify(model, x, sigma, n0, n, alpha, batch_size=97, generator=11)
    generator = torch.Generator(device=device_of(model)).manual_seed(11)   # where certify draws its noise
    guess = sample_counts(model, x, sigma, n0, batch_size=97, generator=generator).argmax(1)
    counts = sample_counts(model, x, sigma, n, batch_size=97, generator=generator)
    expected = clopper_pearson_lower(counts.gather(1, guess[:, None])[:, 0].numpy(), n, alpha)
    np.testing.assert_allclose(p_lower.numpy(), expected, rtol=1e-12)


def test_selection_and_estimation_samples_use_different_noise():
    model = BinModel([0.5])
    certify(model, images([0.7, 0.2]), 0.3, 20, 20, 0.01)
    seen = torch.cat(model.inputs)
    assert len(seen) == 2 * 40
    assert not torch.equal(seen[:40], seen[40:])   # a certify that reused the selection noise would fail


def test_constant_model_gets_alpha_to_the_one_over_n():
    sigma, n, alpha = 0.5, 1000, 0.001
    classes, radii, p_lower = certify(Constant(2), images([0.3, 0.8]), sigma, 10, n, alpha)
    assert classes.tolist() == [2, 2]
    torch.testing.assert_close(p_lower, torch.full((2,), alpha ** (1 / n), dtype=torch.float64))
    torch.testing.assert_close(radii, torch.full((2,), sigma * stats.norm.ppf(alpha ** (1 / n)), dtype=torch.float64))


def test_a_coin_flip_abstains():
    """x₀ = t: each class has probability exactly ½, so neither certify nor predict may answer."""
    model, x = BinModel([0.5]), images([0.5] * 4)
    classes, radii, p_lower = certify(model, x, 0.25, 100, 10_000, 0.001)
    assert classes.tolist() == [ABSTAIN] * 4 and radii.tolist() == [0.0] * 4 and (p_lower < 0.5).all()
    assert predict(model, x, 0.25, 10_000, 0.001).tolist() == [ABSTAIN] * 4


def test_predict_answers_clear_cases_and_tests_the_top_two_classes_only():
    assert predict(BinModel([0.4]), images([0.9, 0.1]), 0.25, 500, 0.001).tolist() == [1, 0]
    # P = (0.5, 0.3, 0.2): n_A ≈ n/2, so a binomial test of n_A out of n (not n_A + n_B) would abstain
    sigma, x0 = 0.2, 0.5
    model = BinModel([x0, x0 + sigma * stats.norm.ppf(0.8)])
    assert predict(model, images([x0]), sigma, 4000, 0.001, generator=5).tolist() == [0]


# --- sample_counts -----------------------------------------------------------------------------------------

def test_counts_total_n_and_chunks_spanning_images_count_for_the_right_image():
    model, n = BinModel([0.5]), 10
    counts = sample_counts(model, images([0.1, 0.9, 0.2, 0.8]), 1e-3, n, batch_size=7)
    assert counts.dtype == torch.int64 and counts.tolist() == [[10, 0], [0, 10], [10, 0], [0, 10]]
    assert max(model.sizes) <= 7 and sum(model.sizes) == 4 * n


def test_counts_batching_is_memory_bounded():
    model = BinModel([0.3, 0.6])
    counts = sample_counts(model, images([0.2, 0.5, 0.9]), 0.5, 250, batch_size=64)
    assert counts.sum(1).tolist() == [250] * 3
    assert max(model.sizes) <= 64 and sum(model.sizes) == 750
    # the noisy copies are not clipped to [0, 1] (as in Cohen et al.)
    seen = torch.cat(model.inputs)
    assert seen.min() < 0 and seen.max() > 1


def test_counts_are_reproducible_for_a_seed_and_differ_between_seeds():
    model, x = tiny_mlp(), images([0.2, 0.7])
    a = sample_counts(model, x, 0.5, 300, batch_size=128, generator=4)
    b = sample_counts(model, x, 0.5, 300, batch_size=128, generator=torch.Generator().manual_seed(4))
    c = sample_counts(model, x, 0.5, 300, batch_size=128, generator=5)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert (a > 0).sum() > 2   # the model really is random-ish under this noise


def test_counts_run_in_eval_mode_leave_no_gradient_and_restore_the_mode():
    model = tiny_mlp()
    model[3].eval()                       # a sub-module in its own mode must get it back
    recorder = BinModel([0.5])
    both = nn.Sequential(recorder, nn.Identity())
    both.train()
    sample_counts(model, images([0.5]), 0.5, 50)
    sample_counts(both, images([0.5]), 0.5, 50, batch_size=16)
    assert model.training and not model[3].training and both.training and recorder.training
    assert not any(recorder.modes)
    assert all(p.grad is None and p.requires_grad for p in model.parameters())


def test_counts_come_back_on_the_device_of_x():
    counts = sample_counts(BinModel([0.5]), images([0.5]).double(), 0.1, 5)
    assert counts.device == torch.device("cpu") and counts.shape == (1, 2)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_model_with_cpu_images():
    model = tiny_mlp().cuda()
    x = images([0.2, 0.7])
    a = sample_counts(model, x, 0.5, 300, batch_size=128, generator=4)
    assert a.device == x.device and torch.equal(a, sample_counts(model, x, 0.5, 300, batch_size=128, generator=4))
    classes, radii, p_lower = certify(model, x, 0.5, 50, 500, 0.01)
    assert classes.device == radii.device == p_lower.device == x.device
    with pytest.raises(ValueError, match="generator"):
        sample_counts(model, x, 0.5, 10, generator=torch.Generator())


# --- certified accuracy ------------------------------------------------------------------------------------

def test_certified_accuracy_on_hand_made_results():
    classes = torch.tensor([0, 1, ABSTAIN, 2, 1])
    radii = torch.tensor([0.5, 0.2, 0.0, 1.0, 0.3], dtype=torch.float64)
    labels = torch.tensor([0, 1, 0, 1, 1])
    assert certified_accuracy(classes, radii, labels, 0.0) == pytest.approx(0.6)   # the abstention does not count
    assert certified_accuracy(classes, radii, labels, 0.3) == pytest.approx(0.4)   # radius ≥ r is inclusive
    assert certified_accuracy(classes, radii, labels, 0.5) == pytest.approx(0.2)
    np.testing.assert_allclose(certified_accuracy(classes, radii, labels, [0.0, 0.3, 0.5, 0.51]), [0.6, 0.4, 0.2, 0.0])


# --- training objective and the soft smoothed classifier ---------------------------------------------------

def test_gaussian_noise_loss_is_cross_entropy_at_unclipped_noisy_inputs():
    model, x, y = tiny_mlp().eval(), images([0.1, 0.9, 0.5]), torch.tensor([0, 1, 3])
    torch.manual_seed(7)
    loss = gaussian_noise_loss(model, x, y, sigma=0.5)
    torch.manual_seed(7)
    expected = F.cross_entropy(model(x + 0.5 * torch.randn_like(x)), y)
    torch.testing.assert_close(loss, expected)
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())
    objective = functools.partial(gaussian_noise_loss, sigma=0.25)
    assert objective(model, x, y).shape == ()


def test_soft_classifier_gives_log_probabilities_with_an_input_gradient():
    base = tiny_mlp().eval()
    smoothed = SmoothedSoftClassifier(base, 0.5, 16)
    x = images([0.1, 0.6, 0.9]).requires_grad_(True)
    out = smoothed(x)
    assert out.shape == (3, 4)
    torch.testing.assert_close(out.exp().sum(1), torch.ones(3))
    (grad,) = torch.autograd.grad(out[:, 0].sum(), x)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0
    assert not torch.equal(smoothed(x), smoothed(x))   # fresh noise at every call
    tiny = SmoothedSoftClassifier(base, 1e-8, 4)
    torch.testing.assert_close(tiny(x), F.log_softmax(base(x), dim=1))


# --- bad arguments -----------------------------------------------------------------------------------------

X = images([0.5])
BAD = {
    "sigma_zero": (lambda: sample_counts(Constant(0), X, 0.0, 10), "sigma"),
    "sigma_negative": (lambda: certify(Constant(0), X, -0.1, 10, 10, 0.01), "sigma"),
    "sigma_nan": (lambda: predict(Constant(0), X, math.nan, 10, 0.01), "sigma"),
    "sigma_loss": (lambda: gaussian_noise_loss(Constant(0), X, torch.tensor([0]), sigma=0), "sigma"),
    "sigma_soft": (lambda: SmoothedSoftClassifier(Constant(0), math.inf, 4), "sigma"),
    "samples_soft": (lambda: SmoothedSoftClassifier(Constant(0), 0.5, 0), "samples"),
    "base_soft": (lambda: SmoothedSoftClassifier(lambda z: z, 0.5, 4), "base"),
    "n_zero": (lambda: sample_counts(Constant(0), X, 0.5, 0), "n"),
    "n_float": (lambda: predict(Constant(0), X, 0.5, 10.0, 0.01), "n"),
    "n0_zero": (lambda: certify(Constant(0), X, 0.5, 0, 10, 0.01), "n0"),
    "alpha_big": (lambda: certify(Constant(0), X, 0.5, 10, 10, 1.5), "alpha"),
    "alpha_zero": (lambda: predict(Constant(0), X, 0.5, 10, 0), "alpha"),
    "alpha_cp": (lambda: clopper_pearson_lower(3, 10, 1.0), "alpha"),
    "k_above_n": (lambda: clopper_pearson_lower(11, 10, 0.05), "k"),
    "k_float": (lambda: clopper_pearson_lower(0.5, 10, 0.05), "k"),
    "x_outside": (lambda: sample_counts(Constant(0), X + 1, 0.5, 10), "x"),
    "x_nan": (lambda: certify(Constant(0), X * math.nan, 0.5, 10, 10, 0.01), "x"),
    "x_int": (lambda: predict(Constant(0), X.long(), 0.5, 10, 0.01), "x"),
    "x_soft": (lambda: SmoothedSoftClassifier(Constant(0), 0.5, 2)(X - 1), "x"),
    "batch_size": (lambda: sample_counts(Constant(0), X, 0.5, 10, batch_size=0), "batch_size"),
    "generator": (lambda: sample_counts(Constant(0), X, 0.5, 10, generator="seed"), "generator"),
    "model": (lambda: sample_counts(lambda z: z, X, 0.5, 10), "model"),
    "r_negative": (lambda: certified_accuracy(torch.tensor([0]), torch.tensor([1.0]), torch.tensor([0]), -1), "r"),
    "radii_shape": (lambda: certified_accuracy(torch.tensor([0]), torch.tensor([1.0, 2.0]), torch.tensor([0]), 0),
                    "radii"),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_arguments_are_rejected_by_name(name):
    call, argument = BAD[name]
    with pytest.raises(ValueError, match=rf"\b{argument}\b"):
        call()


def test_smoothed_probability_uses_common_noise_and_estimates_the_mean_softmax():
    from advex.defences.smoothing import smoothed_probability
    torch.manual_seed(0)
    base = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    x, y = torch.rand(5, 1, 4, 4), torch.tensor([0, 1, 2, 0, 1])
    first = smoothed_probability(base, x, y, sigma=0.3, samples=16, seed=3)
    assert torch.equal(first, smoothed_probability(base, x, y, sigma=0.3, samples=16, seed=3))
    assert not torch.equal(first, smoothed_probability(base, x, y, sigma=0.3, samples=16, seed=4))
    noise = 0.3 * torch.randn((16, 1, 4, 4), generator=torch.Generator().manual_seed(3))
    expected = torch.stack([torch.softmax(base(x + d), 1)[torch.arange(5), y] for d in noise]).mean(0)
    assert torch.allclose(first, expected.detach(), atol=1e-6)
    with pytest.raises(ValueError, match="sigma"):
        smoothed_probability(base, x, y, sigma=0.0)
