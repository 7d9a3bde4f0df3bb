"""Where a layer's units are silenced, for the network at hand: after the BatchNorm that reads
the layer where there is one (auto, bn), at the layer's own output otherwise (auto, relu), and
"bn" where no BatchNorm reads the layer is refused instead of silently ablating elsewhere."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from orisel.ablation.sites import ablation_sites
from orisel.extraction.network import Network
from orisel.kernel.errors import InvalidArgument
from orisel.models import CNN7


class KerasStyle(nn.Module):
    """conv -> ReLU -> BatchNorm, the paper's order, under names of the user's choosing."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.act = nn.ReLU()
        self.norm_after = nn.BatchNorm2d(4)
        self.conv2 = nn.Conv2d(4, 4, 3)
        self.norm_before = nn.BatchNorm2d(4)
        self.act2 = nn.ReLU()
        self.head = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm_after(self.act(self.conv(x)))
        x = self.act2(self.norm_before(self.conv2(x)))  # torchvision's order: BN before ReLU
        out: torch.Tensor = self.head(x.mean((2, 3)))
        return out


def test_cnn7_is_ablated_after_batchnorm_as_in_the_paper() -> None:
    layers = ("layer1", "layer3", "fc1")
    for point in ("auto", "bn"):
        got = ablation_sites(Network.from_module(CNN7(), 32), layers, point)
        assert {k: (v.point, v.site) for k, v in got.items()} == {
            "layer1": ("bn", "bn1"),
            "layer3": ("bn", "bn3"),
            "fc1": ("bn", "bn7"),
        }
    relu = ablation_sites(Network.from_module(CNN7(), 32), layers, "relu")
    assert {k: (v.point, v.site) for k, v in relu.items()} == {n: ("relu", n) for n in layers}


def test_auto_finds_the_batchnorm_that_reads_the_layer_and_no_other() -> None:
    got = ablation_sites(Network.from_module(KerasStyle(), 16), ("act", "act2"), "auto")
    assert (got["act"].point, got["act"].site) == ("bn", "norm_after")
    # norm_before runs before act2, so act2 has no after-BatchNorm point: its own output.
    assert (got["act2"].point, got["act2"].site) == ("relu", "act2")


def test_bn_where_no_batchnorm_reads_the_layer_is_refused() -> None:
    with pytest.raises(InvalidArgument, match=r"^point: .*no BatchNorm reads the output of act2"):
        ablation_sites(Network.from_module(KerasStyle(), 16), ("act", "act2"), "bn")
