"""Which units an ablation silences, in which order: rankings by an index, random orders,
cumulative masks, the paper's median split, the random halves it is ranked among and halves
matched on a covariate. Pure numpy: masks are (masks, channels) booleans the sweep engine
(`science.ablation`) applies."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from orisel.kernel.errors import InvalidArgument

Direction = Literal["descending", "ascending"]


def ranking(scores: np.ndarray, direction: Direction) -> np.ndarray:
    """Unit indices from most to least (or least to most) selective; ties keep index order."""
    if direction not in ("descending", "ascending"):
        raise InvalidArgument("direction", "descending or ascending", direction)
    key = -scores if direction == "descending" else scores
    order: np.ndarray = np.argsort(key, kind="stable")
    return order


def random_ranking(n_units: int, seed: int) -> np.ndarray:
    order: np.ndarray = np.random.default_rng(seed).permutation(n_units)
    return order


def cumulative_masks(order: np.ndarray, fractions: Sequence[float]) -> np.ndarray:
    """(F, C) masks ablating the first round(f * C) units of `order` for each fraction f."""
    c = len(order)
    bad = [f for f in fractions if not 0.0 <= f <= 1.0]
    if bad:
        raise InvalidArgument("fractions", "values in [0, 1]", bad)
    masks = np.zeros((len(fractions), c), dtype=bool)
    for i, f in enumerate(fractions):
        masks[i, order[: round(f * c)]] = True
    return masks


@dataclass(frozen=True)
class Split:
    """The paper's median split: top = above the median, bottom = below; ties go to neither."""

    top: np.ndarray  # (C,) bool
    bottom: np.ndarray  # (C,) bool
    median: float
    ties: int
    dead_excluded: int
    pool: np.ndarray  # (C,) bool: the units the split was drawn from


def median_split(scores: np.ndarray, dead: np.ndarray, include_dead: bool = False) -> Split:
    """Dead units (index 0 by definition) are left out unless asked for, since they would
    fill the bottom group with units whose ablation says nothing about selectivity."""
    pool = np.ones_like(dead) if include_dead else ~dead
    if pool.sum() < 2:
        raise InvalidArgument(
            "units", "at least two live units to split at the median", int(pool.sum())
        )
    med = float(np.median(scores[pool]))
    top = pool & (scores > med)
    bottom = pool & (scores < med)
    ties = int((pool & (scores == med)).sum())
    return Split(top, bottom, med, ties, int((dead & ~pool).sum()), pool)


def matched_split(
    scores: np.ndarray, covariate: np.ndarray, pool: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Two halves of `pool` matched on `covariate` that differ in `scores`: units sorted by the
    covariate are paired with their neighbour, and the higher-scoring unit of each pair goes
    to the top half, the other to the bottom (a pair that ties in score, and an odd unit out,
    go to neither). The halves then carry nearly the same covariate values, so a difference
    between their ablations is not the covariate's doing."""
    units = np.flatnonzero(pool)
    units = units[np.argsort(covariate[units], kind="stable")]
    pairs = units[: len(units) // 2 * 2].reshape(-1, 2)
    a, b = scores[pairs[:, 0]], scores[pairs[:, 1]]
    top = np.zeros(len(pool), dtype=bool)
    bottom = np.zeros(len(pool), dtype=bool)
    top[np.where(a > b, pairs[:, 0], pairs[:, 1])[a != b]] = True
    bottom[np.where(a > b, pairs[:, 1], pairs[:, 0])[a != b]] = True
    return top, bottom


def random_halves(pool: np.ndarray, size: int, n: int, seed: int) -> np.ndarray:
    """(n, C) masks of `size` units drawn at random from `pool`: the null that a median
    split's halves are compared with (is the top half worse than any half would be?)."""
    units = np.flatnonzero(pool)
    if not 0 <= size <= len(units):
        raise InvalidArgument("size", f"0 to {len(units)} units of the pool", size)
    rng = np.random.default_rng(seed)
    pick = units[np.argsort(rng.random((n, len(units))), axis=1)[:, :size]]
    masks = np.zeros((n, len(pool)), dtype=bool)
    np.put_along_axis(masks, pick, True, axis=1)
    return masks
