"""Unit responses from forward hooks: one pass serves every requested layer.

The per-unit reduction happens inside the hook, so only (stimuli x channels) numbers are
kept, never feature maps. Once every requested layer has fired for a batch the forward
pass is cut short, so reading lower layers does not pay for the rest of the network.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Sequence

import numpy as np
import torch
from torch import nn

from orisel.core.errors import InvalidArgument, NotFound
from orisel.science.names import Reduction

REDUCTIONS: tuple[Reduction, ...] = ("mean", "centre", "max")


class _Done(Exception):
    """Raised by the last hook of a batch to skip the layers nobody asked for."""


def reduce_units(out: torch.Tensor, how: Reduction) -> torch.Tensor:
    """(B, C, H, W) -> (B, C) by spatial mean, centre position or spatial max; (B, C) as is."""
    if out.ndim == 2:
        return out
    if out.ndim != 4:
        raise InvalidArgument(
            "layer output", "2-D (dense) or 4-D (conv) activations", tuple(out.shape)
        )
    if how == "mean":
        return out.mean(dim=(2, 3))
    if how == "max":
        return out.amax(dim=(2, 3))
    return out[:, :, out.shape[2] // 2, out.shape[3] // 2]


def resolve_layers(model: nn.Module, layers: Sequence[str]) -> dict[str, nn.Module]:
    """Named modules of `model`; an unknown name lists the valid ones."""
    named = dict(model.named_modules())
    missing = [n for n in layers if n not in named or n == ""]
    if missing:
        valid = ", ".join(n for n in named if n)
        raise NotFound(f"unknown layer(s) {', '.join(missing)}; valid layers: {valid}")
    if not layers:
        raise InvalidArgument("layers", "at least one layer name", list(layers))
    return {n: named[n] for n in layers}


class Recorder:
    """Forward hooks that keep each layer's reduced (B, C) output, batch after batch."""

    def __init__(
        self, model: nn.Module, layers: Sequence[str], reduction: Reduction = "mean",
        stop_early: bool = True,
    ) -> None:  # fmt: skip
        if reduction not in REDUCTIONS:
            raise InvalidArgument("reduction", f"one of {', '.join(REDUCTIONS)}", reduction)
        self.model = model
        self.modules = resolve_layers(model, layers)
        self.reduction: Reduction = reduction
        self.stop_early = stop_early
        self.store: dict[str, list[torch.Tensor]] = {n: [] for n in self.modules}
        self._fired: set[str] = set()
        self._handles: list[torch.utils.hooks.RemovableHandle] = []
        self.last_output = torch.empty(0)

    def _hook(self, name: str) -> Callable[[nn.Module, object, torch.Tensor], None]:
        def hook(_m: nn.Module, _inp: object, out: torch.Tensor) -> None:
            self.store[name].append(reduce_units(out.detach(), self.reduction).float())
            self._fired.add(name)
            if self.stop_early and len(self._fired) == len(self.modules):
                raise _Done

        return hook

    def __enter__(self) -> Recorder:
        self._handles = [m.register_forward_hook(self._hook(n)) for n, m in self.modules.items()]
        return self

    def __exit__(self, *_: object) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []

    def forward(self, x: torch.Tensor) -> None:
        """One batch through the model; every requested layer must fire exactly once.

        Without early stopping, the model's output stays in `last_output`."""
        self._fired.clear()
        with contextlib.suppress(_Done):
            self.last_output = self.model(x)
        silent = sorted(set(self.modules) - self._fired)
        if silent:
            raise InvalidArgument("layers", "modules that run in the forward pass", silent)

    def results(self) -> dict[str, np.ndarray]:
        return {n: torch.cat(v).cpu().numpy() for n, v in self.store.items()}


def forward_collect(
    model: nn.Module,
    batches: Iterable[torch.Tensor],
    layers: Sequence[str],
    reduction: Reduction = "mean",
) -> dict[str, np.ndarray]:
    """Run `batches` through `model` (eval mode, no grad); return layer -> (N, C) responses."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), Recorder(model, layers, reduction) as rec:
            for x in batches:
                rec.forward(x)
    finally:
        model.train(was_training)
    return rec.results()


def stimulus_batches(
    render: Callable[[np.ndarray], np.ndarray],
    n: int,
    batch_size: int,
    preprocess: Callable[[np.ndarray], torch.Tensor],
) -> Iterator[torch.Tensor]:
    """Render and preprocess stimuli batch by batch, so memory is bounded by one batch."""
    for start in range(0, n, batch_size):
        yield preprocess(render(np.arange(start, min(start + batch_size, n))))
