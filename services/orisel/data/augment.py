"""Batch augmentation on tensors: random integer shifts and horizontal flips in one gather."""

from __future__ import annotations

import torch

from orisel.core.names import Fill


def random_shift_flip(
    x: torch.Tensor,
    max_shift: int,
    flip: bool,
    generator: torch.Generator,
    fill: Fill = "nearest",
) -> torch.Tensor:
    """Shift each NCHW image by integers in [-max_shift, max_shift] (x and y) and flip half.

    Keras' ImageDataGenerator (the paper's) fills uncovered pixels from the nearest edge;
    `fill="zeros"` fills them with 0 instead (the mean pixel once the mean image is subtracted).
    Random draws come from `generator` on the CPU, so results do not depend on the device.
    """
    b, c, h, w = x.shape
    dy = torch.randint(-max_shift, max_shift + 1, (b,), generator=generator)
    dx = torch.randint(-max_shift, max_shift + 1, (b,), generator=generator)
    flips = torch.rand(b, generator=generator) < 0.5 if flip else torch.zeros(b, dtype=torch.bool)
    src_rows = torch.arange(h)[None, :] - dy[:, None]
    src_cols = torch.arange(w)[None, :] - dx[:, None]
    src_cols = torch.where(flips[:, None], src_cols.flip(1), src_cols)
    rows = src_rows.clamp(0, h - 1).to(x.device)
    cols = src_cols.clamp(0, w - 1).to(x.device)
    out = x.gather(2, rows[:, None, :, None].expand(b, c, h, w))
    out = out.gather(3, cols[:, None, None, :].expand(b, c, h, w))
    if fill == "zeros":
        valid_r = ((src_rows >= 0) & (src_rows < h)).to(x.device)
        valid_c = ((src_cols >= 0) & (src_cols < w)).to(x.device)
        out = out * (valid_r[:, None, :, None] & valid_c[:, None, None, :]).to(out.dtype)
    return out
