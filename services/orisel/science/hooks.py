"""Silencing units with a forward hook (where: `ablation.sites`).

Two ways to silence (Morcos et al. 2018 compare both): "zero" sets the channels to 0,
"mean" clamps them to their mean activation map over the evaluation images.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import torch
from torch import nn

from orisel.kernel.errors import InvalidArgument
from orisel.kernel.names import Mode
from orisel.science.responses import on_call

MODES: tuple[Mode, ...] = ("zero", "mean")


def silence(
    out: torch.Tensor, mask: torch.Tensor, mode: Mode, mean: torch.Tensor | None
) -> torch.Tensor:
    """Silence channels where `mask` (C,) or (G, C) is True; out is (B, C, ...) or (G*B, C, ...)."""
    shape = [mask.shape[-1]] + [1] * (out.ndim - 2)
    if mask.ndim == 1:
        m = mask.view(1, *shape)
    else:  # one mask per group of B images, stacked group by group
        g = mask.shape[0]
        m = (
            mask.view(g, 1, *shape)
            .expand(g, out.shape[0] // g, *shape)
            .reshape(out.shape[0], *shape)
        )
    if mode == "zero":
        return out.masked_fill(m, 0.0)
    if mean is None:
        raise InvalidArgument("mode", "zero, or mean with the channels' mean activations", mode)
    return torch.where(m, mean.unsqueeze(0).to(out.dtype), out)


@contextmanager
def ablated(
    model: nn.Module,
    site: str,
    units: Sequence[int] | np.ndarray,
    mode: Mode = "zero",
    mean: torch.Tensor | None = None,
) -> Iterator[None]:
    """Within the block, the channels `units` of `site` are silenced in every forward pass:
    of that call only when `site` names one call of a reused module ("relu:1")."""
    if mode not in MODES:
        raise InvalidArgument("mode", f"one of {', '.join(MODES)}", mode)
    state: dict[str, torch.Tensor] = {}

    def hook(out: torch.Tensor) -> torch.Tensor:
        if "mask" not in state:
            c = out.shape[1]
            idx = np.asarray(units, dtype=np.int64)
            if idx.size and (idx.min() < 0 or idx.max() >= c):
                raise InvalidArgument("units", f"channel indices in [0, {c})", idx.tolist())
            mask = torch.zeros(c, dtype=torch.bool, device=out.device)
            mask[torch.from_numpy(idx).to(out.device)] = True
            state["mask"] = mask
        return silence(out, state["mask"], mode, mean)

    with on_call(model, site, hook):
        yield
