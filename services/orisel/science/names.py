"""The names analyses are configured by, kept apart from the numerical code so that specs
(and the front ends that validate them) never import torch."""

from __future__ import annotations

from typing import Literal

Reduction = Literal["mean", "centre", "max"]  # how a unit's feature map becomes one number
Mode = Literal["zero", "mean"]  # what an ablated unit outputs
Point = Literal["bn", "relu"]  # where units are ablated: after BatchNorm or after ReLU
Padding = Literal["zeros", "circular", "reflect", "replicate"]  # shifted-in pixels
Index = Literal["gosi", "osi", "csi"]  # the indices units can be ordered by
Fill = Literal["nearest", "zeros"]  # pixels shifted in by training augmentation
