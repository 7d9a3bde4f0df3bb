"""Orientation selectivity as a differentiable function of a network's weights (issue 27).

A training term that raises or lowers selectivity needs the number `orisel tune` reports,
not a look-alike: each unit's response is its spatial mean (`reduce_units`, "mean"),
rectified, the curve is built by `indices.tuning_curves` (max over phase, then the
condition whose best response is largest) and scored by `indices.gosi_t`, the formulas the
analysis itself runs. The maxima are hard, so the value is exactly tune's; their gradient
flows to the phase and condition that won (the derivative of the formula wherever the
winners are unique). The layer's number is the mean over its live units (some grating
drives them), as tune's `mean_gosi`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from orisel.kernel.errors import InvalidArgument
from orisel.science.indices import gosi_t, tuning_curves
from orisel.science.responses import on_call, reduce_units
from orisel.science.stimuli import StimulusSet


class _Seen(Exception):
    """Raised once every chosen layer fired: the layers above them are not needed."""


def evenly(n: int, k: int) -> np.ndarray:
    """k of the indices 0..n-1, evenly spaced, each at the middle of its k-th of the range
    (one of 9 frequencies is the middle one, not the lowest)."""
    if not 1 <= k <= n:
        raise InvalidArgument("subset", f"1 to {n} of {n}", k)
    return ((np.arange(k) + 0.5) * n / k).astype(np.int64)


def grating_subset(
    stim: StimulusSet, n_conditions: int, n_nuisances: int
) -> tuple[np.ndarray, tuple[int, int, int]]:
    """Flat indices of a sub-grid of `stim` (every orientation, evenly spaced conditions and
    nuisances) in the set's own order, and the sub-grid's shape."""
    o, c, n = stim.shape
    ci, ni = evenly(c, n_conditions), evenly(n, n_nuisances)
    grid = np.ravel_multi_index(
        np.meshgrid(np.arange(o), ci, ni, indexing="ij"), stim.shape
    ).reshape(-1)
    return grid, (o, len(ci), len(ni))


def unit_gosi(
    responses: torch.Tensor, shape: tuple[int, int, int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-unit gOSI of (stimuli, units) responses and which units are live (some response
    above 0); negative responses count as 0, as in tune."""
    rectified = responses.clamp_min(0.0)
    _, _, curves = tuning_curves(rectified, shape)
    return gosi_t(curves), (rectified > 0).any(dim=0)


def mean_live(g: torch.Tensor, live: torch.Tensor) -> torch.Tensor:
    """Mean of `g` over live units (0 when none is live), along the last axis."""
    w = live.to(g.dtype)
    return (g * w).sum(dim=-1) / w.sum(dim=-1).clamp_min(1.0)


def layer_responses(
    model: nn.Module, x: torch.Tensor, layers: Sequence[str]
) -> dict[str, torch.Tensor]:
    """Each layer's (stimuli, units) spatial-mean responses to `x`, with their graph, the
    model in eval mode (BatchNorm's running statistics, as tune reads it); the forward pass
    stops once every layer fired."""
    seen: dict[str, torch.Tensor] = {}

    def keep(name: str) -> Callable[[torch.Tensor], None]:
        def fn(out: torch.Tensor) -> None:
            seen[name] = reduce_units(out, "mean")
            if len(seen) == len(layers):
                raise _Seen

        return fn

    was_training = model.training
    model.eval()
    try:
        with contextlib.ExitStack() as stack:
            for name in layers:
                stack.enter_context(on_call(model, name, keep(name)))
            with contextlib.suppress(_Seen):
                model(x)
    except InvalidArgument as exc:  # the layers are the training spec's field
        raise InvalidArgument("select_layers", exc.allowed, exc.got) from exc
    finally:
        model.train(was_training)
    missing = [n for n in layers if n not in seen]
    if missing:
        raise InvalidArgument("select_layers", "layers the forward pass runs", missing)
    return seen
