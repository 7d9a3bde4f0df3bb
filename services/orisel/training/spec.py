"""A training job as its row holds it: one network's config, or a population of networks
trained together as one stacked model, and the Celery tasks that run each."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from orisel.control.job import JobSpec
from orisel.kernel.names import Seed
from orisel.store.backend import ArtifactRef
from orisel.training.config import MAX_SELECT_REG, TrainConfig, run_name

# The Celery task names of this capability's jobs: the servicer submits them, tasks.py
# registers them.
SEGMENT_TASK = "orisel.training.segment"
POPULATION_TASK = "orisel.training.population"

MAX_POPULATION = 256


class Member(BaseModel):
    """One network of a population: what differs from the population's config."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    seed: Seed
    label_corruption: float = Field(ge=0.0, le=1.0)
    # Populations submitted before the selectivity term existed have none: 0, no term.
    select_reg: float = Field(0.0, ge=-MAX_SELECT_REG, le=MAX_SELECT_REG, allow_inf_nan=False)

    def config(self, base: TrainConfig) -> TrainConfig:
        """`base` with this network's seed, label corruption and alpha, validated whole."""
        fields = base.model_dump()
        data = {**fields["data"], "label_corruption": self.label_corruption}
        return TrainConfig.model_validate(
            {**fields, "seed": self.seed, "data": data, "select_reg": self.select_reg}
        )

    def name(self, model: str) -> str:
        return run_name(model, self.label_corruption, self.seed, self.select_reg)


class TrainJob(JobSpec):
    """Train one network (`config`), or with `population` every member of it as one stack;
    on `data` (the worker's data set when None), `segment_epochs` per task (None: the
    worker's setting)."""

    config: TrainConfig
    population: (
        Annotated[tuple[Member, ...], Field(min_length=1, max_length=MAX_POPULATION)] | None
    ) = None
    data: ArtifactRef | None = None
    segment_epochs: int | None = Field(None, ge=1, le=10_000)

    @field_validator("population")
    @classmethod
    def _stackable(
        cls, members: tuple[Member, ...] | None, info: ValidationInfo
    ) -> tuple[Member, ...] | None:
        config: Any = info.data.get("config")
        if members is None or config is None:  # no config: its own error is reported
            return members
        if config.model != "cnn7":
            raise ValueError(f"cnn7 networks (the stacked model), not {config.model}")
        names = [m.name(config.model) for m in members]
        if len(set(names)) != len(names):
            raise ValueError(f"distinct (seed, label_corruption, select_reg) networks: {names}")
        return members

    @property
    def task_name(self) -> str:
        return POPULATION_TASK if self.population else SEGMENT_TASK

    def networks(self) -> list[tuple[str, TrainConfig]]:
        """Each network this job trains, by run name, with its config."""
        if not self.population:
            c = self.config
            return [(run_name(c.model, c.data.label_corruption, c.seed, c.select_reg), c)]
        return [(m.name(self.config.model), m.config(self.config)) for m in self.population]
