"""Ablation and invariance defaults are the network's, not cnn7's: its default layers, the
orders its scores hold, recorded as notes; cnn7 keeps the paper's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from torch import nn

from orisel.ablation.defaults import ablate_spec, invariance_spec
from orisel.ablation.scores import UnitScores
from orisel.ablation.spec import AblateSpec, InvarianceSpec
from orisel.extraction.network import CNN7_LAYERS, Network
from orisel.kernel.tables import write_table
from orisel.models import CNN7


def _scores(folder: Path, layers: tuple[str, ...], csi: bool) -> UnitScores:
    n = 4
    rows = [(layer, u) for layer in layers for u in range(n)]
    cols = {
        "stimulus": np.array(["gratings"] * len(rows)),
        "layer": np.array([layer for layer, _ in rows]),
        "unit": np.array([u for _, u in rows]),
        "gosi": np.linspace(0, 1, len(rows)),
        "osi": np.linspace(0, 1, len(rows)),
        "dead": np.zeros(len(rows), dtype=bool),
        "csi": np.linspace(0, 1, len(rows)) if csi else np.full(len(rows), np.nan),
    }
    folder.mkdir()
    write_table(cols, folder / "units", "csv")
    return UnitScores(folder, "gratings")


def _relu_net() -> Network:
    layers: list[nn.Module] = []
    for c_in in (3, 4, 4, 4):
        layers += [nn.Conv2d(c_in, 4, 3, padding=1), nn.ReLU()]
    return Network.from_module(nn.Sequential(*layers, nn.Flatten(), nn.LazyLinear(3)), 8)


def test_a_network_without_csi_scores_ablates_its_own_layers_by_gosi(tmp_path: Path) -> None:
    net = _relu_net()
    relus = ("1", "3", "5", "7")
    assert net.default_layers() == relus
    scores = _scores(tmp_path / "s", relus, csi=False)
    spec, notes = ablate_spec(net, scores, AblateSpec(), given=set())
    assert spec.layers == relus
    assert spec.orders == ("gosi",)
    assert any("orders: gosi only" in n and "csi" in n for n in notes)
    # What the caller gave stands.
    given = AblateSpec(layers=("3",), orders=("gosi", "osi"))
    spec, notes = ablate_spec(net, scores, given, given={"layers", "orders"})
    assert (spec.layers, spec.orders, notes) == (("3",), ("gosi", "osi"), [])


def test_cnn7_keeps_the_papers_defaults(tmp_path: Path) -> None:
    net = Network.from_module(CNN7(), 32)
    scores = _scores(tmp_path / "s", CNN7_LAYERS, csi=True)
    spec, _ = ablate_spec(net, scores, AblateSpec(), given=set())
    assert spec.layers == AblateSpec().layers == CNN7_LAYERS
    assert spec.orders == ("gosi", "csi")
    inv, _ = invariance_spec(net, scores, InvarianceSpec(), given=set())
    assert inv.ablate_layers == InvarianceSpec().ablate_layers == ("layer1", "layer2")
    assert inv.layers == InvarianceSpec().layers == ("layer4", "layer5", "layer6", "fc1")


@pytest.mark.parametrize(
    ("n", "ablated", "read"),
    [(4, ("1",), ("5", "7")), (2, ("1",), ("3",))],
)
def test_invariance_keeps_the_papers_proportions(
    tmp_path: Path, n: int, ablated: tuple[str, ...], read: tuple[str, ...]
) -> None:
    net = _relu_net()
    layers = net.default_layers()[:n]
    scores = _scores(tmp_path / "s", layers, csi=False)
    spec, notes = invariance_spec(net, scores, InvarianceSpec(), given=set())
    assert (spec.ablate_layers, spec.layers) == (ablated, read)
    assert len(notes) == 2
