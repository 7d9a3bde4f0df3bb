"""Hand-made filters with known orientation tuning, for known-answer tests."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    c = (size - 1) / 2
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float64)
    return cols - c, c - rows  # x right, y up: the stimuli's convention


def gabor(
    size: int, theta: float, period: float, sigma_along: float, sigma_across: float
) -> np.ndarray:
    """Zero-mean Gabor whose stripes run along `theta` (radians, counter-clockwise)."""
    x, y = _grid(size)
    along = x * math.cos(theta) + y * math.sin(theta)
    across = -x * math.sin(theta) + y * math.cos(theta)
    env = np.exp(-(along**2) / (2 * sigma_along**2) - across**2 / (2 * sigma_across**2))
    g = env * np.cos(2 * math.pi * across / period)
    return g - env * (g.sum() / env.sum())


def centre_surround(size: int, sigma_c: float = 1.5, sigma_s: float = 3.0) -> np.ndarray:
    x, y = _grid(size)
    r2 = x**2 + y**2
    dog = np.exp(-r2 / (2 * sigma_c**2)) / sigma_c**2 - np.exp(-r2 / (2 * sigma_s**2)) / sigma_s**2
    return dog - dog.mean()


def filter_bank_layer(filters: list[np.ndarray]) -> nn.Sequential:
    """conv (the filters on every colour channel) -> ReLU, as one 'layer'."""
    k = filters[0].shape[0]
    conv = nn.Conv2d(3, len(filters), k, bias=True)
    with torch.no_grad():
        w = torch.tensor(np.stack(filters), dtype=torch.float32)[:, None].repeat(1, 3, 1, 1) / 3
        conv.weight.copy_(w)
        assert conv.bias is not None
        conv.bias.zero_()
    return nn.Sequential(conv, nn.ReLU())
