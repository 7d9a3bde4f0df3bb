"""Small PNG figures (matplotlib, no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from orisel.science.stimuli import StimulusSet
from orisel.scoring.results import StimulusTuning

DPI = 90
# One colour per meaning in every figure: an index keeps its colour wherever it appears,
# the most selective half is always red and the least selective blue, random is grey.
INDEX_COLOURS = {"gosi": "tab:red", "osi": "tab:purple", "csi": "tab:green"}
GROUP_COLOURS = {"top50": "tab:red", "bottom50": "tab:blue", "random": "tab:gray"}
RANDOM = "tab:gray"


def _save(fig: Any, path: Path) -> None:
    # Constrained layout makes room for every title and label (tight_layout gives up on
    # narrow grids); the tight bounding box keeps legends placed beside the panels.
    fig.set_layout_engine("constrained")
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(fig)


def tuning_grid(
    scored: dict[str, dict[str, np.ndarray]], kind: str, path: Path, per_layer: int = 6
) -> None:
    """Each row a layer; its most orientation-selective units among those that pass the
    permutation test (`selective`), their tuning curves normalised to the unit's peak."""
    layers = list(scored)
    fig, axes = plt.subplots(
        len(layers),
        per_layer,
        figsize=(1.7 * per_layer, 1.45 * len(layers) + 0.6),
        squeeze=False,
        sharex=True,
    )
    for r, layer in enumerate(layers):
        s = scored[layer]
        significant = np.flatnonzero(s["selective"])
        order = significant[np.argsort(-s["gosi"][significant], kind="stable")][:per_layer]
        n_or = s["curves"].shape[1]
        deg = np.arange(n_or + 1) * 180 / n_or
        for c in range(per_layer):
            ax = axes[r, c]
            ax.set_ylim(0, 1.08)
            ax.set_xticks([0, 90, 180])
            ax.set_yticks([0, 1] if c == 0 else [])
            ax.tick_params(labelsize=6)
            if c >= len(order):
                if c == 0:
                    ax.text(
                        0.5,
                        0.5,
                        "no selective unit",
                        ha="center",
                        va="center",
                        fontsize=7,
                        transform=ax.transAxes,
                    )
                else:
                    ax.axis("off")
                continue
            u = order[c]
            curve = s["curves"][u]
            peak = curve.max() if curve.max() > 0 else 1.0
            ax.plot(deg, np.append(curve, curve[0]) / peak, color=INDEX_COLOURS["gosi"])
            p = s["p_value"][u]
            ax.set_title(f"{layer} #{u}: gOSI {s['gosi'][u]:.2f}, p {p:.3f}", fontsize=6)
        axes[r, 0].set_ylabel("response / peak", fontsize=6)
    for ax in axes[-1]:
        ax.set_xlabel("orientation (deg)", fontsize=7)
    fig.suptitle(
        f"most orientation-selective units that pass the permutation test ({kind})", fontsize=9
    )
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


def histograms(summary: dict[str, StimulusTuning], threshold: float, path: Path) -> None:
    """Per stimulus kind and layer: gOSI distribution against the shuffled null."""
    kinds = list(summary)
    layers = list(summary[kinds[0]].layers)
    fig, axes = plt.subplots(
        len(kinds), len(layers), figsize=(1.9 * len(layers), 1.7 * len(kinds)), squeeze=False
    )
    for r, kind in enumerate(kinds):
        for c, layer in enumerate(layers):
            s = summary[kind].layers[layer]
            edges = np.array(s.histogram_edges)
            obs = np.array(s.histogram, dtype=float)
            ax = axes[r, c]
            ax.stairs(
                obs / max(obs.sum(), 1),
                edges,
                fill=True,
                alpha=0.6,
                color=INDEX_COLOURS["gosi"],
                label="units",
            )
            ax.stairs(
                np.array(s.null_histogram_density),
                edges,
                color=RANDOM,
                label="shuffled stimuli (null)",
            )
            ax.axvline(threshold, color="k", ls="--", lw=0.8, label=f"threshold {threshold:g}")
            ax.set_title(f"{kind} {layer}\nselective {s.fraction_selective:.2f}", fontsize=7)
            ax.tick_params(labelsize=6)
            if r == len(kinds) - 1:
                ax.set_xlabel("gOSI", fontsize=7)
        axes[r, 0].set_ylabel("fraction of units", fontsize=7)
    # Beside the last panel, so it covers no bars.
    axes[0, -1].legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    _save(fig, path)


def ablation_curves(
    rows: dict[str, np.ndarray], layer: str, metric: str, path: Path, outputs: int
) -> None:
    """One layer's cumulative ablation: each index's order, most selective first (solid) and
    least selective first (dashed), and random orders as their mean with the range over seeds
    (band); for accuracy, chance among the network's `outputs` as a dotted line (not among
    the classes the images hold: a guess may be any output)."""
    fig = plt.figure(figsize=(4.6, 3.3))
    sel = rows["layer"] == layer
    for order in dict.fromkeys(rows["order"][sel]):
        m = sel & (rows["order"] == order)
        frac = rows["fraction"][m]
        vals = rows[metric][m]
        xs = np.unique(frac)
        by_x = [vals[frac == x] for x in xs]
        mean = np.array([v.mean() for v in by_x])
        if order == "random":
            lo, hi = np.array([v.min() for v in by_x]), np.array([v.max() for v in by_x])
            plt.fill_between(xs, lo, hi, color=RANDOM, alpha=0.25, lw=0)
            n = len(np.unique(rows["seed"][m]))
            plt.plot(
                xs, mean, color=RANDOM, marker="o", ms=2.5, label=f"random (mean and range of {n})"
            )
            continue
        index, _, direction = str(order).partition(":")
        style = "-" if direction == "descending" else "--"
        what = "most" if direction == "descending" else "least"
        plt.plot(
            xs,
            mean,
            style,
            color=INDEX_COLOURS.get(index, "k"),
            marker="o",
            ms=2.5,
            label=f"by {index}, {what} selective first",
        )
    if metric == "accuracy":
        plt.axhline(1 / outputs, color="k", ls=":", lw=1, label=f"chance (1/{outputs})")
        plt.ylabel("test accuracy (fraction correct)")
    else:
        plt.ylabel(metric.replace("_", " "))
    plt.xlabel("fraction of the layer's units ablated")
    plt.title(layer, fontsize=9)
    plt.legend(fontsize=6)
    _save(fig, path)


def grouped_bars(
    groups: list[str], series: dict[str, tuple[np.ndarray, np.ndarray]], ylabel: str, path: Path
) -> None:
    """Bars with error bars (as the y label says): one group per x position, one colour per
    series (the most selective half red, the least selective blue, random grey, everywhere)."""
    fig = plt.figure(figsize=(max(4.2, 0.9 * len(groups)), 3.2))
    width = 0.8 / max(len(series), 1)
    x = np.arange(len(groups))
    names = {"top50": "most selective half", "bottom50": "least selective half"}
    for i, (name, (mean, err)) in enumerate(series.items()):
        plt.bar(
            x + i * width,
            mean,
            width,
            yerr=err,
            label=names.get(name, name),
            capsize=2,
            color=GROUP_COLOURS.get(name),
        )
    plt.xticks(x + width * (len(series) - 1) / 2, groups, fontsize=7)
    plt.axhline(0, color="k", lw=0.6)
    plt.ylabel(ylabel, fontsize=8)
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
                    (r[x_key], r["mean_gosi"])
                    for r in rows
                    if r["stimulus"] == kind and r["layer"] == layer and r[x_key] is not None
                )
                if pts:
                    xs, ys = zip(*pts, strict=True)
                    ax.plot(xs, ys, marker="o", ms=3, color=colour, label=layer)
            ax.set_xlabel(x_label)
            ax.set_ylabel(f"mean gOSI ({kind})")
    axes[0][1].legend(fontsize=7, title="layer", title_fontsize=7, loc="best")
    _save(fig, path)
