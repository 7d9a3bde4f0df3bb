"""What the ablation analyses find, typed: the median split of each (index, layer) with its
controls, and shift-invariance per condition. Written as summary.json, read back by the
report; no torch here. Fields that older summaries lack are optional, so a folder ablated
before a control existed still reads (the report then says which statistic it holds)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, model_validator

from orisel.ablation.spec import AblateSpec, InvarianceSpec
from orisel.kernel.records import AnalysisRecord, NetworkSource

NAN = float("nan")
LEGACY_INPUTS = ("checkpoint", "model", "data", "scores")


class AblationPoint(BaseModel):
    """Where a layer's units were silenced: `point` as done ("bn": after the BatchNorm that
    reads the layer's output, "relu": the layer's own output) and the module (`site`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    point: Literal["bn", "relu"]
    site: str


class Outcome(BaseModel):
    """What ablating one set of units does on the evaluation images."""

    model_config = ConfigDict(extra="forbid")

    n_ablated: int
    accuracy: float
    loss_increase_mean: float  # nats of cross-entropy per image, over the intact network
    loss_increase_sem: float


class Paired(BaseModel):
    """Top minus bottom per image (both halves are ablated on the same images)."""

    model_config = ConfigDict(extra="forbid")

    difference: float
    sem: float
    images: int


class RandomHalves(BaseModel):
    """Random halves of the same layer's pool, of the top half's size: the split's null."""

    model_config = ConfigDict(extra="forbid")

    n: int
    loss_increase_mean: float
    loss_increase_sd: float
    top50_percentile: float
    bottom50_percentile: float


class MatchedHalves(BaseModel):
    """Halves paired unit by unit on a covariate of ablation cost, the more selective unit of
    each pair on top."""

    model_config = ConfigDict(extra="forbid")

    units: int
    # None where the pool had no pair to match (every score tied, or under two units).
    covariate_top: float | None = None
    covariate_bottom: float | None = None
    score_top: float | None = None
    score_bottom: float | None = None
    top50: Outcome | None = None
    bottom50: Outcome | None = None
    paired: Paired | None = None


class Split(BaseModel):
    """The median split of one layer by one index."""

    model_config = ConfigDict(extra="forbid")

    layer: str
    by: str
    median: float | None = None
    ties: int | None = None
    dead_excluded: int | None = None
    matched: dict[str, MatchedHalves] | None = None
    site: str | None = None
    top50: Outcome
    bottom50: Outcome
    paired: Paired | None = None
    random_halves: RandomHalves | None = None


class AblateResult(AnalysisRecord):
    """summary.json of `orisel ablate` and of an ablation sweep job. A sweep fanned out over
    workers names the inputs its chunks read and how many tasks ran, and has no one wall
    time; one written before sweeps recorded their network named only its inputs, at the
    top level."""

    spec: AblateSpec
    splits: list[Split]
    table: str
    points: dict[str, AblationPoint] | None = None  # per layer; older summaries lack it
    test_images: int | None = None
    inputs: dict[str, Any] | None = None
    tasks: int | None = None
    network: NetworkSource | None = None  # type: ignore[assignment]
    environment: dict[str, Any] | None = None  # type: ignore[assignment]
    wall_s: float | None = None  # type: ignore[assignment]

    @model_validator(mode="before")
    @classmethod
    def _older_sweep(cls, data: Any) -> Any:
        if isinstance(data, dict) and "inputs" not in data and "scores" in data:
            inputs = {k: data.get(k) for k in LEGACY_INPUTS}
            data = {k: v for k, v in data.items() if k not in LEGACY_INPUTS} | {"inputs": inputs}
        return data


class InvarianceCell(BaseModel):
    """One (ablated layer, condition): each metric's mean and its spread over shifts, read-out
    layers and seeds. NaN where a metric has no value (the damage of an ablation evaluated
    without labels, the invariance of units no image drives) or an older summary lacks it."""

    model_config = ConfigDict(extra="forbid")

    consistency: float
    consistency_sd: float
    correlation: float
    correlation_sd: float
    invariance: float = NAN
    invariance_sd: float = NAN
    loss_increase: float = NAN


class InvarianceResult(AnalysisRecord):
    """summary.json of `orisel invariance` and of an invariance job; `summary` is keyed
    "<ablated layer>:<condition>"."""

    spec: InvarianceSpec
    images: int
    summary: dict[str, InvarianceCell]
    table: str
    points: dict[str, AblationPoint] | None = None  # per ablated layer
