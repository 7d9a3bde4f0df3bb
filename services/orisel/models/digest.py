"""A network's weights as one checksum, for the summaries of networks orisel did not train
(a checkpoint has its file's sha256; a module built in Python has no file at all)."""

from __future__ import annotations

import hashlib

import torch
from torch import nn


def state_sha256(model: nn.Module) -> str:
    """sha256 over every parameter and buffer: its name, dtype and shape, then its bytes
    (little-endian, as stored on the CPU), in state-dict order. Equal for equal weights
    whatever file or device they came from."""
    h = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}\0{t.dtype}\0{tuple(t.shape)}\0".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()
