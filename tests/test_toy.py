"""Chapter 1's closed forms, checked against the paper's numbers and against brute force."""
import math

import numpy as np
import pytest

from advex.theory import toy

W, X = toy.KARPATHY_W, toy.KARPATHY_X


def test_karpathy_numbers_C01_C02():
    assert toy.score(W, X) == -3.0
    assert toy.sigmoid(toy.score(W, X)) == pytest.approx(0.0474, abs=5e-5)
    assert toy.score(W, X + 0.5 * W) == 2.0
    assert toy.sigmoid(toy.score(W, X + 0.5 * W)) == pytest.approx(0.88, abs=5e-3)


def test_sign_perturbation_beats_every_random_perturbation_in_the_box():
    rng = np.random.default_rng(0)
    w = rng.standard_normal(50)
    best = w @ toy.worst_case_linf(w, 0.1)
    assert best == pytest.approx(0.1 * np.abs(w).sum())
    random_etas = rng.uniform(-0.1, 0.1, size=(5000, 50))
    assert (random_etas @ w).max() < best


@pytest.mark.parametrize("b", [0.0, 1.7, -4.0])
def test_minimal_perturbations_land_on_the_boundary(b):
    for flip in (toy.min_flip_linf, toy.min_flip_l2):
        size, eta = flip(W, X, b)
        assert toy.score(W, X + eta, b) == pytest.approx(0.0, abs=1e-12)
    eps_inf, eta_inf = toy.min_flip_linf(W, X, b)
    assert np.abs(eta_inf).max() == pytest.approx(eps_inf)
    eps_2, eta_2 = toy.min_flip_l2(W, X, b)
    assert np.linalg.norm(eta_2) == pytest.approx(eps_2)
    count, eta_0 = toy.min_flip_l0(W, X, b, max_change=1.0)
    assert toy.score(W, X + eta_0, b) == pytest.approx(0.0, abs=1e-12)
    assert np.count_nonzero(eta_0) == count == math.ceil(abs(toy.score(W, X, b)))


def test_l2_minimum_is_the_distance_to_the_hyperplane():
    rng = np.random.default_rng(1)
    w, x = rng.standard_normal(20), rng.standard_normal(20)
    dist, _ = toy.min_flip_l2(w, x)
    directions = rng.standard_normal((2000, 20))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    # any unit direction needs at least |s| / |w·d| >= |s| / ||w||_2 to reach the boundary
    needed = abs(toy.score(w, x)) / np.abs(directions @ w)
    assert needed.min() >= dist - 1e-12


def test_unbounded_l0_changes_one_coordinate():
    count, eta = toy.min_flip_l0(W, X)
    assert count == 1 and np.abs(eta).max() == pytest.approx(3.0)


def test_dimension_slope_is_minus_one_with_fixed_confidence():
    dims = np.array([10, 100, 1000, 10000])
    assert toy.fit_loglog_slope(dims, toy.flip_eps_by_dimension(dims, trials=50)) == pytest.approx(-1.0, abs=0.05)
    free = toy.fit_loglog_slope(dims, toy.flip_eps_by_dimension(dims, trials=50, fix_confidence=False))
    assert free == pytest.approx(-0.5, abs=0.1)


@pytest.mark.parametrize("call, match", [
    (lambda: toy.score(W, X[:5]), "same length"),
    (lambda: toy.score(W, np.full(10, np.nan)), "x contains NaN"),
    (lambda: toy.score(np.ones((2, 5)), np.ones((2, 5))), "w must be a non-empty 1-D"),
    (lambda: toy.worst_case_linf(W, -0.1), "eps must be >= 0"),
    (lambda: toy.worst_case_linf(W, float("nan")), "eps must be finite"),
    (lambda: toy.min_flip_l0(W, X, max_change=0), "max_change must be > 0"),
    (lambda: toy.min_flip_l0(W, X, max_change=0.1), "no perturbation"),
    (lambda: toy.flip_eps_by_dimension([10], confidence=1.5), "confidence"),
    (lambda: toy.flip_eps_by_dimension([0]), "dims"),
    (lambda: toy.fit_loglog_slope([1, 2], [0, 1]), "positive"),
])
def test_bad_inputs_raise_clear_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()
