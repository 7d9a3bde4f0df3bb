from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from orisel.client.cli import main
from orisel.kernel.tables import read_table
from orisel.science.statistics import fdr

pytestmark = pytest.mark.integration  # `orisel tune` end to end on a trained cnn7

UNITS = {
    "layer1": 32,
    "layer2": 32,
    "layer3": 64,
    "layer4": 64,
    "layer5": 128,
    "layer6": 128,
    "fc1": 512,
}


@pytest.fixture(scope="module")
def tuned(
    tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint: Path, python_archive: Path
) -> Path:
    out = tmp_path_factory.mktemp("tune") / "scores"
    rc = main(
        [
            "tune",
            "--checkpoint",
            str(tiny_checkpoint),
            "--data",
            str(python_archive),
            "--cache-dir",
            str(out.parent / "cache"),
            "--permutations",
            "30",
            "--out",
            str(out),
            "-q",
        ]
    )
    assert rc == 0
    return out


def test_tune_writes_table_summary_and_plots(tuned: Path, tiny_checkpoint: Path) -> None:
    names = {p.name for p in tuned.iterdir()}
    assert names >= {
        "units.csv",
        "summary.json",
        "gosi_histograms.png",
        "tuning_gratings.png",
        "tuning_bars.png",
        "stimuli_gratings.png",
        "stimuli_bars.png",
    }
    cols = read_table(tuned / "units.csv")
    assert len(cols["unit"]) == 2 * sum(UNITS.values())
    for layer, n in UNITS.items():
        assert (cols["layer"] == layer).sum() == 2 * n
    live = ~cols["dead"].astype(bool)
    assert ((cols["gosi"][live] >= 0) & (cols["gosi"][live] <= 1)).all()
    assert ((cols["p_value"] > 0) & (cols["p_value"] <= 1)).all()
    assert ((cols["p_orientation"] > 0) & (cols["p_orientation"] <= 1)).all()
    # Benjamini-Hochberg within each (stimulus, layer), over its grating-responsive units.
    for kind in ("gratings", "bars"):
        for layer in UNITS:
            at = (cols["stimulus"] == kind) & (cols["layer"] == layer) & live
            np.testing.assert_allclose(cols["q_value"][at], fdr(cols["p_value"][at]))
            assert (cols["q_value"][at] >= cols["p_value"][at]).all()
    assert np.isnan(cols["q_value"][~live]).all()
    fdr_selective = cols["selective_fdr"].astype(bool)
    assert (cols["q_orientation"][fdr_selective] < 0.05).all()
    assert not (fdr_selective & ~cols["selective"].astype(bool)).any()  # a stricter test
    assert np.isfinite(cols["csi"]).all()
    summary = json.loads((tuned / "summary.json").read_text())
    layer1 = summary["summary"]["gratings"]["layers"]["layer1"]
    responsive = layer1["units"] - layer1["dead"]
    assert layer1["fraction_selective"] * responsive == pytest.approx(
        (
            cols["selective"].astype(bool)
            & (cols["layer"] == "layer1")
            & (cols["stimulus"] == "gratings")
        ).sum()
    )
    assert summary["network"]["checkpoint"] == str(tiny_checkpoint)
    assert len(summary["network"]["checkpoint_sha256"]) == 64
    assert summary["spec"]["permutations"] == 30
    assert summary["environment"]["code_version"]
    assert "tune" in summary["command"]
    assert set(summary["summary"]["gratings"]["layers"]) == set(UNITS)


def test_tune_parquet_and_layer_choice(tiny_checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / "t"
    rc = main(
        [
            "tune",
            "--checkpoint",
            str(tiny_checkpoint),
            "--layers",
            "layer2,fc1",
            "--stimuli",
            "bars",
            "--permutations",
            "0",
            "--format",
            "parquet",
            "--out",
            str(out),
            "-q",
        ]
    )
    assert rc == 0
    cols = read_table(out / "units.parquet")
    assert sorted(set(cols["layer"].tolist())) == ["fc1", "layer2"]
    assert set(cols["stimulus"].tolist()) == {"bars"}
    assert np.isnan(cols["p_value"]).all()  # no permutations asked for


def test_unknown_layer_lists_the_valid_ones(
    tiny_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = main(
        [
            "tune",
            "--checkpoint",
            str(tiny_checkpoint),
            "--layers",
            "layer9",
            "--out",
            str(tmp_path / "t"),
        ]
    )
    err = capsys.readouterr().err
    assert rc == 3
    assert "unknown layer(s) layer9; valid layers: layer1, bn1, layer2" in err
    assert not (tmp_path / "t").exists()  # nothing partial left behind
    assert not list(tmp_path.glob(".t.*"))


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--threshold", "2"], "--threshold: Input should be less than or equal to 1"),
        (["--n-orientations", "7"], "--n-orientations: Input should be a multiple of 2"),
        (["--stimuli", "dots"], "--stimuli: Input should be 'gratings' or 'bars'"),
        (["--reduction", "sum"], None),
    ],
)
def test_bad_tune_options(
    tiny_checkpoint: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    flags: list[str],
    message: str | None,
) -> None:
    argv = ["tune", "--checkpoint", str(tiny_checkpoint), "--out", str(tmp_path / "t"), *flags]
    if message is None:  # argparse rejects the choice itself
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2
        assert "invalid choice: 'sum'" in capsys.readouterr().err
        return
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_missing_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(["tune", "--checkpoint", str(tmp_path / "none.pt"), "--out", str(tmp_path / "t")]) == 3
    )
    assert "checkpoint" in capsys.readouterr().err
