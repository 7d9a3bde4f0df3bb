"""C7, the selectivity study (issue 27): networks trained with the selectivity term at
several alphas (`PaperSpec.select_regs`) beside the same seeds trained without it (alpha 0).

Ablation asks whether selective units matter in a network trained without pressure on
selectivity; training the selectivity up or down (Leavitt & Morcos 2021 did it for class
selectivity) asks whether networks need it. Each outcome is regressed on alpha within
seeds: a seed's networks share their initialization, batches and augmentations, so the
seed is a block and the slope is tested with t on n - blocks - 1 df (`within_slope`), under
the rules every claim follows (rows.py). The parts: the term moved lower-layer gOSI as tune
measures it (the manipulation, without which nothing else is tested), test accuracy up,
the generalization gap (training minus test accuracy at the kept checkpoint) down, the
higher layers' shift-invariance of the intact network up.
"""

from __future__ import annotations

import numpy as np

from orisel.report.data import Network, ReportData, accuracy
from orisel.report.markdown import table
from orisel.report.rows import LOWER, ClaimRow, Part, fmt, layer_mean
from orisel.science import statistics as st

C7 = (
    "C7 networks trained to be more orientation-selective generalize better and are more "
    "shift-invariant"
)
STATISTIC = (
    "slope on alpha (the selectivity term's weight) within seeds, t on n - seeds - 1 df, of: "
    "lower-layer mean gOSI (the manipulation, +), test accuracy (+), generalization gap = "
    "train - test accuracy at the kept checkpoint (-), higher layers' per-unit shift-"
    "invariance of the intact network (+); every part must hold"
)
NULL = "within-seed slope = 0 (t, n - seeds - 1 df)"
# The paper's training length: a study trained much shorter (the `make run` size) is a run
# of the machinery, and the report says so.
PAPER_EPOCHS = 200

OUTCOMES = (
    ("lower-layer gOSI", 1.0),
    ("test accuracy", 1.0),
    ("generalization gap", -1.0),
    ("shift-invariance", 1.0),
)


def study(data: ReportData) -> list[tuple[str, Network, float]]:
    """(name, network, alpha) of every network of the study: those trained with the term,
    and as alpha 0 those without it at the same corruption level and seed, where they were
    trained as long on as many images (a short study compares its alphas among themselves)."""
    reg = data.regularized or {}
    recipes = {(v.corruption, v.seed, v.epochs_configured, v.train_images) for v in reg.values()}
    base = [
        (n, v, 0.0)
        for n, v in data.variants.items()
        if (v.corruption, v.seed, v.epochs_configured, v.train_images) in recipes
    ]
    return base + [(n, v, float(v.select_reg or 0.0)) for n, v in reg.items()]


def outcomes(v: Network) -> dict[str, float]:
    """The study's measurements of one network (NaN where an analysis is missing)."""
    nan = float("nan")
    test = accuracy(v.best.metrics, "test")
    train = accuracy(v.best.metrics, "train")
    intact = v.invariance.summary.get("none:intact") if v.invariance else None
    return {
        "lower-layer gOSI": layer_mean(v.tune.gratings, LOWER) if v.tune else nan,
        "test accuracy": nan if test is None else float(test),
        "generalization gap": nan if test is None or train is None else float(train - test),
        "shift-invariance": intact.invariance if intact else nan,
    }


def initial(v: Network) -> bool:
    """Whether the network's kept checkpoint is its initialization: its validation loss never
    fell below the untrained network's (a term too strong for the recipe), so it measures
    the seed's initialization, the same for every alpha, not what the term did."""
    return v.best.epoch == 0


def c7(data: ReportData) -> ClaimRow:
    """Each outcome's within-seed slope on alpha, one part each (see the module), over the
    networks whose kept checkpoint was trained (`initial`: the others are named and left
    out)."""
    everyone = study(data)
    rows = [r for r in everyone if not initial(r[1])]
    alpha = np.array([a for _, _, a in rows])
    blocks = np.array([f"{v.corruption:g}/{v.seed}" for _, v, _ in rows])
    measured = [outcomes(v) for _, v, _ in rows]
    parts = tuple(
        Part(name, _slope(np.array([m[name] for m in measured]), alpha, blocks), sign)
        for name, sign in OUTCOMES
    )
    value = "; ".join(q.text(4) for q in parts)
    value += (
        f"; {len(rows)} networks, alphas {', '.join(f'{a:g}' for a in sorted(set(alpha)))}, "
        f"{len(set(blocks))} seed(s)"
    )
    if left := len(everyone) - len(rows):
        value += (
            f"; {left} of {len(everyone)} networks left out: their kept checkpoint is their "
            "initialization (validation loss never fell below it; train longer, on more "
            "images, or with a smaller alpha)"
        )
    if short := _short(everyone):
        value += f"; {short}"
    return ClaimRow(C7, STATISTIC, NULL, parts, value, True)


def _slope(y: np.ndarray, alpha: np.ndarray, blocks: np.ndarray) -> st.Test:
    """The within-seed slope, or an untested one (NaN) where fewer than three networks are
    left to fit it."""
    if len(y) < 3:
        nan = float("nan")
        return st.Test(nan, nan, nan, nan, len(y), NULL)
    return st.within_slope(y, alpha, blocks)


def _short(rows: list[tuple[str, Network, float]]) -> str:
    """What makes the study too small to decide, in words ('' for the paper's size)."""
    epochs = min(v.epochs_configured for _, v, _ in rows)
    seeds = len({v.seed for _, v, _ in rows})
    if epochs >= PAPER_EPOCHS and seeds > 1:
        return ""
    devices = sorted({v.device or "unknown device" for _, v, _ in rows})
    return (
        f"a short run ({epochs} epochs, {seeds} seed(s), on {', '.join(devices)}; the paper's "
        f"design trains {PAPER_EPOCHS} epochs over several seeds): it exercises the study, "
        "its verdict says little"
    )


def section(data: ReportData) -> list[str]:
    """The study's networks, each with what C7 tests; empty without a study."""
    rows = study(data)
    if not data.regularized:
        return []
    cells = [
        (
            n,
            f"{a:g}",
            v.seed,
            f"{v.epochs_trained:g}",
            f"{v.best.epoch:g}" + (" (initialization: left out)" if initial(v) else ""),
            *(fmt(outcomes(v)[k]) for k, _ in OUTCOMES),
        )
        for n, v, a in sorted(rows, key=lambda r: (r[1].seed, r[2]))
    ]
    header = ("network", "alpha", "seed", "epochs", "kept at epoch", *(k for k, _ in OUTCOMES))
    note = (
        "Trained with loss = cross-entropy - alpha x the mean gOSI of layers 1-3 on a grating "
        "batch (`orisel train --select-reg`, docs/analysis.md); alpha 0, where shown, is the "
        "same seed without the term, on the same recipe. gOSI: tune's, on its whole grating "
        "grid, live units; shift-invariance: the higher layers' per-unit invariance of the "
        "intact network; each measured at the kept checkpoint (the run's best on validation)."
    )
    short = _short(rows)
    return [
        "",
        "## C7: the selectivity study",
        "",
        note + (f" This is {short}." if short else ""),
        "",
        *table(header, cells),
    ]
