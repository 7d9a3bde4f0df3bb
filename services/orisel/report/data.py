"""The report's numbers, typed: what `report.collect` gathers from the analyses' own results
(scoring.results, ablation.results) and each run's manifest, committed as data.json, and all
that `report.claims` tests and `report.paper` renders. Fields that older data.json files lack
are optional, so a report collected before a statistic existed still renders (its claims
say which statistic they hold)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, field_serializer

from orisel.ablation.results import InvarianceCell, Split
from orisel.ablation.spec import InvarianceSpec
from orisel.kernel.errors import InvalidArgument
from orisel.scoring.results import LayerTrend, LayerTuning


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


# A split's measurements by name (accuracy, and loss where it was measured), in the order
# the trainer recorded them.
SplitMetrics = dict[str, float]
# Per split (train, validation, test); None where a checkpoint has no such measurement (the
# initial one has no training accuracy).
Metrics = dict[str, SplitMetrics | None]


def accuracy(metrics: Metrics | None, split: str) -> float | None:
    m = (metrics or {}).get(split)
    return None if m is None else m.get("accuracy")


class Best(_Model):
    epoch: float
    metrics: Metrics


class Epoch(_Model):
    """One epoch of a run's history, with its training and test measurements."""

    epoch: float
    train: SplitMetrics
    test: SplitMetrics


class Checkpoint(_Model):
    """A tuned checkpoint: where it was in training and how selectivity was tested."""

    epoch: float | None = None
    metrics: Metrics | None = None
    checkpoint_sha256: str | None = None
    threshold: float
    permutations: int


class Tuning(Checkpoint):
    """The analysed checkpoint's tuning: every layer's summary per stimulus set, and each
    layer's mean class selectivity."""

    gratings: dict[str, LayerTuning] | None = None
    bars: dict[str, LayerTuning] | None = None
    csi: dict[str, float] | None = None
    command: list[str] | None = None

    def by_stimulus(self) -> dict[str, dict[str, LayerTuning]]:
        return {k: s for k, s in (("gratings", self.gratings), ("bars", self.bars)) if s}


class TrajectoryPoint(Checkpoint):
    gratings: dict[str, LayerTrend]
    bars: dict[str, LayerTrend] | None = None
    csi: dict[str, float] | None = None


class CurvePoint(_Model):
    """One point of a cumulative ablation curve (a random order: one seed's)."""

    layer: str
    order: str
    seed: float
    fraction: float
    accuracy: float
    loss_increase_mean: float


class Ablation(_Model):
    splits: list[Split]
    test_images: int | None = None
    curves: list[CurvePoint]
    command: list[str] | None = None


class Invariance(_Model):
    spec: InvarianceSpec
    summary: dict[str, InvarianceCell]
    images: int
    command: list[str] | None = None

    @field_serializer("spec")
    def _whole(self, spec: InvarianceSpec) -> dict[str, Any]:
        """The spec written whole: a None there is a choice, which data.json's leaving out
        of absent fields must not drop."""
        return spec.model_dump(mode="json")


class Network(_Model):
    """One trained network: its run (from the manifest) and what was analysed of it."""

    corruption: float
    seed: int
    epochs_trained: float
    epochs_configured: int
    best: Best
    manifest_sha256: str
    data_sha256: str
    code_version: str | None = None
    device: str | None = None
    history: list[Epoch]
    analysed: str = "best"  # older data.json files analysed the kept checkpoint only
    tune: Tuning | None = None
    ablate: Ablation | None = None
    invariance: Invariance | None = None
    trajectory: list[TrajectoryPoint] | None = None
    select_reg: float | None = None  # the selectivity term's alpha; None: trained without it
    train_images: int | None = None  # with epochs_configured, the recipe C7 compares within


class ReportData(_Model):
    """Every number of the report: the population, the memorizing regime beside it, and what
    the pipeline that made them recorded."""

    variants: dict[str, Network]
    memorize: dict[str, Network] | None = None
    # The selectivity study's networks (C7), trained with the term: never in C1-C6.
    regularized: dict[str, Network] | None = None
    meta: dict[str, Any] | None = None

    def to_json(self) -> str:
        """data.json, in collection order (layers stay in network order when re-rendered).
        What a network lacks (an analysis not run, a statistic older data lack) is left out,
        as it always was; a metric with no value (NaN) stays NaN, where pydantic's JSON
        writer would make it null."""
        return json.dumps(self.model_dump(exclude_none=True), indent=1, default=str) + "\n"

    @classmethod
    def read(cls, path: Path) -> ReportData:
        try:
            return cls.model_validate_json(path.read_text())
        except ValidationError as exc:
            raise InvalidArgument("--from-data", f"a paper-report data.json ({exc})", path) from exc
