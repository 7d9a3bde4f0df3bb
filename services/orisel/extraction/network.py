"""A network ready for analysis: the model, how to preprocess for it, its analysed layers."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from orisel.kernel.errors import FailedPrecondition, InvalidArgument
from orisel.kernel.names import Reduction, Tokens
from orisel.kernel.provenance import sha256_file
from orisel.models.checkpoint import load_checkpoint
from orisel.models.cnn7 import CNN7
from orisel.models.functional import ORIGIN, expose_functional, origin
from orisel.models.layers import CHANNELS_LAST, CNN7_LAYERS, channels_last_layers, family_layers
from orisel.models.registry import (
    USER_MODEL,
    ModelInfo,
    build_model,
    exported_model,
    resolve_device,
    user_model,
)
from orisel.models.scripted import from_script, input_channels, module_kind
from orisel.science.responses import (
    call_sequence,
    forward_collect,
    parse_layer,
    stimulus_batches,
)
from orisel.science.stimuli import StimulusSet

# ITU-R BT.601 luma: how colour images are shown to a network of one input channel.
LUMA = (0.299, 0.587, 0.114)
__all__ = ["CNN7_LAYERS", "Network", "load_network"]


@dataclass
class Network:
    """A model in eval mode with what it takes to feed it stimuli or data-set images."""

    model: nn.Module
    info: ModelInfo
    device: torch.device
    mean_image: np.ndarray | None  # (C, H, W) in [0, 1]: cnn7's preprocessing
    source: dict[str, object]  # where it came from, for the manifests

    def preprocess_grey(self, images: np.ndarray) -> torch.Tensor:
        """(B, H, W) greyscale in [0, 1] -> (B, C, H, W) for a network of C input channels
        (grey copied to each), preprocessed like the training data."""
        x = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))[:, None]
        return self._normalise(x.expand(-1, self.info.channels, -1, -1))

    def preprocess_u8(self, images: np.ndarray) -> torch.Tensor:
        """(B, H, W, 3) uint8 -> (B, C, H, W) preprocessed; one channel: the luma (`LUMA`)."""
        x = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2))).float() / 255.0
        if self.info.channels == 1:
            x = (x * torch.tensor(LUMA).view(1, 3, 1, 1)).sum(1, keepdim=True)
        return self._normalise(x)

    def probe(self, batch: int = 1) -> torch.Tensor:
        """A batch of blank inputs of the network's shape, for passes that find its layers."""
        size = self.info.image_size
        return torch.zeros(batch, self.info.channels, size, size, device=self.device)

    def preprocess_all(self, images: np.ndarray, batch: int = 1000) -> torch.Tensor:
        """A whole (N, H, W, 3) uint8 set, preprocessed in batches to bound the float copies."""
        return torch.cat(
            [self.preprocess_u8(images[s : s + batch]) for s in range(0, len(images), batch)]
        )

    def _normalise(self, x: torch.Tensor) -> torch.Tensor:
        if self.mean_image is not None:
            if tuple(x.shape[1:]) != self.mean_image.shape:
                raise InvalidArgument(
                    "image size",
                    f"{self.mean_image.shape[1:]} like the training data",
                    tuple(x.shape[2:]),
                )
            x = x - torch.from_numpy(self.mean_image)
        elif self.info.mean is not None and self.info.std is not None:
            mean = torch.tensor(self.info.mean).view(1, -1, 1, 1)
            std = torch.tensor(self.info.std).view(1, -1, 1, 1)
            x = (x - mean) / std
        return x.to(self.device)

    @classmethod
    def from_module(
        cls,
        module: nn.Module,
        input_size: int,
        *,
        mean: tuple[float, ...] | None = None,
        std: tuple[float, ...] | None = None,
        name: str = "custom",
        device: str = "cpu",
        output: str | int | None = None,
        channels: int | None = None,
    ) -> Network:
        """Any torch module that takes (B, C, input_size, input_size) images: pixels in [0, 1],
        then `(x - mean) / std` per channel when given (ImageNet's for torchvision weights).
        C (`channels`) defaults to the first convolution's input channels; stimuli are grey
        on every channel, colour images become their luma for a one-channel network. A
        network that returns several outputs (a dict, a tuple) is read at `output`, the key
        or index of its logits. Functional activations (`F.relu`) become layers
        (`models.functional`). The network is run once on a blank batch, so one that cannot
        take such images is refused here, saying why."""
        if input_size < 8:
            raise InvalidArgument("input_size", "at least 8 pixels", input_size)
        if (mean is None) != (std is None):
            raise InvalidArgument("mean/std", "both given or neither", (mean, std))
        dev = resolve_device(device)
        c = channels or input_channels(module)
        if isinstance(module, torch.jit.ScriptModule):
            module = from_script(module, input_size, name, c)
        if c < 1:
            raise InvalidArgument("channels", "a positive number of input channels", c)
        if mean is not None and len(mean) != c:
            raise InvalidArgument("mean", f"one value per input channel ({c})", mean)
        written = type(module).__qualname__
        module = module.to(dev).eval()
        # From a generator of its own: loading a network leaves the caller's random stream as
        # it was.
        generator = torch.Generator().manual_seed(0)
        example = torch.rand(2, c, input_size, input_size, generator=generator).to(dev)
        select_output(_run(module, example, name), output)
        functional = ""
        if not isinstance(module, CNN7):
            module, functional = expose_functional(module, example)
        if output is not None:
            module = Selected(module, output)
        if last := channels_last_layers(module):
            setattr(module, CHANNELS_LAST, last)  # read by `science.responses`
        prep = "normalize" if mean is not None else "none"
        info = ModelInfo(name, input_size, prep, mean, std, c)
        source: dict[str, object] = {"model": name, "module": written}
        if c != 3:
            source["input_channels"] = c
        if output is not None:
            source["output"] = output
        if functional:
            source["functional"] = functional
        return cls(module.eval(), info, dev, None, source)

    def default_layers(self) -> tuple[str, ...]:
        """The model family's analysed layers (`models.layers`); a module the pass runs
        several times (ResNet's shared ReLUs) is named once per call, found by one probe
        pass."""
        if isinstance(self.model, CNN7):
            return CNN7_LAYERS
        return family_layers(self.model, call_sequence(self.model, self.probe()))

    def layer_table(self, every: bool = False) -> list[dict[str, object]]:
        """The default layers (or, `every`, each call of every module whose output is one
        tensor) with their kind, output shape for one image and unit count, from one probe
        pass; what `orisel layers` prints."""
        calls: dict[str, list[tuple[int, ...]]] = {}
        kinds = {n: module_kind(m) for n, m in self.model.named_modules() if n}
        handles = []
        for name, module in self.model.named_modules():
            if name:

                def keep(_m: nn.Module, _i: object, out: object, name: str = name) -> None:
                    shape = tuple(out.shape[1:]) if isinstance(out, torch.Tensor) else ()
                    calls.setdefault(name, []).append(shape)

                handles.append(module.register_forward_hook(keep))
        try:
            with torch.no_grad():
                self.model(self.probe())
        finally:
            for h in handles:
                h.remove()
        defaults = self.default_layers()
        shown: list[str] = []
        for name, shapes in calls.items():
            shown += (
                [f"{name}:{k}" for k in range(1, len(shapes) + 1)] if len(shapes) > 1 else [name]
            )
        rows = []
        for layer in shown if every else defaults:
            base, k = parse_layer(layer)
            shape = calls.get(base, [()])[(k or 1) - 1]
            if not shape:
                continue  # not one tensor: nothing a unit could be read from
            units = shape[-1] if len(shape) == 2 else shape[0]
            rows.append(
                {
                    "layer": layer,
                    "kind": kinds.get(base, ""),
                    "shape": list(shape),
                    "units": units,
                    "default": layer in defaults,
                }
            )
        return rows

    def stimulus_responses(
        self,
        stimuli: StimulusSet,
        layers: tuple[str, ...],
        reduction: Reduction,
        batch_size: int,
        order: np.ndarray | None = None,
        tokens: Tokens = "mean",
    ) -> dict[str, np.ndarray]:
        """(stimuli, units) responses per layer; `order` presents stimulus order[i] as label i;
        a token layer's units are read over its tokens by `tokens` (mean, or the first)."""

        def render(idx: np.ndarray) -> np.ndarray:
            return stimuli.render(idx if order is None else order[idx])

        batches = stimulus_batches(render, len(stimuli), batch_size, self.preprocess_grey)
        return forward_collect(self.model, batches, layers, reduction, tokens)

    def image_responses(
        self,
        images: np.ndarray,
        layers: tuple[str, ...],
        reduction: Reduction,
        batch_size: int,
        tokens: Tokens = "mean",
    ) -> dict[str, np.ndarray]:
        batches = (
            self.preprocess_u8(images[s : s + batch_size])
            for s in range(0, len(images), batch_size)
        )
        return forward_collect(self.model, batches, layers, reduction, tokens)


class Selected(nn.Module):
    """A network of several outputs, read at one (`output`): its layers keep their names,
    as its parts are this module's parts, and it runs in this module's mode."""

    def __init__(self, module: nn.Module, output: str | int) -> None:
        super().__init__()
        self.inner: nn.Module
        object.__setattr__(self, "inner", module)  # not a child: no "inner." in layer names
        for name, child in module.named_children():
            self.add_module(name, child)
        for name, param in module.named_parameters(recurse=False):
            self.register_parameter(name, param)
        for name, buf in module.named_buffers(recurse=False):
            self.register_buffer(name, buf)
        self.output = output
        self.meta = {ORIGIN: origin(module)}  # its family, for `models.layers`

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return select_output(self.inner(x), self.output)

    def train(self, mode: bool = True) -> Selected:
        self.inner.train(mode)
        return super().train(mode)


def select_output(out: object, output: str | int | None) -> torch.Tensor:
    """The logits among a network's outputs: the output itself, or `output` of a dict (key)
    or tuple (index); anything else is refused naming what the network returns."""
    if output is None and isinstance(out, torch.Tensor):
        return out
    if isinstance(out, dict):
        shown = f"a dict with keys {', '.join(map(str, out))}"
        picked = out.get(output) if output is not None else None
    elif isinstance(out, tuple | list):
        shown = f"a {type(out).__name__} of {len(out)}"
        index = int(output) if isinstance(output, int | str) and str(output).isdigit() else None
        picked = out[index] if index is not None and index < len(out) else None
    else:
        shown = type(out).__name__
        picked = None
    if not isinstance(picked, torch.Tensor):
        raise InvalidArgument(
            "output",
            f"the key or index of the logits among the network's outputs ({shown}; "
            "--output KEY|INDEX, API output=)",
            output,
        )
    return picked


def _run(module: nn.Module, example: torch.Tensor, name: str) -> object:
    try:
        with torch.no_grad():
            return module(example)
    except Exception as exc:  # whatever the network raises on inputs it was not built for
        raise FailedPrecondition(
            f"{name} does not run on images of shape {tuple(example.shape[1:])} "
            f"({type(exc).__name__}: {exc}); pass the input size (--input-size) and channels "
            "it was built for"
        ) from exc


def load_network(
    checkpoint: Path | None = None,
    model_name: str | None = None,
    weights: str | None = None,
    device: str = "auto",
    download: bool = False,
    input_size: int | None = None,
    output: str | int | None = None,
) -> Network:
    """From an orisel checkpoint (cnn7 and friends), a torchvision model and its weights, or
    a network of the user's (`Network.from_module`, read at `output` where it returns
    several)."""
    dev = resolve_device(device)
    if checkpoint is not None:
        ckpt = load_checkpoint(Path(checkpoint), model_name)
        model, info = build_model(
            ckpt["model_name"],
            num_classes=ckpt["num_classes"],
            image_size=int(ckpt["mean_image"].shape[-1]),
        )
        model.load_state_dict(ckpt["model"])
        source: dict[str, object] = {
            "checkpoint": str(checkpoint),
            "checkpoint_sha256": sha256_file(Path(checkpoint)),
            "model": ckpt["model_name"],
            "epoch": ckpt["epoch"],
            "step": ckpt["step"],
            "data_sha256": ckpt.get("data_sha256"),
            "metrics": ckpt.get("metrics"),
            "num_classes": ckpt["num_classes"],
        }
        mean = (
            ckpt["mean_image"].numpy().astype(np.float32)
            if info.preprocessing == "mean_image"
            else None
        )
    else:
        if model_name is None:
            raise InvalidArgument(
                "--checkpoint/--model", "a checkpoint, or a model name with --weights", None
            )
        if USER_MODEL.match(model_name):
            module = user_model(model_name, weights)
            size = input_size or 224
            return Network.from_module(module, size, name=model_name, device=device, output=output)
        if model_name.endswith((".pt2", ".pt", ".pth", ".ts")) and Path(model_name).is_file():
            module, exported_size = exported_model(Path(model_name), input_size)
            size = input_size or exported_size or 224
            return Network.from_module(module, size, name=model_name, device=device, output=output)
        model, info = build_model(
            model_name, weights=weights, download=download, image_size=input_size
        )
        net = Network.from_module(
            model,
            info.image_size,
            mean=info.mean,
            std=info.std,
            name=model_name,
            device=device,
            output=output,
        )
        # What the pass found beside the name (a selected output, functional layers).
        found = {k: v for k, v in net.source.items() if k not in ("model", "module")}
        net.source = {"model": model_name, "weights": weights, **found}
        return net
    model.to(dev).eval()
    return Network(model, info, dev, mean, source)
