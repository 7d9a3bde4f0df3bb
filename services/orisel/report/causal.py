"""The causal claims, from ablations: C4 (and C4m, its matched controls), C5 and C6."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from orisel.report.data import CurvePoint, Network
from orisel.report.rows import LOWER, ClaimRow, Part, fmt, reference
from orisel.science import statistics as st

Variants = Mapping[str, Network]


NULL = "no difference across networks (one-sample t over networks)"


def _claim(claim: str, statistic: str, parts: tuple[Part, ...], value: str) -> ClaimRow:
    """A claim tested across networks; untested without data."""
    return ClaimRow(claim, statistic, NULL, parts, value, True if parts else None)


def _per_layer(per: dict[str, list[float]]) -> tuple[Part, ...]:
    """One part per layer: its per-network values tested across networks, never averaged
    with other layers, whose signs may differ."""
    return tuple(Part(layer, st.mean_test(np.array(v))) for layer, v in per.items())


def _pattern(parts: tuple[Part, ...], per: dict[str, list[float]]) -> str:
    """Each layer's test and in how many networks the top half cost more."""
    return "; ".join(
        f"{q.text()} (top > bottom in {sum(d > 0 for d in per[q.name])}/{len(per[q.name])} "
        "networks)"
        for q in parts
    )


C4 = "C4 ablating the most selective lower-layer units hurts more than the least"
C4_STATISTIC = (
    "cross-entropy increase, top-50% minus bottom-50% by gOSI, in each of layers 1-3 (nats), "
    "one-sample t across the lowest-corruption networks per layer; every lower layer must "
    "show it (layers are not averaged: their signs can differ)"
)


def c4(variants: Variants) -> ClaimRow:
    """Ablating the most selective half of a lower layer hurts more than the least selective
    half, in every lower layer: per-network differences, tested across networks layer by
    layer."""
    per: dict[str, list[float]] = {}
    cases, percentiles, paired = [], [], True
    for n in reference(variants):
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
            per.setdefault(s.layer, []).append(diff)
            cases.append((diff, se))
            if s.random_halves is not None:
                percentiles.append(s.random_halves.top50_percentile)
    parts = _per_layer(per)
    if not cases:
        return _claim(C4, C4_STATISTIC, parts, "no median splits in these data")
    value = _pattern(parts, per)
    value += (
        f"; {sum(d > 2 * se for d, se in cases)}/{len(cases)} (network, layer) cases top > "
        f"bottom by 2 {'paired ' if paired else ''}SE, {sum(d < -2 * se for d, se in cases)}/"
        f"{len(cases)} bottom > top"
    )
    if percentiles:
        value += (
            f"; top half at the {fmt(float(np.median(percentiles)), 0)}th percentile (median) "
            "of random halves"
        )
    return _claim(C4, C4_STATISTIC, parts, value)


def c4m(variants: Variants) -> ClaimRow:
    """C4 against halves matched on what makes any unit's ablation costly (mean activation,
    BatchNorm gain, outgoing weight norm): within each matched pair the more selective unit
    is on top, so what remains of the difference is selectivity's. Layer by layer, as C4."""
    per: dict[str, list[float]] = {}
    by_covariate: dict[str, list[float]] = {}
    for n in reference(variants):
        ablate = variants[n].ablate
        for s in ablate.splits if ablate else ():
            if s.by != "gosi" or s.layer not in LOWER:
                continue
            diffs = []
            for name, m in (s.matched or {}).items():
                if m.paired is not None:
                    diffs.append(m.paired.difference)
                    by_covariate.setdefault(name, []).append(m.paired.difference)
            if diffs:
                per.setdefault(s.layer, []).append(float(np.mean(diffs)))
    parts = _per_layer(per)
    value = "; ".join(
        [_pattern(parts, per)]
        + [
            f"matched on {name.replace('_', ' ')}: mean {fmt(float(np.mean(d)), 3)} nats, "
            f"{sum(x > 0 for x in d)}/{len(d)} (network, layer) cases top > bottom"
            for name, d in by_covariate.items()
        ]
    )
    return _claim(
        "C4m the most selective half still hurts more than a matched less selective half",
        "cross-entropy increase, top minus bottom of halves matched on mean activation, BN "
        "gain and outgoing weight norm (the more selective unit of each matched pair on "
        "top), averaged over the three matchings, in each of layers 1-3, t across networks "
        "per layer; every lower layer must show it",
        parts,
        value if parts else "no matched controls in these data",
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
    parts = (Part("control minus top", st.mean_test(np.array(per_network))),) if cases else ()
    value = (
        f"{sum(cases)}/{len(cases)} (ablated layer, network) cases with the top half's "
        "invariance below the control's"
    )
    if parts:
        value += f"; {parts[0].text()} across {len(per_network)} networks"
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
    return _claim(
        "C5 that ablation disrupts the shift-invariance of higher layers", statistic, parts, value
    )


ORDERS = ("gosi:descending", "csi:descending", "random")


def _damage(curves: list[CurvePoint], layer: str, order: str) -> float:
    """Mean accuracy lost over a cumulative curve's fractions (random orders: their mean)."""
    rows = [c for c in curves if c.layer == layer and c.order == order]
    intact = [c.accuracy for c in rows if c.fraction == 0.0]
    if not rows or not intact:
        return float("nan")
    return float(intact[0] - np.mean([c.accuracy for c in rows]))


# Where the contrasts are reported beside the claim's own (all layers): their signs differ.
GROUPS = (
    ("layer1", ("layer1",)),
    ("layers 1-3", LOWER),
    ("layers 4-6", ("layer4", "layer5", "layer6")),
    ("fc1", ("fc1",)),
)


def c6(variants: Variants) -> ClaimRow:
    """The Morcos contrast: orientation selectivity marks important units where class
    selectivity does not. Silencing units most orientation-selective first must cost more
    than random orders (the specificity control: a gOSI-minus-CSI contrast can come from
    CSI-first costing less than random) and more than most class-selective first."""
    contrasts = ("gOSI-first minus random", "gOSI-first minus CSI-first", "CSI-first minus random")
    per: dict[tuple[str, str], list[float]] = {}
    for n in reference(variants):
        ablate = variants[n].ablate
        curves = ablate.curves if ablate else []
        costs = {
            layer: np.array([_damage(curves, layer, o) for o in ORDERS])
            for layer in sorted({c.layer for c in curves})
        }
        costs = {k: c for k, c in costs.items() if np.isfinite(c).all()}
        for group, layers in (("all layers", tuple(costs)), *GROUPS):
            if not any(k in costs for k in layers):
                continue
            g, c, r = np.array([costs[k] for k in layers if k in costs]).mean(axis=0)
            for name, d in zip(contrasts, (g - r, g - c, c - r), strict=True):
                per.setdefault((name, group), []).append(float(d))
    parts = tuple(
        Part(name, st.mean_test(np.array(per[name, "all layers"])))
        for name in contrasts[:2]
        if (name, "all layers") in per
    )
    value = "; ".join(
        f"{name} in {group}: {fmt(float(np.mean(v)))} (p={fmt(st.mean_test(np.array(v)).p, 4)}"
        f", {sum(d > 0 for d in v)}/{len(v)} networks above 0)"
        for (name, group), v in per.items()
        if group != "all layers" or name == contrasts[2]
    )
    if parts:
        value = "; ".join(q.text() for q in parts) + f", {parts[0].test.n} networks; " + value
    return _claim(
        "C6 orientation selectivity marks important units where class selectivity does not",
        "accuracy lost over the cumulative curve (mean over fractions), most-selective-first "
        "by gOSI minus random orders (its control) and minus most-class-selective-first, "
        "mean over each network's ablated layers, t across networks; both must hold",
        parts,
        value or "no cumulative curves in these data",
    )
