"""Which network, which stimuli, which layers and how responses are reduced: the extraction
spec and the network reference, light enough for front ends (no torch)."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from orisel.kernel.errors import InvalidArgument
from orisel.kernel.names import MAX_LAYERS, LayerName, Reduction, Tokens
from orisel.store.backend import ArtifactStore
from orisel.store.scratch import resolve

# The Celery task names of this capability's jobs: the servicer submits them, tasks.py
# registers them.
EXTRACT_TASK = "orisel.extraction.extract"


class ExtractSpec(BaseModel):
    """Which stimuli, which layers and how each unit's feature map is reduced."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    stimuli: tuple[Literal["gratings", "bars"], ...] = Field(("gratings", "bars"), max_length=2)
    layers: tuple[LayerName, ...] | None = Field(None, max_length=MAX_LAYERS)
    reduction: Reduction = "mean"
    n_orientations: int = Field(12, ge=2, le=360, multiple_of=2)
    n_phases: int = Field(4, ge=1, le=64)
    n_frequencies: int = Field(9, ge=1, le=64)
    batch_size: int = Field(256, ge=1, le=65_536)
    grating_centre: Literal["journal", "symmetric"] = Field(
        "journal",
        description="gratings' phase origin: pixel size//2 as the journal code, or the "
        "geometric centre (size-1)/2",
    )
    tokens: Tokens = Field(
        "mean",
        description="a token layer's (a ViT block's) unit: its mean over the tokens, or its "
        "first (class) token: cls",
    )
    rectify: bool = Field(
        True,
        description="responses below 0 count as 0 in every index, as at a ReLU output (where "
        "nothing changes); each unit's negative share is in the table (negative_fraction). "
        "--no-rectify refuses a layer with negative responses instead",
    )


ARCHITECTURE = re.compile(r"[a-z][a-z0-9_]{0,63}")
MIN_INPUT, MAX_INPUT = 16, 1024


def network_ref(store: ArtifactStore, msg: Any, where: str) -> dict[str, Any]:
    """The network a request names, checked at the edge: an orisel `checkpoint`, or a `model`
    (a torchvision architecture with optional weights, or a torch.export or TorchScript
    program), each reference resolved in the store. Weights and programs are data: no request
    runs Python."""
    has_ckpt, has_model = msg.HasField("checkpoint"), msg.HasField("model")
    if has_ckpt == has_model:
        raise InvalidArgument(
            f"{where}.checkpoint", "an orisel checkpoint or a model, exactly one", None
        )
    if has_ckpt:
        return {"checkpoint": resolve(store, msg, "checkpoint", where).__dict__}
    model, at = msg.model, f"{where}.model"
    if bool(model.architecture) == model.HasField("program"):
        raise InvalidArgument(
            f"{at}.architecture", "a torchvision architecture or a program, exactly one", None
        )
    if model.architecture and not ARCHITECTURE.fullmatch(model.architecture):
        raise InvalidArgument(
            f"{at}.architecture", "a torchvision model name such as resnet18", model.architecture
        )
    if model.HasField("weights") and not model.architecture:
        raise InvalidArgument(f"{at}.weights", "weights for an architecture, not a program", None)
    if model.input_size and not MIN_INPUT <= model.input_size <= MAX_INPUT:
        raise InvalidArgument(
            f"{at}.input_size", f"0 (default) or {MIN_INPUT}..{MAX_INPUT} pixels", model.input_size
        )
    return {
        "model": {
            "architecture": model.architecture or None,
            "weights": resolve(store, model, "weights", at).__dict__
            if model.HasField("weights")
            else None,
            "program": resolve(store, model, "program", at).__dict__
            if model.HasField("program")
            else None,
            "input_size": model.input_size or None,
        }
    }


def data_ref(store: ArtifactStore, msg: Any, where: str) -> dict[str, Any]:
    """The labelled images a request names, if any (else the worker's configured data set),
    and the class map that matches an image folder's classes to the network's outputs."""
    return {
        name: resolve(store, msg, name, where).__dict__
        for name in ("data", "class_map")
        if name in msg.DESCRIPTOR.fields_by_name and msg.HasField(name)
    }
