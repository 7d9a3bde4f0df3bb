"""The paper report's figures (C1 histograms, C2 trajectories, C3 scatter, C4 curves and
median split), drawn from its typed numbers; report.paper places them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from orisel.report import plots
from orisel.report.data import ReportData, accuracy
from orisel.report.rows import LOWER, layer_mean, reference


def paper_figures(data: ReportData, assets: Path) -> dict[str, str]:
    """The report's figures, drawn into `assets`: {name: path relative to the report}."""
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
            g = layer_mean(t.gratings, LOWER)
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
