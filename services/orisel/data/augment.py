"""Batch augmentation on tensors: random integer shifts and horizontal flips in one gather."""

from __future__ import annotations

import torch

from orisel.kernel.names import Fill


def shift_flip_sources(
    b: int, h: int, w: int, max_shift: int, flip: bool, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """The source row (b, h) and column (b, w) of every output pixel, unclamped, on the CPU.

    Drawn from `generator` on the CPU, so results do not depend on the device; a population
    draws each network's with its own generator and applies them all in one gather.
    """
    dy = torch.randint(-max_shift, max_shift + 1, (b,), generator=generator)
    dx = torch.randint(-max_shift, max_shift + 1, (b,), generator=generator)
    flips = torch.rand(b, generator=generator) < 0.5 if flip else torch.zeros(b, dtype=torch.bool)
    src_rows = torch.arange(h)[None, :] - dy[:, None]
    src_cols = torch.arange(w)[None, :] - dx[:, None]
    return src_rows, torch.where(flips[:, None], src_cols.flip(1), src_cols)


def apply_shift_flip(
    x: torch.Tensor, src_rows: torch.Tensor, src_cols: torch.Tensor, fill: Fill = "nearest"
) -> torch.Tensor:
    """Move the pixels of NCHW `x` as `shift_flip_sources` drew them.

    Keras' ImageDataGenerator (the paper's) fills uncovered pixels from the nearest edge;
    `fill="zeros"` fills them with 0 instead (the mean pixel once the mean image is subtracted).
    """
    b, c, h, w = x.shape
    rows = src_rows.clamp(0, h - 1).to(x.device, non_blocking=True)
    cols = src_cols.clamp(0, w - 1).to(x.device, non_blocking=True)
    out = x.gather(2, rows[:, None, :, None].expand(b, c, h, w))
    out = out.gather(3, cols[:, None, None, :].expand(b, c, h, w))
    if fill == "zeros":
        valid_r = ((src_rows >= 0) & (src_rows < h)).to(x.device)
        valid_c = ((src_cols >= 0) & (src_cols < w)).to(x.device)
        out = out * (valid_r[:, None, :, None] & valid_c[:, None, None, :]).to(out.dtype)
    return out


def random_shift_flip(
    x: torch.Tensor,
    max_shift: int,
    flip: bool,
    generator: torch.Generator,
    fill: Fill = "nearest",
) -> torch.Tensor:
    """Shift each NCHW image by integers in [-max_shift, max_shift] (x and y) and flip half."""
    b, _, h, w = x.shape
    rows, cols = shift_flip_sources(b, h, w, max_shift, flip, generator)
    return apply_shift_flip(x, rows, cols, fill)
