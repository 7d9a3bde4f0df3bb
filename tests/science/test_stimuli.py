from __future__ import annotations

import math

import numpy as np
import pytest

from orisel.kernel.errors import InvalidArgument
from orisel.science.stimuli import bars, gratings, orientations


def test_paper_grating_set() -> None:
    g = gratings(32)
    assert g.shape == (12, 9, 4)
    assert len(g) == 432
    periods = [c["period_px"] for c in g.conditions]
    assert periods[0] == pytest.approx(40.0)
    assert periods[-1] == pytest.approx(40 / 9)
    assert [n["phase"] for n in g.nuisances] == pytest.approx(
        [0, math.pi / 2, math.pi, 3 * math.pi / 2]
    )
    np.testing.assert_allclose(np.degrees(orientations(12)), np.arange(0, 180, 15))


def test_gratings_are_min_max_scaled_and_deterministic() -> None:
    g = gratings(32)
    imgs = g.render(np.arange(len(g)))
    assert imgs.shape == (432, 32, 32)
    assert imgs.dtype == np.float32
    np.testing.assert_allclose(imgs.min(axis=(1, 2)), 0.0, atol=1e-6)
    np.testing.assert_allclose(imgs.max(axis=(1, 2)), 1.0, atol=1e-6)
    np.testing.assert_array_equal(imgs, g.render(np.arange(len(g))))


def test_grating_orientation_is_the_stripe_direction() -> None:
    g = gratings(32)
    horizontal = g.render(np.array([np.ravel_multi_index((0, 3, 0), g.shape)]))[0]
    vertical = g.render(np.array([np.ravel_multi_index((6, 3, 0), g.shape)]))[0]
    # Horizontal stripes: constant along each row; vertical stripes: constant down each column.
    assert np.ptp(horizontal, axis=1).max() < 1e-5
    assert np.ptp(vertical, axis=0).max() < 1e-5


def test_bars_on_mean_grey_with_both_polarities() -> None:
    b = bars(32)
    assert b.shape == (12, 4, 2 * 64)
    imgs = b.render(np.arange(0, len(b), 97))
    assert np.median(imgs) == pytest.approx(0.5)
    light = b.render(np.array([np.ravel_multi_index((0, 0, 27), b.shape)]))[0]
    dark = b.render(np.array([np.ravel_multi_index((0, 0, 64 + 27), b.shape)]))[0]
    assert light.max() == pytest.approx(1.0)
    assert dark.min() == pytest.approx(0.0)
    np.testing.assert_allclose(light - 0.5, 0.5 - dark, atol=1e-6)


def test_bars_are_anti_aliased_and_oriented() -> None:
    b = bars(32, lengths=(31.0,), widths=(3.0,))
    centre = next(
        i for i, n in enumerate(b.nuisances) if n["x"] == 2 and n["y"] == 2 and n["polarity"] > 0
    )
    oblique = b.render(np.array([np.ravel_multi_index((3, 0, centre), b.shape)]))[0]
    levels = np.unique(np.round(oblique, 3))
    assert len(levels) > 3  # partial coverage at the edges, not just on/off
    horizontal = b.render(np.array([np.ravel_multi_index((0, 0, centre), b.shape)]))[0]
    rows_lit = np.flatnonzero((horizontal > 0.5).any(axis=1))
    cols_lit = np.flatnonzero((horizontal > 0.5).any(axis=0))
    assert len(rows_lit) <= 4 < len(cols_lit)


def test_bar_positions_tile_the_image() -> None:
    b = bars(32)
    xs = sorted({n["x"] for n in b.nuisances})
    assert len(xs) == 8
    assert xs == [-xs[-1 - i] for i in range(8)]  # symmetric about the centre
    assert np.diff(xs) == pytest.approx([4.0] * 7)


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda: gratings(32, n_orientations=0), "n_orientations"),
        (lambda: gratings(2), "size"),
        (lambda: bars(32, widths=(0.0,)), "widths"),
        (lambda: bars(32, spacing=64), "spacing"),
    ],
)
def test_bad_stimulus_parameters(make: object, field: str) -> None:
    with pytest.raises(InvalidArgument, match=f"^{field}: must be"):
        make()  # type: ignore[operator]
