"""The paper's claims report (C1-C5 of METHODS.md) on a set of trained and analysed networks:
`render` turns the numbers `report.collect` gathered (or a committed data.json) into a
markdown report with small PNG plots, the claims tested by `report.claims`. The split lets a
report be rebuilt, and its data be committed, without the checkpoints.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from orisel.kernel.atomic import atomic_write
from orisel.kernel.errors import InvalidArgument, NotFound
from orisel.report.claims import claims
from orisel.report.collect import collect
from orisel.report.data import (
    Ablation,
    Invariance,
    Metrics,
    Network,
    ReportData,
    Tuning,
    accuracy,
)
from orisel.report.figures import paper_figures
from orisel.report.markdown import table
from orisel.report.regularized import section as c7_section
from orisel.report.rows import LOWER, ClaimRow, fmt, layer_mean, reference
from orisel.scoring.results import LayerTrend, LayerTuning


def _lower_mean(layers: Mapping[str, LayerTrend | LayerTuning] | None) -> float:
    return layer_mean(layers, LOWER)


_TOKEN = re.compile(r"\{\{(C[1-9][a-z]?)\.(effect|ci|p|holm|df|power|n|holds|value)\}\}")


def fill(text: str, table: list[ClaimRow]) -> str:
    """Prose with `{{C3.effect}}`-style tokens filled from the claims table, so the text and
    the table cannot disagree; a token naming no claim is an error, not a blank."""
    rows = {row.key: row for row in table}

    def value(match: re.Match[str]) -> str:
        claim, field = match.groups()
        if claim not in rows:
            raise NotFound(f"the prose names {claim}, which the claims table does not have")
        row = rows[claim]
        if field == "ci":
            return row.interval_text()
        if field == "holds":
            return row.verdict
        if field == "effect":
            return fmt(row.effect, 3)
        if field == "p":
            return fmt(row.p, 4)
        if field == "holm":
            return fmt(row.p_holm, 4)
        if field == "df":
            return fmt(row.df, 0)
        if field == "power":
            return row.power_text()
        return str(row.n if field == "n" else row.value)

    filled = _TOKEN.sub(value, text)
    left = re.search(r"\{\{[^}]*\}\}", filled)
    if left:
        raise InvalidArgument(
            "preface",
            "tokens like {{C3.effect}} (effect, ci, p, holm, df, power, n, holds, value)",
            left.group(0),
        )
    return filled


def _effect(row: ClaimRow) -> str:
    if row.effect is None:
        return "n/a"
    return f"{fmt(row.effect)} {row.interval_text()}"


ACCURACY_HEADER = ("train acc (own labels)", "test acc", "gap", "lower-layer mean gOSI")


def _accuracies(metrics: Metrics | None) -> tuple[str, str, str]:
    """Training accuracy (on the network's own labels), test accuracy and their gap."""
    train, test = accuracy(metrics, "train"), accuracy(metrics, "test")
    gap = None if train is None or test is None else train - test
    return fmt(train), fmt(test), fmt(gap)


MEMORIZE_HEADER = (
    "network",
    "label corruption",
    "seed",
    "epochs trained",
    "analysed",
    *ACCURACY_HEADER,
)


def _memorize_table(memorize: Mapping[str, Network]) -> list[str]:
    """The memorizing regime's networks at the checkpoint analysed (as trained)."""
    if not memorize:
        return []
    rows = []
    for n, v in memorize.items():
        t = v.tune
        g = _lower_mean(t.gratings) if t and t.gratings else None
        analysed = f"{v.analysed} (epoch {fmt(t.epoch if t else None, 0)})"
        accs = _accuracies(t.metrics if t else None)
        rows.append(
            (n, f"{v.corruption:g}", v.seed, f"{v.epochs_trained:g}", analysed, *accs, fmt(g))
        )
    return [
        "",
        "## The memorizing regime",
        "",
        "Trained without augmentation until the (corrupted) training labels are fitted, as "
        "Morcos et al. made networks that memorize; analysed at their last checkpoint.",
        "",
        *table(MEMORIZE_HEADER, rows),
    ]


def _claims(rows: list[ClaimRow]) -> list[str]:
    header = (
        "claim",
        "statistic",
        "null",
        "n",
        "df",
        "effect [95% CI]",
        "p",
        "Holm p",
        "detectable at 80% power",
        "our value",
        "verdict",
    )
    cells = [
        (
            c.claim,
            c.statistic,
            c.null,
            c.n,
            fmt(c.df, 0),
            _effect(c),
            fmt(c.p, 4),
            fmt(c.p_holm, 4),
            c.power_text(),
            c.value,
            c.verdict,
        )
        for c in rows
    ]
    note = (
        "Each row is decided by its weakest part (the effect, interval, n and df shown are "
        "that part's; every part is in 'our value'). p is that part's two-sided p (1 where "
        "its sign is the wrong one); Holm p corrects it across the claims with a p. yes: "
        "every part significant with the predicted sign and Holm p < 0.05. no: a part "
        "significant against the prediction, or a miss by a design with 80% power for an "
        "effect of one SD of its units of replication. inconclusive: a miss the design "
        "could not tell from no effect (its detectable effect is shown beside that SD)."
    )
    return ["## Claims", "", note, "", *table(header, cells)]


def _networks(variants: Mapping[str, Network]) -> list[str]:
    rows = [
        (
            n,
            f"{v.corruption:g}",
            v.seed,
            f"{v.epochs_trained:g} / {v.epochs_configured}",
            f"{v.best.epoch:g}",
            *_accuracies(v.best.metrics),  # no training accuracy at the initial checkpoint
            fmt(_lower_mean(v.tune.gratings) if v.tune else None),
        )
        for n, v in variants.items()
    ]
    header = ("network", "label corruption", "seed", "epochs trained / configured", "best epoch")
    return ["", "## Networks", "", *table((*header, *ACCURACY_HEADER), rows)]


def _c1(name: str, tune: Tuning, plots: dict[str, str]) -> list[str]:
    csi = tune.csi or {}
    rows = [
        (
            kind,
            layer,
            s.units,
            s.dead,
            fmt(s.fraction_selective, 2),
            fmt(s.fraction_above_threshold, 2),
            fmt(s.null_fraction_above_threshold, 2),
            fmt(s.mean_gosi),
            fmt(s.null_mean_gosi),
            fmt(csi.get(layer)),
        )
        for kind, layers in tune.by_stimulus().items()
        for layer, s in layers.items()
    ]
    header = (
        "stimulus",
        "layer",
        "units",
        "dead",
        "selective (p<0.05)",
        "above threshold",
        "null above threshold",
        "mean gOSI",
        "null mean gOSI",
        "mean CSI",
    )
    lines = [
        "",
        f"## C1: selectivity per layer ({name}, threshold gOSI > {tune.threshold}, "
        f"{tune.permutations} shuffles)",
        "",
        *table(header, rows),
    ]
    if "c1_gosi_histograms" in plots:
        lines += ["", f"![gOSI histograms]({plots['c1_gosi_histograms']})"]
    return lines


def _c2(variants: Mapping[str, Network], plots: dict[str, str]) -> list[str]:
    lines = ["", "## C2: selectivity over training", "", f"![trajectory]({plots['c2_trajectory']})"]
    for n, v in variants.items():
        if v.trajectory and len(v.trajectory) >= 3:
            rows = [
                (
                    f"{t.epoch:g}",
                    fmt(accuracy(t.metrics, "test")),
                    *(fmt(s.mean_gosi) for s in t.gratings.values()),
                )
                for t in v.trajectory
            ]
            header = ("epoch", "test acc", *v.trajectory[-1].gratings)
            lines += ["", f"{n}:", "", *table(header, rows)]
    return lines


def _c4(name: str, a: Ablation) -> list[str]:
    rows = [
        (
            s.by,
            s.layer,
            f"{fmt(s.top50.loss_increase_mean)} ± {fmt(s.top50.loss_increase_sem)}",
            f"{fmt(s.bottom50.loss_increase_mean)} ± {fmt(s.bottom50.loss_increase_sem)}",
            fmt(s.top50.accuracy),
            fmt(s.bottom50.accuracy),
        )
        for s in a.splits
    ]
    header = (
        "by",
        "layer",
        "top-50% CE increase ± SEM",
        "bottom-50% CE increase ± SEM",
        "top-50% acc",
        "bottom-50% acc",
    )
    heading = f"## C4: ablation, {name} ({a.test_images or 'all'} test images)"
    return ["", heading, "", *table(header, rows)]


def _c5(name: str, inv: Invariance) -> list[str]:
    rows = [
        (
            condition,
            fmt(c.loss_increase),
            f"{fmt(c.invariance)} ± {fmt(c.invariance_sd)}",
            f"{fmt(c.correlation)} ± {fmt(c.correlation_sd)}",
            f"{fmt(c.consistency)} ± {fmt(c.consistency_sd)}",
        )
        for condition, c in inv.summary.items()
    ]
    header = (
        "ablation",
        "damage (CE increase)",
        "unit invariance ± sd",
        "response correlation ± sd",
        "prediction consistency ± sd",
    )
    sp = inv.spec
    heading = (
        f"## C5: shift-invariance, {name} (shift {sp.shift} px, layers "
        f"{', '.join(sp.layers)}; {inv.images} images)"
    )
    return ["", heading, "", *table(header, rows)]


def render(data: ReportData, out: Path, preface: str = "") -> Path:
    """Write `out` (markdown) with its plots in `<out stem>/` beside it."""
    variants = data.variants
    ref = reference(variants)
    assets = out.parent / out.stem
    assets.mkdir(parents=True, exist_ok=True)
    plots = paper_figures(data, assets)
    rows = claims(data)
    lines = [f"# orisel: the paper's claims on {len(variants)} cnn7 networks", ""]
    if preface:
        lines += [fill(preface, rows).strip(), ""]
    lines += _claims(rows) + _networks(variants) + _memorize_table(data.memorize or {})
    first = variants[ref[0]].tune
    if first:
        lines += _c1(ref[0], first, plots)
    if "c2_trajectory" in plots:
        lines += _c2(variants, plots)
    if "c3_gosi_vs_accuracy" in plots:
        lines += ["", "## C3: across networks", "", f"![C3]({plots['c3_gosi_vs_accuracy']})"]
    for n in ref:
        a = variants[n].ablate
        if a:
            lines += _c4(n, a)
    for key in ("c4_cumulative_curves", "c4_median_split"):
        if key in plots:
            lines += ["", f"![{key}]({plots[key]})"]
    for n in ref:
        inv = variants[n].invariance
        if inv:
            lines += _c5(n, inv)
    lines += c7_section(data)
    everyone = {**variants, **(data.regularized or {})}
    provenance = [
        (n, v.manifest_sha256[:16], v.data_sha256[:16], v.code_version) for n, v in everyone.items()
    ]
    header = ("network", "manifest sha256", "data sha256", "code")
    lines += ["", "## Provenance", "", *table(header, provenance)]
    text = "\n".join(lines) + "\n"

    def write(path: Path) -> None:
        path.write_text(text)

    atomic_write(out, write)
    return out


def save_data(data: ReportData, path: Path) -> None:
    text = data.to_json()

    def write(tmp: Path) -> None:
        tmp.write_text(text)

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, write)


def write_paper_report(root: Path, out: Path, meta: dict[str, Any] | None = None) -> Path:
    """collect + render into `out/report.md`, with the collected data as `out/data.json`."""
    data = collect(root)
    data.meta = meta or {}
    out.mkdir(parents=True, exist_ok=True)
    save_data(data, out / "data.json")
    return render(data, out / "report.md")
