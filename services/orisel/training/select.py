"""The selectivity term of `orisel train --select-reg` (issue 27), after Leavitt & Morcos's
class-selectivity regulariser: every `select_every` steps a fixed grating batch goes through
the network and the loss becomes cross-entropy - alpha x the mean gOSI of the chosen layers
(averaged over layers), measured as `orisel tune` measures it (`science.selectivity`).

The batch is rendered once, preprocessed like the training images (grey on every channel,
minus the training mean image) and kept on the device: a sub-grid of tune's gratings (every
orientation, `select_frequencies` of its 9 frequencies and `select_phases` of its 4 phases).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from orisel.kernel.errors import InvalidArgument
from orisel.models.cnn7 import CONV_LAYERS
from orisel.models.stacked import StackedCNN7
from orisel.science.responses import parse_layer
from orisel.science.selectivity import grating_subset, layer_responses, mean_live, unit_gosi
from orisel.science.stimuli import gratings
from orisel.training.config import TrainConfig


def grating_batch(
    cfg: TrainConfig, mean: np.ndarray, device: torch.device
) -> tuple[torch.Tensor, tuple[int, int, int]]:
    """The term's gratings as (S, C, H, W) network inputs on `device`, and their grid's shape.
    `mean` is the training mean image (C, H, W) the training batches are centred on."""
    channels, size = mean.shape[0], mean.shape[-1]
    stim = gratings(size)  # tune's defaults: 12 orientations, 4 phases, 9 frequencies
    index, shape = grating_subset(stim, cfg.select_frequencies, cfg.select_phases)
    grey = torch.from_numpy(stim.render(index))[:, None].expand(-1, channels, -1, -1)
    return (grey - torch.from_numpy(mean)).contiguous().to(device), shape


@dataclass
class SelectTerm:
    """One network's term: its layers, the gratings and their grid."""

    layers: tuple[str, ...]
    stimuli: torch.Tensor
    shape: tuple[int, int, int]
    every: int

    @classmethod
    def of(
        cls, cfg: TrainConfig, model: nn.Module, mean: np.ndarray, device: torch.device
    ) -> SelectTerm:
        """The term of `cfg` for `model`, whose every select_layers name is checked."""
        named = dict(model.named_modules())
        unknown = [n for n in cfg.select_layers if parse_layer(n)[0] not in named or not n]
        if unknown:
            valid = ", ".join(n for n in named if n)
            raise InvalidArgument("select_layers", f"layers of {cfg.model} ({valid})", unknown)
        x, shape = grating_batch(cfg, mean, device)
        return cls(tuple(cfg.select_layers), x, shape, cfg.select_every)

    def due(self, step: int) -> bool:
        return step % self.every == 0

    def layer_gosi(self, model: nn.Module) -> dict[str, torch.Tensor]:
        """Each layer's mean gOSI over its live units, differentiable in the weights."""
        out = layer_responses(model, self.stimuli, self.layers)
        return {name: mean_live(*unit_gosi(r.float(), self.shape)) for name, r in out.items()}

    def value(self, model: nn.Module) -> torch.Tensor:
        """The mean over layers of their mean gOSI: the number alpha multiplies."""
        return torch.stack(list(self.layer_gosi(model).values())).mean()


@dataclass
class StackedTerm:
    """The same term for N stacked cnn7 networks, each with its own alpha, in one pass."""

    stimuli: torch.Tensor  # (N, S, C, H, W): each network's gratings minus its mean image
    shape: tuple[int, int, int]
    alphas: torch.Tensor  # (N,)
    indices: tuple[int, ...]  # which of cnn7's convolutions the layers are
    every: int

    @classmethod
    def of(cls, terms: list[SelectTerm], alphas: list[float]) -> StackedTerm:
        names = [name for name, _, _ in CONV_LAYERS]
        first = terms[0]
        other = [n for n in first.layers if n not in names]
        if other:
            raise InvalidArgument(
                "select_layers", f"cnn7's convolutions ({', '.join(names)}) in a stack", other
            )
        x = torch.stack([t.stimuli for t in terms])
        alpha = torch.tensor(alphas, dtype=torch.float32, device=x.device)
        index = tuple(names.index(n) for n in first.layers)
        return cls(x, first.shape, alpha, index, first.every)

    def due(self, step: int) -> bool:
        return step % self.every == 0

    def values(self, model: StackedCNN7) -> torch.Tensor:
        """(N,) each network's mean over layers of its mean gOSI."""
        n = model.n
        was_training = model.training
        model.eval()
        try:
            maps = model.conv_outputs(self.stimuli, max(self.indices) + 1)
        finally:
            model.train(was_training)
        per_layer = []
        for i in self.indices:
            r = maps[i].float().mean(dim=(3, 4))  # (N, S, C)
            s, c = r.shape[1], r.shape[2]
            # Every network's units side by side: a unit's curve is its own either way.
            g, live = unit_gosi(r.permute(1, 0, 2).reshape(s, n * c), self.shape)
            per_layer.append(mean_live(g.view(n, c), live.view(n, c)))
        return torch.stack(per_layer).mean(dim=0)
