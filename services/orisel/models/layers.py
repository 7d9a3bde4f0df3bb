"""Which layers of a network are analysed when none are named: the family's own.

    cnn7                      layer1..layer6, fc1 (conv+ReLU outputs, the paper's)
    ResNet, ResNeXt, WRN      every residual block's output (layer1.0 ... layer4.N)
    VGG, AlexNet              every conv's ReLU and every pool of `features`, then the first
                              two ReLUs of `classifier` (the paper's VGG16 layers)
    ViT                       every encoder block's output (tokens: see `--tokens`)
    other torchvision models  every block of the trunk: the children of `features`
                              (MobileNet, EfficientNet, ConvNeXt, DenseNet, SqueezeNet),
                              `trunk_output` (RegNet), `layers` (MNASNet), `blocks` (MaxViT),
                              the stages of ShuffleNet, the Inception modules of GoogLeNet
                              and Inception v3, with the stems
    any other network         every activation (ReLU, GELU, SiLU, ... modules, and functional
                              ones made visible by `models.functional`); its blocks where it
                              has more than MAX_LAYERS activation calls or none

Heads (fc, classifier, heads, aux) are never defaults: their units are the read-out.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import torch
from torch import nn

from orisel.kernel.errors import FailedPrecondition
from orisel.kernel.names import MAX_LAYERS
from orisel.models.cnn7 import CNN7
from orisel.models.functional import origin
from orisel.models.scripted import module_kind

CNN7_LAYERS = ("layer1", "layer2", "layer3", "layer4", "layer5", "layer6", "fc1")
ACTIVATIONS = frozenset(
    {
        "ReLU",
        "ReLU6",
        "LeakyReLU",
        "PReLU",
        "RReLU",
        "ELU",
        "SELU",
        "CELU",
        "GELU",
        "SiLU",
        "Mish",
        "Hardswish",
        "Softplus",
        "F.relu",
        "F.relu6",
        "F.leaky_relu",
        "F.elu",
        "F.gelu",
        "F.silu",
        "F.mish",
        "F.hardswish",
    }
)
HEADS = frozenset({"fc", "classifier", "head", "heads", "aux1", "aux2", "AuxLogits"})
_CONTAINERS = frozenset({"Sequential", "ModuleList"})
# Where a network marks the modules whose outputs are channels-last maps (B, H, W, C): the
# readers and silencers of `science.responses` put their channels on axis 1 first.
CHANNELS_LAST = "orisel_channels_last"


def channels_last_layers(model: nn.Module) -> frozenset[str]:
    """The modules of `model` that return channels-last maps: in a Swin Transformer every
    module of `features` but the patch embedding's convolution, and the final `norm`."""
    if origin(model).rpartition(".")[2] != "SwinTransformer":
        return frozenset()
    return frozenset(
        n
        for n, _ in model.named_modules()
        if n == "norm" or (n.startswith("features.") and n != "features.0.0")
    )


def is_activation(module: nn.Module) -> bool:
    """An activation module, or what a ReLU becomes in an unflattened torch.export program: a
    leaf module whose graph is one aten.relu call."""
    if module_kind(module) in ACTIVATIONS:
        return True
    graph = getattr(module, "graph", None)
    if graph is None or any(True for _ in module.children()):
        return False
    relu = (torch.ops.aten.relu.default, torch.ops.aten.relu_.default)
    calls = [n for n in graph.nodes if n.op == "call_function"]
    return len(calls) == 1 and calls[0].target in relu


def _composite(module: nn.Module) -> bool:
    return any(True for _ in module.children())


def _trunk(model: nn.Module, runs: Callable[[str], bool]) -> list[str]:
    """Each top-level part that runs and is not a head: a container of blocks gives its
    blocks (a part holding such a container, ViT's `encoder`, gives that container's), a
    block or an activation itself."""
    out: list[str] = []
    for name, child in model.named_children():
        if name in HEADS or not runs(name):
            continue
        holder, prefix = child, name
        if module_kind(child) not in _CONTAINERS:
            inner = [
                (n, c)
                for n, c in child.named_children()
                if module_kind(c) in _CONTAINERS and any(_composite(b) for b in c.children())
            ]
            if len(inner) == 1:
                holder, prefix = inner[0][1], f"{name}.{inner[0][0]}"
        blocks = [
            f"{prefix}.{n}"
            for n, c in holder.named_children()
            if (_composite(c) or is_activation(c)) and runs(f"{prefix}.{n}")
        ]
        container = module_kind(holder) in _CONTAINERS or holder is not child
        if container and any(_composite(c) for c in holder.children()):
            out += blocks
        elif _composite(child) or is_activation(child):
            out.append(name)  # a block, a stem of single layers, an activation
    return out


def family_layers(model: nn.Module, sequence: list[str]) -> tuple[str, ...]:
    """The analysed layers of `model` by its family (the module's docstring), each named once
    per call where the pass runs it several times; `sequence`: the modules one forward pass
    calls, in order (`science.responses.call_sequence`)."""
    if isinstance(model, CNN7):
        return CNN7_LAYERS
    written = origin(model)
    calls = Counter(sequence)

    def runs(name: str) -> bool:
        return calls[name] > 0

    names = _resnet(model) or _vgg(model)
    if not names and written.startswith("torchvision."):
        names = _trunk(model, runs)
    if not names:
        modules = dict(model.named_modules())
        acts = [n for n in sequence if is_activation(modules[n])]
        if 0 < len(acts) <= MAX_LAYERS:
            # Call by call in the order the pass makes them: a reused module's calls are
            # layers of different depths.
            seen: Counter[str] = Counter()
            named = []
            for n in acts:
                seen[n] += 1
                named.append(f"{n}:{seen[n]}" if calls[n] > 1 else n)
            return tuple(named)
        names = _trunk(model, runs)
    if not names:
        raise FailedPrecondition(
            "no default layers: the network has no activation module or functional "
            "activation that runs (or torch.fx could not trace it) and no blocks; name its "
            "layers with --layers (API: layers=...), e.g. the modules `orisel layers` lists"
        )
    return expand_calls(names, calls)


def expand_calls(names: list[str], calls: Counter[str]) -> tuple[str, ...]:
    """Each module that runs k > 1 times per pass becomes name:1 .. name:k."""
    out: list[str] = []
    for name in names:
        k = calls[name]
        out += [f"{name}:{i}" for i in range(1, k + 1)] if k > 1 else [name]
    return tuple(out)


def _resnet(model: nn.Module) -> list[str]:
    stages = [getattr(model, f"layer{i}", None) for i in range(1, 5)]
    if not all(st is not None and module_kind(st) == "Sequential" for st in stages):
        return []
    return [
        f"layer{i}.{j}"
        for i, st in enumerate(stages, 1)
        if st is not None
        for j, _ in st.named_children()
    ]


def _vgg(model: nn.Module) -> list[str]:
    """VGG and AlexNet: `features` and `classifier` of single layers, activations among them
    (MobileNet's and EfficientNet's `features` hold blocks instead)."""
    features = getattr(model, "features", None)
    classifier = getattr(model, "classifier", None)
    if features is None or classifier is None:
        return []
    if not (module_kind(features) == module_kind(classifier) == "Sequential"):
        return []
    children = list(features.named_children())
    if any(_composite(m) for _, m in children) or not any(is_activation(m) for _, m in children):
        return []
    feats = [
        f"features.{n}" for n, m in children if is_activation(m) or module_kind(m) == "MaxPool2d"
    ]
    dense = [f"classifier.{n}" for n, m in classifier.named_children() if is_activation(m)]
    return [*feats, *dense[:2]]
