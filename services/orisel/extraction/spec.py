"""Which stimuli, which layers and how responses are reduced: the extraction spec, light
enough for front ends (no torch)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from orisel.science.names import MAX_LAYERS, LayerName, Reduction


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
