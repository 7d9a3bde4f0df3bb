"""The statistics behind the claims, on SciPy's tested implementations.

Each function returns plain numbers with the null it was tested against, so a table can state
the statistic, the null, n, the effect with its interval and the verdict. Time series (one
network's checkpoints) are never treated as exchangeable: their tests shift one series
circularly against the other, which keeps each series' autocorrelation.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace

import numpy as np
from scipy import optimize, stats

from orisel.kernel.errors import InvalidArgument


@dataclass(frozen=True)
class Test:
    """One test's outcome: the effect, its 95% interval, the p-value, n and the null used."""

    effect: float
    ci_low: float
    ci_high: float
    p: float
    n: int
    null: str
    df: float = float("nan")  # the t test's degrees of freedom (NaN: not a t test)
    se: float = float("nan")  # the effect's standard error (NaN: none)


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
    # Nothing left is judged against the ranks' own spread: least squares leaves round-off
    # that grows with the series' length, which an absolute bound would take for signal.
    spread = len(x) * (len(x) ** 2 - 1) / 12  # sum of squared deviations of ranks 1..n
    if min((rx**2).sum(), (ry**2).sum()) <= 1e-12 * spread:
        return float("nan")
    return float((rx * ry).sum() / np.sqrt((rx**2).sum() * (ry**2).sum()))


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


def _t_test(effect: float, se: float, df: float, n: int, null: str) -> Test:
    """A t statistic effect / se with `df` degrees of freedom: two-sided p and 95% interval;
    an undefined standard error or no degrees of freedom give NaN (never significant)."""
    if not (np.isfinite(se) and se > 0 and df >= 1):
        nan = float("nan")
        return Test(effect, nan, nan, nan, n, null, df, se)
    half = float(stats.t.ppf(0.975, df)) * se
    p = float(2 * stats.t.sf(abs(effect) / se, df))
    return Test(effect, effect - half, effect + half, p, n, null, df, se)


def slope_test(y: np.ndarray, x: np.ndarray) -> Test:
    """Least-squares slope of y on x with its t test on n - 2 degrees of freedom."""
    y, x = _pair(y, x)
    xc, yc = x - x.mean(), y - y.mean()
    sxx = float(xc @ xc)
    if sxx == 0:
        return _t_test(float("nan"), float("nan"), 0, len(y), "slope = 0 (t, n - 2 df)")
    slope = float(xc @ yc) / sxx
    df = len(y) - 2
    resid = yc - slope * xc
    se = float(np.sqrt(resid @ resid / df / sxx)) if df > 0 else float("nan")
    return _t_test(slope, se, df, len(y), "slope = 0 (t, n - 2 df)")


def level_means(
    y: np.ndarray, x: np.ndarray, groups: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each group's mean of y and of x, and each observation's group index."""
    _, index = np.unique(np.asarray(groups), return_inverse=True)
    counts = np.bincount(index)
    return np.bincount(index, y) / counts, np.bincount(index, x) / counts, index


def between_slope(y: np.ndarray, x: np.ndarray, groups: np.ndarray) -> Test:
    """The slope across the groups' means, t on (groups - 2) df: each group counts once,
    so what its members share (a corruption level's labels) is not counted n times."""
    y, x = _pair(y, x)
    ym, xm, _ = level_means(y, x, groups)
    if len(ym) < 3:
        nan = float("nan")
        return Test(nan, nan, nan, nan, len(ym), "slope of group means = 0; fewer than 3 groups")
    return replace(slope_test(ym, xm), null="slope of group means = 0 (t, groups - 2 df)")


def within_slope(y: np.ndarray, x: np.ndarray, groups: np.ndarray) -> Test:
    """The pooled slope within groups (y and x centred on their group's means), t on
    n - groups - 1 df: what remains once everything the groups differ by is removed."""
    y, x = _pair(y, x)
    ym, xm, index = level_means(y, x, groups)
    xc, yc = x - xm[index], y - ym[index]
    sxx = float(xc @ xc)
    df = len(y) - len(ym) - 1
    null = "within-group slope = 0 (t, n - groups - 1 df)"
    if sxx == 0 or df < 1:
        return _t_test(float("nan"), float("nan"), 0, len(y), null)
    slope = float(xc @ yc) / sxx
    resid = yc - slope * xc
    return _t_test(slope, float(np.sqrt(resid @ resid / df / sxx)), df, len(y), null)


MIN_LEVELS = 5  # fewer groups cannot estimate a random intercept's variance
COLLAPSED = 1e-3  # random-intercept variance over residual variance below which it is gone


@dataclass(frozen=True)
class MixedFit:
    """A random-intercept slope as fitted, and the test that decides it: the mixed model's
    own (t on groups - 2 df) where it stands, else the explicit fallback, with the reason
    and every warning the fit raised."""

    test: Test
    method: str
    reason: str
    converged: bool
    re_variance: float
    residual_variance: float
    levels: int
    warnings: tuple[str, ...]


def mixed_slope(y: np.ndarray, x: np.ndarray, groups: np.ndarray) -> MixedFit:
    """Slope of y on x with a random intercept per group (statsmodels' linear mixed model,
    REML): networks of a group (a label-corruption level) share its labels, so they are not
    independent. The model stands only when it converged, its random-intercept variance did
    not collapse to the boundary and there are at least MIN_LEVELS groups; its slope is then
    tested with t on (groups - 2) df, not statsmodels' normal z, which few groups make
    anticonservative. Otherwise the decision falls back to the regression of the groups'
    means (between_slope), and the row says why. Warnings are recorded, not hidden."""
    from statsmodels.regression.mixed_linear_model import MixedLM

    y, x = _pair(y, x)
    g = np.asarray(groups)
    levels = len(np.unique(g))
    fallback = between_slope(y, x, g)
    nan = float("nan")
    if levels < 2 or np.ptp(x) == 0:
        why = "fewer than 2 groups" if levels < 2 else "x does not vary"
        return MixedFit(fallback, "level-means regression", why, False, nan, nan, levels, ())
    exog = np.column_stack([np.ones(len(y)), x])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            fit = MixedLM(y, exog, groups=g).fit(reml=True)
        except (ValueError, np.linalg.LinAlgError) as exc:
            failed = f"the fit failed ({exc})"
            return MixedFit(fallback, "level-means regression", failed, False, nan, nan, levels, ())
    said = tuple(dict.fromkeys(str(w.message) for w in caught))
    re_var, scale = float(np.asarray(fit.cov_re)[0, 0]), float(fit.scale)
    converged = bool(fit.converged)
    reasons = [
        why
        for why, bad in (
            ("did not converge", not converged),
            ("random-intercept variance collapsed to 0", not re_var > COLLAPSED * scale),
            ("on the boundary of the parameter space", any("boundary" in w for w in said)),
            ("Hessian not positive definite", any("positive definite" in w for w in said)),
            (f"{levels} groups (< {MIN_LEVELS})", levels < MIN_LEVELS),
        )
        if bad
    ]
    if reasons:
        return MixedFit(
            fallback,
            "level-means regression",
            "; ".join(reasons),
            converged,
            re_var,
            scale,
            levels,
            said,
        )
    slope, se = float(np.asarray(fit.params)[1]), float(np.asarray(fit.bse)[1])
    test = _t_test(slope, se, levels - 2, len(y), "slope = 0 (mixed model, t on groups - 2 df)")
    return MixedFit(test, "mixed model", "", converged, re_var, scale, levels, said)


def detectable(se: float, df: float, power: float = 0.8, alpha: float = 0.05) -> float:
    """The smallest true effect a two-sided t test (level alpha, `df` degrees of freedom,
    standard error `se`) detects with probability `power`: delta * se, delta the
    noncentrality at which the noncentral t exceeds the critical value that often. NaN
    where the test is undefined."""
    if not (np.isfinite(se) and se > 0 and np.isfinite(df) and df >= 1):
        return float("nan")
    crit = float(stats.t.ppf(1 - alpha / 2, df))

    def short(delta: float) -> float:
        # The far tail (below -crit) is negligible where SciPy's series gives NaN.
        far = np.nan_to_num(stats.nct.cdf(-crit, df, delta), nan=0.0)
        return float(stats.nct.sf(crit, df, delta) + far) - power

    return float(optimize.brentq(short, 0.0, 40.0)) * se


def holm(p: np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values; NaN entries (claims not tested) stay NaN and do
    not count in the family."""
    p = np.asarray(p, dtype=float)
    out = np.full(p.shape, np.nan)
    tested = np.flatnonzero(~np.isnan(p))
    order = tested[np.argsort(p[tested], kind="stable")]
    m = len(order)
    out[order] = np.minimum(1.0, np.maximum.accumulate(p[order] * (m - np.arange(m))))
    return out


def mean_test(values: np.ndarray) -> Test:
    """A mean across independent units of replication (networks) against zero: one-sample t
    with its 95% interval; fewer than 2 values, or values without spread, give NaN p and
    interval (untestable, never significant)."""
    v = np.asarray(values, dtype=float)
    mean = float(v.mean()) if len(v) else float("nan")
    if len(v) < 2 or np.ptp(v) == 0:  # no spread: a t statistic is undefined
        return Test(mean, float("nan"), float("nan"), float("nan"), len(v), "one-sample t")
    se = float(v.std(ddof=1) / np.sqrt(len(v)))
    return _t_test(mean, se, len(v) - 1, len(v), "one-sample t")
