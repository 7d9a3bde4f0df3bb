"""Known answers for the statistics behind the claims."""

from __future__ import annotations

import numpy as np
import pytest

from orisel.core.errors import InvalidArgument
from orisel.science import statistics as st


def test_fdr_on_constructed_p_values() -> None:
    # BH by hand: q_(i) = min over j >= i of p_(j) m / j, m = 6.
    p = np.array([0.01, 0.02, 0.03, 0.04, 0.05, 0.5])
    np.testing.assert_allclose(st.fdr(p), [0.06, 0.06, 0.06, 0.06, 0.06, 0.5])
    # Order does not matter; untested units (NaN) are not counted among the tests.
    q = st.fdr(np.array([0.5, np.nan, 0.01, 0.04]))
    np.testing.assert_allclose(q, [0.5, np.nan, 0.03, 0.06])


def test_partial_correlation_separates_a_shared_trend_from_a_shared_signal() -> None:
    rng = np.random.default_rng(0)
    t = np.arange(200.0)  # training time
    x = t + rng.normal(0, 20, 200)
    y_trend = t + rng.normal(0, 20, 200)  # shares only the trend with x
    assert st.spearman_test(x, y_trend).effect > 0.85
    assert abs(st.partial_spearman(x, y_trend, t)) < 0.15
    # A series that is x itself beyond the trend: its partial correlation is exactly 1.
    assert st.partial_spearman(x, x, t) == pytest.approx(1.0)
    assert st.partial_spearman(x, -x, t) == pytest.approx(-1.0)


def test_the_circular_shift_test_is_exact_for_a_series_against_itself() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=20)
    got = st.circular_shift_test(x, x)
    assert got.effect == pytest.approx(1.0)
    assert got.p == pytest.approx(1 / 20)  # the smallest p twenty checkpoints allow
    assert got.n == 20
    # Independent noise: every shift is as good as the observed order, on average.
    ps = [st.circular_shift_test(rng.normal(size=20), rng.normal(size=20)).p for _ in range(200)]
    assert 0.4 < float(np.mean(ps)) < 0.6
    # Partialling the covariate out: a pure trend in both gives nothing beyond it.
    t = np.arange(20.0)
    assert abs(st.circular_shift_test(t + x, t + rng.normal(size=20), t).effect) < 0.6


def test_spearman_test_is_exact_for_few_networks() -> None:
    x = np.arange(6.0)
    got = st.spearman_test(x, x**2)
    assert got.effect == pytest.approx(1.0)
    assert got.p == pytest.approx(2 / 720)  # two of 6! pairings reach |r| = 1
    assert got.ci_low <= 1.0 <= got.ci_high + 1e-12
    with pytest.raises(InvalidArgument):
        st.spearman_test(x, x[:5])


def test_percentile_and_mean_tests() -> None:
    null = np.arange(100.0)
    assert st.percentile_of(99.5, null) == pytest.approx(100.0)
    assert st.percentile_of(-1.0, null) == pytest.approx(0.0)
    assert st.percentile_of(49.0, null) == pytest.approx(49.5)  # ties count half
    got = st.mean_test(np.array([1.0, 2.0, 3.0, 2.5, 1.5]))
    assert got.effect == pytest.approx(2.0)
    assert got.ci_low < 2.0 < got.ci_high
    assert 0.0 < got.p < 0.05
    assert np.isnan(st.mean_test(np.array([1.0])).p)


def test_a_mixed_model_finds_the_slope_within_groups_and_not_the_groups_offsets() -> None:
    """Four groups of three with large group offsets: y = 0.5 x + offset + small noise gives
    a slope near 0.5 with a tiny p; y made of the offsets alone (x varies within groups only)
    gives no slope; one group is untestable."""
    from orisel.science.statistics import mixed_slope

    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(4), 3)
    x = rng.uniform(0, 1, 12)
    offset = np.array([0.0, 3.0, -2.0, 5.0])[groups]
    fit = mixed_slope(0.5 * x + offset + rng.normal(0, 0.01, 12), x, groups)
    assert fit.effect == pytest.approx(0.5, abs=0.03)
    assert fit.ci_low < 0.5 < fit.ci_high
    assert fit.p < 1e-6
    assert fit.n == 12
    flat = mixed_slope(offset + rng.normal(0, 0.3, 12), x, groups)
    assert flat.p > 0.05
    assert flat.ci_low < 0 < flat.ci_high
    assert np.isnan(mixed_slope(x, x, np.zeros(12)).p)


def test_a_partial_correlation_with_nothing_left_is_undefined_not_zero() -> None:
    """Test accuracy that rises at every checkpoint with epoch has no variation left once
    epoch is partialled out: the partial r (and its test) is undefined, never r = 0 with
    p = 1, which would read as evidence of no association."""
    epoch = np.arange(7.0)
    test_acc = 0.3 + 0.05 * epoch  # ordered exactly by epoch
    gosi = np.array([0.1, 0.3, 0.2, 0.5, 0.4, 0.6, 0.7])
    assert np.isnan(st.partial_spearman(gosi, test_acc, epoch))
    got = st.circular_shift_test(gosi, test_acc, epoch)
    assert np.isnan(got.effect)
    assert np.isnan(got.p)
    assert got.n == 7
    assert "undefined" in got.null
    # With variation left, the same series give a defined r.
    wiggle = np.array([0.32, 0.30, 0.43, 0.38, 0.5, 0.47, 0.6])
    assert np.isfinite(st.circular_shift_test(gosi, wiggle, epoch).effect)
