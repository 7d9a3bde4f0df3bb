"""The paper's claims tested on collected results: for each, the statistic, the null it is
tested against, n, the effect with its 95% interval and the verdict, whatever it is.

Units of replication are stated with each claim: units within a layer (C1, with a false
discovery rate per layer), checkpoints of one network as a time series (C2, circular shifts),
networks (C3, C4, C5). Results collected before a statistic existed (older data.json files)
are tested with what they hold, and the row says which statistic that was.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from orisel.report.causal import c4, c4m, c5, c6
from orisel.report.data import Network, ReportData, TrajectoryPoint, accuracy
from orisel.report.rows import (
    HIGHER,
    LOWER,
    ClaimRow,
    fmt,
    layer_mean,
    reference,
    row,
    significant,
)
from orisel.science import statistics as st

Variants = Mapping[str, Network]

MIN_CHECKPOINTS = 5  # a shorter trajectory has too few circular shifts to test


def c1(variants: Variants) -> ClaimRow:
    """Selective units in every analysed layer, lower and higher, by each unit's own test."""
    cases: list[tuple[str, float, bool]] = []
    fdr = True
    for n in reference(variants):
        tune = variants[n].tune
        for layers in tune.by_stimulus().values() if tune else ():
            for layer, s in layers.items():
                if s.selective_fdr is not None and s.fraction_selective_fdr is not None:
                    cases.append((layer, s.fraction_selective_fdr, s.selective_fdr > 0))
                else:  # collected before the per-unit FDR existed
                    fdr = False
                    above = s.fraction_above_threshold > s.null_fraction_above_threshold
                    cases.append((layer, s.fraction_above_threshold, above))
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
    return row(
        "C1 orientation-selective units exist in lower and higher layers",
        statistic,
        null,
        test,
        value,
        held == len(cases) if cases else None,
        interval="range",
    )


def _trajectory_series(traj: list[TrajectoryPoint]) -> dict[str, np.ndarray] | None:
    """Lower and higher mean gOSI, test accuracy, epoch and training accuracy over the
    checkpoints that record all of them (the initial one has no training accuracy)."""
    rows = [t for t in traj if accuracy(t.metrics, "train") is not None]
    if len(rows) < MIN_CHECKPOINTS:
        return None
    return {
        "lower": np.array([layer_mean(t.gratings, LOWER) for t in rows]),
        "higher": np.array([layer_mean(t.gratings, HIGHER) for t in rows]),
        "test": np.array([accuracy(t.metrics, "test") for t in rows], dtype=float),
        "epoch": np.array([t.epoch for t in rows], dtype=float),
        "train": np.array([accuracy(t.metrics, "train") for t in rows], dtype=float),
    }


def c2(variants: Variants) -> ClaimRow:
    """Lower-layer selectivity tracks test accuracy beyond training time and training fit."""
    tests: dict[str, tuple[st.Test, st.Test, st.Test | None]] = {}
    for n, v in variants.items():
        series = _trajectory_series(v.trajectory or [])
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
    # A network whose test accuracy epoch and training accuracy order exactly has no partial
    # r: it is described, and left out of the test rather than counted as r = 0.
    defined = {n: t for n, t in tests.items() if np.isfinite(t[0].effect)}
    partials = np.array([t[0].effect for t in defined.values()])
    summary = st.mean_test(partials) if len(partials) else None
    value = "; ".join(
        (
            f"{n}: partial r={fmt(p.effect, 2)} (p={fmt(p.p, 3)}, {p.n} checkpoints"
            if n in defined
            else f"{n}: partial r undefined (epoch and training accuracy order test accuracy "
            f"or lower-layer gOSI exactly over its {p.n} checkpoints, so nothing is left once "
            "they are partialled out"
        )
        + f"; raw r={fmt(r.effect, 2)}; higher layers partial r="
        + f"{fmt(h.effect if h else None, 2)})"
        for n, (p, r, h) in tests.items()
    )
    # Lower against higher layers directly: the difference of their partial r, network by
    # network (both from the same checkpoints), then across networks.
    gaps = np.array(
        [p.effect - h.effect for p, _, h in defined.values() if h and np.isfinite(h.effect)]
    )
    if len(gaps) >= 2:
        g = st.mean_test(gaps)
        value += (
            f"; lower minus higher layers' partial r: {fmt(g.effect, 2)} [{fmt(g.ci_low, 2)}, "
            f"{fmt(g.ci_high, 2)}], p={fmt(g.p, 4)}, {g.n} networks"
        )
    elif len(gaps) == 1:
        value += f"; lower minus higher layers' partial r: {fmt(float(gaps[0]), 2)}, 1 network"
    return row(
        "C2 selectivity emerges with training, alongside test accuracy",
        "partial Spearman r of lower-layer mean gOSI and test accuracy over each network's "
        "checkpoints, epoch and training accuracy partialled out; effect: mean over networks; "
        "lower against higher layers: the difference of their partial r, t across networks",
        "every circular shift of one series against the other (keeps autocorrelation)",
        summary,
        value or "no trajectory with enough checkpoints",
        all(significant(t[0]) for t in defined.values()) if defined else None,
    )


def c3(variants: Variants) -> ClaimRow:
    """Across networks, lower-layer gOSI rises with test accuracy."""
    tuned = {n: v.tune for n, v in variants.items() if v.tune}
    named = list(tuned)
    if len(named) < 3:
        return row(
            "C3 networks that generalize better have more selectivity",
            "Spearman r",
            "",
            None,
            "fewer than 3 networks",
            None,
        )
    g = np.array([layer_mean(t.gratings, LOWER) for t in tuned.values()])
    acc = np.array([accuracy(t.metrics, "test") for t in tuned.values()], dtype=float)
    test = st.spearman_test(g, acc)
    # Seeds of one corruption level are not independent designs: the same test on the
    # levels' means, which counts each level once.
    levels = sorted({variants[n].corruption for n in named})
    by_level = None
    if len(levels) >= 3 and len(levels) < len(named):
        pick = [[i for i, n in enumerate(named) if variants[n].corruption == c] for c in levels]
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
        level = np.array([variants[n].corruption for n in named])
        mixed = st.mixed_slope(g, acc, level)
        value = (
            f"mixed-model slope {fmt(mixed.effect, 3)} gOSI per unit of accuracy "
            f"[{fmt(mixed.ci_low, 3)}, {fmt(mixed.ci_high, 3)}], p={fmt(mixed.p, 4)}, "
            f"{len(named)} networks in {len(levels)} levels; Spearman across networks " + value
        )
        return row(
            "C3 networks that generalize better have more selectivity",
            "slope of lower-layer mean gOSI on test accuracy in a linear mixed model with a "
            "random intercept per corruption level (networks of a level share their labels); "
            "Spearman r across networks and across the levels' means beside it",
            "slope 0 (Wald test)",
            mixed,
            value,
            significant(mixed),
        )
    holds = significant(test) and (by_level is None or significant(by_level))
    return row(
        "C3 networks that generalize better have more selectivity",
        "Spearman r of lower-layer mean gOSI vs test accuracy across networks (and across "
        "corruption levels' means when levels have several seeds), bootstrap 95% CI",
        "accuracies permuted among networks (exact for n <= 7)",
        test,
        value,
        holds,
    )


def claims(data: ReportData) -> list[ClaimRow]:
    """The claims table, one row per claim (see the module's docstring)."""
    variants = data.variants
    return [
        c1(variants),
        c2(variants),
        c3(variants),
        c4(variants),
        c4m(variants),
        c5(variants),
        c6(variants),
    ]
