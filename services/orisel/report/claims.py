"""The paper's claims tested on collected results: for each, the statistic, the null it is
tested against, n, the effect with its 95% interval and the verdict, whatever it is.

Units of replication are stated with each claim: units within a layer (C1, with a false
discovery rate per layer), checkpoints of one network as a time series (C2, circular shifts),
networks or corruption levels (C3-C6). Each claim is made of parts, its specificity controls
among them (C1 against initialization, C3 within corruption levels, C4 layer by layer, C6
against random orders), and holds only when every part does; Holm's correction runs across
the claims, and a miss is "no" only where the design could have seen an effect (rows.py).
Results collected before a statistic existed (older data.json files) are tested with what
they hold, and the row says which statistic that was.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from orisel.report.causal import c4, c4m, c5, c6
from orisel.report.data import Network, ReportData, TrajectoryPoint, accuracy
from orisel.report.regularized import c7
from orisel.report.rows import (
    HIGHER,
    LOWER,
    ClaimRow,
    Part,
    adjust,
    fmt,
    layer_mean,
    reference,
)
from orisel.science import statistics as st

Variants = Mapping[str, Network]

MIN_CHECKPOINTS = 5  # a shorter trajectory has too few circular shifts to test


def _initial_gain(v: Network) -> list[float] | None:
    """Per (stimulus, layer): the trained network's excess of units above the gOSI threshold
    over its shuffled null, minus the same at initialization (epoch 0 of its trajectory);
    None where the data hold no epoch-0 tuning."""
    start = next((t for t in v.trajectory or [] if t.epoch == 0), None)
    if v.tune is None or start is None:
        return None
    initial = {"gratings": start.gratings, "bars": start.bars or {}}
    return [
        (s.fraction_above_threshold - s.null_fraction_above_threshold)
        - (s0.fraction_above_threshold - s0.null_fraction_above_threshold)
        for kind, layers in v.tune.by_stimulus().items()
        for layer, s in layers.items()
        if (s0 := initial[kind].get(layer)) is not None
    ]


def _initially_above(v: Network) -> tuple[int, int]:
    """(stimulus, layer) cases whose fraction above threshold already exceeds the shuffled
    null's at initialization, and how many were tuned then."""
    start = next((t for t in v.trajectory or [] if t.epoch == 0), None)
    layers = [*start.gratings.values(), *(start.bars or {}).values()] if start else []
    above = sum(s.fraction_above_threshold > s.null_fraction_above_threshold for s in layers)
    return above, len(layers)


def c1(variants: Variants) -> ClaimRow:
    """Selective units in every analysed layer, lower and higher, by each unit's own test,
    and more of them than the same network had at initialization (its specificity control:
    an untrained network's random filters are already somewhat oriented)."""
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
    held = sum(ok for _, _, ok in cases)
    fractions = np.array([f for _, f, _ in cases])
    value = f"{held}/{len(cases)} (network, stimulus, layer) cases with selective units"
    if cases:
        value += (
            f" (median fraction {fmt(float(np.median(fractions)))}, range "
            f"{fmt(float(fractions.min()))} to {fmt(float(fractions.max()))})"
        )
    gains = {n: g for n in reference(variants) if (g := _initial_gain(variants[n]))}
    missing = [n for n in reference(variants) if n not in gains]
    parts: tuple[Part, ...] = ()
    if len(gains) >= 2:
        parts = (
            Part(
                "excess over the null, trained minus initial",
                st.mean_test(np.array([np.mean(g) for g in gains.values()])),
            ),
        )
        above = np.array([_initially_above(variants[n]) for n in gains]).sum(axis=0)
        value += (
            f"; at initialization {above[0]}/{above[1]} cases already above their shuffled "
            f"null; {parts[0].text()} across {len(gains)} networks, larger in "
            f"{sum(d > 0 for g in gains.values() for d in g)}/"
            f"{sum(len(g) for g in gains.values())} cases"
        )
    if missing:
        value += (
            f"; no epoch-0 tuning in these data for {', '.join(missing)}, so "
            + ("they are" if len(missing) > 1 else "it is")
            + " not compared with initialization"
        )
    if len(gains) == 1:
        value += "; one network with an epoch-0 tuning is too few to test the gain"
    if fdr:
        statistic = (
            "units with gOSI > threshold and BH-adjusted q < 0.05 under both nulls, in every "
            "(network, stimulus, layer); decided with its control: the fraction above "
            "threshold minus the shuffled null's, trained minus the same network at "
            "initialization, mean per network, one-sample t across networks"
        )
        null = "stimuli shuffled; orientations shuffled within each frequency and phase"
    else:
        statistic = (
            "fraction of units with gOSI > threshold vs the shuffled null's fraction (these "
            "data hold no per-unit FDR counts; `make reproduce` adds them); against "
            "initialization as with the FDR"
        )
        null = "stimuli shuffled"
    null += "; no gain over initialization"
    return ClaimRow(
        "C1 orientation-selective units exist in lower and higher layers",
        statistic,
        null,
        parts,
        value,
        held == len(cases) if cases else None,
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
    return ClaimRow(
        "C2 selectivity emerges with training, alongside test accuracy",
        "partial Spearman r of lower-layer mean gOSI and test accuracy over each network's "
        "checkpoints, epoch and training accuracy partialled out; every network must show "
        "it; lower against higher layers: the difference of their partial r, t across "
        "networks",
        "every circular shift of one series against the other (keeps autocorrelation)",
        tuple(Part(f"{n}: partial r", t[0]) for n, t in defined.items()),
        value or "no trajectory with enough checkpoints",
        True if defined else None,
    )


C3 = "C3 networks that generalize better have more selectivity"


def c3(variants: Variants) -> ClaimRow:
    """Across networks, lower-layer gOSI rises with test accuracy, and does so among seeds
    of one corruption level too: between levels, accuracy and label noise move together,
    so only the within-level slope separates generalization from the labels themselves."""
    tuned = {n: v.tune for n, v in variants.items() if v.tune}
    statistic = (
        "slope of lower-layer mean gOSI on test accuracy, between corruption levels (a linear "
        "mixed model with a random intercept per level, t on levels - 2 df, where it "
        f"converges with a level variance above 0 and at least {st.MIN_LEVELS} levels; else "
        "the regression of the levels' means) and, as its control, within levels (seeds of "
        "one level, centred on the level's means: label noise held fixed); both must hold"
    )
    if len(tuned) < 3:
        return ClaimRow(C3, statistic, "", (), "fewer than 3 networks", None)
    g = np.array([layer_mean(t.gratings, LOWER) for t in tuned.values()])
    acc = np.array([accuracy(t.metrics, "test") for t in tuned.values()], dtype=float)
    level = np.array([variants[n].corruption for n in tuned])
    levels = len(np.unique(level))
    across = st.spearman_test(g, acc)
    value = (
        f"Spearman across networks r={fmt(across.effect, 2)} [{fmt(across.ci_low, 2)}, "
        f"{fmt(across.ci_high, 2)}], p={fmt(across.p, 4)}, n={across.n}"
    )
    if levels == len(tuned):
        # One network per level: accuracy and label noise cannot be told apart, so the
        # slope is described and the claim left undecided, however small its p.
        across = st.slope_test(g, acc)
        value += (
            f"; slope across networks {Part('', across).text().strip()}; one network per "
            "corruption level, so no within-level control: not decided"
        )
        return ClaimRow(C3, statistic, "slope 0 (t)", (), value, True)
    if levels == 1:  # seeds of one level only: nothing but the within-level slope
        only = (Part("within the level", st.within_slope(g, acc, level)),)
        return ClaimRow(C3, statistic, "slope 0 (t)", only, f"{only[0].text()}; {value}", True)
    fit, within = st.mixed_slope(g, acc, level), st.within_slope(g, acc, level)
    how = (
        f"mixed model (random-intercept variance {fit.re_variance:.2g})"
        if fit.method == "mixed model"
        else f"level-means regression, the mixed model set aside ({fit.reason})"
    )
    parts = (Part("between levels", fit.test), Part("within levels", within))
    naive = st.slope_test(g, acc)
    value = (
        f"{parts[0].text()} ({how}; {len(fit.warnings)} fit warnings recorded"
        + (f", e.g. '{fit.warnings[-1]}'" if fit.warnings else "")
        + f"); {parts[1].text()}; slope across networks as if independent "
        f"{fmt(naive.effect)}, p={fmt(naive.p, 4)}, {naive.df:g} df; " + value
    )
    ym, _, _ = st.level_means(g, acc, level)
    seeds = [np.ptp(g[level == c]) for c in np.unique(level) if (level == c).sum() > 1]
    value += (
        f"; the levels' mean gOSI span {fmt(float(np.ptp(ym)))}, seeds within a level up to "
        f"{fmt(float(max(seeds)))}"
    )
    if all(t.bars for t in tuned.values()):
        bars = np.array([layer_mean(t.bars, LOWER) for t in tuned.values()])
        b_between = st.mixed_slope(bars, acc, level).test
        b_within = st.within_slope(bars, acc, level)
        value += (
            f"; with bars: {Part('between levels', b_between).text()}, "
            f"{Part('within levels', b_within).text()}"
        )
    return ClaimRow(C3, statistic, "slope 0 (t)", parts, value, True)


def claims(data: ReportData) -> list[ClaimRow]:
    """The claims table, one row per claim (see the module's docstring); C7 where the data
    hold the selectivity study (report/regularized.py)."""
    variants = data.variants
    study = [c7(data)] if data.regularized else []
    return adjust(
        [
            c1(variants),
            c2(variants),
            c3(variants),
            c4(variants),
            c4m(variants),
            c5(variants),
            c6(variants),
            *study,
        ]
    )
