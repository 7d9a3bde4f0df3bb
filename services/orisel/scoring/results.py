"""What a tuning analysis finds, typed: written as its summary.json, read back by the report.

No torch here, so the report, a front end or a notebook can read a result without the
machinery that made it. Fields that older summaries lack are optional, so a folder analysed
before a statistic existed still reads (the report then says which statistic it holds).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict

from orisel.kernel.records import AnalysisRecord, Result
from orisel.scoring.spec import TuneSpec


class LayerTrend(BaseModel):
    """The numbers of a layer that a trajectory keeps per checkpoint."""

    model_config = ConfigDict(extra="forbid")

    mean_gosi: float
    fraction_above_threshold: float
    null_fraction_above_threshold: float


class LayerTuning(BaseModel):
    """One layer under one stimulus set. Every fraction is of the grating-responsive units
    (units - dead), as `denominator` says. Fields in the order summary.json has always had
    them."""

    model_config = ConfigDict(extra="forbid")

    units: int
    dead: int
    denominator: str | None = None
    fraction_selective: float
    fraction_selective_fdr: float | None = None
    selective_fdr: int | None = None
    fraction_above_threshold: float
    null_fraction_above_threshold: float
    mean_gosi: float
    median_gosi: float | None = None
    null_mean_gosi: float
    mean_osi: float | None = None
    histogram_edges: list[float]
    histogram: list[int]
    null_histogram_density: list[float]
    # Units with a response below 0, which the indices counted as 0 (spec.rectify); older
    # summaries lack it.
    negative_units: int | None = None


class StimulusTuning(BaseModel):
    model_config = ConfigDict(extra="forbid")

    stimuli: dict[str, Any]  # the stimulus set's own description (kind, size, grid)
    layers: dict[str, LayerTuning]  # in the network's order


class LayerClassSelectivity(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mean_csi: float
    median_csi: float


class TuneSummary(BaseModel):
    model_config = ConfigDict(extra="forbid")

    gratings: StimulusTuning | None = None
    bars: StimulusTuning | None = None
    class_selectivity: dict[str, LayerClassSelectivity] | None = None

    def by_stimulus(self, order: Sequence[str] = ("gratings", "bars")) -> dict[str, StimulusTuning]:
        """The stimulus sets tuned, in `order` (the spec's, where the caller has it)."""
        sets = {"gratings": self.gratings, "bars": self.bars}
        return {k: s for k in order if (s := sets.get(k)) is not None}


class TuneResult(AnalysisRecord):
    """summary.json of `orisel tune` and of a scoring job."""

    spec: TuneSpec
    layers: list[str]
    summary: TuneSummary
    table: str
    # The activations scored (their key) and where their forward passes ran: a scoring job
    # or `tune --responses` reads them from an extraction run elsewhere.
    activations: dict[str, Any] | None = None


class TrajectoryResult(Result):
    """summary.json of `orisel trajectory`: its table holds one row per (checkpoint,
    stimulus, layer)."""

    run: str
    spec: TuneSpec
    epochs: list[float] | None = None
    table: str
    checkpoints: int
    wall_s: float
    job: str | None = None
    data_sha256: str | None = None
    command: list[str] | None = None
