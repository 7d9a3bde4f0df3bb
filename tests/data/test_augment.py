from __future__ import annotations

from typing import Literal

import numpy as np
import torch

from orisel.data.augment import random_shift_flip


def _candidates(img: np.ndarray, s: int, fill: str) -> list[np.ndarray]:
    """Every shift in [-s, s]^2, with and without a flip, computed the slow, obvious way."""
    _c, h, w = img.shape
    mode: Literal["edge", "constant"] = "edge" if fill == "nearest" else "constant"
    padded = np.pad(img, ((0, 0), (s, s), (s, s)), mode=mode)
    out = []
    for dy in range(-s, s + 1):
        for dx in range(-s, s + 1):
            shifted = padded[:, s - dy : s - dy + h, s - dx : s - dx + w]
            out += [shifted, shifted[:, :, ::-1]]
    return out


def _check(fill: str) -> None:
    x = torch.randn(64, 3, 8, 8)
    out = random_shift_flip(x, 2, True, torch.Generator().manual_seed(0), fill)  # type: ignore[arg-type]
    hits = []
    for a, b in zip(x.numpy(), out.numpy(), strict=True):
        matches = [i for i, cand in enumerate(_candidates(a, 2, fill)) if np.array_equal(cand, b)]
        assert matches, "output is not a shifted/flipped copy of its input"
        hits.append(matches[0])
    flipped = np.mean([h % 2 for h in hits])
    assert 0.25 < flipped < 0.75
    assert len({h // 2 for h in hits}) > 10  # many different shifts drawn


def test_every_output_is_a_shift_and_flip_nearest_fill() -> None:
    _check("nearest")


def test_every_output_is_a_shift_and_flip_zero_fill() -> None:
    _check("zeros")


def test_no_shift_no_flip_is_identity() -> None:
    x = torch.randn(8, 3, 5, 5)
    out = random_shift_flip(x, 0, False, torch.Generator().manual_seed(0))
    assert torch.equal(out, x)


def test_same_generator_seed_same_batch() -> None:
    x = torch.randn(16, 3, 8, 8)
    a = random_shift_flip(x, 3, True, torch.Generator().manual_seed(5))
    b = random_shift_flip(x, 3, True, torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
