"""Known answers: hand-computed curves, hand-made filters, and the null's p-values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from orisel.kernel.errors import InvalidArgument
from orisel.kernel.names import Reduction
from orisel.models import CNN7
from orisel.science.indices import (
    bandwidth,
    class_selectivity,
    gosi,
    null_gosi,
    orientation_range,
    osi,
    permutation_pvalue,
    preferred_orientation,
    tuning,
)
from orisel.science.responses import forward_collect, stimulus_batches
from orisel.science.stimuli import StimulusSet, bars, gratings
from tests.science.filters import centre_surround, filter_bank_layer, gabor

THETA = np.arange(12) * math.pi / 12
ONE_HOT = np.eye(12)[0]
FLAT = np.ones(12)
COSINE = 1 + np.cos(2 * THETA)  # sum 12, resultant 6
TWO_PEAKS = np.eye(12)[0] + 0.5 * np.eye(12)[6]


def test_gosi_exact() -> None:
    curves = np.stack([ONE_HOT, FLAT, COSINE, TWO_PEAKS, np.zeros(12)])
    np.testing.assert_allclose(gosi(curves), [1.0, 0.0, 0.5, 1 / 3, 0.0], atol=1e-12)


def test_osi_exact() -> None:
    curves = np.stack([ONE_HOT, FLAT, COSINE, TWO_PEAKS, np.zeros(12)])
    np.testing.assert_allclose(osi(curves), [1.0, 0.0, 1.0, 1 / 3, 0.0], atol=1e-12)


def test_bandwidth_exact() -> None:
    curves = np.stack([ONE_HOT, COSINE, FLAT, np.zeros(12)])
    bw = bandwidth(curves)
    # One-hot: the line from 1 (0 deg) to 0 (15 deg) crosses 1/sqrt(2) at 15 (1 - 1/sqrt(2)).
    assert bw[0] == pytest.approx(15 * (1 - 1 / math.sqrt(2)))
    # 1 + cos(2 theta): samples 1.5 at 30 deg and 1.0 at 45 deg straddle sqrt(2).
    assert bw[1] == pytest.approx(30 + 15 * (1.5 - math.sqrt(2)) / 0.5)
    assert bw[2] == 90.0  # never falls: untuned
    assert math.isnan(bw[3])


def test_bandwidth_is_averaged_over_both_sides() -> None:
    curve = np.zeros(12)
    curve[[0, 1]] = [1.0, 0.9]  # right side stays above threshold one step longer
    right = 15 + 15 * (0.9 - 1 / math.sqrt(2)) / 0.9
    left = 15 * (1 - 1 / math.sqrt(2))
    assert bandwidth(curve[None])[0] == pytest.approx((right + left) / 2)


def test_preferred_orientation() -> None:
    curves = np.stack([np.roll(ONE_HOT, 5), np.zeros(12)])
    pref = preferred_orientation(curves)
    assert pref[0] == 75.0
    assert math.isnan(pref[1])


def test_orientation_range_across_conditions() -> None:
    by_cond = np.zeros((3, 12, 3))
    by_cond[0, [0, 1, 11], [0, 1, 2]] = 1.0  # prefs 0, 15 and 165 deg: arc 165 -> 15 = 30 deg
    by_cond[1, [2, 2, 9], [0, 1, 2]] = [1.0, 0.8, 0.4]  # third below half max: ignored
    by_cond[2] = 0.0  # dead
    r = orientation_range(by_cond)
    assert r[0] == pytest.approx(30.0)
    assert r[1] == pytest.approx(0.0)
    assert math.isnan(r[2])


def test_opposite_preferences_span_the_half_circle() -> None:
    by_cond = np.zeros((1, 12, 2))
    by_cond[0, [0, 6], [0, 1]] = 1.0
    assert orientation_range(by_cond)[0] == pytest.approx(90.0)


def test_tuning_takes_max_over_nuisance_and_the_preferred_condition() -> None:
    shape = (12, 3, 4)
    r = np.zeros((*shape, 2))
    r[4, 1, 2, 0] = 5.0  # unit 0: orientation 4 at condition 1, one phase only
    r[:, 2, :, 0] = 1.0  # weaker, untuned at condition 2
    t = tuning(r.reshape(-1, 2), shape)
    assert t.preferred_condition[0] == 1
    np.testing.assert_array_equal(t.curves[0], np.eye(12)[4] * 5)
    assert t.dead.tolist() == [False, True]
    assert gosi(t.curves).tolist() == [1.0, 0.0]


def test_tuning_rejects_a_mismatched_array() -> None:
    with pytest.raises(
        InvalidArgument, match=r"responses: must be an array of shape \(432, units\)"
    ):
        tuning(np.zeros((100, 3)), (12, 9, 4))


def test_class_selectivity_exact() -> None:
    labels = np.repeat(np.arange(4), 5)
    r = np.zeros((20, 3))
    r[:, 0] = np.array([3.0, 1.0, 1.0, 1.0])[labels]  # mu_max 3, mu_rest 1 -> 0.5
    r[:, 1] = 2.0  # the same for every class -> 0
    csi = class_selectivity(r, labels, 4)
    np.testing.assert_allclose(csi, [0.5, 0.0, 0.0], atol=1e-6)


def test_class_selectivity_one_class_only_is_one() -> None:
    labels = np.repeat(np.arange(10), 3)
    r = (labels == 7).astype(float)[:, None]
    assert class_selectivity(r, labels, 10)[0] == pytest.approx(1.0, abs=1e-6)


# -- hand-made filters ----------------------------------------------------------------------
def _filter_responses(stimuli: StimulusSet, reduction: Reduction = "mean") -> np.ndarray:
    filters = [gabor(15, t, period=6, sigma_along=4, sigma_across=1.5) for t in THETA]
    model = filter_bank_layer([*filters, centre_surround(15)])

    def pre(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(a[:, None].repeat(3, 1) - 0.5)  # centre on mean grey

    batches = stimulus_batches(stimuli.render, len(stimuli), 512, pre)
    return forward_collect(model, batches, ["1"], reduction)["1"]


def test_gabors_are_selective_for_their_orientation_gratings() -> None:
    g = gratings(32)
    t = tuning(_filter_responses(g), g.shape)
    index = gosi(t.curves)
    assert index[:12].min() > 0.8
    assert index[12] < 0.05  # the isotropic centre-surround filter
    np.testing.assert_array_equal(preferred_orientation(t.curves)[:12], np.arange(0, 180, 15))
    assert (osi(t.curves)[:12] > 0.9).all()
    assert (bandwidth(t.curves)[:12] < 20).all()


def test_gabors_are_selective_for_their_orientation_bars() -> None:
    b = bars(32)
    t = tuning(_filter_responses(b), b.shape)
    index = gosi(t.curves)
    # Bars are broadband: a bar across a Gabor still drives it a little, so gOSI stays below
    # the gratings' value, yet far above the isotropic filter's and at the right angle.
    assert index[:12].min() > 0.4
    assert index[12] < 0.05
    np.testing.assert_array_equal(preferred_orientation(t.curves)[:12], np.arange(0, 180, 15))


# -- the null control --------------------------------------------------------------------------
def test_pvalues_are_uniform_for_exchangeable_responses() -> None:
    rng = np.random.default_rng(0)
    shape = (12, 9, 4)
    r = rng.exponential(size=(432, 400))
    observed = gosi(tuning(r, shape).curves)
    p = permutation_pvalue(observed, null_gosi(r, shape, 199, seed=1))
    assert 0.42 < p.mean() < 0.58
    assert 0.02 < np.mean(p < 0.1) < 0.18
    hist = np.histogram(p, bins=5, range=(0, 1))[0]
    assert hist.min() > 50  # no bin empty or dominant (expected 80 each)


def test_random_cnn7_shuffled_responses_are_null() -> None:
    torch.manual_seed(0)
    model = CNN7()
    g = gratings(32)
    order = np.random.default_rng(3).permutation(len(g))

    def pre(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(a[:, None].repeat(3, 1) - 0.5)

    r = forward_collect(
        model,
        stimulus_batches(lambda i: g.render(order[i]), len(g), 216, pre),
        ["layer1", "layer2"],
    )
    resp = np.concatenate([r["layer1"], r["layer2"]], axis=1)
    observed = gosi(tuning(resp, g.shape).curves)
    p = permutation_pvalue(observed, null_gosi(resp, g.shape, 199, seed=2))
    assert 0.35 < p.mean() < 0.65
    assert np.mean(p < 0.05) < 0.15


def test_selective_units_get_small_pvalues() -> None:
    g = gratings(32)
    r = _filter_responses(g)
    p = permutation_pvalue(gosi(tuning(r, g.shape).curves), null_gosi(r, g.shape, 99, seed=0))
    assert (p[:12] == 0.01).all()  # no permutation reaches the Gabors' gOSI
    assert p[12] > 0.05


def test_a_unit_answering_one_stimulus_is_never_significant() -> None:
    """Every shuffle of a one-stimulus unit has gOSI 1, like the unit itself: p must be 1.
    The float32 null lands within a few ulps below 1 (p was 0.81 with an exact comparison)."""
    o, c, n = 12, 9, 4
    r = np.zeros((o * c * n, 3))
    r[5, 0], r[17, 1], r[100, 2] = 3.7, 0.3, 123.4567
    null = null_gosi(r, (o, c, n), 200, seed=0)
    np.testing.assert_array_equal(permutation_pvalue(np.ones(3), null), np.ones(3))


def test_the_orientation_only_null_shuffles_orientations_within_each_cell() -> None:
    """Each shuffle keeps every (condition, nuisance) cell's responses and moves them only
    across orientations; exchangeable responses get uniform p-values, and Gabors (tuned in
    every cell) the smallest p the shuffles allow."""
    from orisel.science.indices import _shuffles

    o, c, n = 6, 3, 2
    stimuli = np.arange(o * c * n).reshape(o, c, n)
    orders = _shuffles(50, (o, c, n), torch.Generator().manual_seed(0), orientation_only=True)
    for order in orders.numpy():
        shown = order.reshape(o, c, n)
        for ci in range(c):
            for ni in range(n):
                assert sorted(shown[:, ci, ni]) == sorted(stimuli[:, ci, ni])
    assert len({tuple(x) for x in orders.numpy()}) > 40  # shuffled, not fixed
    rng = np.random.default_rng(0)
    shape = (12, 9, 4)
    r = rng.exponential(size=(432, 400))
    observed = gosi(tuning(r, shape).curves)
    p = permutation_pvalue(observed, null_gosi(r, shape, 199, seed=1, orientation_only=True))
    assert 0.42 < p.mean() < 0.58
    g = gratings(32)
    r = _filter_responses(g)
    null = null_gosi(r, g.shape, 99, seed=0, orientation_only=True)
    p = permutation_pvalue(gosi(tuning(r, g.shape).curves), null)
    assert (p[:12] == 0.01).all()
    assert p[12] > 0.05
