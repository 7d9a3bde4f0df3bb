"""What an ablation or a shift-invariance test does where the caller left a choice open,
decided for the network and the scores at hand rather than for cnn7: the network's own
layers, the orders its scores can give, and (spec.point "auto", `sites`) where to silence.
Each choice made is said, so the output records what was done, not what was assumed."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from pydantic import BaseModel, ValidationError

from orisel.ablation.scores import UnitScores
from orisel.ablation.spec import AblateSpec, InvarianceSpec
from orisel.extraction.network import Network
from orisel.kernel.errors import InvalidArgument
from orisel.kernel.names import MAX_LAYERS

# The paper's split of cnn7's seven layers for shift-invariance: the lowest two ablated, the
# highest four read. Other networks keep these proportions of their own default layers.
ABLATED_SHARE, READ_SHARE = 2 / 7, 4 / 7


def _scored_defaults(net: Network, scores: UnitScores) -> tuple[str, ...]:
    """The network's default layers that the scores hold (all the scored layers when the
    tune run read none of them)."""
    scored = scores.layers()
    chosen = tuple(n for n in net.default_layers() if n in scored)
    return chosen or scored


def _bounded(layers: tuple[str, ...], field: str) -> tuple[str, ...]:
    if len(layers) > MAX_LAYERS:
        raise InvalidArgument(
            field,
            f"given (--{field.replace('_', '-')}): the network has {len(layers)} default "
            f"layers, more than {MAX_LAYERS} per analysis",
            None,
        )
    return layers


def _validated(model: type[BaseModel], values: dict[str, Any]) -> Any:
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"] if isinstance(p, str)) or "spec"
        raise InvalidArgument(field, err["msg"], err.get("input")) from exc


def ablate_spec(
    net: Network, scores: UnitScores, spec: AblateSpec, given: Collection[str]
) -> tuple[AblateSpec, list[str]]:
    """`spec` with the fields not in `given` chosen for this network: its default layers
    that were scored, and the orders the scores hold (gosi alone when the tune run had no
    labelled images for csi); and a note for each choice."""
    update: dict[str, Any] = {}
    notes = []
    if "layers" not in given:
        update["layers"] = _bounded(_scored_defaults(net, scores), "layers")
        notes.append(f"layers: the network's default layers ({', '.join(update['layers'])})")
    if "orders" not in given:
        update["orders"] = tuple(o for o in spec.orders if scores.has(o))
        dropped = [o for o in spec.orders if o not in update["orders"]]
        if dropped:
            notes.append(
                f"orders: {', '.join(update['orders'])} only; the scores hold no "
                f"{', '.join(dropped)} (run `orisel tune` with --data for class selectivity)"
            )
    if not update:
        return spec, notes
    return _validated(AblateSpec, {**spec.model_dump(), **update}), notes


def invariance_spec(
    net: Network, scores: UnitScores, spec: InvarianceSpec, given: Collection[str]
) -> tuple[InvarianceSpec, list[str]]:
    """`spec` with the layers not in `given` chosen for this network: of its default layers
    that were scored, the lowest 2/7 ablated and the highest 4/7 read (cnn7: layer1-2 and
    layer4-fc1, the paper's); and a note for each choice."""
    layers = _scored_defaults(net, scores)
    n = len(layers)
    update: dict[str, Any] = {}
    notes = []
    if "ablate_layers" not in given:
        update["ablate_layers"] = _bounded(
            layers[: max(1, round(n * ABLATED_SHARE))], "ablate_layers"
        )
        notes.append(
            f"ablate_layers: the lowest 2/7 of the network's default layers "
            f"({', '.join(update['ablate_layers'])})"
        )
    if "layers" not in given:
        # Read above what is ablated, even in a network of two or three layers.
        read = layers[n - max(1, round(n * READ_SHARE)) :]
        lowest = update.get("ablate_layers", spec.ablate_layers)
        update["layers"] = _bounded(tuple(x for x in read if x not in lowest) or read, "layers")
        notes.append(
            f"layers: the highest 4/7 of the network's default layers "
            f"({', '.join(update['layers'])})"
        )
    if not update:
        return spec, notes
    return _validated(InvarianceSpec, {**spec.model_dump(), **update}), notes
