"""`orisel ablate`: cumulative ablation curves and the median split of each layer, in
chunks (one per layer and order) that the service fans out as blocks of images."""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from orisel.ablation.results import AblationPoint, Split
from orisel.ablation.scores import UnitScores
from orisel.ablation.sites import ablation_sites
from orisel.ablation.spec import AblateSpec
from orisel.extraction.network import Network
from orisel.models.cnn7 import unit_covariates
from orisel.science import ablation as ab
from orisel.science import selection as sel
from orisel.science.statistics import percentile_of


def _result_row(r: ab.MaskResult) -> dict[str, Any]:
    return {
        "n_ablated": r.n_ablated,
        "accuracy": r.accuracy,
        "loss_increase_mean": r.loss_increase_mean,
        "loss_increase_sem": r.loss_increase_sem,
    }


@dataclass(frozen=True)
class Swept:
    """A sweep's findings: one curve row per (layer, order, seed, fraction), written as the
    curves table, the median split of each (index, layer) with its controls, and where each
    layer was ablated."""

    curves: list[dict[str, Any]]
    splits: list[Split]
    points: dict[str, AblationPoint] = field(default_factory=dict)

    def __add__(self, other: Swept) -> Swept:
        return Swept(
            self.curves + other.curves, self.splits + other.splits, self.points | other.points
        )


@dataclass(frozen=True)
class Chunk:
    """A unit of sweep work: one layer and one order family (an index, or one random seed)."""

    layer: str
    family: str  # "gosi", "osi", "csi" or "random:<seed>"


def chunks(spec: AblateSpec) -> list[Chunk]:
    """Every chunk of a sweep, in the canonical order of the output table."""
    out = []
    for layer in spec.layers:
        out += [Chunk(layer, index) for index in spec.orders]
        out += [Chunk(layer, f"random:{seed}") for seed in spec.seeds]
    return out


def _chunk_plan(
    chunk: Chunk, spec: AblateSpec, scores: UnitScores, covariates: dict[str, np.ndarray]
) -> tuple[list[tuple[str, str, int, np.ndarray]], dict[str, Any] | None]:
    """(order, direction, seed, masks) entries of a chunk, and its median-split record."""
    if chunk.family.startswith("random:"):
        seed = int(chunk.family.split(":")[1])
        ranked = sel.random_ranking(len(scores.get(chunk.layer, "gosi")[0]), seed)
        return [("random", "random", seed, sel.cumulative_masks(ranked, spec.fractions))], None
    s, dead = scores.get(chunk.layer, chunk.family)
    plan = [
        (chunk.family, d, -1, sel.cumulative_masks(sel.ranking(s, d), spec.fractions))
        for d in ("descending", "ascending")
    ]
    split = sel.median_split(s, dead, spec.include_dead)
    plan += [
        (chunk.family, "top50", -1, split.top[None]),
        (chunk.family, "bottom50", -1, split.bottom[None]),
    ]
    if spec.random_halves:
        # One seed per layer: every order of a layer meets the same random halves, which the
        # engine then evaluates once.
        seed = zlib.crc32(chunk.layer.encode())
        halves = sel.random_halves(split.pool, int(split.top.sum()), spec.random_halves, seed)
        plan.append((chunk.family, "random_halves", -1, halves))
    meta: dict[str, Any] = {
        "layer": chunk.layer,
        "by": chunk.family,
        "median": split.median,
        "ties": split.ties,
        "dead_excluded": split.dead_excluded,
    }
    if spec.matched_controls and covariates:
        meta["matched"] = {}
        for name, cov in covariates.items():
            top, bottom = sel.matched_split(s, cov, split.pool)
            plan += [
                (chunk.family, f"matched:{name}:top50", -1, top[None]),
                (chunk.family, f"matched:{name}:bottom50", -1, bottom[None]),
            ]
            meta["matched"][name] = {
                "units": int(top.sum()),
                "covariate_top": float(cov[top].mean()) if top.any() else None,
                "covariate_bottom": float(cov[bottom].mean()) if bottom.any() else None,
                "score_top": float(s[top].mean()) if top.any() else None,
                "score_bottom": float(s[bottom].mean()) if bottom.any() else None,
            }
    return plan, meta


@dataclass(frozen=True)
class _Layout:
    """Where each chunk's layer is ablated, its mask plans, and every site's masks in order."""

    points: dict[str, AblationPoint]
    sites: dict[str, str]
    plans: list[tuple[Chunk, list[tuple[str, str, int, np.ndarray]], dict[str, Any] | None]]
    masks: dict[str, np.ndarray]


def _layout(net: Network, spec: AblateSpec, scores: UnitScores, todo: list[Chunk]) -> _Layout:
    layers = list(dict.fromkeys(c.layer for c in todo))
    points = ablation_sites(net, layers, spec.point)
    sites = {layer: p.site for layer, p in points.items()}
    covariates = {
        layer: {k: v.cpu().double().numpy() for k, v in unit_covariates(net.model, layer).items()}
        for layer in sites
    }
    plans = [(c, *_chunk_plan(c, spec, scores, covariates[c.layer])) for c in todo]
    masks: dict[str, list[np.ndarray]] = {}
    for c, plan, _ in plans:
        masks.setdefault(sites[c.layer], []).extend(p[3] for p in plan)
    return _Layout(points, sites, plans, {k: np.concatenate(v) for k, v in masks.items()})


def run_chunks(
    net: Network,
    spec: AblateSpec,
    scores: UnitScores,
    todo: list[Chunk],
    x: torch.Tensor,
    y: torch.Tensor,
) -> Swept:
    """Curve rows and split records of `todo`, every site swept in one walk of the network."""
    layout = _layout(net, spec, scores, todo)
    raw = ab.sweep_sites_raw(net.model, layout.masks, x, y, spec.mode, "cached", spec.chunk_images)
    labels = y.cpu().numpy()
    return _rows(spec, layout, ab.summarise(raw, labels), raw, np.unique(labels))


def run_block(
    net: Network,
    spec: AblateSpec,
    scores: UnitScores,
    todo: list[Chunk],
    x: torch.Tensor,
    y: torch.Tensor,
    block: slice,
) -> dict[str, ab.RawSweep]:
    """The per-image outcomes of `todo` on the images of `block`: a part of a sweep that
    combines with its other blocks (rows_from_blocks) into exactly run_chunks' numbers."""
    layout = _layout(net, spec, scores, todo)
    return ab.sweep_sites_raw(
        net.model, layout.masks, x, y, spec.mode, "cached", spec.chunk_images, block=block
    )


def rows_from_blocks(
    net: Network,
    spec: AblateSpec,
    scores: UnitScores,
    todo: list[Chunk],
    blocks: list[dict[str, ab.RawSweep]],
    y: np.ndarray,
) -> Swept:
    """run_chunks' rows from the blocks of images, given in image order."""
    layout = _layout(net, spec, scores, todo)
    raw = {site: ab.RawSweep.concatenate([b[site] for b in blocks]) for site in layout.masks}
    return _rows(spec, layout, ab.summarise(raw, y), raw, np.unique(y))


def _paired(top: np.ndarray, bottom: np.ndarray) -> dict[str, Any]:
    """Top minus bottom per image (both halves are ablated on the same images), with its SE."""
    diff = top - bottom
    sem = float(diff.std(ddof=1) / np.sqrt(len(diff))) if len(diff) > 1 else 0.0
    return {"difference": float(diff.mean()), "sem": sem, "images": len(diff)}


def _split_tests(split: dict[str, Any], deltas: dict[str, np.ndarray], halves: list[float]) -> None:
    """The median split's paired difference, its matched controls' and the halves' places
    among random halves of the layer."""
    split["paired"] = _paired(deltas["top50"], deltas["bottom50"])
    for name, record in split.get("matched", {}).items():
        record["paired"] = _paired(
            deltas[f"matched:{name}:top50"], deltas[f"matched:{name}:bottom50"]
        )
    if halves:
        null = np.array(halves)
        split["random_halves"] = {
            "n": len(halves),
            "loss_increase_mean": float(null.mean()),
            "loss_increase_sd": float(null.std(ddof=1)) if len(null) > 1 else 0.0,
            "top50_percentile": percentile_of(split["top50"]["loss_increase_mean"], null),
            "bottom50_percentile": percentile_of(split["bottom50"]["loss_increase_mean"], null),
        }


def _rows(
    spec: AblateSpec,
    layout: _Layout,
    swept: dict[str, list[ab.MaskResult]],
    raw: dict[str, ab.RawSweep],
    classes: np.ndarray,
) -> Swept:
    """The curve rows and split records; per-class accuracy of the `classes` (network
    outputs) the images hold, so a folder of a few of a network's classes has no columns
    for the rest."""
    results = {site: iter(r) for site, r in swept.items()}
    position = dict.fromkeys(swept, 0)
    curves: list[dict[str, Any]] = []
    splits: list[Split] = []
    for c, plan, meta in layout.plans:
        site = layout.sites[c.layer]
        split = dict(meta, site=site) if meta is not None else None
        deltas: dict[str, np.ndarray] = {}
        halves: list[float] = []
        for order, direction, seed, m in plan:
            for k in range(len(m)):
                r = next(results[site])
                at = raw[site].index[position[site]]
                position[site] += 1
                if split is not None and direction in ("top50", "bottom50"):
                    split[direction] = _result_row(r)
                    deltas[direction] = raw[site].losses[at] - raw[site].base
                    continue
                if split is not None and direction.startswith("matched:"):
                    _, name, half = direction.split(":")
                    split["matched"][name][half] = _result_row(r)
                    deltas[direction] = raw[site].losses[at] - raw[site].base
                    continue
                if direction == "random_halves":
                    halves.append(r.loss_increase_mean)
                    continue
                per_class = {f"accuracy_class{i}": float(r.per_class_accuracy[i]) for i in classes}
                name = "random" if order == "random" else f"{order}:{direction}"
                curves.append(
                    {
                        "layer": c.layer,
                        "site": site,
                        "order": name,
                        "seed": seed,
                        "fraction": spec.fractions[k],
                        **_result_row(r),
                        **per_class,
                    }
                )
        if split is not None:
            _split_tests(split, deltas, halves)
            splits.append(Split.model_validate(split))
    return Swept(curves, splits, layout.points)


def evaluation_tensors(
    net: Network, images: np.ndarray, labels: np.ndarray
) -> tuple[torch.Tensor, torch.Tensor]:
    x = net.preprocess_all(images)
    return x, torch.from_numpy(labels).to(net.device)
