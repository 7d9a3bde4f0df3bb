"""The ablation sweep engine: what a network loses when chosen channels of a layer are
silenced (`science.hooks`), for many masks (`science.selection`) at once.

The sweep engine runs each layer's prefix once per chunk of images, keeps that layer's
activations, and evaluates only the network's suffix, for many masks in one batch, never
twice for the same mask. Models without a sequential view fall back to full forward passes
with a hook, which gives the same numbers more slowly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from orisel.kernel import progress
from orisel.kernel.errors import InvalidArgument
from orisel.kernel.names import Mode
from orisel.science.hooks import ablated, silence
from orisel.science.responses import on_call
from orisel.science.steps import Step, run_steps, same_as_model, sequential_view, split_at


# -- sweeps ------------------------------------------------------------------------------
@dataclass(frozen=True)
class MaskResult:
    """What one ablation mask does on the evaluation set."""

    accuracy: float
    per_class_accuracy: np.ndarray  # (K,)
    loss_increase_mean: float  # mean per-image increase in cross-entropy over the intact net
    loss_increase_sem: float
    n_ablated: int


def _summarise(
    losses: np.ndarray,
    correct: np.ndarray,
    base_losses: np.ndarray,
    labels: np.ndarray,
    n_classes: int,
    n_ablated: int,
) -> MaskResult:
    delta = losses - base_losses
    counts = np.bincount(labels, minlength=n_classes)
    per_class = np.bincount(labels, weights=correct, minlength=n_classes) / np.maximum(counts, 1)
    sem = float(delta.std(ddof=1) / math.sqrt(len(delta))) if len(delta) > 1 else 0.0
    return MaskResult(float(correct.mean()), per_class, float(delta.mean()), sem, n_ablated)


def _mask_key(mask: np.ndarray) -> bytes:
    return np.packbits(mask).tobytes()


def channel_means(
    model: nn.Module, site: str, images: torch.Tensor, batch_size: int = 500
) -> torch.Tensor:
    """Mean activation map (C, ...) of `site` (of its one call, for a reused module) over
    `images`, for clamping to the mean."""
    total: list[torch.Tensor] = []

    def keep(out: torch.Tensor) -> None:
        total.append(out.detach().double().sum(0))

    model.eval()
    with torch.no_grad(), on_call(model, site, keep):
        for s in range(0, len(images), batch_size):
            model(images[s : s + batch_size])
    return (torch.stack(total).sum(0) / len(images)).float()


Engine = Literal["cached", "naive"]
# Suffix batches are sized by bytes, not rows: on a CPU a batch of early-layer activations
# beyond a few tens of MB runs up to 2x slower per image than one that stays in cache.
BATCH_BYTES = 24 * 2**20
MAX_ROWS = 4096


def suffix_rows(row_bytes: int, budget: int = BATCH_BYTES) -> int:
    """Rows (image x mask pairs) per suffix call for activations of `row_bytes` each."""
    return int(min(MAX_ROWS, max(32, budget // max(row_bytes, 1))))


def sweep(
    model: nn.Module,
    site: str,
    masks: np.ndarray,
    images: torch.Tensor,
    labels: torch.Tensor,
    mode: Mode = "zero",
    engine: Engine = "cached",
    chunk_images: int = 2000,
    batch_bytes: int = BATCH_BYTES,
) -> list[MaskResult]:
    """Evaluate every (M, C) boolean mask at one `site`; see `sweep_sites`."""
    return sweep_sites(
        model, {site: masks}, images, labels, mode, engine, chunk_images, batch_bytes
    )[site]


@dataclass
class _SitePlan:
    distinct: np.ndarray  # (D, C) each distinct mask once
    index: list[int]  # for each requested mask, its row in `distinct`
    mean: torch.Tensor | None
    out: _Buffers


def _plan(masks: np.ndarray, n_images: int, mean: torch.Tensor | None) -> _SitePlan:
    masks = np.asarray(masks, dtype=bool)
    if masks.ndim != 2:
        raise InvalidArgument("masks", "a (masks, channels) boolean array", masks.shape)
    unique: dict[bytes, int] = {}
    index = [unique.setdefault(_mask_key(m), len(unique)) for m in masks]
    distinct = np.zeros((len(unique), masks.shape[1]), dtype=bool)
    distinct[index] = masks
    d = len(distinct)
    return _SitePlan(
        distinct,
        index,
        mean,
        _Buffers(np.zeros((d, n_images)), np.zeros((d, n_images)), np.zeros(n_images)),
    )


def sweep_sites(
    model: nn.Module,
    masks_by_site: dict[str, np.ndarray],
    images: torch.Tensor,
    labels: torch.Tensor,
    mode: Mode = "zero",
    engine: Engine = "cached",
    chunk_images: int = 2000,
    batch_bytes: int = BATCH_BYTES,
) -> dict[str, list[MaskResult]]:
    """Evaluate (M, C) boolean masks at several sites; results in the order of each site's masks.

    "cached" walks the network once per chunk of images, stopping at each site in turn to run
    only the suffix for that site's masks (many masks per batch, each distinct mask once; the
    all-False mask is the intact network). "naive" runs the whole network per mask: the
    reference, and the path for models without a sequential view.
    """
    raw = sweep_sites_raw(
        model, masks_by_site, images, labels, mode, engine, chunk_images, batch_bytes
    )
    return summarise(raw, labels.cpu().numpy())


@dataclass
class RawSweep:
    """One site's per-image outcomes: each distinct mask's cross-entropy and hits, the intact
    network's cross-entropy. Blocks of images of one sweep concatenate into the whole sweep,
    so a sweep split over workers summarises to the numbers of one process."""

    distinct: np.ndarray  # (D, C) each distinct mask once
    index: list[int]  # for each requested mask, its row in `distinct`
    losses: np.ndarray  # (D, images)
    correct: np.ndarray  # (D, images)
    base: np.ndarray  # (images,)

    @staticmethod
    def concatenate(blocks: Sequence[RawSweep]) -> RawSweep:
        first = blocks[0]
        return RawSweep(
            first.distinct,
            first.index,
            np.concatenate([b.losses for b in blocks], axis=1),
            np.concatenate([b.correct for b in blocks], axis=1),
            np.concatenate([b.base for b in blocks]),
        )


def sweep_sites_raw(
    model: nn.Module,
    masks_by_site: dict[str, np.ndarray],
    images: torch.Tensor,
    labels: torch.Tensor,
    mode: Mode = "zero",
    engine: Engine = "cached",
    chunk_images: int = 2000,
    batch_bytes: int = BATCH_BYTES,
    block: slice | None = None,
) -> dict[str, RawSweep]:
    """sweep_sites' per-image outcomes, for the images of `block` only (default: all). The
    mean-ablation values are each channel's mean over all `images` whatever the block, so
    blocks of one sweep ablate alike."""
    model.eval()
    part = slice(None) if block is None else block
    x, y = images[part], labels[part]
    plans = {
        site: _plan(m, len(y), channel_means(model, site, images) if mode == "mean" else None)
        for site, m in masks_by_site.items()
    }
    steps = sequential_view(model)
    # A site inside a step (or one call of a reused module) has no place in the chain: the
    # whole network is run for it, which gives the same numbers.
    chained = steps is not None and set(plans) <= {n for n, _ in steps}
    with torch.no_grad():
        if engine == "naive" or steps is None or not chained or not same_as_model(model, steps, x):
            for site, plan in plans.items():
                _sweep_naive(model, site, plan, x, y, mode, chunk_images)
        else:
            _sweep_cached(steps, plans, x, y, mode, chunk_images, batch_bytes)
    return {
        site: RawSweep(p.distinct, p.index, p.out.losses, p.out.correct, p.out.base)
        for site, p in plans.items()
    }


def summarise(raw: dict[str, RawSweep], labels: np.ndarray) -> dict[str, list[MaskResult]]:
    """Each site's MaskResults, in the order of its requested masks."""
    n_classes = int(max(labels.max() + 1, 2))
    results = {}
    for site, r in raw.items():
        per_distinct = [
            _summarise(
                r.losses[i], r.correct[i], r.base, labels, n_classes, int(r.distinct[i].sum())
            )
            for i in range(len(r.distinct))
        ]
        results[site] = [per_distinct[i] for i in r.index]
    return results


@dataclass
class _Buffers:
    losses: np.ndarray  # (masks, images) cross-entropy
    correct: np.ndarray  # (masks, images) 1.0 where the prediction is right
    base: np.ndarray  # (images,) cross-entropy of the intact network


def _ce(logits: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    if logits.ndim != 2:
        raise InvalidArgument(
            "output",
            "a network whose output is (batch, classes) logits, for the cross-entropy an "
            "ablation costs (select them with --output, API output=, where it returns several)",
            tuple(logits.shape),
        )
    out: np.ndarray = F.cross_entropy(logits.float(), y, reduction="none").double().cpu().numpy()
    return out


def _sweep_cached(
    steps: list[Step],
    plans: dict[str, _SitePlan],
    images: torch.Tensor,
    labels: torch.Tensor,
    mode: Mode,
    chunk_images: int,
    batch_bytes: int,
) -> None:
    names = [n for n, _ in steps]
    for site in plans:
        split_at(steps, site)  # validates the name
    ordered = sorted(plans, key=lambda site: names.index(site))
    starts = range(0, len(labels), chunk_images)
    with progress.counter(len(starts) * len(ordered), "ablation sweep", "site") as done:
        for s in starts:
            act, y, pos = images[s : s + chunk_images], labels[s : s + chunk_images], 0
            for site in ordered:
                stop = names.index(site) + 1
                act = run_steps(steps[pos:stop], act)
                pos = stop
                _evaluate_site(steps[stop:], act, y, s, plans[site], mode, batch_bytes)
                done.update(1)


def _evaluate_site(
    suffix: list[Step],
    act: torch.Tensor,
    y: torch.Tensor,
    s: int,
    plan: _SitePlan,
    mode: Mode,
    batch_bytes: int,
) -> None:
    """All of one site's masks on one chunk of images whose activations at the site are `act`."""
    out, distinct, mean = plan.out, plan.distinct, plan.mean
    live = [i for i in range(len(distinct)) if distinct[i].any()]
    intact = [i for i in range(len(distinct)) if not distinct[i].any()]
    b = len(y)
    rows = suffix_rows(act[0].numel() * act.element_size(), batch_bytes)
    # Either several masks over the whole chunk per call, or one mask over part of it.
    group, part = (rows // b, b) if rows >= b else (1, rows)
    hits = np.zeros(b)
    for p0 in range(0, b, part):
        logits = run_steps(suffix, act[p0 : p0 + part])
        yp = y[p0 : p0 + part]
        out.base[s + p0 : s + p0 + len(yp)] = _ce(logits, yp)
        hits[p0 : p0 + len(yp)] = (logits.argmax(1) == yp).double().cpu().numpy()
    for i in intact:
        out.losses[i, s : s + b] = out.base[s : s + b]
        out.correct[i, s : s + b] = hits
    for g0 in range(0, len(live), group):
        ids = live[g0 : g0 + group]
        mask = torch.from_numpy(distinct[ids]).to(act.device)
        folded = _fold_zero_mask(suffix, mask[0]) if mode == "zero" and len(ids) == 1 else None
        for p0 in range(0, b, part):
            a = act[p0 : p0 + part]
            n = len(a)
            if folded is not None:
                logits = run_steps(folded, a)
            else:
                rep = a.unsqueeze(0).expand(len(ids), *a.shape).reshape(len(ids) * n, *a.shape[1:])
                logits = run_steps(suffix, silence(rep, mask, mode, mean))
            yy = y[p0 : p0 + n].repeat(len(ids))
            cols = slice(s + p0, s + p0 + n)
            out.losses[ids, cols] = _ce(logits, yy).reshape(len(ids), n)
            right = (logits.argmax(1) == yy).view(len(ids), n)
            out.correct[ids, cols] = right.double().cpu().numpy()


def _fold_zero_mask(suffix: list[Step], mask: torch.Tensor) -> list[Step] | None:
    """The suffix with zeroed channels folded into its first layer's input weights.

    conv(x * keep) == conv with weight * keep on its input channels, so large activations need
    not be copied and masked for every mask; None where the first step is not a dense conv
    or linear layer.
    """
    name, first = suffix[0]
    if not isinstance(first, nn.Conv2d | nn.Linear) or getattr(first, "groups", 1) != 1:
        return None
    keep = (~mask).to(first.weight.dtype).view(1, -1, *[1] * (first.weight.ndim - 2))
    params = {"weight": first.weight * keep}

    def masked(x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = torch.func.functional_call(first, params, (x,))
        return out

    return [(name, masked), *suffix[1:]]


def _sweep_naive(
    model: nn.Module,
    site: str,
    plan: _SitePlan,
    images: torch.Tensor,
    labels: torch.Tensor,
    mode: Mode,
    batch: int,
) -> None:
    out = plan.out
    for s in range(0, len(labels), batch):
        out.base[s : s + batch] = _ce(model(images[s : s + batch]), labels[s : s + batch])
    with progress.counter(len(plan.distinct), f"ablation sweep {site}", "set") as done:
        for i, m in enumerate(plan.distinct):
            with ablated(model, site, np.flatnonzero(m), mode, plan.mean):
                for s in range(0, len(labels), batch):
                    x, y = images[s : s + batch], labels[s : s + batch]
                    logits = model(x)
                    out.losses[i, s : s + len(y)] = _ce(logits, y)
                    correct = (logits.argmax(1) == y).double().cpu().numpy()
                    out.correct[i, s : s + len(y)] = correct
            done.update(1)
