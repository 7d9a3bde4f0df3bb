"""N cnn7 networks as one module, for training a population in one step.

Each convolution is a grouped convolution (network k owns group k), BatchNorm normalises
N x C channels (exactly each network's own statistics) and the dense layers are batched
matrix products, so the stack computes every network's own output, and each network's
gradient is its own when the loss is the sum of the networks' losses.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from orisel.models.cnn7 import BN_EPS, BN_MOMENTUM, CNN7, CONV_LAYERS


def _key(name: str) -> str:
    return name.replace(".", "__")


class StackedCNN7(nn.Module):
    """N cnn7 networks as one module: every tensor of cnn7's state dict stacked on a new
    first dimension. forward takes (N, B, C, H, W) and returns (N, B, classes)."""

    def __init__(self, nets: Sequence[CNN7]) -> None:
        super().__init__()
        self.n = len(nets)
        first = nets[0]
        self.param_names = [name for name, _ in first.named_parameters()]
        self.buffer_names = [name for name, _ in first.named_buffers()]
        for name in self.param_names:
            stacked = torch.stack([dict(n.named_parameters())[name].detach() for n in nets])
            self.register_parameter(_key(name), nn.Parameter(stacked.clone()))
        for name in self.buffer_names:
            stacked = torch.stack([dict(n.named_buffers())[name] for n in nets])
            self.register_buffer(_key(name), stacked.clone())
        self.strides = {name: stride for name, _, stride in CONV_LAYERS}

    def t(self, name: str) -> torch.Tensor:
        tensor: torch.Tensor = getattr(self, _key(name))
        return tensor

    def _bn(self, x: torch.Tensor, i: int) -> torch.Tensor:
        if self.training:
            self.t(f"bn{i}.num_batches_tracked").add_(1)
        return F.batch_norm(
            x,
            self.t(f"bn{i}.running_mean").view(-1),  # views: the update lands in the buffers
            self.t(f"bn{i}.running_var").view(-1),
            self.t(f"bn{i}.weight").reshape(-1),
            self.t(f"bn{i}.bias").reshape(-1),
            self.training,
            BN_MOMENTUM,
            BN_EPS,
        )

    def _conv(self, h: torch.Tensor, i: int) -> torch.Tensor:
        """Convolution i (from 1) with its ReLU, every network's channels at once."""
        name, _, stride = CONV_LAYERS[i - 1]
        w = self.t(f"{name}.weight")
        return F.relu(
            F.conv2d(
                h,
                w.reshape(-1, *w.shape[2:]),
                self.t(f"{name}.bias").reshape(-1),
                stride=stride,
                groups=self.n,
            )
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, b = x.shape[:2]
        h = x.transpose(0, 1).reshape(b, n * x.shape[2], *x.shape[3:])  # network-major channels
        for i in range(1, len(CONV_LAYERS) + 1):
            h = self._bn(self._conv(h, i), i)
        flat = h.reshape(b, n, -1)  # each network's (C, H, W) flattened as torch.flatten does
        z = torch.einsum("bni,noi->bno", flat, self.t("fc1.weight")) + self.t("fc1.bias")
        z = self._bn(F.relu(z).reshape(b, -1), 7).reshape(b, n, -1)
        logits = torch.einsum("bni,noi->bno", z, self.t("fc2.weight")) + self.t("fc2.bias")
        return logits.transpose(0, 1)

    def conv_outputs(self, x: torch.Tensor, layers: int) -> list[torch.Tensor]:
        """The first `layers` convolutions' outputs (cnn7's `layerN`: conv + ReLU) for
        (N, B, C, H, W) inputs, each (N, B, C', H', W'); the pass stops there."""
        n, b = x.shape[:2]
        h = x.transpose(0, 1).reshape(b, n * x.shape[2], *x.shape[3:])
        out = []
        for i in range(1, layers + 1):
            r = self._conv(h, i)
            out.append(r.reshape(b, n, -1, *r.shape[2:]).transpose(0, 1))
            h = self._bn(r, i)
        return out

    @torch.no_grad()
    def copy_into(self, k: int, net: nn.Module) -> None:
        """Network k's weights and statistics into a cnn7 of the same shape."""
        for name, p in net.named_parameters():
            p.copy_(self.t(name)[k])
        for name, buf in net.named_buffers():
            buf.copy_(self.t(name)[k])
