from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from orisel.kernel.errors import InvalidArgument
from orisel.models import CNN7
from orisel.science.hooks import ablated
from orisel.science.invariance import (
    shift_images,
    shift_invariance,
    unit_correlation,
    unit_invariance,
)


def test_shift_moves_content_and_fills_the_border() -> None:
    x = torch.arange(25.0).view(1, 1, 5, 5)
    right = shift_images(x, 2, 0, "zeros")
    assert torch.equal(right[0, 0, :, 2:], x[0, 0, :, :3])
    assert (right[0, 0, :, :2] == 0).all()
    down = shift_images(x, 0, 1, "replicate")
    assert torch.equal(down[0, 0, 1:], x[0, 0, :4])
    assert torch.equal(down[0, 0, 0], x[0, 0, 0])
    up_left = shift_images(x, -1, -1, "circular")
    assert torch.equal(up_left, torch.roll(x, (-1, -1), (2, 3)))
    assert torch.equal(shift_images(x, 0, 0, "reflect"), x)


def test_bad_shift_arguments() -> None:
    x = torch.zeros(1, 1, 5, 5)
    with pytest.raises(InvalidArgument, match=r"^shift: must be smaller than the image"):
        shift_images(x, 5, 0)
    with pytest.raises(InvalidArgument, match=r"^padding: must be one of"):
        shift_images(x, 1, 0, "mirror")  # type: ignore[arg-type]


def test_unit_correlation() -> None:
    a = np.random.default_rng(0).random((50, 3))
    b = a.copy()
    b[:, 1] = -a[:, 1]
    b[:, 2] = 1.0
    r = unit_correlation(a, b)
    assert r[0] == pytest.approx(1.0)
    assert r[1] == pytest.approx(-1.0)
    assert np.isnan(r[2])


@pytest.fixture(scope="module")
def net_and_images() -> tuple[CNN7, torch.Tensor]:
    torch.manual_seed(0)
    return CNN7().eval(), torch.randn(40, 3, 32, 32, generator=torch.Generator().manual_seed(2))


def test_zero_shift_is_perfectly_invariant(net_and_images: tuple[CNN7, torch.Tensor]) -> None:
    net, x = net_and_images
    res = shift_invariance(net, x, ["layer5", "layer6"], [(0, 0), (3, 0)], batch_size=16)
    assert res[0].correlation == {"layer5": pytest.approx(1.0), "layer6": pytest.approx(1.0)}
    assert res[0].consistency == 1.0
    assert res[1].correlation["layer5"] < 1.0


def test_ablation_context_is_applied(net_and_images: tuple[CNN7, torch.Tensor]) -> None:
    net, x = net_and_images
    # With bn6 entirely zeroed every image gets the same logits, shifted or not.
    res = shift_invariance(net, x, ["layer5"], [(3, 3)], ablation=ablated(net, "bn6", range(128)))
    assert res[0].consistency == 1.0
    assert shift_invariance(net, x, ["layer5"], [(3, 3)])[0].consistency < 1.0


def test_the_unpooled_score_tells_an_invariant_layer_from_an_equivariant_one() -> None:
    """A layer that averages over space after a circular convolution is invariant to circular
    shifts by construction: score 1. The image itself, read unpooled, is equivariant: on
    white noise a shift moves each map as far as another image would (score about 0), while
    its spatial mean - the pooled correlation - is unchanged by the same shift (1)."""
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 4, 3, padding=1, padding_mode="circular")
    model = nn.Sequential(
        nn.Identity(), conv, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 10)
    ).eval()
    x = torch.randn(400, 3, 8, 8)
    (res,) = shift_invariance(model, x, ["0", "3"], [(2, 1)], padding="circular")
    assert res.invariance["3"] == pytest.approx(1.0, abs=1e-5)
    assert abs(res.invariance["0"]) < 0.05
    assert res.correlation["0"] == pytest.approx(1.0, abs=1e-5)
    assert res.consistency == 1.0
    maps = np.random.default_rng(0).normal(size=(50, 2, 9))
    np.testing.assert_allclose(unit_invariance(maps, maps), 1.0)
    constant = np.ones((5, 1, 4))
    assert np.isnan(unit_invariance(constant, constant + 1)).all()
