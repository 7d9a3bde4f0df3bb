"""Selectivity indices per unit: OSI, gOSI, preference, range, bandwidth, CSI, p-values.

Responses arrive as (stimuli, units) in the stimulus set's flat order, i.e. reshaped to
(orientation, condition, nuisance, units). Indices assume rectified (non-negative)
responses, as read at conv+ReLU outputs; negative values are treated as zero.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from orisel.kernel.errors import InvalidArgument

DEAD_EPS = 0.0  # a unit is dead when every response is exactly zero (ReLU never opens)


@dataclass(frozen=True)
class Tuning:
    """Per-unit tuning: the orientation curve at the preferred condition, and context."""

    curves: np.ndarray  # (U, O) at the preferred condition, max over nuisance
    by_condition: np.ndarray  # (U, O, C) max over nuisance
    preferred_condition: np.ndarray  # (U,)
    dead: np.ndarray  # (U,) bool


def tuning(responses: np.ndarray, shape: tuple[int, int, int]) -> Tuning:
    """Max over nuisance (phase / position), then the condition whose best response is largest."""
    o, c, n = shape
    if responses.ndim != 2 or responses.shape[0] != o * c * n:
        raise InvalidArgument(
            "responses", f"an array of shape ({o * c * n}, units)", responses.shape
        )
    r = np.maximum(responses, 0.0)
    by_cond, pref_c, curves = tuning_curves(torch.from_numpy(np.ascontiguousarray(r)), shape)
    dead = ~(r > DEAD_EPS).any(axis=0)
    return Tuning(curves.numpy(), by_cond.numpy(), pref_c.numpy(), dead)


def tuning_curves(
    rectified: torch.Tensor, shape: tuple[int, int, int]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The one construction of tuning curves, for `tuning` and the training term alike:
    (stimuli, units) rectified responses -> by condition (U, O, C), max over nuisance; the
    preferred condition (U,), whose best response is largest (the first on a tie); and its
    curve (U, O). Differentiable where the maxima are unique."""
    o, c, n = shape
    by_cond = rectified.reshape(o, c, n, -1).amax(dim=2).permute(2, 0, 1)  # (U, O, C)
    pref_c = by_cond.amax(dim=1).argmax(dim=1)
    curves = torch.gather(by_cond, 2, pref_c[:, None, None].expand(-1, o, 1))[:, :, 0]
    return by_cond, pref_c, curves


def _angles(n: int) -> np.ndarray:
    return np.arange(n) * math.pi / n


def gosi(curves: np.ndarray) -> np.ndarray:
    """|sum_k R_k exp(2i theta_k)| / sum_k R_k (= 1 - circular variance); 0 for a zero curve."""
    out: np.ndarray = gosi_t(torch.from_numpy(np.asarray(curves, dtype=np.float64))).numpy()
    return out


def gosi_t(curves: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """gOSI of tuning curves whose orientation axis is `dim`, in their dtype: the one formula
    behind `gosi`, the permutation null and the training term.

    Differentiable except where the resultant is zero (an untuned curve: its gradient is taken
    as 0, a subgradient of |z|) and at a zero curve (gOSI 0, gradient 0)."""
    c = curves.movedim(dim, -1)
    o = c.shape[-1]
    angles = 2 * math.pi * torch.arange(o, dtype=c.dtype, device=c.device) / o
    re = c @ torch.cos(angles)
    im = c @ torch.sin(angles)
    sq = re**2 + im**2
    # sqrt at 0 has an infinite derivative; both branches are kept finite so no NaN flows back.
    vec = torch.where(sq > 0, torch.sqrt(torch.where(sq > 0, sq, 1.0)), 0.0)
    total = c.sum(dim=-1)
    g = torch.where(total > 0, vec / torch.where(total > 0, total, 1.0), 0.0)
    # <= 1 by the triangle inequality; the clamp only removes rounding above 1.
    return g.clamp(0.0, 1.0)


def osi(curves: np.ndarray) -> np.ndarray:
    """(R_pref - R_orth) / (R_pref + R_orth), orth = preferred + 90 degrees; 0 for a zero curve."""
    n = curves.shape[-1]
    if n % 2:
        raise InvalidArgument("n_orientations", "an even number (OSI needs the orthogonal one)", n)
    pref = curves.argmax(axis=-1)
    rp = np.take_along_axis(curves, pref[..., None], axis=-1)[..., 0]
    ro = np.take_along_axis(curves, ((pref + n // 2) % n)[..., None], axis=-1)[..., 0]
    s = rp + ro
    return np.where(s > 0, (rp - ro) / np.where(s > 0, s, 1.0), 0.0)


def preferred_orientation(curves: np.ndarray) -> np.ndarray:
    """Degrees of the curve's maximum; NaN for a zero curve."""
    deg = curves.argmax(axis=-1) * 180.0 / curves.shape[-1]
    return np.where(curves.max(axis=-1) > 0, deg, np.nan)


def orientation_range(by_condition: np.ndarray, level: float = 0.5) -> np.ndarray:
    """Smallest arc (degrees) holding the preferred orientations of every condition whose
    best response is at least `level` x the unit's maximum; 0 when one orientation is preferred
    throughout, NaN for a dead unit."""
    u, o, _ = by_condition.shape
    peak_c = by_condition.max(axis=1)  # (U, C)
    active = peak_c >= level * peak_c.max(axis=1, keepdims=True)
    pref = by_condition.argmax(axis=1)  # (U, C)
    present = np.zeros((u, o), dtype=bool)
    rows = np.broadcast_to(np.arange(u)[:, None], pref.shape)
    present[rows[active], pref[active]] = True
    # For each present start s, the arc running counter-clockwise from s must reach the farthest
    # present orientation; the best start gives the smallest such arc.
    dist = (np.arange(o)[None, :] - np.arange(o)[:, None]) % o  # dist[s, j]
    reach = np.where(present[:, None, :], dist[None], -1).max(axis=2)  # (U, start)
    arc = np.where(present, reach, o).min(axis=1) * 180.0 / o
    dead = peak_c.max(axis=1) <= 0
    return np.where(dead, np.nan, arc)


def bandwidth(curves: np.ndarray) -> np.ndarray:
    """Half-width (degrees) at 1/sqrt(2) of the peak, as Ringach et al. 2002 define it.

    From the peak, walk each way round the 180-degree circle to where the curve first falls
    below peak/sqrt(2), interpolating linearly between samples, and average the two sides.
    A side that never falls below within 90 degrees counts 90 (untuned); a zero curve is NaN.
    """
    u, n = curves.shape
    step = 180.0 / n
    pref = curves.argmax(axis=1)
    peak = curves[np.arange(u), pref]
    thr = peak / math.sqrt(2.0)
    half = n // 2
    offsets = np.arange(half + 1)
    sides = []
    for sign in (1, -1):
        idx = (pref[:, None] + sign * offsets[None, :]) % n
        vals = curves[np.arange(u)[:, None], idx]  # (U, half+1), vals[:, 0] = peak
        below = vals < thr[:, None]
        first = np.where(below.any(axis=1), below.argmax(axis=1), -1)
        j = np.maximum(first, 1)
        v_hi = vals[np.arange(u), j - 1]
        v_lo = vals[np.arange(u), j]
        frac = np.where(v_hi > v_lo, (v_hi - thr) / np.where(v_hi > v_lo, v_hi - v_lo, 1.0), 0.0)
        width = (j - 1 + frac) * step
        sides.append(np.where(first > 0, width, 90.0))
    bw = (sides[0] + sides[1]) / 2
    return np.where(peak > 0, bw, np.nan)


def class_selectivity(
    responses: np.ndarray, labels: np.ndarray, n_classes: int, eps: float = 1e-7
) -> np.ndarray:
    """Morcos et al. 2018: (mu_max - mu_rest) / (mu_max + mu_rest + eps) over class means.

    `responses` is (images, units), spatially reduced and rectified; eps follows Leavitt &
    Morcos. A unit silent on every class gets 0.
    """
    if n_classes < 2:
        raise InvalidArgument("n_classes", "at least 2", n_classes)
    if responses.shape[0] != labels.shape[0]:
        raise InvalidArgument(
            "labels", f"{responses.shape[0]} labels, one per image", labels.shape[0]
        )
    r = np.maximum(responses, 0.0).astype(np.float64)
    onehot = np.eye(n_classes)[labels]  # (N, K)
    counts = onehot.sum(axis=0)
    if (counts == 0).any():
        raise InvalidArgument("labels", "at least one image of every class", counts.tolist())
    means = (onehot.T @ r) / counts[:, None]  # (K, U)
    mu_max = means.max(axis=0)
    mu_rest = (means.sum(axis=0) - mu_max) / (n_classes - 1)
    denom = mu_max + mu_rest + eps
    return np.where(mu_max > 0, (mu_max - mu_rest) / denom, 0.0)


def null_gosi(
    responses: np.ndarray,
    shape: tuple[int, int, int],
    n_permutations: int,
    seed: int,
    chunk: int = 64,
    orientation_only: bool = False,
) -> np.ndarray:
    """gOSI of every unit under `n_permutations` random relabellings of the stimuli: (P, U).

    Each permutation presents the same stimuli under shuffled labels (the paper's null
    control), then builds the tuning curve exactly as for the real labels. With
    `orientation_only`, only the orientation labels are shuffled, within each (condition,
    nuisance) cell: a null that keeps a unit's preference for a frequency or phase and asks
    whether its orientation tuning could arise by chance.
    """
    o, c, n = shape
    u = responses.shape[1]
    r = torch.from_numpy(np.maximum(responses, 0.0).astype(np.float32))
    gen = torch.Generator().manual_seed(seed)
    out = []
    for start in range(0, n_permutations, chunk):
        p = min(chunk, n_permutations - start)
        perms = _shuffles(p, shape, gen, orientation_only)
        # The P shuffles side by side as P x U units of one layer: the same tuning and gOSI.
        shuffled = r[perms].permute(1, 0, 2).reshape(o * c * n, p * u)
        _, _, curves = tuning_curves(shuffled, shape)
        out.append(gosi_t(curves).reshape(p, u))
    return torch.cat(out).numpy().astype(np.float64)


def _shuffles(
    p: int, shape: tuple[int, int, int], gen: torch.Generator, orientation_only: bool
) -> torch.Tensor:
    """(p, stimuli) presentation orders: all stimuli shuffled, or orientations only."""
    o, c, n = shape
    if not orientation_only:
        return torch.argsort(torch.rand(p, o * c * n, generator=gen), dim=1)
    # Stimulus (o, c, n) sits at o * (c * n) + cell, cell = c * n + n in the flat order.
    orientation = torch.argsort(torch.rand(p, c * n, o, generator=gen), dim=2)
    flat = orientation * (c * n) + torch.arange(c * n)[None, :, None]
    return flat.transpose(1, 2).reshape(p, o * c * n)


# The null is computed in float32: a shuffle that reproduces the observed value (a unit that
# answers one stimulus has gOSI 1 under every shuffle) can land a few float32 ulps below it.
# gOSI lies in [0, 1], where float32's ulp is at most 1.2e-7 and the tuning-curve sums add a
# few of them; a null within NULL_TOLERANCE of the observed value counts as reaching it.
NULL_TOLERANCE = 1e-6


def permutation_pvalue(observed: np.ndarray, null: np.ndarray) -> np.ndarray:
    """One-sided p = (1 + #{null >= observed}) / (1 + P), per unit (ties within the null's
    float32 rounding count as reaching the observed value)."""
    exceed = (null >= observed[None, :] - NULL_TOLERANCE).sum(axis=0)
    p: np.ndarray = (1.0 + exceed) / (1.0 + null.shape[0])
    return p
