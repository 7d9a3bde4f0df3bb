"""Where the units measured at a layer are silenced, decided for the network at hand.

The paper ablates after BatchNorm (cnn7: conv -> ReLU -> BN, so `layerN`'s units are
silenced at `bnN`). Most networks have no BatchNorm after their activations (torchvision's
conv -> BN -> ReLU), and silencing there is another experiment, so "bn" is honoured only
where a BatchNorm reads the layer's output, "auto" takes it where there is one and the
layer's own output otherwise, and every analysis records which it was, layer by layer."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from orisel.ablation.results import AblationPoint
from orisel.extraction.network import Network
from orisel.kernel.errors import InvalidArgument
from orisel.kernel.names import Point
from orisel.science.responses import parse_layer, resolve_layers


def _is_batchnorm(module: nn.Module) -> bool:
    # By class name too: a scripted or exported network's modules are not nn.BatchNorm*.
    return isinstance(module, nn.modules.batchnorm._BatchNorm) or type(module).__name__.startswith(
        "BatchNorm"
    )


def batchnorm_after(net: Network, layers: Sequence[str]) -> dict[str, str]:
    """The BatchNorm module that reads each layer's output as its input, found by one probe
    pass (the very tensor, so a BatchNorm elsewhere in the block never counts); layers that
    feed none are left out."""
    model = net.model
    modules = resolve_layers(model, layers)
    outputs: dict[str, list[torch.Tensor]] = {}
    fed: list[tuple[str, torch.Tensor]] = []
    handles = []
    for base in {parse_layer(n)[0] for n in modules}:

        def keep(_m: nn.Module, _i: object, out: object, base: str = base) -> None:
            if isinstance(out, torch.Tensor):
                outputs.setdefault(base, []).append(out)

        handles.append(dict(model.named_modules())[base].register_forward_hook(keep))
    for name, module in model.named_modules():
        if name and _is_batchnorm(module):

            def reads(_m: nn.Module, inputs: tuple[object, ...], name: str = name) -> None:
                if inputs and isinstance(inputs[0], torch.Tensor):
                    fed.append((name, inputs[0]))

            handles.append(module.register_forward_pre_hook(reads))
    try:
        with torch.no_grad():
            model(net.probe(2))
    finally:
        for h in handles:
            h.remove()
    found: dict[str, str] = {}
    for layer in modules:
        base, call = parse_layer(layer)
        calls = outputs.get(base, [])
        out = calls[(call or 1) - 1] if len(calls) >= (call or 1) else None
        bn = next((name for name, x in fed if x is out), None)
        if out is not None and bn is not None:
            found[layer] = bn
    return found


def ablation_sites(net: Network, layers: Sequence[str], point: Point) -> dict[str, AblationPoint]:
    """Each layer's ablation site: after the BatchNorm that reads its output ("bn"; "auto"
    where there is one) or at its own output ("relu"; "auto" elsewhere). "bn" at a layer no
    BatchNorm reads is refused: silencing elsewhere would be recorded as what it is not."""
    if point == "relu":
        resolve_layers(net.model, layers)
        return {layer: AblationPoint(point="relu", site=layer) for layer in layers}
    bns = batchnorm_after(net, layers)
    missing = [layer for layer in layers if layer not in bns]
    if point == "bn" and missing:
        raise InvalidArgument(
            "point",
            f"auto or relu: no BatchNorm reads the output of {', '.join(missing)} in this "
            "network, so there is no after-BatchNorm point to ablate at",
            point,
        )
    return {
        layer: AblationPoint(point="bn", site=bns[layer])
        if layer in bns
        else AblationPoint(point="relu", site=layer)
        for layer in layers
    }
