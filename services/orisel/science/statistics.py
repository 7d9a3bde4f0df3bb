"""The statistics behind the claims, on SciPy's tested implementations.

Each function returns plain numbers with the null it was tested against, so a table can state
the statistic, the null, n, the effect with its interval and the verdict. Time series (one
network's checkpoints) are never treated as exchangeable: their tests shift one series
circularly against the other, which keeps each series' autocorrelation.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

from orisel.core.errors import InvalidArgument


@dataclass(frozen=True)
class Test:
    """One test's outcome: the effect, its 95% interval, the p-value, n and the null used."""

    effect: float
    ci_low: float
    ci_high: float
    p: float
    n: int
    null: str

    def as_dict(self) -> dict[str, float | int | str]:
        return asdict(self)


def fdr(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (q); NaN entries (untested units) stay NaN and do
    not count among the tests."""
    p = np.asarray(p, dtype=float)
    q = np.full(p.shape, np.nan)
    tested = ~np.isnan(p)
    if tested.any():
        q[tested] = stats.false_discovery_control(p[tested], method="bh")
    return q


def _pair(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.shape != y.shape or x.ndim != 1 or len(x) < 3:
        raise InvalidArgument("x/y", "two series of one length, at least 3", (x.shape, y.shape))
    return x, y


def _spearman(x: np.ndarray, y: np.ndarray) -> float:
    with warnings.catch_warnings():
        # A resample that draws one value throughout has no defined r; it counts as 0.
        warnings.simplefilter("ignore", stats.ConstantInputWarning)
        r = stats.spearmanr(x, y).statistic
    return float(r) if np.isfinite(r) else 0.0


def _pearson(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson r along the last axis (broadcast); 0 where either side has no spread."""
    a = a - a.mean(axis=-1, keepdims=True)
    b = b - b.mean(axis=-1, keepdims=True)
    denom = np.sqrt((a**2).sum(axis=-1) * (b**2).sum(axis=-1))
    out: np.ndarray = np.divide(
        (a * b).sum(axis=-1), denom, out=np.zeros(np.broadcast(a, b).shape[:-1]), where=denom > 0
    )
    return out


def spearman_test(x: np.ndarray, y: np.ndarray, seed: int = 0, resamples: int = 9_999) -> Test:
    """Spearman r between independent observations (networks): a two-sided permutation p
    (exact when n! is at most `resamples`) and a percentile bootstrap 95% interval."""
    x, y = _pair(x, y)
    r = _spearman(x, y)
    rx = stats.rankdata(x)

    def reordered(ry: np.ndarray, axis: int = -1) -> np.ndarray:
        # Reordering y reorders its ranks: Pearson r of ranks, for every reordering at once.
        return _pearson(rx, np.moveaxis(ry, axis, -1))

    def resampled(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
        # A bootstrap resample repeats values: ranks (ties shared) are taken afresh.
        ra = stats.rankdata(np.moveaxis(a, axis, -1), axis=-1)
        rb = stats.rankdata(np.moveaxis(b, axis, -1), axis=-1)
        return _pearson(ra, rb)

    # Only y is reordered (n! pairings), so small samples are tested exactly.
    perm = stats.permutation_test(
        (stats.rankdata(y),),
        reordered,
        permutation_type="pairings",
        vectorized=True,
        n_resamples=resamples,
        alternative="two-sided",
        rng=np.random.default_rng(seed),
    )
    boot = stats.bootstrap(
        (x, y),
        resampled,
        paired=True,
        vectorized=True,
        n_resamples=2_000,
        method="percentile",
        rng=np.random.default_rng(seed + 1),
    )
    return Test(
        r,
        float(boot.confidence_interval.low),
        float(boot.confidence_interval.high),
        float(perm.pvalue),
        len(x),
        "pairings permuted",
    )


def partial_spearman(x: np.ndarray, y: np.ndarray, covariates: np.ndarray) -> float:
    """Spearman correlation of x and y with the covariates' ranks regressed out of both
    (Pearson r of the rank residuals): what x and y share beyond what each shares with the
    covariates. NaN where the covariates order x or y exactly (test accuracy rising with
    epoch at every checkpoint): nothing is left to correlate, which is not r = 0."""
    x, y = _pair(x, y)
    z = np.asarray(covariates, dtype=float).reshape(len(x), -1)
    design = np.column_stack([np.ones(len(x)), np.apply_along_axis(stats.rankdata, 0, z)])

    def residual(v: np.ndarray) -> np.ndarray:
        ranks = stats.rankdata(v)
        coef = np.linalg.lstsq(design, ranks, rcond=None)[0]
        out: np.ndarray = ranks - design @ coef
        return out

    rx, ry = residual(x), residual(y)
    denom = np.sqrt((rx**2).sum() * (ry**2).sum())
    return float((rx * ry).sum() / denom) if denom > 1e-12 else float("nan")


def circular_shift_test(x: np.ndarray, y: np.ndarray, covariates: np.ndarray | None = None) -> Test:
    """(Partial) Spearman r of two time series, against every circular shift of x relative
    to y (and its covariates), which keeps both series' autocorrelation: p = (1 + #shifts
    with |r| >= |observed|) / n, exact, at least 1/n. The interval is the shifts' central 95%
    (the null's spread, not a confidence interval of r). An observed r that is undefined
    (see partial_spearman) gives an undefined test; a shift whose r is undefined counts as
    no association."""
    x, y = _pair(x, y)
    z = np.zeros((len(x), 0)) if covariates is None else np.asarray(covariates, dtype=float)
    z = z.reshape(len(x), -1)

    def r_of(v: np.ndarray) -> float:
        return partial_spearman(v, y, z) if z.size else _spearman(v, y)

    observed = r_of(x)
    kind = "circular shifts" + (f", {z.shape[1]} covariates partialled out" if z.size else "")
    if not np.isfinite(observed):
        nan = float("nan")
        return Test(nan, nan, nan, nan, len(x), kind + "; undefined")
    null = np.nan_to_num([r_of(np.roll(x, k)) for k in range(1, len(x))], nan=0.0)
    p = (1 + np.sum(np.abs(null) >= abs(observed) - 1e-12)) / len(x)
    lo, hi = np.percentile(null, [2.5, 97.5])
    return Test(observed, float(lo), float(hi), float(p), len(x), kind)


def percentile_of(value: float, null: np.ndarray) -> float:
    """Where `value` falls among `null` draws, in percent (ties count half)."""
    return float(stats.percentileofscore(np.asarray(null, dtype=float), value, kind="mean"))


def mixed_slope(y: np.ndarray, x: np.ndarray, groups: np.ndarray) -> Test:
    """Slope of y on x with a random intercept per group (statsmodels' linear mixed model,
    REML): networks that share a group (a label-corruption level, whose corrupted labels they
    share) are not independent, and the group's shared part is not counted as evidence n
    times. Wald 95% interval and p; fewer than two groups, or a fit that fails, give NaN."""
    from statsmodels.regression.mixed_linear_model import MixedLM
    from statsmodels.tools.sm_exceptions import ConvergenceWarning

    y, x = _pair(y, x)
    g = np.asarray(groups)
    n = len(y)
    if n < 4 or len(np.unique(g)) < 2 or np.ptp(x) == 0:
        return Test(float("nan"), float("nan"), float("nan"), float("nan"), n, "mixed model")
    exog = np.column_stack([np.ones(n), x])
    try:
        with warnings.catch_warnings():
            # Few groups make the variance component's estimate rough, which it says; the
            # slope's Wald test stands on the fit it returns.
            warnings.simplefilter("ignore", ConvergenceWarning)
            warnings.simplefilter("ignore", RuntimeWarning)
            fit = MixedLM(y, exog, groups=g).fit(reml=True)
        low, high = (float(v) for v in np.asarray(fit.conf_int())[1])
        effect, p = float(np.asarray(fit.params)[1]), float(np.asarray(fit.pvalues)[1])
    except (ValueError, np.linalg.LinAlgError):
        return Test(float("nan"), float("nan"), float("nan"), float("nan"), n, "mixed model")
    return Test(effect, low, high, p, n, "slope = 0 (Wald, random intercept per group)")


def mean_test(values: np.ndarray) -> Test:
    """A mean across independent units of replication (networks) against zero: one-sample t
    with its 95% interval; fewer than 2 values, or values without spread, give NaN p and
    interval (untestable, never significant)."""
    v = np.asarray(values, dtype=float)
    mean = float(v.mean()) if len(v) else float("nan")
    if len(v) < 2 or np.ptp(v) == 0:  # no spread: a t statistic is undefined
        return Test(mean, float("nan"), float("nan"), float("nan"), len(v), "one-sample t")
    t = stats.ttest_1samp(v, 0.0)
    ci = t.confidence_interval(0.95)
    return Test(mean, float(ci.low), float(ci.high), float(t.pvalue), len(v), "one-sample t")
