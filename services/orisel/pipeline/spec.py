"""The paper's pipeline as a spec and as a job: which networks to train and how to analyse
them, on which images."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, field_validator

from orisel.control.job import JobSpec
from orisel.data.prepare import MAX_IMAGES
from orisel.kernel.names import MAX_SEED
from orisel.store.backend import ArtifactRef
from orisel.training.config import MAX_SELECT_REG, run_name

# The Celery task names of this capability's jobs: the servicer submits them, tasks.py
# registers them.
ADVANCE_TASK = "orisel.pipeline.advance"


@dataclass(frozen=True)
class Variant:
    """One network of the study: a label-corruption level, a seed and the alpha of its
    selectivity term (0: none)."""

    corruption: float
    seed: int
    select_reg: float = 0.0

    @property
    def name(self) -> str:
        return run_name("cnn7", self.corruption, self.seed, self.select_reg)


class PaperSpec(BaseModel):
    """Train cnn7 at several label-corruption levels (and more seeds at the lowest), score every
    network and the first one's training trajectory, sweep ablations and measure
    shift-invariance on the lowest-corruption networks, then report."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    label_corruptions: tuple[float, ...] = Field(
        (0.0, 0.1, 0.2, 0.4),
        min_length=1,
        max_length=32,
        description="fractions of training labels replaced: one network (or more) per level",
    )
    seeds: tuple[int, ...] = Field(
        (0, 1), min_length=1, max_length=32, description="seeds at the lowest corruption"
    )
    epochs: int = Field(200, ge=1, le=10_000, description="epochs per network")
    train_subset: int | None = Field(
        None, ge=10, le=MAX_IMAGES, description="training images (None: all)"
    )
    val_size: int | None = Field(
        None, ge=1, le=MAX_IMAGES, description="validation images (None: 10000)"
    )
    test_subset: int | None = Field(
        None, ge=10, le=MAX_IMAGES, description="test images (None: all)"
    )
    permutations: int = Field(1000, ge=0, le=100_000, description="shuffles for the gOSI p-value")
    random_halves: int = Field(
        100, ge=0, le=1000, description="random halves each median split is ranked among"
    )
    population: int = Field(
        0,
        ge=0,
        le=256,
        description="networks trained together as one stacked model per training job "
        "(1: one job per network; 0: the deployment's ORISEL_POPULATION_SIZE)",
    )
    segment_epochs: int | None = Field(
        None, ge=1, le=10_000, description="epochs per training task"
    )
    select_regs: tuple[float, ...] = Field(
        (),
        max_length=16,
        description="alphas of the selectivity study (C7): the lowest-corruption networks, "
        "every seed, trained again with the selectivity term at each (< 0 lowers "
        "orientation selectivity), scored on gratings and tested for shift-invariance",
    )
    select_epochs: int | None = Field(
        None,
        ge=1,
        le=10_000,
        description="epochs of the study's networks (None: epochs, and the networks without "
        "the term are its alpha 0)",
    )
    select_train_subset: int | None = Field(
        None,
        ge=10,
        le=MAX_IMAGES,
        description="training images of the study's networks (None: train_subset)",
    )

    @field_validator("label_corruptions")
    @classmethod
    def _fractions(cls, v: tuple[float, ...]) -> tuple[float, ...]:
        if any(not 0.0 <= c < 1.0 for c in v):
            raise ValueError("every label corruption must be in [0, 1)")
        if len(set(v)) != len(v):
            raise ValueError("label corruptions must be distinct")
        return v

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if any(not 0 <= s <= MAX_SEED for s in v) or len(set(v)) != len(v):
            raise ValueError(f"seeds must be distinct and in [0, {MAX_SEED}]")
        return v

    @field_validator("select_regs")
    @classmethod
    def _alphas(cls, v: tuple[float, ...]) -> tuple[float, ...]:
        if any(not (-MAX_SELECT_REG <= a <= MAX_SELECT_REG) or a == 0 for a in v):
            raise ValueError(
                f"every alpha must be in [-{MAX_SELECT_REG:g}, {MAX_SELECT_REG:g}] and not 0 "
                "(the networks without the term are the study's alpha 0)"
            )
        if len(set(v)) != len(v):
            raise ValueError("alphas must be distinct")
        return v

    def variants(self) -> list[Variant]:
        """Each corruption level at the first seed, then the other seeds at the lowest level,
        then the selectivity study's networks (every seed at the lowest level, per alpha)."""
        first = [Variant(c, self.seeds[0]) for c in self.label_corruptions]
        low = min(self.label_corruptions)
        study = [Variant(low, s, a) for a in self.select_regs for s in self.seeds]
        return first + [Variant(low, s) for s in self.seeds[1:]] + study

    def reference(self) -> list[Variant]:
        """The networks that get ablation sweeps and shift-invariance: the lowest corruption,
        trained without the selectivity term."""
        low = min(self.label_corruptions)
        return [v for v in self.variants() if v.corruption == low and not v.select_reg]

    def regularized(self) -> list[Variant]:
        """The networks trained with the selectivity term: shift-invariance only (C7)."""
        return [v for v in self.variants() if v.select_reg]

    def study_recipe(self) -> tuple[int, int | None]:
        """(epochs, training images) of the study's networks. Where they are the paper's,
        its lowest-corruption networks are the study's alpha 0; otherwise (a short study)
        the alphas are compared among themselves."""
        epochs = self.select_epochs or self.epochs
        return epochs, self.select_train_subset or self.train_subset


class PaperJob(JobSpec):
    """The paper's pipeline on `data`, the images every child trains and is scored on (the
    workers' data set when None)."""

    TASK = ADVANCE_TASK

    paper: PaperSpec = PaperSpec()
    data: ArtifactRef | None = None
