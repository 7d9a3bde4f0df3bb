"""Extraction on its own: the stored responses are the network's, shaped (stimuli, units),
and a failed extraction leaves no output folder behind."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from orisel.extraction.activations import extract
from orisel.extraction.extract import make_stimuli
from orisel.extraction.network import load_network
from orisel.extraction.spec import ExtractSpec
from orisel.kernel.errors import NotFound


def test_responses_and_summary(untrained_checkpoint: Path, tmp_path: Path) -> None:
    net = load_network(untrained_checkpoint, device="cpu")
    spec = ExtractSpec(stimuli=("gratings",), layers=("layer2", "fc1"), n_phases=2)
    out = tmp_path / "responses"
    result = extract(net, spec, out, {"job": "j1"})
    grid = make_stimuli("gratings", 32, spec)
    with np.load(out / "responses.npz") as arrays:
        assert sorted(arrays.files) == ["gratings/fc1", "gratings/layer2"]
        assert arrays["gratings/layer2"].shape == (len(grid), 32)
        assert arrays["gratings/fc1"].shape == (len(grid), 512)
        want = net.stimulus_responses(grid, ("layer2",), "mean", 256)["layer2"]
        np.testing.assert_allclose(arrays["gratings/layer2"], want, rtol=1e-6)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["job"] == "j1"
    assert summary["arrays"]["gratings/fc1"] == [len(grid), 512]
    assert result["stimuli"]["gratings"]["shape"] == [12, 9, 2]


def test_unknown_layer_is_named_with_the_valid_ones_and_leaves_nothing(
    untrained_checkpoint: Path, tmp_path: Path
) -> None:
    net = load_network(untrained_checkpoint, device="cpu")
    out = tmp_path / "responses"
    with pytest.raises(NotFound) as err:
        extract(net, ExtractSpec(layers=("layer9",)), out)
    assert "layer9" in str(err.value)
    assert "valid layers: " in str(err.value)
    assert "layer1" in str(err.value)
    assert not out.exists()
    assert not list(tmp_path.iterdir())
