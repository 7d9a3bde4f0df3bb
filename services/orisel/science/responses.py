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

from orisel.kernel import progress
from orisel.kernel.errors import InvalidArgument, NotFound
from orisel.kernel.names import Reduction, Tokens
from orisel.models.layers import CHANNELS_LAST

REDUCTIONS: tuple[Reduction, ...] = ("mean", "centre", "max")
TOKENS: tuple[Tokens, ...] = ("mean", "cls")


class _Done(Exception):
    """Raised by the last hook of a batch to skip the layers nobody asked for."""


def reduce_units(out: torch.Tensor, how: Reduction, tokens: Tokens = "mean") -> torch.Tensor:
    """One number per unit: (B, C, H, W) by spatial mean, centre position or spatial max;
    (B, tokens, D) by the mean over tokens or the first (a ViT's class) token; (B, C) as is."""
    if out.ndim == 2:
        return out
    if out.ndim == 3:
        if tokens not in TOKENS:
            raise InvalidArgument("tokens", f"one of {', '.join(TOKENS)}", tokens)
        return out.mean(dim=1) if tokens == "mean" else out[:, 0]
    if out.ndim != 4:
        raise InvalidArgument(
            "layer output",
            "2-D (dense), 3-D (batch, tokens, units) or 4-D (conv) activations",
            tuple(out.shape),
        )
    if how == "mean":
        return out.mean(dim=(2, 3))
    if how == "max":
        return out.amax(dim=(2, 3))
    return out[:, :, out.shape[2] // 2, out.shape[3] // 2]


def one_tensor(out: object, layer: str) -> torch.Tensor:
    """A layer's output as the one tensor its units are read from; a module that returns
    several (attention's output and weights) is refused."""
    if not isinstance(out, torch.Tensor):
        raise InvalidArgument(
            "layers",
            f"modules whose output is one tensor ({layer} returns a {type(out).__name__}; "
            "`orisel layers MODEL --all` lists those that do)",
            layer,
        )
    return out


def units_first(out: torch.Tensor, channels_last: bool = False) -> torch.Tensor:
    """Units on axis 1, where maps are read and channels silenced: a token layer's
    (B, tokens, D) as (B, D, tokens), a channels-last map (B, H, W, C) as (B, C, H, W)."""
    if out.ndim == 3:
        return out.transpose(1, 2)
    return out.permute(0, 3, 1, 2) if channels_last and out.ndim == 4 else out


def units_back(out: torch.Tensor, channels_last: bool = False) -> torch.Tensor:
    """`units_first` undone: a replacement in the layout the network passes on."""
    if out.ndim == 3:
        return out.transpose(1, 2)
    return out.permute(0, 2, 3, 1) if channels_last and out.ndim == 4 else out


def channels_last(model: nn.Module, base: str) -> bool:
    """Whether the network marked module `base` as returning channels-last maps
    (`models.layers.channels_last_layers`)."""
    return base in getattr(model, CHANNELS_LAST, frozenset())


def parse_layer(name: str) -> tuple[str, int | None]:
    """ "layer1.0.relu:2" -> ("layer1.0.relu", 2): the second call of a module the forward pass
    runs more than once (as TorchLens labels them); a plain name -> (name, None)."""
    base, sep, k = name.rpartition(":")
    if sep and k.isdigit() and int(k) >= 1:
        return base, int(k)
    return name, None


def resolve_layers(model: nn.Module, layers: Sequence[str]) -> dict[str, nn.Module]:
    """Named modules of `model` by the requested layer names (a call suffix allowed); an
    unknown name lists the valid ones."""
    named = dict(model.named_modules())
    missing = [n for n in layers if parse_layer(n)[0] not in named or parse_layer(n)[0] == ""]
    if missing:
        valid = ", ".join(n for n in named if n)
        raise NotFound(f"unknown layer(s) {', '.join(missing)}; valid layers: {valid}")
    if not layers:
        raise InvalidArgument("layers", "at least one layer name", list(layers))
    return {n: named[parse_layer(n)[0]] for n in layers}


def call_choices(base: str, calls: int) -> str:
    return ", ".join(f"{base}:{i}" for i in range(1, calls + 1)) if calls > 1 else base


@contextlib.contextmanager
def on_call(
    model: nn.Module, layer: str, fn: Callable[[torch.Tensor], torch.Tensor | None]
) -> Iterator[None]:
    """Within the block, `fn` sees the output of exactly the call `layer` names ("name:k", or
    a module the pass runs once), units on axis 1 (`units_first`), and may return a
    replacement; other calls of a reused module
    pass untouched. A hook on the module alone would act on every call of a shared ReLU, so the
    calls are counted from the start of each pass of `model` (a pre-hook on the model itself),
    and a pass that never reached the call, or a reused module named without one, is refused
    naming the calls that exist."""
    base, k = parse_layer(layer)
    module = resolve_layers(model, [layer])[layer]
    last = channels_last(model, base)
    state = {"calls": 0}

    def reset(_m: nn.Module, _i: object) -> None:
        state["calls"] = 0

    def hook(_m: nn.Module, _i: object, out: torch.Tensor) -> torch.Tensor | None:
        state["calls"] += 1
        if state["calls"] != (k or 1):
            return None
        replaced = fn(units_first(one_tensor(out, layer), last))
        return None if replaced is None else units_back(replaced, last)

    def check(_m: nn.Module, _i: object, _o: object) -> None:
        calls = state["calls"]
        if calls == 0:
            raise InvalidArgument("layers", "modules that run in the forward pass", layer)
        if k is None and calls > 1:
            choices = call_choices(base, calls)
            raise InvalidArgument(
                "layers", f"one call of a module the pass runs {calls} times ({choices})", base
            )
        if k is not None and k > calls:
            raise InvalidArgument(
                "layers", f"a call the forward pass makes ({call_choices(base, calls)})", layer
            )

    handles = [
        model.register_forward_pre_hook(reset),
        module.register_forward_hook(hook),
        model.register_forward_hook(check),
    ]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def call_sequence(model: nn.Module, x: torch.Tensor) -> list[str]:
    """The named modules in the order one forward pass of `x` calls them, a module once per
    call."""
    calls: list[str] = []
    handles = []
    for name, module in model.named_modules():
        if name:

            def hook(_m: nn.Module, _i: object, _o: object, name: str = name) -> None:
                calls.append(name)

            handles.append(module.register_forward_hook(hook))
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return calls


class Recorder:
    """Forward hooks that keep each layer's reduced (B, C) output, batch after batch, or with
    `maps` its unreduced (B, C, positions) maps (a dense layer has one position). A module
    the pass runs several times is read call by call ("name:k"); naming it without a call is
    refused, so no call is ever read silently in place of another."""

    def __init__(
        self,
        model: nn.Module,
        layers: Sequence[str],
        reduction: Reduction = "mean",
        stop_early: bool = True,
        maps: bool = False,
        tokens: Tokens = "mean",
    ) -> None:
        if reduction not in REDUCTIONS:
            raise InvalidArgument("reduction", f"one of {', '.join(REDUCTIONS)}", reduction)
        self.model = model
        self.modules = resolve_layers(model, layers)
        self.reduction: Reduction = reduction
        self.tokens: Tokens = tokens
        self.maps = maps
        self.stop_early = stop_early
        self.store: dict[str, list[torch.Tensor]] = {n: [] for n in self.modules}
        self._wanted: dict[str, list[tuple[str, int | None]]] = {}
        for n in self.modules:
            base, k = parse_layer(n)
            self._wanted.setdefault(base, []).append((n, k))
        self._last = {base: channels_last(model, base) for base in self._wanted}
        self._calls: dict[str, int] = {}
        self._fired: set[str] = set()
        self._checked = False  # the first batch runs whole, to see every module's calls
        self._handles: list[torch.utils.hooks.RemovableHandle] = []
        self.last_output = torch.empty(0)

    def _hook(self, base: str) -> Callable[[nn.Module, object, torch.Tensor], None]:
        def hook(_m: nn.Module, _inp: object, out: torch.Tensor) -> None:
            call = self._calls[base] = self._calls.get(base, 0) + 1
            for name, k in self._wanted[base]:
                if (k is None and call == 1) or k == call:
                    seen = one_tensor(out, name).detach()
                    if self._last[base] and seen.ndim == 4:
                        seen = units_first(seen, channels_last=True)
                    kept = (
                        self._map(seen)
                        if self.maps
                        else reduce_units(seen, self.reduction, self.tokens)
                    )
                    self.store[name].append(kept.float())
                    self._fired.add(name)
            if self._checked and self.stop_early and len(self._fired) == len(self.modules):
                raise _Done

        return hook

    @staticmethod
    def _map(out: torch.Tensor) -> torch.Tensor:
        """(B, units, positions): a dense layer has one position, a token layer its tokens."""
        return units_first(out).flatten(2) if out.ndim >= 3 else out[:, :, None]

    def __enter__(self) -> Recorder:
        named = dict(self.model.named_modules())
        self._handles = [named[b].register_forward_hook(self._hook(b)) for b in self._wanted]
        return self

    def __exit__(self, *_: object) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []

    def forward(self, x: torch.Tensor) -> None:
        """One batch through the model; every requested layer (or call) must fire exactly once.

        Without early stopping, the model's output stays in `last_output`."""
        self._fired.clear()
        self._calls.clear()
        with contextlib.suppress(_Done):
            self.last_output = self.model(x)
        if not self._checked:
            self._checked = True
            for base, wanted in self._wanted.items():
                k = self._calls.get(base, 0)
                if k > 1 and any(c is None for _, c in wanted):
                    choices = ", ".join(f"{base}:{i}" for i in range(1, k + 1))
                    raise InvalidArgument(
                        "layers", f"one call of a module the pass runs {k} times ({choices})", base
                    )
        silent = sorted(set(self.modules) - self._fired)
        if silent:
            runs = {
                n: call_choices(parse_layer(n)[0], self._calls.get(parse_layer(n)[0], 0))
                for n in silent
            }
            made = "; ".join(f"{n}: {c if c else 'never runs'}" for n, c in runs.items())
            raise InvalidArgument(
                "layers", f"modules (and calls) that run in the forward pass ({made})", silent
            )

    def results(self) -> dict[str, np.ndarray]:
        return {n: torch.cat(v).cpu().numpy() for n, v in self.store.items()}


def forward_collect(
    model: nn.Module,
    batches: Iterable[torch.Tensor],
    layers: Sequence[str],
    reduction: Reduction = "mean",
    tokens: Tokens = "mean",
) -> dict[str, np.ndarray]:
    """Run `batches` through `model` (eval mode, no grad); return layer -> (N, C) responses."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), Recorder(model, layers, reduction, tokens=tokens) as rec:
            for x in progress.bar(batches, "responses", unit="batch"):
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
