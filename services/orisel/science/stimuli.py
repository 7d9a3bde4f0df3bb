"""Orientation stimuli: full-field sinusoidal gratings and anti-aliased bars.

A stimulus set is a grid over three axes, and the analysis treats them the same way for both
kinds of stimulus:

    orientation  (12 by default, 0..165 degrees)   -> the tuning curve's axis
    condition    (grating: spatial frequency; bar: length x width)
                                                   -> the preferred one is chosen per unit
    nuisance     (grating: phase; bar: polarity x position)
                                                   -> the unit's maximum over it is taken

Orientation is the angle of the stripes' or bar's long axis, counter-clockwise from
horizontal, in image coordinates with y pointing up. Images are rendered on demand in
batches, so a set of any size costs memory only for the batch being rendered.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from orisel.kernel.errors import InvalidArgument

StimulusKind = Literal["gratings", "bars"]


def orientations(n: int) -> np.ndarray:
    """n orientations evenly spaced over [0, pi) in radians (12 -> 0, 15, ..., 165 degrees)."""
    return np.arange(n) * math.pi / n


GratingCentre = Literal["journal", "symmetric"]


def _coords(size: int, centre: str = "symmetric") -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates relative to the image centre, y pointing up: the centre is
    pixel size // 2 as in the journal code ("journal": 16 of 32), or the geometric centre
    between the middle pixels ("symmetric": 15.5)."""
    c = float(size // 2) if centre == "journal" else (size - 1) / 2.0
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float64)
    return cols - c, c - rows


@dataclass(frozen=True)
class StimulusSet:
    """A rendered-on-demand grid of stimuli of shape (orientation, condition, nuisance)."""

    kind: StimulusKind
    size: int
    n_orientations: int
    conditions: tuple[dict[str, float], ...]
    nuisances: tuple[dict[str, float], ...]
    spec: dict[str, object] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.n_orientations, len(self.conditions), len(self.nuisances)

    def __len__(self) -> int:
        o, c, n = self.shape
        return o * c * n

    def render(self, index: np.ndarray) -> np.ndarray:
        """Greyscale images in [0, 1], shape (len(index), size, size), for flat indices."""
        o_idx, c_idx, n_idx = np.unravel_index(np.asarray(index), self.shape)
        theta = orientations(self.n_orientations)[o_idx]
        x, y = _coords(self.size, str(self.spec.get("centre", "symmetric")))
        if self.kind == "gratings":
            return _gratings(self, theta, c_idx, n_idx, x, y)
        return _bars(self, theta, c_idx, n_idx, x, y)

    def describe(self) -> dict[str, object]:
        return {"kind": self.kind, "size": self.size, "shape": list(self.shape), **self.spec}


def _gratings(
    s: StimulusSet,
    theta: np.ndarray,
    c_idx: np.ndarray,
    n_idx: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
) -> np.ndarray:
    k = np.array([c["k"] for c in s.conditions])[c_idx]
    phase = np.array([n["phase"] for n in s.nuisances])[n_idx]
    # Stripes along theta means luminance varies along the normal (-sin, cos).
    along_normal = -np.sin(theta)[:, None, None] * x + np.cos(theta)[:, None, None] * y
    img = np.sin(k[:, None, None] * along_normal + phase[:, None, None])
    lo = img.min(axis=(1, 2), keepdims=True)
    hi = img.max(axis=(1, 2), keepdims=True)
    # Min-max scaling to [0, 1] per image, as in the journal code.
    out: np.ndarray = ((img - lo) / np.maximum(hi - lo, 1e-12)).astype(np.float32)
    return out


def _bars(
    s: StimulusSet,
    theta: np.ndarray,
    c_idx: np.ndarray,
    n_idx: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
) -> np.ndarray:
    length = np.array([c["length"] for c in s.conditions])[c_idx][:, None, None]
    width = np.array([c["width"] for c in s.conditions])[c_idx][:, None, None]
    polarity = np.array([n["polarity"] for n in s.nuisances])[n_idx][:, None, None]
    cx = np.array([n["x"] for n in s.nuisances])[n_idx][:, None, None]
    cy = np.array([n["y"] for n in s.nuisances])[n_idx][:, None, None]
    dx, dy = x - cx, y - cy
    cos_t, sin_t = np.cos(theta)[:, None, None], np.sin(theta)[:, None, None]
    along = dx * cos_t + dy * sin_t
    across = -dx * sin_t + dy * cos_t
    # Pixel coverage of a box filter, approximated from the signed distance to each edge:
    # a pixel half inside an edge gets half the contrast, so bars have no jagged edges.
    cover_w = np.clip(width / 2 + 0.5 - np.abs(across), 0.0, 1.0)
    cover_l = np.clip(length / 2 + 0.5 - np.abs(along), 0.0, 1.0)
    out: np.ndarray = (0.5 + 0.5 * polarity * cover_w * cover_l).astype(np.float32)
    return out


def gratings(
    size: int,
    n_orientations: int = 12,
    n_phases: int = 4,
    n_frequencies: int = 9,
    centre: GratingCentre = "journal",
) -> StimulusSet:
    """The journal version's gratings: k = pi / (size/2 + 4) * s for s = 1..n_frequencies,
    phases measured from pixel size // 2 as the journal code does ("symmetric": from the
    image's geometric centre; with four phases the half pixel moves single units' gOSI)."""
    for name, value in (
        ("n_orientations", n_orientations),
        ("n_phases", n_phases),
        ("n_frequencies", n_frequencies),
    ):
        if value < 1:
            raise InvalidArgument(name, "at least 1", value)
    if size < 4:
        raise InvalidArgument("size", "at least 4 pixels", size)
    base = math.pi / (size / 2 + 4)
    conditions = tuple(
        {"k": base * s, "period_px": 2 * math.pi / (base * s)} for s in range(1, n_frequencies + 1)
    )
    nuisances = tuple({"phase": 2 * math.pi * p / n_phases} for p in range(n_phases))
    spec: dict[str, object] = {
        "n_orientations": n_orientations,
        "n_phases": n_phases,
        "n_frequencies": n_frequencies,
        "centre": centre,
    }
    return StimulusSet("gratings", size, n_orientations, conditions, nuisances, spec)


def bars(
    size: int,
    n_orientations: int = 12,
    lengths: tuple[float, ...] | None = None,
    widths: tuple[float, ...] | None = None,
    spacing: float | None = None,
) -> StimulusSet:
    """Light and dark bars on mean grey, centred on a square grid tiling the image.

    The paper does not record its bars; the defaults scale with the image: lengths size/2 and
    size (long bars cross every receptive field they pass, which sharpens tuning measured by
    the spatial mean), widths size/16 and size/8 (2 and 4 px at 32 px), and a grid spacing of
    size/8 (4 px at 32 px), so every receptive field is crossed at several offsets.
    """
    lengths = lengths or (size / 2, size)
    widths = widths or (max(size / 16, 1.0), max(size / 8, 1.0))
    spacing = spacing or size / 8
    if n_orientations < 1:
        raise InvalidArgument("n_orientations", "at least 1", n_orientations)
    for name, values in (("lengths", lengths), ("widths", widths)):
        if min(values) <= 0:
            raise InvalidArgument(name, "positive lengths in pixels", values)
    if not 0 < spacing <= size:
        raise InvalidArgument("spacing", f"in (0, {size}] pixels", spacing)
    n_pos = int((size - 1) // spacing) + 1
    centres = (np.arange(n_pos) - (n_pos - 1) / 2) * spacing  # symmetric about the centre
    conditions = tuple({"length": float(ln), "width": float(w)} for ln in lengths for w in widths)
    nuisances = tuple(
        {"polarity": float(p), "x": float(cx), "y": float(cy)}
        for p in (1.0, -1.0)
        for cy in centres
        for cx in centres
    )
    spec: dict[str, object] = {
        "n_orientations": n_orientations,
        "lengths": list(lengths),
        "widths": list(widths),
        "spacing": spacing,
        "positions": len(centres) ** 2,
    }
    return StimulusSet("bars", size, n_orientations, conditions, nuisances, spec)
