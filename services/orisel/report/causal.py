"""The causal claims, from ablations: C4 (and C4m, its matched controls), C5 and C6."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from orisel.report.data import CurvePoint, Network
from orisel.report.rows import LOWER, ClaimRow, fmt, reference, row, significant
from orisel.science import statistics as st

Variants = Mapping[str, Network]


def _across(per_network: list[float]) -> st.Test | None:
    """The one-sample t test across networks of their per-network effects."""
    return st.mean_test(np.array(per_network)) if per_network else None


def _row(claim: str, statistic: str, test: st.Test | None, value: str) -> ClaimRow:
    """A claim tested across networks: a verdict once there are two of them."""
    return row(
        claim,
        statistic,
        "no difference across networks (one-sample t over networks)",
        test,
        value,
        significant(test) if test is not None and test.n >= 2 else None,
    )


def c4(variants: Variants) -> ClaimRow:
    """Ablating the most selective half of a lower layer hurts more than the least selective
    half: per-image paired differences per network, then a test across networks."""
    per_network: list[float] = []
    cases, percentiles, paired = [], [], True
    for n in reference(variants):
        diffs = []
        ablate = variants[n].ablate
        for s in ablate.splits if ablate else ():
            if s.by != "gosi" or s.layer not in LOWER:
                continue
            top, bottom = s.top50, s.bottom50
            diff = top.loss_increase_mean - bottom.loss_increase_mean
            if s.paired is not None:
                se = s.paired.sem
            else:  # collected before paired errors: the halves' errors combined
                paired = False
                se = float(np.hypot(top.loss_increase_sem, bottom.loss_increase_sem))
            diffs.append(diff)
            cases.append((diff, se))
            if s.random_halves is not None:
                percentiles.append(s.random_halves.top50_percentile)
        if diffs:
            per_network.append(float(np.mean(diffs)))
    test = _across(per_network)
    value = (
        f"{sum(d > 2 * se for d, se in cases)}/{len(cases)} (network, layer) cases top > "
        f"bottom by 2 {'paired ' if paired else ''}SE; {sum(d < -2 * se for d, se in cases)}/"
        f"{len(cases)} bottom > top; across {len(per_network)} networks mean difference "
        f"{fmt(test.effect if test else None, 3)} nats"
    )
    if percentiles:
        value += (
            f"; top half at the {fmt(float(np.median(percentiles)), 0)}th percentile (median) "
            "of random halves"
        )
    return _row(
        "C4 ablating the most selective lower-layer units hurts more than the least",
        "cross-entropy increase, top-50% minus bottom-50% by gOSI, layers 1-3, averaged per "
        "network; effect: mean over the lowest-corruption networks with its 95% CI",
        test,
        value,
    )


def c4m(variants: Variants) -> ClaimRow:
    """C4 against halves matched on what makes any unit's ablation costly (mean activation,
    BatchNorm gain, outgoing weight norm): within each matched pair the more selective unit
    is on top, so what remains of the difference is selectivity's."""
    per_network: list[float] = []
    by_covariate: dict[str, list[float]] = {}
    for n in reference(variants):
        diffs = []
        ablate = variants[n].ablate
        for s in ablate.splits if ablate else ():
            if s.by != "gosi" or s.layer not in LOWER:
                continue
            for name, m in (s.matched or {}).items():
                if m.paired is not None:
                    diffs.append(m.paired.difference)
                    by_covariate.setdefault(name, []).append(m.paired.difference)
        if diffs:
            per_network.append(float(np.mean(diffs)))
    test = _across(per_network)
    value = "; ".join(
        f"matched on {name.replace('_', ' ')}: mean {fmt(float(np.mean(d)), 3)} nats, "
        f"{sum(x > 0 for x in d)}/{len(d)} (network, layer) cases top > bottom"
        for name, d in by_covariate.items()
    )
    return _row(
        "C4m the most selective half still hurts more than a matched less selective half",
        "cross-entropy increase, top minus bottom of halves matched on mean activation, BN "
        "gain and outgoing weight norm (the more selective unit of each matched pair on "
        "top), layers 1-3, averaged per network",
        test,
        value or "no matched controls in these data",
    )


def c5(variants: Variants) -> ClaimRow:
    """The most selective half's ablation disrupts higher layers' shift-invariance more than
    a random ablation that does as much damage: (damage-matched random - top) per-unit
    invariance of the unpooled responses, across networks. Data collected before those
    existed are tested on pooled correlations against size-matched random sets, and say so."""
    per_network: list[float] = []
    cases, metric, control = [], "invariance", "random_damage_matched"
    analysed = [inv for n in reference(variants) if (inv := variants[n].invariance)]
    if not any(
        f"{layer}:{control}" in inv.summary for inv in analysed for layer in inv.spec.ablate_layers
    ):
        metric, control = "correlation", "random"
    for inv in analysed:
        s, diffs = inv.summary, []
        for layer in inv.spec.ablate_layers:
            top, rnd = s.get(f"{layer}:top50"), s.get(f"{layer}:{control}")
            if top and rnd:
                a, b = getattr(rnd, metric), getattr(top, metric)
                diffs.append(a - b)
                cases.append(b < a)
        if diffs:
            per_network.append(float(np.mean(diffs)))
    test = _across(per_network)
    value = (
        f"{sum(cases)}/{len(cases)} (ablated layer, network) cases below the control; across "
        f"{len(per_network)} networks mean drop {fmt(test.effect if test else None, 3)}"
    )
    if metric == "invariance":
        statistic = (
            "higher layers' per-unit invariance of unpooled responses to shifts (1 - distance "
            "under a shift / distance between images) after random ablations matched on the "
            "damage (cross-entropy increase) of the most-selective one, minus after it, "
            "averaged per network"
        )
    else:
        statistic = (
            "higher layers' pooled response correlation under shifts after a size-matched "
            "random ablation minus after the most-selective one, averaged per network (data "
            "collected before the unpooled, damage-matched test)"
        )
    return _row(
        "C5 that ablation disrupts the shift-invariance of higher layers",
        statistic,
        test,
        value,
    )


def _damage(curves: list[CurvePoint], layer: str, order: str) -> float:
    """Mean accuracy lost over a cumulative curve's fractions (random orders: their mean)."""
    rows = [c for c in curves if c.layer == layer and c.order == order]
    intact = [c.accuracy for c in rows if c.fraction == 0.0]
    if not rows or not intact:
        return float("nan")
    return float(intact[0] - np.mean([c.accuracy for c in rows]))


def c6(variants: Variants) -> ClaimRow:
    """The Morcos contrast, as Morcos et al. ran it: silencing units most class-selective
    first against random orders on the same networks, beside the same for gOSI, in every
    ablated layer; the paper's contrast is that orientation selectivity marks important units
    where class selectivity does not."""
    per_network: list[float] = []
    csi_vs_random: list[float] = []
    for n in reference(variants):
        ablate = variants[n].ablate
        curves = ablate.curves if ablate else []
        layers = sorted({c.layer for c in curves})
        rows = [
            (
                _damage(curves, layer, "gosi:descending"),
                _damage(curves, layer, "csi:descending"),
                _damage(curves, layer, "random"),
            )
            for layer in layers
        ]
        rows = [r for r in rows if np.isfinite(r).all()]
        if rows:
            per_network.append(float(np.mean([g - c for g, c, _ in rows])))
            csi_vs_random.append(float(np.mean([c - r for _, c, r in rows])))
    test = _across(per_network)
    csi = _across(csi_vs_random)
    value = (
        f"gOSI-first minus CSI-first accuracy lost, mean over layers: "
        f"{fmt(test.effect if test else None)} across {len(per_network)} networks; CSI-first "
        f"minus random: {fmt(csi.effect if csi else None)} [{fmt(csi.ci_low if csi else None)}, "
        f"{fmt(csi.ci_high if csi else None)}], p={fmt(csi.p if csi else None, 4)}"
    )
    return _row(
        "C6 orientation selectivity marks important units where class selectivity does not",
        "accuracy lost over the cumulative curve (mean over fractions), most-selective-first "
        "by gOSI minus by CSI, averaged over the ablated layers of each network; CSI-first "
        "against random orders beside it (Morcos et al.'s comparison)",
        test,
        value,
    )
