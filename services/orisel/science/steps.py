"""A network as a chain of steps (module name, function), where it is one: the sweep engine
(`science.ablation`) runs a layer's prefix once and only the suffix for each mask."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from orisel.kernel.errors import InvalidArgument

Step = tuple[str, Callable[[torch.Tensor], torch.Tensor]]


def sequential_view(model: nn.Module) -> list[Step] | None:
    """The model as an ordered list of (module name, function), when it is a simple chain."""
    from orisel.models.cnn7 import CNN7

    if isinstance(model, CNN7):
        steps: list[Step] = []
        for name, module in model.named_children():
            if name == "fc1":
                steps.append(("flatten", lambda x: torch.flatten(x, 1)))
            steps.append((name, module))
        return steps
    features = getattr(model, "features", None)
    classifier = getattr(model, "classifier", None)
    avgpool = getattr(model, "avgpool", None)
    if (
        isinstance(features, nn.Sequential)
        and isinstance(classifier, nn.Sequential)
        and avgpool is not None
    ):
        # torchvision's VGG and AlexNet: features -> avgpool -> flatten -> classifier.
        steps = [(f"features.{n}", m) for n, m in features.named_children()]
        steps += [("avgpool", avgpool), ("flatten", lambda x: torch.flatten(x, 1))]
        steps += [(f"classifier.{n}", m) for n, m in classifier.named_children()]
        return steps
    return None


def same_as_model(model: nn.Module, steps: list[Step], images: torch.Tensor) -> bool:
    """Whether the chain computes what the model does: a network whose parts have the
    names of VGG's (ConvNeXt's `features`, `avgpool`, `classifier`) may join them otherwise
    (its classifier reads unflattened maps), and then only the whole network is right."""
    x = images[:2]
    try:
        return bool(torch.allclose(run_steps(steps, x), model(x), rtol=1e-4, atol=1e-5))
    except RuntimeError:  # the parts do not even fit together in this order
        return False


def split_at(steps: list[Step], site: str) -> tuple[list[Step], list[Step]]:
    names = [n for n, _ in steps]
    if site not in names:
        raise InvalidArgument("layer", f"one of the chain's steps ({', '.join(names)})", site)
    i = names.index(site) + 1
    return steps[:i], steps[i:]


def run_steps(steps: list[Step], x: torch.Tensor) -> torch.Tensor:
    for _, fn in steps:
        x = fn(x)
    return x
