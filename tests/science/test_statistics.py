"""Known answers for the statistics behind the claims."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from orisel.kernel.errors import InvalidArgument
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
    values = np.array([1.0, 2.0, 3.0, 2.5, 1.5])
    got = st.mean_test(values)
    assert got.effect == pytest.approx(2.0)
    assert got.p == pytest.approx(stats.ttest_1samp(values, 0.0).pvalue)
    assert got.df == 4
    assert got.ci_low < 2.0 < got.ci_high
    assert 0.0 < got.p < 0.05
    assert np.isnan(st.mean_test(np.array([1.0])).p)


def test_a_mixed_model_that_stands_finds_the_slope_within_groups_with_honest_df() -> None:
    """Ten groups with large offsets: y = 0.5 x + offset + small noise. The model converges
    with a real level variance, so it decides, on t with groups - 2 df (not a z test)."""
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(10), 3)
    x = rng.uniform(0, 1, 30)
    offset = rng.normal(0, 2, 10)[groups]
    fit = st.mixed_slope(0.5 * x + offset + rng.normal(0, 0.05, 30), x, groups)
    assert fit.method == "mixed model"
    assert fit.reason == ""
    assert fit.re_variance > 1.0
    t = fit.test
    assert t.effect == pytest.approx(0.5, abs=0.07)
    assert t.df == 8
    assert t.p == pytest.approx(2 * stats.t.sf(abs(t.effect / t.se), 8))
    # The offsets alone (x varies within groups only): no slope.
    flat = st.mixed_slope(offset + rng.normal(0, 0.3, 30), x, groups)
    assert flat.test.p > 0.05


def test_a_collapsed_random_effect_falls_back_to_the_level_means_regression() -> None:
    """Noise centred within each group leaves the groups nothing to share: the random
    intercept's variance goes to the boundary, which the fit says (recorded, not hidden),
    and the slope is decided by the regression of the groups' means on groups - 2 df,
    computed here with scipy's linregress."""
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(8), 3)
    x = rng.uniform(0, 1, 24)
    noise = rng.normal(0, 0.1, 24)
    noise -= np.array([noise[groups == g].mean() for g in range(8)])[groups]
    y = 0.5 * x + noise
    fit = st.mixed_slope(y, x, groups)
    assert fit.method == "level-means regression"
    assert "boundary" in fit.reason or "collapsed" in fit.reason
    assert fit.warnings  # statsmodels' ConvergenceWarnings, kept for the row
    means = stats.linregress(
        [x[groups == g].mean() for g in range(8)], [y[groups == g].mean() for g in range(8)]
    )
    assert fit.test.effect == pytest.approx(means.slope)
    assert fit.test.p == pytest.approx(means.pvalue)
    assert fit.test.df == 6
    assert fit.test.n == 8


def test_few_levels_are_decided_by_their_means_whatever_the_fit() -> None:
    rng = np.random.default_rng(1)
    groups = np.repeat(np.arange(4), 3)
    x = rng.uniform(0, 1, 12)
    y = 0.5 * x + np.array([0.0, 3.0, -2.0, 5.0])[groups] + rng.normal(0, 0.01, 12)
    fit = st.mixed_slope(y, x, groups)
    assert fit.method == "level-means regression"
    assert "4 groups (< 5)" in fit.reason
    assert fit.test.df == 2
    assert np.isnan(st.mixed_slope(x, x, np.zeros(12)).test.p)  # one group: untestable


def test_a_between_only_effect_has_no_within_group_slope() -> None:
    """Group means on a line, members scattered around their group's mean independently in
    x and y: the between slope is the line's, the within slope is nothing. Expected values
    from an OLS with one dummy per group (statsmodels) and from linregress on the means."""
    import statsmodels.api as sm

    rng = np.random.default_rng(2)
    groups = np.repeat(np.arange(4), 3)
    centre = np.array([0.1, 0.4, 0.6, 0.9])
    x = centre[groups] + rng.normal(0, 0.05, 12)
    y = 2.0 * centre[groups] + rng.normal(0, 0.05, 12)
    within = st.within_slope(y, x, groups)
    dummies = (groups[:, None] == np.arange(4)).astype(float)
    ols = sm.OLS(y, np.column_stack([x, dummies])).fit()
    assert within.effect == pytest.approx(ols.params[0])
    assert within.se == pytest.approx(ols.bse[0])
    assert within.p == pytest.approx(ols.pvalues[0])
    assert within.df == ols.df_resid == 7
    assert within.p > 0.05
    between = st.between_slope(y, x, groups)
    means = stats.linregress(
        [x[groups == g].mean() for g in range(4)], [y[groups == g].mean() for g in range(4)]
    )
    assert between.effect == pytest.approx(means.slope)
    assert between.p == pytest.approx(means.pvalue)
    assert between.p < 0.05


def test_the_detectable_effect_is_statsmodels_power_solution() -> None:
    """80% power, two-sided 0.05: the smallest effect of a one-sample t test over n units is
    statsmodels' solved standardized effect times the SD, i.e. times se * sqrt(n)."""
    from statsmodels.stats.power import TTestPower

    for n in (3, 8, 20):
        d = TTestPower().solve_power(nobs=n, alpha=0.05, power=0.8)
        assert st.detectable(0.1, n - 1) == pytest.approx(d * 0.1 * np.sqrt(n), rel=1e-4)
    assert np.isnan(st.detectable(float("nan"), 2))


def test_holm_matches_statsmodels_and_skips_untested_claims() -> None:
    from statsmodels.stats.multitest import multipletests

    p = np.array([0.01, 0.04, 0.03, 0.5, 0.002])
    np.testing.assert_allclose(st.holm(p), multipletests(p, method="holm")[1])
    got = st.holm(np.array([0.01, np.nan, 0.04]))
    np.testing.assert_allclose(got, [0.02, np.nan, 0.04])


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
