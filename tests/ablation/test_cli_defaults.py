"""`orisel ablate` and `orisel invariance` on a network that is not cnn7, with no layers,
orders or point given: the network's own layers, gosi alone when the scores hold no class
selectivity, and the point where it was really ablated, all said in the output and in
summary.json; `--point bn` where no BatchNorm reads a layer is refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from orisel.client.cli import main

pytestmark = pytest.mark.integration  # `orisel tune`, `ablate` and `invariance` end to end

NETWORK = """
from torch import nn


class Plain(nn.Module):  # conv -> ReLU, three times: no BatchNorm anywhere
    def __init__(self):
        super().__init__()
        self.c1, self.a1 = nn.Conv2d(3, 4, 3, padding=1), nn.ReLU()
        self.c2, self.a2 = nn.Conv2d(4, 4, 3, padding=1), nn.ReLU()
        self.c3, self.a3 = nn.Conv2d(4, 4, 3, padding=1), nn.ReLU()
        self.head = nn.Linear(4, 2)

    def forward(self, x):
        return self.head(self.a3(self.c3(self.a2(self.c2(self.a1(self.c1(x)))))).mean((2, 3)))
"""


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    root = tmp_path_factory.mktemp("defaults")
    (root / "plain.py").write_text(NETWORK)
    for k, cls in enumerate(("a", "b")):
        (root / "images" / cls).mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (8, 8), (80 * k + 20 * i, 60, 200 - 50 * k)).save(
                root / "images" / cls / f"{i}.png"
            )
    net = ["--model", f"{root / 'plain.py'}:Plain", "--input-size", "8", "--device", "cpu"]
    grid = ["--n-orientations", "4", "--n-phases", "2", "--n-frequencies", "2"]
    flags = ["--stimuli", "gratings", "--permutations", "0", "-q"]
    assert main(["tune", *net, *grid, *flags, "--out", str(root / "tune")]) == 0  # no --data
    return root, [*net, "--data", str(root / "images"), "--scores", str(root / "tune")]


def test_ablate_defaults_follow_the_network(
    setup: tuple[Path, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    root, net = setup
    sweep = ["--seeds", "0", "--fractions", "0,1", "--random-halves", "0"]
    assert main(["ablate", *net, *sweep, "--out", str(root / "ab")]) == 0
    printed = capsys.readouterr().out
    assert "orders: gosi only" in printed
    assert "a1 at a1 (relu)" in printed
    summary = json.loads((root / "ab" / "summary.json").read_text())
    assert summary["spec"]["layers"] == ["a1", "a2", "a3"]
    assert summary["spec"]["orders"] == ["gosi"]
    assert summary["spec"]["point"] == "auto"
    assert summary["points"] == {n: {"point": "relu", "site": n} for n in ("a1", "a2", "a3")}
    assert any("csi" in note for note in summary["notes"])
    # Asking for what the scores do not hold, or for a point the network lacks, is refused.
    assert main(["ablate", *net, *sweep, "--orders", "csi", "--out", str(root / "x")]) == 2
    assert "--data" in capsys.readouterr().err
    assert main(["ablate", *net, *sweep, "--point", "bn", "--out", str(root / "y")]) == 2
    assert "no BatchNorm reads the output of a1, a2, a3" in capsys.readouterr().err


def test_invariance_defaults_follow_the_network(setup: tuple[Path, list[str]]) -> None:
    root, net = setup
    assert main(["invariance", *net, "--seeds", "0", "-q", "--out", str(root / "inv")]) == 0
    summary = json.loads((root / "inv" / "summary.json").read_text())
    # Of three layers, the lowest 2/7 (one) ablated and the highest 4/7 (two) read.
    assert summary["spec"]["ablate_layers"] == ["a1"]
    assert summary["spec"]["layers"] == ["a2", "a3"]
    assert summary["points"] == {"a1": {"point": "relu", "site": "a1"}}
    assert len(summary["notes"]) == 2
