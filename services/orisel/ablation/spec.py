"""What an ablation sweep and a shift-invariance test are asked to do: validated specs that
front ends check at Submit without importing torch."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from orisel.core.tables import TableFormat
from orisel.science.names import Index, Mode, Padding, Point

DEFAULT_FRACTIONS = tuple(round(0.1 * i, 1) for i in range(11))


class AblateSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    layers: tuple[str, ...] = ("layer1", "layer2", "layer3", "layer4", "layer5", "layer6")
    stimulus: Literal["gratings", "bars"] = "gratings"
    orders: tuple[Index, ...] = ("gosi", "csi")
    seeds: tuple[int, ...] = Field((0, 1, 2), description="seeds of the random orders")
    fractions: tuple[Annotated[float, Field(ge=0.0, le=1.0)], ...] = DEFAULT_FRACTIONS
    mode: Mode = "zero"
    point: Point = Field("bn", description="ablate after BatchNorm (the paper) or after ReLU")
    include_dead: bool = Field(False, description="let dead units into the median split")
    chunk_images: int = Field(2000, ge=1)
    format: TableFormat = "csv"


class InvarianceSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    layers: tuple[str, ...] = ("layer4", "layer5", "layer6", "fc1")
    ablate_layers: tuple[str, ...] = ("layer1", "layer2")
    by: Index = "gosi"
    stimulus: Literal["gratings", "bars"] = "gratings"
    shift: int = Field(3, ge=0, description="pixels; images move by (k,0), (0,k), (-k,0), (0,-k)")
    padding: Padding = "zeros"
    seeds: tuple[int, ...] = Field(
        (0, 1, 2), description="seeds of the size-matched random ablations"
    )
    mode: Mode = "zero"
    point: Point = "bn"
    include_dead: bool = False
    batch_size: int = Field(500, ge=1)
    format: TableFormat = "csv"
