"""An independent recomputation of the committed report's verdicts (issue 24): data.json is
read as plain JSON and every claim re-tested with SciPy and statsmodels by the rules the
report states, sharing no code with orisel.science.statistics or orisel.report; the
verdicts, p-values and Holm p-values must be the report's, and the committed markdown must
show those verdicts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import TTestPower

RESULTS = Path(__file__).parents[2] / "docs" / "results"
LOWER = ("layer1", "layer2", "layer3")
HIGHER = ("layer4", "layer5", "layer6", "fc1")

# One test a claim needs: (effect, two-sided p, df, predicted sign).
Part = tuple[float, float, float, float]


def _t(values: list[float]) -> Part:
    v = np.asarray(values, dtype=float)
    return float(v.mean()), float(stats.ttest_1samp(v, 0.0).pvalue), len(v) - 1.0, 1.0


def _c1(ref: dict[str, Any]) -> tuple[list[Part], bool]:
    exists, gains = True, []
    for v in ref.values():
        start = next(t for t in v["trajectory"] if t["epoch"] == 0)
        d = []
        for kind in ("gratings", "bars"):
            for layer, s in v["tune"][kind].items():
                exists &= s["selective_fdr"] > 0
                s0 = start[kind][layer]
                excess = s["fraction_above_threshold"] - s["null_fraction_above_threshold"]
                d.append(
                    excess - s0["fraction_above_threshold"] + s0["null_fraction_above_threshold"]
                )
        gains.append(float(np.mean(d)))
    return [_t(gains)], exists


def _c2_testable(variants: dict[str, Any]) -> bool:
    """Whether any trajectory leaves something once epoch and training accuracy are
    partialled out: ranks of test accuracy or lower gOSI not fitted exactly by theirs."""
    for v in variants.values():
        rows = [t for t in v.get("trajectory", []) if t["metrics"].get("train")]
        if len(rows) < 5:
            continue
        covariates = np.column_stack(
            [
                stats.rankdata([t["epoch"] for t in rows]),
                stats.rankdata([t["metrics"]["train"]["accuracy"] for t in rows]),
            ]
        )
        test = stats.rankdata([t["metrics"]["test"]["accuracy"] for t in rows])
        gosi = stats.rankdata(
            [np.mean([t["gratings"][k]["mean_gosi"] for k in LOWER]) for t in rows]
        )
        design = np.column_stack([np.ones(len(rows)), covariates])
        left = [y - design @ np.linalg.lstsq(design, y, rcond=None)[0] for y in (test, gosi)]
        if all(
            r @ r > 1e-9 * ((y - y.mean()) @ (y - y.mean()))
            for r, y in zip(left, (test, gosi), strict=True)
        ):
            return True
    return False


def _c3(variants: dict[str, Any]) -> list[Part]:
    import statsmodels.api as sm

    g = np.array(
        [np.mean([v["tune"]["gratings"][k]["mean_gosi"] for k in LOWER]) for v in variants.values()]
    )
    acc = np.array([v["tune"]["metrics"]["test"]["accuracy"] for v in variants.values()])
    level = np.array([v["corruption"] for v in variants.values()])
    levels = np.unique(level)
    assert len(levels) < 5  # too few for a random intercept: the levels' means decide
    between = stats.linregress(
        [acc[level == c].mean() for c in levels], [g[level == c].mean() for c in levels]
    )
    dummies = (level[:, None] == levels).astype(float)
    within = sm.OLS(g, np.column_stack([acc, dummies])).fit()
    return [
        (float(between.slope), float(between.pvalue), len(levels) - 2.0, 1.0),
        (float(within.params[0]), float(within.pvalues[0]), float(within.df_resid), 1.0),
    ]


def _c4(ref: dict[str, Any], matched: bool) -> list[Part]:
    per: dict[str, list[float]] = {}
    for v in ref.values():
        for s in v["ablate"]["splits"]:
            if s["by"] == "gosi" and s["layer"] in LOWER:
                d = (
                    np.mean([m["paired"]["difference"] for m in s["matched"].values()])
                    if matched
                    else s["top50"]["loss_increase_mean"] - s["bottom50"]["loss_increase_mean"]
                )
                per.setdefault(s["layer"], []).append(float(d))
    return [_t(d) for d in per.values()]


def _c5(ref: dict[str, Any]) -> list[Part]:
    drops = []
    for v in ref.values():
        s = v["invariance"]["summary"]
        layers = v["invariance"]["spec"]["ablate_layers"]
        drops.append(
            np.mean(
                [
                    s[f"{k}:random_damage_matched"]["invariance"] - s[f"{k}:top50"]["invariance"]
                    for k in layers
                ]
            )
        )
    return [_t(drops)]


def _c6(ref: dict[str, Any]) -> list[Part]:
    vs_random, vs_csi = [], []
    for v in ref.values():
        curves = v["ablate"]["curves"]

        def lost(layer: str, order: str, curves: list[dict[str, Any]] = curves) -> float:
            acc = [c["accuracy"] for c in curves if c["layer"] == layer and c["order"] == order]
            intact = next(
                c["accuracy"]
                for c in curves
                if c["layer"] == layer and c["order"] == order and c["fraction"] == 0
            )
            return float(intact - np.mean(acc))

        layers = sorted({c["layer"] for c in curves})
        g = np.array([lost(k, "gosi:descending") for k in layers])
        vs_random.append(float(np.mean(g - [lost(k, "random") for k in layers])))
        vs_csi.append(float(np.mean(g - [lost(k, "csi:descending") for k in layers])))
    return [_t(vs_random), _t(vs_csi)]


def _verdict(parts: list[Part], holm: float, family: int) -> str:
    """yes: every part significant with its sign and Holm p < 0.05; no: a part significant
    against its sign at 0.05 / family, or a miss by a design with 80% power for one SD of
    its units (statsmodels' solved effect size <= 1); else inconclusive."""
    if all(sign * e > 0 and p <= 0.05 for e, p, _, sign in parts) and holm <= 0.05:
        return "yes"
    if any(sign * e < 0 and p * family <= 0.05 for e, p, _, sign in parts):
        return "no"
    _, _, df, _ = max(parts, key=lambda q: q[1] if q[3] * q[0] > 0 else 1.0)
    return (
        "no"
        if TTestPower().solve_power(nobs=df + 1, alpha=0.05, power=0.8) <= 1
        else "inconclusive"
    )


def _decide(parts: list[Part]) -> float:
    return max(p if sign * e > 0 else 1.0 for e, p, _, sign in parts)


def test_the_committed_verdicts_are_recomputed_independently() -> None:
    from orisel.report.claims import claims
    from orisel.report.data import ReportData

    data = json.loads((RESULTS / "cifar10" / "data.json").read_text())
    variants = data["variants"]
    low = min(v["corruption"] for v in variants.values())
    ref = {n: v for n, v in variants.items() if v["corruption"] == low}
    c1, exists = _c1(ref)
    assert not _c2_testable(variants)  # so C2 is "not tested", outside the Holm family
    tested = {
        "C1": c1,
        "C3": _c3(variants),
        "C4": _c4(ref, matched=False),
        "C4m": _c4(ref, matched=True),
        "C5": _c5(ref),
        "C6": _c6(ref),
    }
    p = {k: _decide(parts) for k, parts in tested.items()}
    holm = dict(zip(p, multipletests(list(p.values()), method="holm")[1], strict=True))
    verdicts = {k: _verdict(parts, holm[k], len(p)) for k, parts in tested.items()}
    if not exists:
        verdicts["C1"] = "no"
    verdicts["C2"] = "not tested"

    rows = {r.key: r for r in claims(ReportData.read(RESULTS / "cifar10" / "data.json"))}
    assert {k: r.verdict for k, r in rows.items()} == verdicts
    for k in tested:
        assert rows[k].p == pytest.approx(p[k], rel=1e-6), k
        assert rows[k].p_holm == pytest.approx(holm[k], rel=1e-6), k
    table = (RESULTS / "cifar10.md").read_text().split("## Claims")[1].split("\n## ")[0]
    shown = {
        line.split("|")[1].split()[0]: line.rstrip(" |").rsplit("|", 1)[1].strip()
        for line in table.splitlines()
        if line.startswith("| C")
    }
    assert shown == verdicts
