"""The names analyses are configured by, kept apart from the numerical code so that specs
(and the front ends that validate them) never import torch."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

Reduction = Literal["mean", "centre", "max"]  # how a unit's feature map becomes one number
Tokens = Literal["mean", "cls"]  # how a token layer's (tokens, units) become one number per unit
Mode = Literal["zero", "mean"]  # what an ablated unit outputs
# Where units are ablated: after the BatchNorm that reads the layer (the paper's), at the
# layer's own output, or "auto": after BatchNorm where the network has one there.
Point = Literal["auto", "bn", "relu"]
Padding = Literal["zeros", "circular", "reflect", "replicate"]  # shifted-in pixels
Index = Literal["gosi", "osi", "csi"]  # the indices units can be ordered by
Fill = Literal["nearest", "zeros"]  # pixels shifted in by training augmentation

# Bounds every spec shares, so no request can ask for unbounded work or memory.
MAX_SEED = 2**63 - 1
MAX_LAYERS = 64
LayerName = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:\-]+$")]
Seed = Annotated[int, Field(ge=0, le=MAX_SEED)]
