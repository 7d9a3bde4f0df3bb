"""What every analysis records beside its findings: the network it read, where it ran, how
long it took and who asked (a job, or a command line with its data's checksum). The
analyses' own result models (scoring.results, ablation.results) extend it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from orisel.kernel.errors import InvalidArgument


class NetworkSource(BaseModel):
    """Where an analysed network came from: a checkpoint (with its training state), a
    built-in model with its weights, or a user's module."""

    model_config = ConfigDict(extra="forbid")

    model: str
    module: str | None = None
    weights: str | None = None
    checkpoint: str | None = None
    checkpoint_sha256: str | None = None
    epoch: float | None = None
    step: int | None = None
    data_sha256: str | None = None
    metrics: dict[str, Any] | None = None
    num_classes: int | None = None
    # A network brought as a module: its input channels where not 3, the output its logits
    # were read at where it returns several, and its functional activations made layers.
    input_channels: int | None = None
    output: str | int | None = None
    functional: str | None = None
    # A network orisel did not train: the sha256 of its parameters and buffers as analysed
    # (every tensor's name, dtype, shape and bytes, in state-dict order) and of the file its
    # weights were read from, when there was one.
    weights_sha256: str | None = None
    weights_file_sha256: str | None = None


class Result(BaseModel):
    """A result written as a summary.json and read back by the report."""

    model_config = ConfigDict(extra="forbid")

    def to_json(self) -> str:
        """The summary.json text. A field of the result that is None is left out (it reads
        back as None); the spec is written whole, since a None there is a choice (all
        layers, all images). json.dumps, not pydantic's writer, because a metric with no
        value (the damage of an ablation evaluated without labels) is NaN, which pydantic
        would write as null."""
        data = self.model_dump(exclude_none=True)
        spec = getattr(self, "spec", None)
        if isinstance(spec, BaseModel):
            data["spec"] = spec.model_dump(mode="json")
        return json.dumps(data, indent=2, default=str) + "\n"


class AnalysisRecord(Result):
    network: NetworkSource
    environment: dict[str, Any]
    wall_s: float
    job: str | None = None
    data_sha256: str | None = None
    command: list[str] | None = None
    warnings: list[str] | None = None
    # Choices orisel made for this network where the caller left them open (which layers,
    # which orders), said in the output too.
    notes: list[str] | None = None
    # The network output each image-folder class was scored against, and how they were
    # matched ("class map", "class names" or "sorted folder order").
    class_outputs: dict[str, int] | None = None
    classes_matched_by: str | None = None


R = TypeVar("R", bound=BaseModel)


def read_result(path: Path, model: type[R]) -> R | None:
    """A summary.json as its result model; None where that analysis was not run. A file
    that is not such a result is an error naming the file, never read as a dict."""
    if not path.is_file():
        return None
    try:
        return model.model_validate_json(path.read_text())
    except ValidationError as exc:
        raise InvalidArgument(
            str(path), f"a summary.json holding {model.__name__} ({exc})", path.name
        ) from exc
