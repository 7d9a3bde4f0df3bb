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

import numpy as np

from orisel.core.atomic import atomic_write
from orisel.core.errors import InvalidArgument, NotFound
from orisel.report import plots
from orisel.report.claims import claims
from orisel.report.collect import collect
from orisel.report.data import Network, ReportData, accuracy
from orisel.report.rows import LOWER, ClaimRow, fmt, layer_mean, reference
from orisel.scoring.results import LayerTrend

HOLDS = {True: "yes", False: "no", None: "not tested"}


def _lower_mean(layers: Mapping[str, LayerTrend] | None) -> float:
    return layer_mean(layers, LOWER)


def _plots(data: ReportData, assets: Path) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    variants = data.variants
    ref = reference(variants)
    made: dict[str, str] = {}

    def save(fig: Any, name: str) -> None:
        fig.tight_layout()
        fig.savefig(assets / name, dpi=80)
        plt.close(fig)
        made[name.removesuffix(".png")] = f"{assets.name}/{name}"

    first = variants[ref[0]].tune
    if first and first.gratings:
        layers = list(first.gratings)
        fig, axes = plt.subplots(2, len(layers), figsize=(2.0 * len(layers), 3.6), squeeze=False)
        for r, kind in enumerate(("gratings", "bars")):
            for c, layer in enumerate(layers):
                s, ax = first.by_stimulus().get(kind, {}).get(layer), axes[r, c]
                if s is None:
                    continue
                edges = np.array(s.histogram_edges)
                h = np.array(s.histogram, float)
                ax.bar(edges[:-1], h / max(h.sum(), 1), np.diff(edges), align="edge", alpha=0.7)
                ax.stairs(s.null_histogram_density, edges, color="k", lw=1)  # every bin
                ax.axvline(first.threshold, color="r", lw=0.8, ls="--")
                ax.set_title(f"{kind} {layer}", fontsize=8)
                ax.tick_params(labelsize=6)
        fig.suptitle(f"{ref[0]}: gOSI (bars) vs shuffled null (line)", fontsize=9)
        save(fig, "c1_gosi_histograms.png")
    trajectories = {
        n: v.trajectory for n, v in variants.items() if v.trajectory and len(v.trajectory) >= 3
    }
    if trajectories:
        cols = min(3, len(trajectories))
        n_rows = -(-len(trajectories) // cols)
        fig, axes = plt.subplots(n_rows, cols, figsize=(4.6 * cols, 3.3 * n_rows), squeeze=False)
        for ax in axes.flat[len(trajectories) :]:
            ax.set_visible(False)
        for ax, (n, traj) in zip(axes.flat, trajectories.items(), strict=False):
            epochs = np.array([t.epoch for t in traj], dtype=float)
            x = np.maximum(epochs, 0.05)
            for layer in traj[-1].gratings:
                ax.plot(x, [t.gratings[layer].mean_gosi for t in traj], label=layer, lw=1)
            ax.set_xscale("log")
            ax.set_xlabel("epoch (0 drawn at 0.05)")
            ax.set_ylabel("mean gOSI (gratings)")
            twin = ax.twinx()
            test = np.array([accuracy(t.metrics, "test") for t in traj], dtype=float)
            train = np.array([accuracy(t.metrics, "train") for t in traj], dtype=float)
            twin.plot(x, test, "k--", label="test acc")
            gap = train - test  # NaN where a checkpoint has no training accuracy
            twin.plot(x, gap, "k:", label="train-test gap")
            twin.set_ylabel("accuracy / gap")
            ax.set_title(n, fontsize=9)
            ax.legend(fontsize=6, loc="upper left")
            twin.legend(fontsize=6, loc="lower right")
        save(fig, "c2_trajectory.png")
    tuned = {n: v.tune for n, v in variants.items() if v.tune}
    if len(tuned) >= 2:
        fig, ax = plt.subplots(figsize=(4.2, 3.2))
        for n, t in tuned.items():
            test_acc = accuracy(t.metrics, "test")
            g = _lower_mean(t.gratings)
            if test_acc is None:
                continue
            ax.scatter(test_acc, g, color="C0")
            ax.annotate(n.removeprefix("cnn7-"), (test_acc, g), fontsize=6)
        ax.set_xlabel("test accuracy")
        ax.set_ylabel("lower-layer mean gOSI")
        save(fig, "c3_gosi_vs_accuracy.png")
    a = next((ab for n in ref if (ab := variants[n].ablate)), None)
    curves, splits = (a.curves, a.splits) if a else ([], [])
    layers = list(dict.fromkeys(r.layer for r in curves))  # the sweep's order
    if layers:
        fig, axes = plt.subplots(1, len(layers), figsize=(2.3 * len(layers), 2.8), squeeze=False)
        for ax, layer in zip(axes[0], layers, strict=True):
            rows = [r for r in curves if r.layer == layer]
            orders = sorted({r.order for r in rows})
            for order in orders:
                pts = sorted((r.fraction, r.accuracy) for r in rows if r.order == order)
                fr = sorted({p[0] for p in pts})
                at = [[p[1] for p in pts if p[0] == f] for f in fr]
                acc = [np.mean(v) for v in at]
                if order == "random":
                    lo, hi = [min(v) for v in at], [max(v) for v in at]
                    ax.fill_between(fr, lo, hi, color=plots.RANDOM, alpha=0.25, lw=0)
                    ax.plot(fr, acc, lw=1, color=plots.RANDOM, label="random (mean, range)")
                    continue
                index, _, direction = order.partition(":")
                what = "most" if direction == "descending" else "least"
                ax.plot(
                    fr,
                    acc,
                    "-" if what == "most" else "--",
                    lw=1,
                    color=plots.INDEX_COLOURS.get(index, "k"),
                    label=f"{index}, {what} first",
                )
            ax.axhline(0.1, color="k", ls=":", lw=0.8, label="chance (1/10)")
            ax.set_title(layer, fontsize=8)
            ax.set_xlabel("fraction ablated", fontsize=7)
            ax.tick_params(labelsize=6)
        axes[0, 0].set_ylabel("test accuracy")
        axes[0, -1].legend(fontsize=5)
        save(fig, "c4_cumulative_curves.png")
    if splits:
        fig, axes = plt.subplots(1, 2, figsize=(8, 2.8))
        for ax, by in zip(axes, ("gosi", "csi"), strict=True):
            by_index = [s for s in splits if s.by == by]
            x = np.arange(len(by_index))
            for k, (half, colour) in enumerate((("top50", "C3"), ("bottom50", "C0"))):
                outcomes = [s.top50 if half == "top50" else s.bottom50 for s in by_index]
                ax.bar(
                    x + (k - 0.5) * 0.38,
                    [o.loss_increase_mean for o in outcomes],
                    0.38,
                    yerr=[o.loss_increase_sem for o in outcomes],
                    color=colour,
                    label=half,
                )
            ax.set_xticks(x, [s.layer for s in by_index], fontsize=7)
            ax.set_ylabel(f"CE increase (by {by})", fontsize=8)
            ax.legend(fontsize=6)
        save(fig, "c4_median_split.png")
    return made


_TOKEN = re.compile(r"\{\{(C[1-9][a-z]?)\.(effect|ci|p|n|holds|value)\}\}")


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
            return "n/a" if row.ci is None else f"[{fmt(row.ci[0])}, {fmt(row.ci[1])}]"
        if field == "holds":
            return HOLDS[row.holds]
        if field == "effect":
            return fmt(row.effect, 3)
        if field == "p":
            return fmt(row.p, 4)
        return str(row.n if field == "n" else row.value)

    filled = _TOKEN.sub(value, text)
    left = re.search(r"\{\{[^}]*\}\}", filled)
    if left:
        raise InvalidArgument(
            "preface", "tokens like {{C3.effect}} (effect, ci, p, n, holds, value)", left.group(0)
        )
    return filled


def _effect(row: ClaimRow) -> str:
    if row.effect is None or row.ci is None:
        return "n/a"
    return f"{fmt(row.effect)} [{fmt(row.ci[0])}, {fmt(row.ci[1])}]"


def _memorize_table(memorize: Mapping[str, Network]) -> list[str]:
    """The memorizing regime's networks at the checkpoint analysed (as trained)."""
    if not memorize:
        return []
    lines = [
        "",
        "## The memorizing regime",
        "",
        "Trained without augmentation until the (corrupted) training labels are fitted, as "
        "Morcos et al. made networks that memorize; analysed at their last checkpoint.",
        "",
        "| network | label corruption | seed | epochs trained | analysed | "
        "train acc (own labels) | test acc | gap | lower-layer mean gOSI |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for n, v in memorize.items():
        m = v.tune.metrics if v.tune else None
        train, test = accuracy(m, "train"), accuracy(m, "test")
        gap = None if train is None or test is None else train - test
        g = _lower_mean(v.tune.gratings) if v.tune and v.tune.gratings else None
        epoch = v.tune.epoch if v.tune else None
        lines.append(
            f"| {n} | {v.corruption:g} | {v.seed} | {v.epochs_trained:g} | "
            f"{v.analysed} (epoch {fmt(epoch, 0)}) | {fmt(train)} | {fmt(test)} | "
            f"{fmt(gap)} | {fmt(g)} |"
        )
    return lines


def render(data: ReportData, out: Path, preface: str = "") -> Path:
    """Write `out` (markdown) with its plots in `<out stem>/` beside it."""
    variants = data.variants
    ref = reference(variants)
    assets = out.parent / out.stem
    assets.mkdir(parents=True, exist_ok=True)
    plots = _plots(data, assets)
    table = claims(data)
    lines = [f"# orisel: the paper's claims on {len(variants)} cnn7 networks", ""]
    if preface:
        lines += [fill(preface, table).strip(), ""]
    lines += [
        "## Claims",
        "",
        "| claim | statistic | null | n | effect [95% CI] | p | our value | holds? |",
        "|---|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {c.claim} | {c.statistic} | {c.null} | {c.n} | {_effect(c)} | "
        f"{fmt(c.p, 4)} | {c.value} | {HOLDS[c.holds]} |"
        for c in table
    ]
    lines += [
        "",
        "## Networks",
        "",
        "| network | label corruption | seed | epochs trained / configured | best epoch | "
        "train acc (own labels) | test acc | gap | lower-layer mean gOSI |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for n, v in variants.items():
        m = v.best.metrics
        train = accuracy(m, "train")  # None at the initial checkpoint
        test = accuracy(m, "test")
        g = _lower_mean(v.tune.gratings) if v.tune else None
        gap = None if train is None or test is None else train - test
        lines.append(
            f"| {n} | {v.corruption:g} | {v.seed} | {v.epochs_trained:g} / "
            f"{v.epochs_configured} | {v.best.epoch:g} | {fmt(train)} | "
            f"{fmt(test)} | {fmt(gap)} | {fmt(g)} |"
        )
    lines += _memorize_table(data.memorize or {})
    first = variants[ref[0]].tune
    if first:
        csi = first.csi or {}
        lines += [
            "",
            f"## C1: selectivity per layer ({ref[0]}, threshold gOSI > {first.threshold}, "
            f"{first.permutations} shuffles)",
            "",
            "| stimulus | layer | units | dead | selective (p<0.05) | above threshold | "
            "null above threshold | mean gOSI | null mean gOSI | mean CSI |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for kind, layers in first.by_stimulus().items():
            for layer, s in layers.items():
                lines.append(
                    f"| {kind} | {layer} | {s.units} | {s.dead} | "
                    f"{fmt(s.fraction_selective, 2)} | "
                    f"{fmt(s.fraction_above_threshold, 2)} | "
                    f"{fmt(s.null_fraction_above_threshold, 2)} | {fmt(s.mean_gosi)} | "
                    f"{fmt(s.null_mean_gosi)} | {fmt(csi.get(layer))} |"
                )
        if "c1_gosi_histograms" in plots:
            lines += ["", f"![gOSI histograms]({plots['c1_gosi_histograms']})"]
    if "c2_trajectory" in plots:
        lines += [
            "",
            "## C2: selectivity over training",
            "",
            f"![trajectory]({plots['c2_trajectory']})",
        ]
        for n, v in variants.items():
            if v.trajectory and len(v.trajectory) >= 3:
                last = v.trajectory[-1].gratings
                lines += [
                    "",
                    f"{n}:",
                    "",
                    "| epoch | test acc | " + " | ".join(last) + " |",
                    "|---" * (2 + len(last)) + "|",
                ]
                for t in v.trajectory:
                    cells = " | ".join(fmt(s.mean_gosi) for s in t.gratings.values())
                    test_acc = fmt(accuracy(t.metrics, "test"))
                    lines.append(f"| {t.epoch:g} | {test_acc} | {cells} |")
    if "c3_gosi_vs_accuracy" in plots:
        lines += ["", "## C3: across networks", "", f"![C3]({plots['c3_gosi_vs_accuracy']})"]
    for n in ref:
        a = variants[n].ablate
        if not a:
            continue
        lines += [
            "",
            f"## C4: ablation, {n} ({a.test_images or 'all'} test images)",
            "",
            "| by | layer | top-50% CE increase ± SEM | bottom-50% CE increase ± SEM | "
            "top-50% acc | bottom-50% acc |",
            "|---|---|---|---|---|---|",
        ]
        for split in a.splits:
            top, bottom = split.top50, split.bottom50
            lines.append(
                f"| {split.by} | {split.layer} | {fmt(top.loss_increase_mean)} ± "
                f"{fmt(top.loss_increase_sem)} | {fmt(bottom.loss_increase_mean)} ± "
                f"{fmt(bottom.loss_increase_sem)} | {fmt(top.accuracy)} | "
                f"{fmt(bottom.accuracy)} |"
            )
    for key in ("c4_cumulative_curves", "c4_median_split"):
        if key in plots:
            lines += ["", f"![{key}]({plots[key]})"]
    for n in ref:
        inv = variants[n].invariance
        if not inv:
            continue
        sp = inv.spec
        lines += [
            "",
            f"## C5: shift-invariance, {n} (shift {sp.shift} px, layers "
            f"{', '.join(sp.layers)}; {inv.images} images)",
            "",
            "| ablation | damage (CE increase) | unit invariance ± sd | response correlation ± "
            "sd | prediction consistency ± sd |",
            "|---|---|---|---|---|",
        ]
        for name, c in inv.summary.items():
            lines.append(
                f"| {name} | {fmt(c.loss_increase)} | {fmt(c.invariance)} ± "
                f"{fmt(c.invariance_sd)} | {fmt(c.correlation)} ± "
                f"{fmt(c.correlation_sd)} | {fmt(c.consistency)} ± "
                f"{fmt(c.consistency_sd)} |"
            )
    lines += ["", "## Provenance", "", "| network | manifest sha256 | data sha256 | code |"]
    lines += ["|---|---|---|---|"]
    for n, v in variants.items():
        lines.append(
            f"| {n} | {v.manifest_sha256[:16]} | {v.data_sha256[:16]} | {v.code_version} |"
        )
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
