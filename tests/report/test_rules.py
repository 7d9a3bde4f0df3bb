"""Known answers for the rules that decide the claims (issue 24): each on numbers built here,
with the expected answer computed independently (SciPy, statsmodels) rather than by
orisel.science.statistics."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest
from scipy import stats

from orisel.report.claims import claims
from orisel.report.rows import ClaimRow, Part, adjust
from orisel.science import statistics as st

from .test_paper import ACCURACIES, HOLDING, _data, _typed

LEVEL = np.array([0.0, 0.0, 0.0, 0.2, 0.2, 0.4, 0.4, 0.6])  # _data's corruption levels


def _with_gosi(gosi: np.ndarray) -> dict[str, Any]:
    return _data([float(g) for g in gosi])


def _means(v: np.ndarray) -> np.ndarray:
    _, level = np.unique(LEVEL, return_inverse=True)
    return np.bincount(level, v) / np.bincount(level)


def test_c3_with_few_levels_is_decided_by_the_level_means_and_records_why() -> None:
    """Four levels: the mixed model is set aside (its warnings kept in the row) and the
    between-level part is the regression of the levels' means on 2 df (linregress)."""
    acc = np.array(ACCURACIES)
    gosi = np.array(HOLDING) + np.array([0.01, -0.02, 0.01, 0.015, -0.015, -0.01, 0.01, 0.0])
    c3 = claims(_typed(_with_gosi(gosi)))[2]
    between = c3.parts[0].test
    expected = stats.linregress(_means(acc), _means(gosi))
    assert between.effect == pytest.approx(expected.slope)
    assert between.p == pytest.approx(expected.pvalue)
    assert between.df == 2
    assert "the mixed model set aside" in c3.value
    assert "4 groups (< 5)" in c3.value
    assert "fit warnings recorded" in c3.value


def test_c3_between_levels_only_does_not_hold() -> None:
    """gOSI follows the levels' accuracy but, within a level, the seeds scatter against
    accuracy: the between-level slope is significant, the within-level one (statsmodels'
    OLS with one dummy per level) is not, so label noise could carry it and C3 is not 'yes'."""
    import statsmodels.api as sm

    acc = np.array(ACCURACIES)
    scatter = np.array([0.03, -0.02, -0.01, -0.02, 0.02, 0.025, -0.025, 0.0])
    gosi = _means(acc)[np.searchsorted(np.unique(LEVEL), LEVEL)] - 0.2 + scatter
    c3 = claims(_typed(_with_gosi(gosi)))[2]
    between, within = (q.test for q in c3.parts)
    assert between.p == pytest.approx(stats.linregress(_means(acc), _means(gosi)).pvalue)
    assert between.effect > 0
    assert between.p < 0.05
    dummies = (LEVEL[:, None] == np.unique(LEVEL)).astype(float)
    ols = sm.OLS(gosi, np.column_stack([acc, dummies])).fit()
    assert within.effect == pytest.approx(ols.params[0])
    assert within.p == pytest.approx(ols.pvalues[0])
    assert within.p > 0.05
    assert c3.verdict == "inconclusive"  # 3 df cannot see one SD
    assert c3.p == pytest.approx(within.p if within.effect > 0 else 1.0)


def test_c3_with_one_network_per_level_is_not_decided() -> None:
    """Without seeds sharing a level, label noise could carry any slope: a significant one
    (scipy's linregress) is described, and the claim is inconclusive, never 'yes'."""
    data = _data(HOLDING)
    data["variants"] = {n: v for n, v in data["variants"].items() if n.endswith("-s0")}
    c3 = claims(_typed(data))[2]
    kept = (0, 3, 5, 7)  # the s0 networks, one per level
    fit = stats.linregress([ACCURACIES[i] for i in kept], [HOLDING[i] for i in kept])
    assert fit.pvalue < 0.05
    assert f"p={fit.pvalue:.4f}, 2 df" in c3.value
    assert "no within-level control" in c3.value
    assert c3.verdict == "inconclusive"


def _split(layer: str, diff: float, base: dict[str, Any]) -> dict[str, Any]:
    s = copy.deepcopy(base)
    s["layer"] = layer
    s["top50"]["loss_increase_mean"] = 0.2 + diff
    s["paired"]["difference"] = diff
    return s


def test_c4_is_tested_layer_by_layer_not_averaged_across_opposite_signs() -> None:
    """layer1: the bottom half costs more in every network; layer2: the top half, by as
    much. Their average is about 0; per layer each is a one-sample t (scipy), the pattern is
    reported, and the claim does not hold."""
    data = _data(HOLDING)
    layer1 = {"cnn7-c0-s0": -2.0, "cnn7-c0-s1": -1.6, "cnn7-c0-s2": -2.4}
    layer2 = {"cnn7-c0-s0": 1.9, "cnn7-c0-s1": 2.3, "cnn7-c0-s2": 1.8}
    for n, v in data["variants"].items():
        if v["ablate"]:
            base = v["ablate"]["splits"][0]
            v["ablate"]["splits"] = [
                _split("layer1", layer1[n], base),
                _split("layer2", layer2[n], base),
            ]
    c4 = claims(_typed(data))[3]
    parts = {q.name: q.test for q in c4.parts}
    assert set(parts) == {"layer1", "layer2"}
    for layer, diffs in (("layer1", layer1), ("layer2", layer2)):
        t = stats.ttest_1samp(list(diffs.values()), 0.0)
        assert parts[layer].effect == pytest.approx(np.mean(list(diffs.values())))
        assert parts[layer].p == pytest.approx(t.pvalue)
    assert c4.verdict == "inconclusive"  # layer1 against the claim, but not at 0.05 / 7
    assert c4.effect == pytest.approx(-2.0)  # the wrong-signed layer decides
    assert "(top > bottom in 0/3 networks)" in c4.value
    assert "(top > bottom in 3/3 networks)" in c4.value


def test_a_c6_contrast_driven_by_the_control_does_not_hold() -> None:
    """gOSI-first costs what random orders cost, give or take; CSI-first costs less than
    either. gOSI-first minus CSI-first is positive and significant, but gOSI-first minus
    random is not, so orientation selectivity marks nothing: C6 is not 'yes'."""
    data = _data(HOLDING)
    spare = {"cnn7-c0-s0": 0.10, "cnn7-c0-s1": 0.12, "cnn7-c0-s2": 0.11}
    jitter = {"cnn7-c0-s0": -0.01, "cnn7-c0-s1": 0.012, "cnn7-c0-s2": -0.003}
    for n, v in data["variants"].items():
        if v["ablate"]:
            for c in v["ablate"]["curves"]:
                if c["fraction"] > 0:
                    random = 0.72 if c["fraction"] == 0.5 else 0.25
                    own = {"csi:descending": spare[n], "gosi:descending": jitter[n]}
                    c["accuracy"] = random + own.get(c["order"], 0.0)
    c6 = claims(_typed(data))[6]
    parts = {q.name: q.test for q in c6.parts}
    vs_random, vs_csi = parts["gOSI-first minus random"], parts["gOSI-first minus CSI-first"]
    # Each keeps its offset more accuracy at two of the curve's three fractions.
    against_random = [-2 * j / 3 for j in jitter.values()]
    assert vs_random.effect == pytest.approx(np.mean(against_random))
    assert vs_random.p == pytest.approx(stats.ttest_1samp(against_random, 0.0).pvalue)
    assert vs_random.p > 0.05
    expected = [2 * (s - j) / 3 for s, j in zip(spare.values(), jitter.values(), strict=True)]
    assert vs_csi.effect == pytest.approx(np.mean(expected))
    assert vs_csi.p == pytest.approx(stats.ttest_1samp(expected, 0.0).pvalue)
    assert vs_csi.p < 0.05
    assert c6.verdict == "inconclusive"


def test_an_underpowered_miss_is_inconclusive_and_a_powered_one_is_no() -> None:
    """Three networks: a miss reports the effect detectable with 80% power (statsmodels'
    solved effect size times the SD), which is larger than one SD of the networks, so the
    verdict is 'inconclusive'. Twenty networks with no effect: the design would have seen
    one SD, so the miss is 'no'."""
    from statsmodels.stats.power import TTestPower

    data = _data(HOLDING)
    top = {"cnn7-c0-s0": 0.45, "cnn7-c0-s1": 0.52, "cnn7-c0-s2": 0.49}  # control: 0.5
    for n, v in data["variants"].items():
        if v["invariance"]:
            v["invariance"]["summary"]["layer1:top50"]["invariance"] = top[n]
    c5 = claims(_typed(data))[5]
    drops = np.array([0.5 - t for t in top.values()])
    assert c5.p == pytest.approx(stats.ttest_1samp(drops, 0.0).pvalue)
    d = TTestPower().solve_power(nobs=3, alpha=0.05, power=0.8)
    (part,) = c5.parts
    assert part.detectable == pytest.approx(d * drops.std(ddof=1), rel=1e-4)
    assert part.reference == pytest.approx(drops.std(ddof=1))
    assert c5.verdict == "inconclusive"
    null = np.linspace(-1.0, 1.0, 20) + 0.05  # mean 0.05, SD 0.62: not significant
    powered = adjust(
        [ClaimRow("C9 a claim", "mean", "0", (Part("all", st.mean_test(null)),), "", True)]
    )[0]
    assert stats.ttest_1samp(null, 0.0).pvalue > 0.05
    assert TTestPower().solve_power(nobs=20, alpha=0.05, power=0.8) < 1.0
    assert powered.verdict == "no"


def test_holm_runs_across_the_claims_and_is_in_the_table() -> None:
    from statsmodels.stats.multitest import multipletests

    rows = claims(_typed(_data(HOLDING)))
    p = np.array([r.p for r in rows], dtype=float)
    np.testing.assert_allclose([r.p_holm for r in rows], multipletests(p, method="holm")[1])
