"""The paper's claims tested on collected results: for each, the statistic, the null it is
tested against, n, the effect with its 95% interval and the verdict, whatever it is.

Units of replication are stated with each claim: units within a layer (C1, with a false
discovery rate per layer), checkpoints of one network as a time series (C2, circular shifts),
networks (C3, C4, C5). Results collected before a statistic existed (older data.json files)
are tested with what they hold, and the row says which statistic that was.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from orisel.science import statistics as st

LOWER = ("layer1", "layer2", "layer3")
HIGHER = ("layer4", "layer5", "layer6", "fc1")
ALPHA = 0.05
MIN_CHECKPOINTS = 5  # a shorter trajectory has too few circular shifts to test


def fmt(x: float | None, digits: int = 3) -> str:
    return "n/a" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{x:.{digits}f}"


def layer_mean(layers: dict[str, Any], group: tuple[str, ...]) -> float:
    """Mean gOSI over the layers of `group` that a tuning has."""
    values = [layers[n]["mean_gosi"] for n in group if n in layers]
    return float(np.mean(values)) if values else float("nan")


def reference(variants: dict[str, Any]) -> list[str]:
    """The networks with the least label corruption (the paper's ordinary networks)."""
    low = min(v["corruption"] for v in variants.values())
    return [n for n, v in variants.items() if v["corruption"] == low]


def _row(
    claim: str, statistic: str, null: str, test: st.Test | None, value: str, holds: bool | None
) -> dict[str, Any]:
    return {
        "claim": claim,
        "statistic": statistic,
        "null": null,
        "n": test.n if test is not None else 0,
        "effect": test.effect if test is not None else None,
        "ci": [test.ci_low, test.ci_high] if test is not None else None,
        "p": test.p if test is not None else None,
        "value": value,
        "holds": holds,
    }


def _significant(test: st.Test, sign: float = 1.0) -> bool:
    return bool(sign * test.effect > 0 and test.p <= ALPHA)


def c1(variants: dict[str, Any]) -> dict[str, Any]:
    """Selective units in every analysed layer, lower and higher, by each unit's own test."""
    cases: list[tuple[str, float, bool]] = []
    fdr = True
    for n in reference(variants):
        tune = variants[n].get("tune") or {}
        for kind in ("gratings", "bars"):
            for layer, s in (tune.get(kind) or {}).items():
                if "selective_fdr" in s:
                    cases.append((layer, s["fraction_selective_fdr"], s["selective_fdr"] > 0))
                else:  # collected before the per-unit FDR existed
                    fdr = False
                    above = s["fraction_above_threshold"] > s["null_fraction_above_threshold"]
                    cases.append((layer, s["fraction_above_threshold"], above))
    fractions = np.array([f for _, f, _ in cases])
    test = (
        st.Test(
            float(np.median(fractions)),
            float(fractions.min()),
            float(fractions.max()),
            float("nan"),
            len(cases),
            "",
        )
        if cases
        else None
    )
    held = sum(ok for _, _, ok in cases)
    if fdr:
        statistic = (
            "units with gOSI > threshold and BH-adjusted q < 0.05 under both nulls, per layer; "
            "effect: median (range) fraction of grating-responsive units"
        )
        null = "stimuli shuffled; orientations shuffled within each frequency and phase"
    else:
        statistic = (
            "fraction of units with gOSI > threshold vs the shuffled null's fraction (these "
            "data hold no per-unit FDR counts; `make reproduce` adds them)"
        )
        null = "stimuli shuffled"
    value = f"{held}/{len(cases)} (network, stimulus, layer) cases with selective units"
    return _row(
        "C1 orientation-selective units exist in lower and higher layers",
        statistic,
        null,
        test,
        value,
        held == len(cases) if cases else None,
    )


def _trajectory_series(traj: list[dict[str, Any]]) -> dict[str, np.ndarray] | None:
    """Lower and higher mean gOSI, test accuracy, epoch and training accuracy over the
    checkpoints that record all of them (the initial one has no training accuracy)."""
    rows = [t for t in traj if (t["metrics"].get("train") or {}).get("accuracy") is not None]
    if len(rows) < MIN_CHECKPOINTS:
        return None
    return {
        "lower": np.array([layer_mean(t["gratings"], LOWER) for t in rows]),
        "higher": np.array([layer_mean(t["gratings"], HIGHER) for t in rows]),
        "test": np.array([t["metrics"]["test"]["accuracy"] for t in rows]),
        "epoch": np.array([t["epoch"] for t in rows], dtype=float),
        "train": np.array([t["metrics"]["train"]["accuracy"] for t in rows]),
    }


def c2(variants: dict[str, Any]) -> dict[str, Any]:
    """Lower-layer selectivity tracks test accuracy beyond training time and training fit."""
    tests: dict[str, tuple[st.Test, st.Test, st.Test | None]] = {}
    for n, v in variants.items():
        series = _trajectory_series(v.get("trajectory") or [])
        if series is None:
            continue
        covariates = np.column_stack([series["epoch"], series["train"]])
        partial = st.circular_shift_test(series["lower"], series["test"], covariates)
        raw = st.circular_shift_test(series["lower"], series["test"])
        higher = (
            st.circular_shift_test(series["higher"], series["test"], covariates)
            if np.isfinite(series["higher"]).all()
            else None
        )
        tests[n] = (partial, raw, higher)
    partials = np.array([t[0].effect for t in tests.values()])
    summary = st.mean_test(partials) if len(partials) else None
    value = "; ".join(
        f"{n}: partial r={fmt(p.effect, 2)} (p={fmt(p.p, 3)}, {p.n} checkpoints; raw r="
        f"{fmt(r.effect, 2)}; higher layers partial r={fmt(h.effect if h else None, 2)})"
        for n, (p, r, h) in tests.items()
    )
    return _row(
        "C2 selectivity emerges with training, alongside test accuracy",
        "partial Spearman r of lower-layer mean gOSI and test accuracy over each network's "
        "checkpoints, epoch and training accuracy partialled out; effect: mean over networks",
        "every circular shift of one series against the other (keeps autocorrelation)",
        summary,
        value or "no trajectory with enough checkpoints",
        all(_significant(t[0]) for t in tests.values()) if tests else None,
    )


def c3(variants: dict[str, Any]) -> dict[str, Any]:
    """Across networks, lower-layer gOSI rises with test accuracy."""
    named = [n for n, v in variants.items() if v.get("tune")]
    if len(named) < 3:
        return _row(
            "C3 networks that generalize better have more selectivity",
            "Spearman r",
            "",
            None,
            "fewer than 3 networks",
            None,
        )
    g = np.array([layer_mean(variants[n]["tune"]["gratings"], LOWER) for n in named])
    acc = np.array([variants[n]["tune"]["metrics"]["test"]["accuracy"] for n in named])
    test = st.spearman_test(g, acc)
    # Seeds of one corruption level are not independent designs: the same test on the
    # levels' means, which counts each level once.
    levels = sorted({variants[n]["corruption"] for n in named})
    by_level = None
    if len(levels) >= 3 and len(levels) < len(named):
        pick = [[i for i, n in enumerate(named) if variants[n]["corruption"] == c] for c in levels]
        by_level = st.spearman_test(
            np.array([g[i].mean() for i in pick]), np.array([acc[i].mean() for i in pick])
        )
    value = (
        f"r={fmt(test.effect, 2)} [{fmt(test.ci_low, 2)}, {fmt(test.ci_high, 2)}], "
        f"p={fmt(test.p, 4)}, n={test.n} networks"
    )
    if by_level is not None:
        value += f"; level means: r={fmt(by_level.effect, 2)}, p={fmt(by_level.p, 4)}, "
        value += f"n={by_level.n} levels"
    if len(levels) >= 2 and len(levels) < len(named):
        # Networks of one level share their corrupted labels: a random intercept per level
        # keeps the level's shared part from counting once per seed.
        level = np.array([variants[n]["corruption"] for n in named])
        mixed = st.mixed_slope(g, acc, level)
        value = (
            f"mixed-model slope {fmt(mixed.effect, 3)} gOSI per unit of accuracy "
            f"[{fmt(mixed.ci_low, 3)}, {fmt(mixed.ci_high, 3)}], p={fmt(mixed.p, 4)}, "
            f"{len(named)} networks in {len(levels)} levels; Spearman across networks " + value
        )
        return _row(
            "C3 networks that generalize better have more selectivity",
            "slope of lower-layer mean gOSI on test accuracy in a linear mixed model with a "
            "random intercept per corruption level (networks of a level share their labels); "
            "Spearman r across networks and across the levels' means beside it",
            "slope 0 (Wald test)",
            mixed,
            value,
            _significant(mixed),
        )
    holds = _significant(test) and (by_level is None or _significant(by_level))
    return _row(
        "C3 networks that generalize better have more selectivity",
        "Spearman r of lower-layer mean gOSI vs test accuracy across networks (and across "
        "corruption levels' means when levels have several seeds), bootstrap 95% CI",
        "accuracies permuted among networks (exact for n <= 7)",
        test,
        value,
        holds,
    )


def c4(variants: dict[str, Any]) -> dict[str, Any]:
    """Ablating the most selective half of a lower layer hurts more than the least selective
    half: per-image paired differences per network, then a test across networks."""
    per_network: list[float] = []
    cases, percentiles, paired = [], [], True
    for n in reference(variants):
        diffs = []
        for s in (variants[n].get("ablate") or {}).get("splits", []):
            if s["by"] != "gosi" or s["layer"] not in LOWER:
                continue
            top, bottom = s["top50"], s["bottom50"]
            diff = top["loss_increase_mean"] - bottom["loss_increase_mean"]
            if "paired" in s:
                se = s["paired"]["sem"]
            else:  # collected before paired errors: the halves' errors combined
                paired = False
                se = float(np.hypot(top["loss_increase_sem"], bottom["loss_increase_sem"]))
            diffs.append(diff)
            cases.append((diff, se))
            if "random_halves" in s:
                percentiles.append(s["random_halves"]["top50_percentile"])
        if diffs:
            per_network.append(float(np.mean(diffs)))
    test = st.mean_test(np.array(per_network)) if per_network else None
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
        "no difference across networks (one-sample t over networks)",
        test,
        value,
        _significant(test) if test is not None and test.n >= 2 else None,
    )


def c4m(variants: dict[str, Any]) -> dict[str, Any]:
    """C4 against halves matched on what makes any unit's ablation costly (mean activation,
    BatchNorm gain, outgoing weight norm): within each matched pair the more selective unit
    is on top, so what remains of the difference is selectivity's."""
    per_network: list[float] = []
    by_covariate: dict[str, list[float]] = {}
    for n in reference(variants):
        diffs = []
        for s in (variants[n].get("ablate") or {}).get("splits", []):
            if s["by"] != "gosi" or s["layer"] not in LOWER:
                continue
            for name, m in (s.get("matched") or {}).items():
                if "paired" in m:
                    diffs.append(m["paired"]["difference"])
                    by_covariate.setdefault(name, []).append(m["paired"]["difference"])
        if diffs:
            per_network.append(float(np.mean(diffs)))
    test = st.mean_test(np.array(per_network)) if per_network else None
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
        "no difference across networks (one-sample t over networks)",
        test,
        value or "no matched controls in these data",
        _significant(test) if test is not None and test.n >= 2 else None,
    )


def c5(variants: dict[str, Any]) -> dict[str, Any]:
    """The most selective half's ablation disrupts higher layers' shift-invariance more than
    a random ablation that does as much damage: (damage-matched random - top) per-unit
    invariance of the unpooled responses, across networks. Data collected before those
    existed are tested on pooled correlations against size-matched random sets, and say so."""
    per_network: list[float] = []
    cases, metric, control = [], "invariance", "random_damage_matched"
    if not any(
        f"{layer}:{control}" in (variants[n].get("invariance") or {}).get("summary", {})
        for n in reference(variants)
        for layer in (variants[n].get("invariance") or {}).get("spec", {}).get("ablate_layers", [])
    ):
        metric, control = "correlation", "random"
    for n in reference(variants):
        inv = variants[n].get("invariance")
        if not inv:
            continue
        s, diffs = inv["summary"], []
        for layer in inv["spec"]["ablate_layers"]:
            top, rnd = s.get(f"{layer}:top50"), s.get(f"{layer}:{control}")
            if top and rnd:
                diffs.append(rnd[metric] - top[metric])
                cases.append(top[metric] < rnd[metric])
        if diffs:
            per_network.append(float(np.mean(diffs)))
    test = st.mean_test(np.array(per_network)) if per_network else None
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
        "no difference across networks (one-sample t over networks)",
        test,
        value,
        _significant(test) if test is not None and test.n >= 2 else None,
    )


def _damage(curves: list[dict[str, Any]], layer: str, order: str) -> float:
    """Mean accuracy lost over a cumulative curve's fractions (random orders: their mean)."""
    rows = [c for c in curves if c["layer"] == layer and c["order"] == order]
    intact = [c["accuracy"] for c in rows if c["fraction"] == 0.0]
    if not rows or not intact:
        return float("nan")
    return float(intact[0] - np.mean([c["accuracy"] for c in rows]))


def c6(variants: dict[str, Any]) -> dict[str, Any]:
    """The Morcos contrast, as Morcos et al. ran it: silencing units most class-selective
    first against random orders on the same networks, beside the same for gOSI, in every
    ablated layer; the paper's contrast is that orientation selectivity marks important units
    where class selectivity does not."""
    per_network: list[float] = []
    csi_vs_random: list[float] = []
    for n in reference(variants):
        curves = (variants[n].get("ablate") or {}).get("curves") or []
        layers = sorted({c["layer"] for c in curves})
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
    test = st.mean_test(np.array(per_network)) if per_network else None
    csi = st.mean_test(np.array(csi_vs_random)) if csi_vs_random else None
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
        "no difference across networks (one-sample t over networks)",
        test,
        value,
        _significant(test) if test is not None and test.n >= 2 else None,
    )


def claims(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The claims table, one row per claim (see the module's docstring)."""
    variants = data["variants"]
    return [
        c1(variants),
        c2(variants),
        c3(variants),
        c4(variants),
        c4m(variants),
        c5(variants),
        c6(variants),
    ]
