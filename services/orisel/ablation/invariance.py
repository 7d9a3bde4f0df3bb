"""`orisel invariance`: shift-invariance of higher layers, intact and with lower-layer
units ablated (the most selective half, the least, random and damage-matched random sets)."""

from __future__ import annotations

import zlib
from typing import Any

import numpy as np
import torch

from orisel.ablation.scores import UnitScores
from orisel.ablation.sites import ablation_sites
from orisel.ablation.spec import InvarianceSpec
from orisel.extraction.network import Network
from orisel.kernel import progress
from orisel.science import ablation as ab
from orisel.science import hooks
from orisel.science import selection as sel
from orisel.science.invariance import shift_invariance


def invariance_rows(
    net: Network,
    spec: InvarianceSpec,
    scores: UnitScores,
    images: np.ndarray,
    labels: np.ndarray | None = None,
) -> list[dict[str, Any]]:
    """Shift-invariance of higher layers, one row per (condition, layer, shift): intact, with
    the top-50% selective lower-layer units ablated, with the bottom 50%, with random sets of
    the same size and, given the images' labels, with the random sets of that size whose
    damage (cross-entropy increase) is closest to the top half's, so that a difference in
    invariance is not a difference in damage. Each row carries its ablation's damage."""
    x = net.preprocess_all(images)
    y = None if labels is None else torch.as_tensor(labels, dtype=torch.long)
    matched = spec.damage_matched if y is not None and spec.damage_candidates else 0
    k = spec.shift
    shifts = [(k, 0), (0, k), (-k, 0), (0, -k)] if k else [(0, 0)]
    rows: list[dict[str, Any]] = []
    conditions = 1 + len(spec.ablate_layers) * (2 + len(spec.seeds) + matched)

    def record(
        ablated_layer: str, condition: str, seed: int, units: np.ndarray, ctx: Any, damage: float
    ) -> None:
        for res in shift_invariance(
            net.model, x, spec.layers, shifts, spec.padding, ctx, spec.batch_size
        ):
            for layer, corr in res.correlation.items():
                rows.append(
                    {
                        "ablated_layer": ablated_layer,
                        "condition": condition,
                        "seed": seed,
                        "n_ablated": len(units),
                        "layer": layer,
                        "dx": res.dx,
                        "dy": res.dy,
                        "correlation": corr,
                        "invariance": res.invariance[layer],
                        "consistency": res.consistency,
                        "loss_increase": damage,
                    }
                )
        done.update(1)

    points = ablation_sites(net, spec.ablate_layers, spec.point)
    with progress.counter(conditions, "shift-invariance", "condition") as done:
        record("none", "intact", -1, np.array([], dtype=int), None, 0.0)
        for lower in spec.ablate_layers:
            site = points[lower].site
            s, dead = scores.get(lower, spec.by)
            split = sel.median_split(s, dead, spec.include_dead)
            mean = ab.channel_means(net.model, site, x) if spec.mode == "mean" else None
            n_top = int(split.top.sum())
            sets = {
                ("top50", -1): split.top,
                ("bottom50", -1): split.bottom,
                **{
                    ("random", seed): np.isin(
                        np.arange(len(s)), sel.random_ranking(len(s), seed)[:n_top]
                    )
                    for seed in spec.seeds
                },
            }
            if matched:
                # Drawn from every unit, as the size-matched random sets are.
                pool = np.ones(len(s), dtype=bool)
                seed = zlib.crc32(f"damage:{lower}".encode())
                candidates = sel.random_halves(pool, n_top, spec.damage_candidates, seed)
                sets |= {("damage_candidate", i): m for i, m in enumerate(candidates)}
            masks = np.stack(list(sets.values()))
            damage = (
                np.array(
                    [
                        r.loss_increase_mean
                        for r in ab.sweep(net.model, site, masks, x, y, spec.mode)
                    ]
                )
                if y is not None
                else np.full(len(masks), np.nan)
            )
            by_set = dict(zip(sets, damage, strict=True))
            chosen = []
            if matched:
                names = [key for key in sets if key[0] == "damage_candidate"]
                gaps = np.abs(np.array([by_set[n] for n in names]) - by_set[("top50", -1)])
                chosen = [names[i] for i in np.argsort(gaps, kind="stable")[:matched]]
            for condition, seed in [key for key in sets if key[0] != "damage_candidate"]:
                units = np.flatnonzero(sets[(condition, seed)])
                ctx = hooks.ablated(net.model, site, units, spec.mode, mean)
                record(lower, condition, seed, units, ctx, float(by_set[(condition, seed)]))
            for _, i in chosen:
                units = np.flatnonzero(sets[("damage_candidate", i)])
                ctx = hooks.ablated(net.model, site, units, spec.mode, mean)
                damage_i = float(by_set[("damage_candidate", i)])
                record(lower, "random_damage_matched", i, units, ctx, damage_i)
    return rows


def invariance_summary(cols: dict[str, np.ndarray]) -> dict[tuple[str, str], dict[str, float]]:
    """Mean (and spread over shifts, layers and seeds) of each metric per condition."""
    out: dict[tuple[str, str], dict[str, float]] = {}
    keys = dict.fromkeys(
        zip(cols["ablated_layer"].tolist(), cols["condition"].tolist(), strict=True)
    )
    for a, c in keys:
        sel = (cols["ablated_layer"] == a) & (cols["condition"] == c)
        out[(a, c)] = {
            "consistency": float(cols["consistency"][sel].mean()),
            "consistency_sd": float(cols["consistency"][sel].std()),
            "correlation": float(cols["correlation"][sel].mean()),
            "correlation_sd": float(cols["correlation"][sel].std()),
            "invariance": float(np.nanmean(cols["invariance"][sel])),
            "invariance_sd": float(np.nanstd(cols["invariance"][sel])),
            "loss_increase": float(np.nanmean(cols["loss_increase"][sel])),
        }
    return out
