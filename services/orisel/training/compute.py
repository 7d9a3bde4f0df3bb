"""How a training step computes: autocast precision, the process-wide kernel settings a run
asks for, compilation, and evaluation over a whole split."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from orisel.kernel.errors import InvalidArgument
from orisel.training.batches import DeviceData
from orisel.training.config import TrainConfig


def precision(cfg: TrainConfig, device: torch.device) -> contextlib.AbstractContextManager[Any]:
    """The autocast context the config asks for (none in float32)."""
    if cfg.amp == "off":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if cfg.amp == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


@contextlib.contextmanager
def numerics(cfg: TrainConfig, device: torch.device) -> Iterator[None]:
    """The process-wide kernel settings a run asks for, restored when it ends, so a long-lived
    worker's next task starts from the defaults: deterministic algorithms, cuDNN autotuning
    (CUDA, when not deterministic), and TensorFloat-32 only when asked for (cuDNN allows it
    by default, which would make "float32" convolutions TF32 on Ampere and later)."""
    saved = (
        torch.are_deterministic_algorithms_enabled(),
        torch.backends.cudnn.benchmark,
        torch.backends.cuda.matmul.allow_tf32,
        torch.backends.cudnn.allow_tf32,
    )
    torch.use_deterministic_algorithms(cfg.deterministic)
    torch.backends.cudnn.benchmark = device.type == "cuda" and not cfg.deterministic
    torch.backends.cuda.matmul.allow_tf32 = cfg.tf32
    torch.backends.cudnn.allow_tf32 = cfg.tf32
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(saved[0])
        torch.backends.cudnn.benchmark = saved[1]
        torch.backends.cuda.matmul.allow_tf32 = saved[2]
        torch.backends.cudnn.allow_tf32 = saved[3]


def compiled(model: nn.Module, cfg: TrainConfig, device: torch.device) -> Callable[..., Any]:
    """The training forward pass the config asks for: eager, torch.compile'd, or compiled and
    replayed as CUDA graphs (which pays where a step is many small kernels)."""
    if cfg.compile == "off":
        return model
    if cfg.compile == "cudagraphs" and device.type != "cuda":
        raise InvalidArgument("compile", "off or on without CUDA (CUDA graphs)", cfg.compile)
    return torch.compile(model, mode="reduce-overhead" if cfg.compile == "cudagraphs" else None)


@torch.no_grad()
def evaluate(
    model: nn.Module, data: DeviceData, batch_size: int, cfg: TrainConfig, device: torch.device
) -> dict[str, float]:
    """Mean cross-entropy and accuracy over a whole split (eval mode, no augmentation)."""
    was_training = model.training
    model.eval()
    loss = torch.zeros((), device=device, dtype=torch.float64)
    correct = torch.zeros((), device=device, dtype=torch.int64)
    for start in range(0, len(data), batch_size):
        x, y = data.batch(torch.arange(start, min(start + batch_size, len(data)), device=device))
        with precision(cfg, device):
            logits = model(x)
        loss += F.cross_entropy(logits.float(), y, reduction="sum").double()
        correct += (logits.argmax(1) == y).sum()
    model.train(was_training)
    n = max(len(data), 1)
    return {"loss": float(loss) / n, "accuracy": float(correct) / n}
