"""Small PNG figures (matplotlib, no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from orisel.science.stimuli import StimulusSet

DPI = 90


def _save(fig: Any, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


def tuning_grid(
    scored: dict[str, dict[str, np.ndarray]], kind: str, path: Path, per_layer: int = 6
) -> None:
    """Each row a layer; its most selective units' normalised tuning curves (orientation in deg)."""
    layers = list(scored)
    fig, axes = plt.subplots(
        len(layers), per_layer, figsize=(1.6 * per_layer, 1.3 * len(layers)), squeeze=False
    )
    for r, layer in enumerate(layers):
        s = scored[layer]
        order = np.argsort(-s["gosi"], kind="stable")[:per_layer]
        n_or = s["curves"].shape[1]
        deg = np.arange(n_or + 1) * 180 / n_or
        for c in range(per_layer):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c >= len(order):
                continue
            u = order[c]
            curve = s["curves"][u]
            peak = curve.max() if curve.max() > 0 else 1.0
            ax.plot(deg, np.append(curve, curve[0]) / peak, color="C0")
            ax.set_ylim(0, 1.05)
            ax.set_title(f"{layer}#{u} g={s['gosi'][u]:.2f}", fontsize=7)
    fig.suptitle(f"most orientation-selective units ({kind}); x: 0-180 deg", fontsize=9)
    _save(fig, path)


def stimulus_sheet(stim: StimulusSet, path: Path) -> None:
    """Orientation x condition contact sheet at the first nuisance value."""
    o, c, _ = stim.shape
    # Bars: a light bar near the centre of the position grid; gratings: phase 0.
    nuisance = 0 if stim.kind == "gratings" else len(stim.nuisances) // 4 + 4
    idx = np.array(
        [np.ravel_multi_index((i, j, nuisance), stim.shape) for j in range(c) for i in range(o)]
    )
    imgs = stim.render(idx).reshape(c, o, stim.size, stim.size)
    sheet = np.concatenate([np.concatenate(list(row), axis=1) for row in imgs], axis=0)
    fig = plt.figure(figsize=(o * 0.6, c * 0.6))
    plt.imshow(sheet, cmap="gray", vmin=0, vmax=1)
    plt.axis("off")
    plt.title(f"{stim.kind}: orientations (columns) x conditions (rows)", fontsize=8)
    _save(fig, path)


def histograms(summary: dict[str, Any], threshold: float, path: Path) -> None:
    """Per stimulus kind and layer: gOSI distribution against the shuffled null."""
    kinds = [k for k in summary if "layers" in summary[k]]
    layers = list(summary[kinds[0]]["layers"])
    fig, axes = plt.subplots(
        len(kinds), len(layers), figsize=(1.9 * len(layers), 1.7 * len(kinds)), squeeze=False
    )
    for r, kind in enumerate(kinds):
        for c, layer in enumerate(layers):
            s = summary[kind]["layers"][layer]
            edges = np.array(s["histogram_edges"])
            obs = np.array(s["histogram"], dtype=float)
            ax = axes[r, c]
            ax.stairs(obs / max(obs.sum(), 1), edges, fill=True, alpha=0.6, label="units")
            ax.stairs(np.array(s["null_histogram_density"]), edges, color="k", label="shuffled")
            ax.axvline(threshold, color="r", lw=0.8)
            ax.set_title(f"{kind} {layer}\nsel {s['fraction_selective']:.2f}", fontsize=7)
            ax.tick_params(labelsize=6)
    axes[0, 0].legend(fontsize=6)
    _save(fig, path)


def ablation_curves(rows: dict[str, np.ndarray], layer: str, metric: str, path: Path) -> None:
    fig = plt.figure(figsize=(4, 3))
    sel = rows["layer"] == layer
    for order in dict.fromkeys(rows["order"][sel]):
        m = sel & (rows["order"] == order)
        frac = rows["fraction"][m]
        vals = rows[metric][m]
        xs = np.unique(frac)
        ys = np.array([vals[frac == x].mean() for x in xs])
        plt.plot(xs, ys, marker="o", ms=3, label=str(order))
    plt.xlabel("fraction of units ablated")
    plt.ylabel(metric.replace("_", " "))
    plt.title(layer, fontsize=9)
    plt.legend(fontsize=7)
    _save(fig, path)


def grouped_bars(
    groups: list[str], series: dict[str, tuple[np.ndarray, np.ndarray]], ylabel: str, path: Path
) -> None:
    """Bars with error bars: one group per x position, one colour per series."""
    fig = plt.figure(figsize=(max(4, 0.9 * len(groups)), 3))
    width = 0.8 / max(len(series), 1)
    x = np.arange(len(groups))
    for i, (name, (mean, err)) in enumerate(series.items()):
        plt.bar(x + i * width, mean, width, yerr=err, label=name, capsize=2)
    plt.xticks(x + width * (len(series) - 1) / 2, groups, fontsize=7)
    plt.ylabel(ylabel)
    plt.legend(fontsize=7)
    _save(fig, path)


def trajectory(rows: list[dict[str, Any]], path: Path) -> None:
    """Mean gOSI of each layer against epoch (left) and against test accuracy (right), one
    panel row per stimulus set; the layers keep one colour in both panels."""
    stimuli = list(dict.fromkeys(r["stimulus"] for r in rows))
    layers = list(dict.fromkeys(r["layer"] for r in rows))
    colours = plt.get_cmap("viridis")(np.linspace(0, 0.9, max(len(layers), 1)))
    fig, axes = plt.subplots(len(stimuli), 2, figsize=(9, 3.2 * len(stimuli)), squeeze=False)
    for row, kind in enumerate(stimuli):
        for col, (x_key, x_label) in enumerate(
            (("epoch", "epoch"), ("test_accuracy", "test accuracy (fraction correct)"))
        ):
            ax = axes[row][col]
            for colour, layer in zip(colours, layers, strict=True):
                pts = sorted(
                    (r[x_key], r["mean_gosi"]) for r in rows
                    if r["stimulus"] == kind and r["layer"] == layer and r[x_key] is not None
                )  # fmt: skip
                if pts:
                    xs, ys = zip(*pts, strict=True)
                    ax.plot(xs, ys, marker="o", ms=3, color=colour, label=layer)
            ax.set_xlabel(x_label)
            ax.set_ylabel(f"mean gOSI ({kind})")
    axes[0][1].legend(fontsize=7, title="layer", title_fontsize=7, loc="best")
    _save(fig, path)
