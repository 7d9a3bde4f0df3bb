"""What an ablation sweep and a shift-invariance test are asked to do, and their jobs (a
sweep's chunks too): validated specs that front ends check at Submit without importing
torch."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from orisel.control.job import JobSpec
from orisel.extraction.spec import Inputs
from orisel.kernel.names import MAX_LAYERS, Index, LayerName, Mode, Padding, Point, Seed
from orisel.kernel.tables import TableFormat
from orisel.store.backend import ArtifactRef

# The Celery task names of this capability's jobs: the servicer submits them, tasks.py
# registers them.
SWEEP_TASK = "orisel.ablation.sweep"
CHUNK_TASK = "orisel.ablation.chunk"
INVARIANCE_TASK = "orisel.ablation.invariance"

MAX_RANDOM = 100  # random orders per layer
DEFAULT_FRACTIONS = tuple(round(0.1 * i, 1) for i in range(11))


class AblateSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    layers: tuple[LayerName, ...] = Field(
        ("layer1", "layer2", "layer3", "layer4", "layer5", "layer6", "fc1"),
        min_length=1,
        max_length=MAX_LAYERS,
    )
    stimulus: Literal["gratings", "bars"] = "gratings"
    orders: tuple[Index, ...] = Field(("gosi", "csi"), max_length=3)
    seeds: tuple[Seed, ...] = Field(
        (0, 1, 2), max_length=MAX_RANDOM, description="seeds of the random orders"
    )
    fractions: tuple[Annotated[float, Field(ge=0.0, le=1.0)], ...] = Field(
        DEFAULT_FRACTIONS, min_length=1, max_length=1001
    )
    mode: Mode = "zero"
    point: Point = Field(
        "auto",
        description="ablate after the BatchNorm that reads each layer (bn, the paper's), at "
        "the layer's own output (relu), or auto: after BatchNorm where there is one",
    )
    include_dead: bool = Field(
        True,
        description="grating-silent units (silent to every grating, yet most answer natural "
        "images) take part in the median split; false leaves them out",
    )
    random_halves: int = Field(
        100,
        ge=0,
        le=1000,
        description="random halves of each layer (as many units as the top half, from the "
        "same units) that the median split's halves are ranked among",
    )
    matched_controls: bool = Field(
        True,
        description="also split each layer into halves matched on mean activation, "
        "BatchNorm gain and outgoing weight norm (cnn7), the higher-scoring unit of each "
        "matched pair on top: does selectivity matter beyond those properties?",
    )
    chunk_images: int = Field(2000, ge=1, le=1_000_000)
    block_images: int = Field(
        500,
        ge=0,
        le=1_000_000,
        description="a service sweep's task is one layer on this many images (0: all of them)",
    )
    format: TableFormat = "csv"


class InvarianceSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    layers: tuple[LayerName, ...] = Field(
        ("layer4", "layer5", "layer6", "fc1"), min_length=1, max_length=MAX_LAYERS
    )
    ablate_layers: tuple[LayerName, ...] = Field(
        ("layer1", "layer2"), min_length=1, max_length=MAX_LAYERS
    )
    by: Index = "gosi"
    stimulus: Literal["gratings", "bars"] = "gratings"
    shift: int = Field(
        3, ge=0, le=64, description="pixels; images move by (k,0), (0,k), (-k,0), (0,-k)"
    )
    padding: Padding = "zeros"
    seeds: tuple[Seed, ...] = Field(
        (0, 1, 2), max_length=MAX_RANDOM, description="seeds of the size-matched random ablations"
    )
    damage_candidates: int = Field(
        50,
        ge=0,
        le=1000,
        description="random sets of the top half's size whose damage (cross-entropy increase "
        "on the test images) is measured to find the damage-matched ablations",
    )
    damage_matched: int = Field(
        3,
        ge=0,
        le=100,
        description="of those, the ones closest in damage to the top half's ablation, whose "
        "shift-invariance is measured beside it (0: none)",
    )
    mode: Mode = "zero"
    point: Point = "auto"  # as AblateSpec.point
    include_dead: bool = True  # as AblateSpec.include_dead
    batch_size: int = Field(500, ge=1, le=65_536)
    format: TableFormat = "csv"


class SweepJob(Inputs):
    """Sweep ablations of the network's layers, units ordered by the `scores` table (an
    `orisel tune` output's units file): one chunk job per (layer, block of images)."""

    TASK = SWEEP_TASK

    task: Literal["sweep"] = "sweep"
    scores: ArtifactRef
    ablate: AblateSpec = AblateSpec()


class ChunkJob(JobSpec):
    """One layer of its parent sweep on the images [block[0], block[1])."""

    TASK = CHUNK_TASK

    layer: LayerName
    block: tuple[Annotated[int, Field(ge=0)], Annotated[int, Field(ge=0)]]


class InvarianceJob(Inputs):
    """Test the network's shift-invariance with units ablated by the `scores` table."""

    TASK = INVARIANCE_TASK

    task: Literal["invariance"] = "invariance"
    scores: ArtifactRef
    invariance: InvarianceSpec = InvarianceSpec()
