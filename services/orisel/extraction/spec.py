"""Which network, which stimuli, which layers and how responses are reduced: the extraction
spec, the network and images a job reads, and the extraction job, light enough for front
ends (no torch)."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from orisel.control.job import JobSpec
from orisel.kernel.errors import InvalidArgument
from orisel.kernel.names import MAX_LAYERS, LayerName, Reduction, Tokens
from orisel.store.backend import ArtifactRef, ArtifactStore
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


class ModelRef(BaseModel):
    """A network that is not an orisel checkpoint: a torchvision `architecture` (with stored
    `weights`, else random ones) or a torch.export or TorchScript `program`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    architecture: str | None = Field(None, pattern=f"^{ARCHITECTURE.pattern}$")
    weights: ArtifactRef | None = None
    program: ArtifactRef | None = None
    input_size: int | None = Field(None, ge=MIN_INPUT, le=MAX_INPUT)

    @model_validator(mode="after")
    def _one_network(self) -> ModelRef:
        if (self.architecture is None) == (self.program is None):
            raise ValueError("a torchvision architecture or a program, exactly one")
        if self.weights is not None and self.architecture is None:
            raise ValueError("weights for an architecture, not a program")
        return self


class Inputs(JobSpec):
    """The network a job reads (an orisel `checkpoint` or a `model`) and its labelled images:
    `data` (the worker's data set when None), an image folder's `class_map`, `test_subset`
    images of them (None: all)."""

    SPARSE = frozenset({"checkpoint", "model", "data", "class_map"})

    checkpoint: ArtifactRef | None = None
    model: ModelRef | None = None
    data: ArtifactRef | None = None
    class_map: ArtifactRef | None = None
    test_subset: int | None = Field(None, ge=1)

    def needs_network(self) -> bool:
        """Whether this job reads a network (one that reads stored activations does not)."""
        return True

    @model_validator(mode="after")
    def _one_network(self) -> Inputs:
        named = (self.checkpoint is not None) + (self.model is not None)
        if named != (1 if self.needs_network() else 0):
            wanted = "exactly one" if self.needs_network() else "neither, with activations"
            raise ValueError(f"an orisel checkpoint or a model: {wanted}")
        return self


class ExtractJob(Inputs):
    """Measure the responses `extract` asks for of the network, and of its test images where
    `images` (else stimuli only)."""

    TASK = EXTRACT_TASK

    images: bool = False
    extract: ExtractSpec = ExtractSpec()


def network_ref(store: ArtifactStore, msg: Any, where: str) -> dict[str, ArtifactRef | ModelRef]:
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
        return {"checkpoint": resolve(store, msg, "checkpoint", where)}
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
        "model": ModelRef(
            architecture=model.architecture or None,
            weights=resolve(store, model, "weights", at) if model.HasField("weights") else None,
            program=resolve(store, model, "program", at) if model.HasField("program") else None,
            input_size=model.input_size or None,
        )
    }


def data_ref(store: ArtifactStore, msg: Any, where: str) -> dict[str, ArtifactRef]:
    """The labelled images a request names, if any (else the worker's configured data set),
    and the class map that matches an image folder's classes to the network's outputs."""
    return {
        name: resolve(store, msg, name, where)
        for name in ("data", "class_map")
        if name in msg.DESCRIPTOR.fields_by_name and msg.HasField(name)
    }
