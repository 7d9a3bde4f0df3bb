"""Shift-invariance of layer responses and of predictions, with or without an ablation.

The paper does not record its metric, so explicit ones are used:
  * invariance: for each unit, one minus the mean distance between its unpooled response map
    to an image and to the same image shifted, over the mean distance between its maps for two
    different images (1: the shift changes nothing; 0: it changes the response as much as
    another image would), averaged over units that respond differently to different images.
    Where a layer has a spatial map this cannot be invariant by construction, as a pooled
    response largely is;
  * correlation: for each unit, the Pearson correlation across images between its pooled
    (spatial-mean) response to an image and to the same image shifted by (dx, dy) pixels,
    averaged over units with non-constant responses;
  * consistency: the fraction of images whose predicted class is unchanged by the shift
    (Zhang 2019, "Making convolutional networks shift-invariant again").
Shifted-in pixels are filled by `padding` (zeros = the training mean once it is subtracted).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from orisel.kernel.errors import InvalidArgument
from orisel.kernel.names import Padding
from orisel.science.responses import Recorder

PADDINGS: tuple[Padding, ...] = ("zeros", "circular", "reflect", "replicate")


def shift_images(x: torch.Tensor, dx: int, dy: int, padding: Padding = "zeros") -> torch.Tensor:
    """Move image content right by dx and down by dy pixels, filling the uncovered border."""
    if padding not in PADDINGS:
        raise InvalidArgument("padding", f"one of {', '.join(PADDINGS)}", padding)
    h, w = x.shape[-2:]
    if abs(dx) >= w or abs(dy) >= h:
        raise InvalidArgument("shift", f"smaller than the image ({w}x{h} px)", (dx, dy))
    if dx == 0 and dy == 0:
        return x
    if padding == "circular":
        return torch.roll(x, shifts=(dy, dx), dims=(-2, -1))
    pad = (max(dx, 0), max(-dx, 0), max(dy, 0), max(-dy, 0))  # left, right, top, bottom
    mode = "constant" if padding == "zeros" else padding
    padded = F.pad(x, pad, mode=mode)
    top, left = max(-dy, 0), max(-dx, 0)
    return padded[..., top : top + h, left : left + w]


def unit_correlation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-unit Pearson correlation across images of (N, U) responses; NaN where constant."""
    a = a - a.mean(axis=0)
    b = b - b.mean(axis=0)
    denom = np.sqrt((a * a).sum(axis=0) * (b * b).sum(axis=0))
    with np.errstate(invalid="ignore", divide="ignore"):
        r: np.ndarray = np.where(denom > 0, (a * b).sum(axis=0) / denom, np.nan)
    return r


def unit_invariance(ref: np.ndarray, moved: np.ndarray) -> np.ndarray:
    """Per-unit invariance of (N, U, positions) maps to a transformation (`moved` = the maps of
    the transformed images): 1 - mean ||ref - moved|| / mean ||ref_i - ref_(i+1)||, image i
    compared with the next image for the between-image distance; NaN where that is 0."""
    shifted = np.linalg.norm(ref - moved, axis=2).mean(axis=0)
    between = np.linalg.norm(ref - np.roll(ref, 1, axis=0), axis=2).mean(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        score: np.ndarray = np.where(between > 0, 1.0 - shifted / between, np.nan)
    return score


@dataclass(frozen=True)
class ShiftResult:
    dx: int
    dy: int
    correlation: dict[str, float]  # layer -> mean over units of the across-image correlation
    consistency: float  # fraction of predictions unchanged by the shift
    invariance: dict[str, float]  # layer -> mean over units of the unpooled invariance score


def shift_invariance(
    model: nn.Module,
    images: torch.Tensor,
    layers: Sequence[str],
    shifts: Sequence[tuple[int, int]],
    padding: Padding = "zeros",
    ablation: AbstractContextManager[None] | None = None,
    batch_size: int = 500,
) -> list[ShiftResult]:
    """Correlation and consistency for each shift, with `ablation` (a context) applied if given."""
    model.eval()
    context = ablation if ablation is not None else nullcontext()

    def respond(x_all: torch.Tensor, dx: int, dy: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
        preds: list[torch.Tensor] = []
        with torch.no_grad(), Recorder(model, layers, stop_early=False, maps=True) as rec:
            for s in range(0, len(x_all), batch_size):
                x = shift_images(x_all[s : s + batch_size], dx, dy, padding)
                rec.forward(x)
                preds.append(rec.last_output.argmax(1))
        return rec.results(), torch.cat(preds).cpu().numpy()

    with context:
        ref, ref_pred = respond(images, 0, 0)
        results = []
        for dx, dy in shifts:
            moved, pred = respond(images, dx, dy)
            corr = {
                n: float(np.nanmean(unit_correlation(ref[n].mean(2), moved[n].mean(2))))
                for n in layers
            }
            inv = {n: float(np.nanmean(unit_invariance(ref[n], moved[n]))) for n in layers}
            results.append(ShiftResult(dx, dy, corr, float(np.mean(pred == ref_pred)), inv))
    return results
