"""A network ready for analysis: the model, how to preprocess for it, its analysed layers."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from orisel.core.errors import InvalidArgument
from orisel.core.names import Reduction
from orisel.core.provenance import sha256_file
from orisel.models.checkpoint import load_checkpoint
from orisel.models.cnn7 import CNN7
from orisel.models.registry import (
    USER_MODEL,
    ModelInfo,
    build_model,
    exported_model,
    resolve_device,
    user_model,
)
from orisel.models.scripted import from_script, module_kind
from orisel.science.responses import (
    count_calls,
    expand_reused,
    forward_collect,
    stimulus_batches,
)
from orisel.science.stimuli import StimulusSet

CNN7_LAYERS = ("layer1", "layer2", "layer3", "layer4", "layer5", "layer6", "fc1")
LOWER_CNN7_LAYERS = ("layer1", "layer2", "layer3")


@dataclass
class Network:
    """A model in eval mode with what it takes to feed it stimuli or data-set images."""

    model: nn.Module
    info: ModelInfo
    device: torch.device
    mean_image: np.ndarray | None  # (C, H, W) in [0, 1]: cnn7's preprocessing
    source: dict[str, object]  # where it came from, for the manifests

    def preprocess_grey(self, images: np.ndarray) -> torch.Tensor:
        """(B, H, W) greyscale in [0, 1] -> (B, 3, H, W), preprocessed like the training data."""
        x = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))[:, None].expand(
            -1, 3, -1, -1
        )
        return self._normalise(x)

    def preprocess_u8(self, images: np.ndarray) -> torch.Tensor:
        """(B, H, W, 3) uint8 -> (B, 3, H, W) preprocessed."""
        x = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2))).float() / 255.0
        return self._normalise(x)

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
        mean: tuple[float, float, float] | None = None,
        std: tuple[float, float, float] | None = None,
        name: str = "custom",
        device: str = "cpu",
    ) -> Network:
        """Any torch module that takes (B, 3, input_size, input_size) images: pixels in [0, 1],
        then `(x - mean) / std` per channel when given (ImageNet's for torchvision weights)."""
        if input_size < 8:
            raise InvalidArgument("input_size", "at least 8 pixels", input_size)
        if (mean is None) != (std is None):
            raise InvalidArgument("mean/std", "both given or neither", (mean, std))
        dev = resolve_device(device)
        if isinstance(module, torch.jit.ScriptModule):
            module = from_script(module, input_size, name)
        prep = "normalize" if mean is not None else "none"
        info = ModelInfo(name, input_size, prep, mean, std)
        source: dict[str, object] = {"model": name, "module": type(module).__qualname__}
        return cls(module.to(dev).eval(), info, dev, None, source)

    def default_layers(self) -> tuple[str, ...]:
        """The model family's analysed layers; a module the pass runs several times (ResNet's
        shared ReLUs) is named once per call, found by one probe pass."""
        names = analysed_layers(self.model)
        if isinstance(self.model, CNN7):
            return names
        size = self.info.image_size
        probe = torch.zeros(1, 3, size, size, device=self.device)
        return expand_reused(names, count_calls(self.model, probe))

    def stimulus_responses(
        self,
        stimuli: StimulusSet,
        layers: tuple[str, ...],
        reduction: Reduction,
        batch_size: int,
        order: np.ndarray | None = None,
    ) -> dict[str, np.ndarray]:
        """(stimuli, units) responses per layer; `order` presents stimulus order[i] as label i."""

        def render(idx: np.ndarray) -> np.ndarray:
            return stimuli.render(idx if order is None else order[idx])

        batches = stimulus_batches(render, len(stimuli), batch_size, self.preprocess_grey)
        return forward_collect(self.model, batches, layers, reduction)

    def image_responses(
        self, images: np.ndarray, layers: tuple[str, ...], reduction: Reduction, batch_size: int
    ) -> dict[str, np.ndarray]:
        batches = (
            self.preprocess_u8(images[s : s + batch_size])
            for s in range(0, len(images), batch_size)
        )
        return forward_collect(self.model, batches, layers, reduction)


def analysed_layers(model: nn.Module) -> tuple[str, ...]:
    """cnn7: layer1..6 and fc1 (conv+ReLU outputs); VGG: every conv's ReLU and every pool of
    blocks 1-5, then fc1 and fc2 (the ReLUs of the first two dense layers), as in the paper;
    ResNets: every residual block's output; any other model: its ReLU modules."""
    if isinstance(model, CNN7):
        return CNN7_LAYERS
    features = getattr(model, "features", None)
    classifier = getattr(model, "classifier", None)
    stages = [getattr(model, f"layer{i}", None) for i in range(1, 5)]
    blocks = [
        f"layer{i}.{j}"
        for i, st in enumerate(stages, 1)
        if st is not None
        for j, _ in st.named_children()
    ]
    if all(st is not None and module_kind(st) == "Sequential" for st in stages):
        return tuple(blocks)  # ResNet-like: every residual block's output
    if (
        features is not None
        and classifier is not None
        and module_kind(features) == module_kind(classifier) == "Sequential"
    ):
        feats = [
            f"features.{n}"
            for n, m in features.named_children()
            if module_kind(m) in ("ReLU", "MaxPool2d")
        ]
        dense = [
            f"classifier.{n}" for n, m in classifier.named_children() if module_kind(m) == "ReLU"
        ]
        return (*feats, *dense[:2])
    return tuple(n for n, m in model.named_modules() if _is_relu(m))


def _is_relu(module: nn.Module) -> bool:
    """An nn.ReLU, or what a ReLU becomes in an unflattened torch.export program: a leaf
    module whose graph is one aten.relu call, or a scripted ReLU."""
    if isinstance(module, nn.ReLU) or module_kind(module) == "ReLU":
        return True
    graph = getattr(module, "graph", None)
    if graph is None or any(True for _ in module.children()):
        return False
    relu = (torch.ops.aten.relu.default, torch.ops.aten.relu_.default)
    calls = [n for n in graph.nodes if n.op == "call_function"]
    return len(calls) == 1 and calls[0].target in relu


def load_network(
    checkpoint: Path | None = None,
    model_name: str | None = None,
    weights: str | None = None,
    device: str = "auto",
    download: bool = False,
    input_size: int | None = None,
) -> Network:
    """From an orisel checkpoint (cnn7 and friends), or a torchvision model and its weights."""
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
            return Network.from_module(module, input_size or 224, name=model_name, device=device)
        if model_name.endswith((".pt2", ".pt", ".pth", ".ts")) and Path(model_name).is_file():
            module, exported_size = exported_model(Path(model_name), input_size)
            size = input_size or exported_size or 224
            return Network.from_module(module, size, name=model_name, device=device)
        model, info = build_model(
            model_name, weights=weights, download=download, image_size=input_size
        )
        source = {"model": model_name, "weights": weights}
        mean = None
    model.to(dev).eval()
    return Network(model, info, dev, mean, source)
