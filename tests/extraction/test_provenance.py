"""Every summary of a network orisel did not train records the checksum of the weights it
analysed, the extraction job's too; a checkpoint is known by its file's checksum."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from orisel.extraction.activations import extract
from orisel.extraction.network import Network, load_network
from orisel.extraction.provenance import network_record
from orisel.extraction.spec import ExtractSpec
from orisel.models.digest import state_sha256


def _module(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 2))


def test_the_extraction_summary_records_the_weights_analysed(tmp_path: Path) -> None:
    net = Network.from_module(_module(0), 8)
    spec = ExtractSpec(stimuli=("gratings",), n_orientations=4, n_phases=1, n_frequencies=1)
    summary = extract(net, spec, tmp_path / "x")
    written = json.loads((tmp_path / "x" / "summary.json").read_text())
    assert written["network"]["weights_sha256"] == summary["network"]["weights_sha256"]
    assert written["network"]["weights_sha256"] == state_sha256(net.model)
    # Other weights, another checksum; the same weights on another module object, the same.
    assert state_sha256(_module(1)) != state_sha256(_module(0))
    assert state_sha256(_module(0)) == state_sha256(net.model)


def test_a_checkpoint_is_known_by_its_files_checksum(untrained_checkpoint: Path) -> None:
    record = network_record(load_network(untrained_checkpoint, device="cpu"))
    assert len(str(record["checkpoint_sha256"])) == 64
    assert "weights_sha256" not in record
