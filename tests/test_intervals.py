"""advex.intervals: the 95% intervals every rate on fewer than 10,000 examples carries, and the tests
that decide whether two rates differ.  Reference values from scipy/statsmodels-style textbook formulas."""
import math

import numpy as np
import pytest
import torch
from scipy import stats

from advex.intervals import paired_difference, proportion, unpaired_difference


def test_wilson_matches_the_textbook_formula():
    k, n, z = 37, 50, stats.norm.ppf(0.975)
    p = k / n
    centre = (p + z**2 / (2 * n)) / (1 + z**2 / n)
    half = z / (1 + z**2 / n) * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2))
    r = proportion(k, n)
    assert r.rate == pytest.approx(0.74)
    assert (r.low, r.high) == pytest.approx((centre - half, centre + half))


def test_clopper_pearson_matches_the_beta_quantiles_and_contains_wilson_at_the_edges():
    r = proportion(3, 20, method="clopper-pearson")
    assert r.low == pytest.approx(stats.beta.ppf(0.025, 3, 18))
    assert r.high == pytest.approx(stats.beta.ppf(0.975, 4, 17))
    assert proportion(0, 20).low == 0.0 and proportion(20, 20).high == 1.0
    assert proportion(0, 20, method="clopper-pearson").high == pytest.approx(1 - 0.025 ** (1 / 20))


def test_intervals_shrink_with_n_and_cover_the_rate():
    widths = [proportion(n // 2, n).half_width for n in (10, 100, 1000, 10000)]
    assert widths == sorted(widths, reverse=True)
    for k in range(0, 31):
        r = proportion(k, 30)
        assert r.low <= r.rate <= r.high


def test_coverage_of_the_wilson_interval_is_close_to_95_percent():
    rng = np.random.default_rng(0)
    p, n = 0.8, 200
    hits = sum(proportion(int(k), n).low <= p <= proportion(int(k), n).high for k in rng.binomial(n, p, 2000))
    assert 0.93 <= hits / 2000 <= 0.97


def test_outcomes_and_text():
    r = proportion(torch.tensor([True, False, True, True]), None)
    assert (r.k, r.n) == (3, 4)
    assert proportion(371, 500).text() == "74.2% (95% CI 70.2–77.8%, n = 500)"
    assert f"{proportion(1, 4):.1%}" == "25.0%"


@pytest.mark.parametrize("args, match", [((5, 3), "k must lie in"), ((1, 0), "n must be >= 1"),
                                         ((-1, 3), "k must be >= 0"), ((1.5, 3), "k must be an integer"),
                                         ((True, 3), "k must be an integer")])
def test_bad_counts_name_the_argument(args, match):
    with pytest.raises(ValueError, match=match):
        proportion(*args)


def test_bad_options_name_the_argument():
    with pytest.raises(ValueError, match="method must be one of"):
        proportion(1, 2, method="exact")
    with pytest.raises(ValueError, match="confidence must be"):
        proportion(1, 2, confidence=95)


def _paired(both: int, only_first: int, only_second: int, neither: int):
    first = torch.tensor([1] * both + [1] * only_first + [0] * only_second + [0] * neither, dtype=torch.bool)
    second = torch.tensor([1] * both + [0] * only_first + [1] * only_second + [0] * neither, dtype=torch.bool)
    return first, second


def test_paired_difference_uses_only_the_discordant_examples():
    first, second = _paired(40, 10, 2, 48)
    d = paired_difference(first, second)
    assert d.estimate == pytest.approx(0.08)
    # McNemar's score test: (b - c) / sqrt(b + c) against the standard normal
    assert d.p_value == pytest.approx(2 * stats.norm.sf(8 / 12 ** 0.5))
    assert d.significant and d.low > 0
    same = paired_difference(first, first)
    assert same.p_value == 1.0 and not same.significant and same.low <= 0 <= same.high


def test_paired_interval_inverts_the_score_test():
    """Tango's interval is every difference the score test keeps: checked against a brute-force grid."""
    from advex.intervals import _tango_statistic

    z = stats.norm.ppf(0.975)
    grid = np.linspace(-1 + 1e-9, 1 - 1e-9, 40001)
    for both, b, c, neither in [(40, 10, 2, 48), (10, 3, 13, 24), (0, 20, 0, 80), (30, 2, 12, 6), (5, 1, 0, 0)]:
        n = both + b + c + neither
        d = paired_difference(*_paired(both, b, c, neither))
        kept = grid[np.array([abs(_tango_statistic(b, c, n, g)) <= z for g in grid])]
        assert d.low == pytest.approx(kept.min(), abs=1e-4) and d.high == pytest.approx(kept.max(), abs=1e-4)


def test_paired_interval_and_test_never_disagree():
    """The interval excludes 0 exactly when the test rejects, for any table (the Newcombe interval with the
    exact test could disagree near the boundary)."""
    rng = np.random.default_rng(0)
    for _ in range(500):
        n = int(rng.integers(5, 400))
        b = int(rng.integers(0, n + 1))
        c = int(rng.integers(0, n - b + 1))
        d = paired_difference(*_paired(0, b, c, n - b - c))
        assert (d.low > 0 or d.high < 0) == d.significant, (n, b, c, d)
        assert d.low <= d.estimate <= d.high


def test_paired_interval_without_discordant_examples():
    """No discordant pair among n: the interval is ±z²/(n + z²), a Wilson-like width, not a single point."""
    d = paired_difference(*_paired(60, 0, 0, 40))
    z2 = stats.norm.ppf(0.975) ** 2
    assert d.estimate == 0 and d.p_value == 1.0
    assert d.high == pytest.approx(z2 / (100 + z2), rel=1e-6) and d.low == pytest.approx(-d.high, rel=1e-6)


def test_paired_difference_refuses_unequal_lengths():
    with pytest.raises(ValueError, match="same examples"):
        paired_difference([True, False], [True])


def test_unpaired_difference():
    close = unpaired_difference(74, 100, 70, 100)
    assert not close.significant and close.low < 0 < close.high
    far = unpaired_difference(90, 100, 50, 100)
    assert far.significant and far.low > 0
    assert "cannot tell" in close.text() and "differ" in far.text()


def test_glue_rate_glues_the_rate_its_n_and_its_interval():
    from advex import glue as glue_module

    glue_module.glue_rate("test_rate", proportion(371, 500))
    assert glue_module.glued("test_rate:.1%") == "74.2%"
    assert glue_module.glued("test_rate_n:,") == "500"
    assert glue_module.glued("test_rate_ci") == "95% CI 70.2–77.8%, n = 500"
    assert float(glue_module.glued("test_rate_low")) < 0.742 < float(glue_module.glued("test_rate_high"))
    with pytest.raises(ValueError, match="rate must be an advex.intervals.Proportion"):
        glue_module.glue_rate("bad", 0.7)


def test_paired_difference_matches_a_published_example():
    """Fagerland, Lydersen & Laake (2014), airway hyper-responsiveness before and after stem cell
    transplantation (n = 21; 1 both, 1 only before, 7 only after, 12 neither): Tango's interval for the
    difference is -0.517 to -0.026, and the asymptotic McNemar test gives p = 0.034 (Fagerland et al. 2013)."""
    d = paired_difference(*_paired(1, 1, 7, 12))
    assert d.estimate == pytest.approx(-6 / 21)
    assert (round(d.low, 3), round(d.high, 3)) == (-0.517, -0.026)
    assert round(d.p_value, 3) == 0.034
