"""The training term's gOSI: the number tune reports (recomputed here by hand from the
responses), its gradient against finite differences, and its sub-grid of the gratings."""

from __future__ import annotations

import cmath
import math

import numpy as np
import pytest
import torch
from torch import nn

from orisel.kernel.errors import InvalidArgument
from orisel.science.selectivity import (
    evenly,
    grating_subset,
    layer_responses,
    mean_live,
    unit_gosi,
)
from orisel.science.stimuli import gratings
from tests.science.filters import centre_surround, filter_bank_layer, gabor

THETA = np.arange(12) * math.pi / 12


def by_hand(r: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """gOSI of each unit of (stimuli, units) responses, written out loop by loop from the
    paper's definition: rectify, max over phase, the condition with the largest response,
    then |sum R exp(2i theta)| / sum R."""
    o, c, n = shape
    out = []
    for u in range(r.shape[1]):
        resp = np.maximum(r[:, u], 0.0).reshape(o, c, n)
        best, best_c = -1.0, 0
        for ci in range(c):
            peak = max(resp[oi, ci, ni] for oi in range(o) for ni in range(n))
            if peak > best:
                best, best_c = peak, ci
        curve = [max(resp[oi, best_c, ni] for ni in range(n)) for oi in range(o)]
        total = sum(curve)
        z = sum(v * cmath.exp(2j * math.pi * k / o) for k, v in enumerate(curve))
        out.append(abs(z) / total if total > 0 else 0.0)
    return np.array(out)


def _bank() -> nn.Sequential:
    filters = [gabor(15, t, period=6, sigma_along=4, sigma_across=1.5) for t in THETA[::3]]
    return filter_bank_layer([*filters, centre_surround(15)])


def _inputs(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(images[:, None].repeat(3, 1) - 0.5)  # centred on mean grey


def test_hand_made_filters_have_the_gosi_computed_by_hand() -> None:
    stim = gratings(32)
    x = _inputs(stim.render(np.arange(len(stim))))
    r = layer_responses(_bank(), x, ["1"])["1"]
    g, live = unit_gosi(r, stim.shape)
    want = by_hand(r.detach().numpy().astype(np.float64), stim.shape)
    np.testing.assert_allclose(g.detach().numpy(), want, rtol=1e-5, atol=1e-6)
    assert g[:4].min() > 0.8  # Gabors: selective
    assert g[4] < 0.05  # the isotropic centre-surround
    assert live.all()
    assert float(mean_live(g, live).detach()) == pytest.approx(want.mean(), rel=1e-5)


def test_a_dead_unit_scores_zero_and_is_left_out_of_the_mean() -> None:
    r = torch.zeros(12 * 2 * 2, 2, dtype=torch.float64)
    r[0, 0] = 1.0  # unit 0 answers one grating only: gOSI 1; unit 1 never answers
    g, live = unit_gosi(r, (12, 2, 2))
    assert g.tolist() == [1.0, 0.0]
    assert live.tolist() == [True, False]
    assert float(mean_live(g, live)) == 1.0
    assert float(mean_live(torch.zeros(3), torch.zeros(3, dtype=torch.bool))) == 0.0


class _Tiny(nn.Module):
    """conv -> ReLU -> conv -> ReLU (`act`, the layer read), its first convolution's weights
    set from outside so they can be the inputs of a finite-difference check."""

    def __init__(self) -> None:
        super().__init__()
        self.act = nn.ReLU()
        self.w1 = self.b1 = torch.empty(0)
        self.w2 = torch.randn(2, 3, 3, 3, dtype=torch.float64)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(nn.functional.conv2d(x, self.w1, self.b1))
        out: torch.Tensor = self.act(nn.functional.conv2d(h, self.w2))
        return out


def test_the_gradient_matches_finite_differences() -> None:
    torch.manual_seed(0)
    stim = gratings(12, n_phases=2, n_frequencies=2)
    x = _inputs(stim.render(np.arange(len(stim)))).double()
    tiny = _Tiny()
    weight = torch.randn(3, 3, 5, 5, dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(3, dtype=torch.float64, requires_grad=True)

    def term(w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        tiny.w1, tiny.b1 = w, b
        return mean_live(*unit_gosi(layer_responses(tiny, x, ["act"])["act"], stim.shape))

    value = term(weight, bias)
    assert 0 < float(value) < 1
    grad = torch.autograd.grad(value, (weight, bias))
    assert all(float(g.abs().sum()) > 0 for g in grad)
    assert torch.autograd.gradcheck(term, (weight, bias), eps=1e-6, atol=1e-8, rtol=1e-5)


def test_the_sub_grid_is_tunes_own_stimuli() -> None:
    stim = gratings(16)
    index, shape = grating_subset(stim, 3, 2)
    assert shape == (12, 3, 2)
    o, c, n = np.unravel_index(index, stim.shape)
    assert sorted(set(c.tolist())) == [1, 4, 7]  # the middles of the thirds of 9
    assert sorted(set(n.tolist())) == [1, 3]
    # In the set's own order: orientation, then condition, then nuisance.
    assert (np.diff(index) > 0).all()
    assert (o.reshape(shape)[:, 0, 0] == np.arange(12)).all()
    full, full_shape = grating_subset(stim, 9, 4)
    assert full_shape == stim.shape
    assert full.tolist() == list(range(len(stim)))


def test_evenly_refuses_more_than_there_are() -> None:
    assert evenly(9, 1).tolist() == [4]
    assert evenly(4, 4).tolist() == [0, 1, 2, 3]
    assert evenly(9, 2).tolist() == [2, 6]
    with pytest.raises(InvalidArgument, match="subset"):
        evenly(4, 5)


def test_a_layer_the_pass_never_reaches_is_refused() -> None:
    tiny = _Tiny()  # its `unused` module is never called
    tiny.add_module("unused", nn.ReLU())
    tiny.w1, tiny.b1 = torch.zeros(3, 3, 5, 5).double(), torch.zeros(3).double()
    with pytest.raises(InvalidArgument, match="select_layers"):
        layer_responses(tiny, torch.zeros(1, 3, 12, 12).double(), ["act", "unused"])
