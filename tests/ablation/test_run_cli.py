from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from orisel.client.cli import main
from orisel.kernel.tables import read_table

pytestmark = pytest.mark.integration  # `orisel tune`, `ablate`, `invariance`, `report` run


@pytest.fixture(scope="module")
def scores(
    tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint: Path, python_archive: Path
) -> Path:
    out = tmp_path_factory.mktemp("scores") / "tune"
    assert (
        main(
            [
                "tune",
                "--checkpoint",
                str(tiny_checkpoint),
                "--data",
                str(python_archive),
                "--layers",
                "layer1,layer2,layer5",
                "--stimuli",
                "gratings",
                "--permutations",
                "10",
                "--out",
                str(out),
                "-q",
            ]
        )
        == 0
    )
    return out


def _common(tiny_checkpoint: Path, python_archive: Path, scores: Path, out: Path) -> list[str]:
    return [
        "--checkpoint",
        str(tiny_checkpoint),
        "--data",
        str(python_archive),
        "--scores",
        str(scores),
        "--out",
        str(out),
        "-q",
    ]


def test_ablate_curves_and_split(
    tiny_checkpoint: Path, python_archive: Path, scores: Path, tmp_path: Path
) -> None:
    out = tmp_path / "ablate"
    rc = main(
        [
            "ablate",
            *_common(tiny_checkpoint, python_archive, scores, out),
            "--layers",
            "layer1,layer2",
            "--fractions",
            "0,0.5,1",
            "--seeds",
            "0,1",
        ]
    )
    assert rc == 0
    cols = read_table(out / "curves.csv")
    # per layer: 2 indices x 2 directions x 3 fractions + 2 random seeds x 3 fractions
    assert len(cols["layer"]) == 2 * (2 * 2 * 3 + 2 * 3)
    zero = cols["fraction"] == 0
    np.testing.assert_allclose(cols["loss_increase_mean"][zero], 0.0)
    full = cols["fraction"] == 1
    assert len(set(np.round(cols["accuracy"][full & (cols["layer"] == "layer1")], 12))) == 1
    assert set(cols["site"].tolist()) == {"bn1", "bn2"}
    summary = json.loads((out / "summary.json").read_text())
    # --point auto (the default) is the paper's after-BatchNorm point on cnn7, recorded.
    assert summary["spec"]["point"] == "auto"
    assert summary["points"] == {
        "layer1": {"point": "bn", "site": "bn1"},
        "layer2": {"point": "bn", "site": "bn2"},
    }
    split = summary["splits"][0]
    assert split["layer"] == "layer1"
    assert (
        split["top50"]["n_ablated"]
        + split["bottom50"]["n_ablated"]
        + split["ties"]
        + split["dead_excluded"]
        == 32
    )
    # The halves are ablated on the same images: their paired difference is the difference
    # of their means, with its own standard error; and 100 random halves rank them.
    paired = split["paired"]
    assert paired["difference"] == pytest.approx(
        split["top50"]["loss_increase_mean"] - split["bottom50"]["loss_increase_mean"], abs=1e-9
    )
    assert paired["sem"] > 0
    halves = split["random_halves"]
    assert halves["n"] == 100
    assert 0 <= halves["top50_percentile"] <= 100
    assert 0 <= halves["bottom50_percentile"] <= 100
    # Halves matched on each of cnn7's unit properties, both ablated on the same images.
    matched = split["matched"]
    assert set(matched) == {"mean_activation", "bn_gain", "outgoing_norm"}
    for m in matched.values():
        assert m["top50"]["n_ablated"] == m["bottom50"]["n_ablated"] == m["units"] >= 10
        assert m["score_top"] > m["score_bottom"]
        assert m["paired"]["difference"] == pytest.approx(
            m["top50"]["loss_increase_mean"] - m["bottom50"]["loss_increase_mean"], abs=1e-9
        )
    assert {p.name for p in out.iterdir()} >= {
        "curves_layer1.png",
        "split_gosi.png",
        "split_csi.png",
    }


def test_invariance_intact_and_ablated(
    tiny_checkpoint: Path, python_archive: Path, scores: Path, tmp_path: Path
) -> None:
    out = tmp_path / "inv"
    rc = main(
        [
            "invariance",
            *_common(tiny_checkpoint, python_archive, scores, out),
            "--layers",
            "layer5",
            "--ablate-layers",
            "layer1",
            "--seeds",
            "0",
            "--shift",
            "2",
            "--damage-candidates",
            "12",
            "--damage-matched",
            "2",
        ]
    )
    assert rc == 0
    points = json.loads((out / "summary.json").read_text())["points"]
    assert points == {"layer1": {"point": "bn", "site": "bn1"}}  # auto: the paper's point
    cols = read_table(out / "invariance.csv")
    conditions = set(zip(cols["ablated_layer"].tolist(), cols["condition"].tolist(), strict=True))
    assert conditions == {
        ("none", "intact"),
        ("layer1", "top50"),
        ("layer1", "bottom50"),
        ("layer1", "random"),
        ("layer1", "random_damage_matched"),
    }
    assert len(cols["layer"]) == 6 * 4  # four shifts per condition, two damage-matched sets
    # Each row carries its ablation's damage; the damage-matched random sets are the two of
    # twelve closest to the top half's, and as large.
    damage = {
        c: cols["loss_increase"][cols["condition"] == c]
        for c in ("top50", "random", "random_damage_matched", "intact")
    }
    assert (damage["intact"] == 0).all()
    top = damage["top50"][0]
    assert (
        np.abs(damage["random_damage_matched"] - top).max()
        <= np.abs(damage["random"] - top).max() + 1e-9
    )
    n = cols["n_ablated"]
    assert set(n[cols["condition"] == "random_damage_matched"]) == set(
        n[cols["condition"] == "top50"]
    )
    assert ((cols["invariance"] <= 1.0 + 1e-9) & (cols["invariance"] > -1.0)).all()
    summary = json.loads((out / "summary.json").read_text())["summary"]
    assert "layer1:random_damage_matched" in summary


def test_zero_shift_is_invariant(
    tiny_checkpoint: Path, python_archive: Path, scores: Path, tmp_path: Path
) -> None:
    out = tmp_path / "inv0"
    rc = main(
        [
            "invariance",
            *_common(tiny_checkpoint, python_archive, scores, out),
            "--layers",
            "layer5",
            "--ablate-layers",
            "layer1",
            "--seeds",
            "0",
            "--shift",
            "0",
        ]
    )
    assert rc == 0
    summary = json.loads((out / "summary.json").read_text())["summary"]
    for v in summary.values():
        assert v["consistency"] == 1.0
        assert v["correlation"] == pytest.approx(1.0)


def test_ablate_needs_data(
    tiny_checkpoint: Path,
    scores: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("ORISEL_DATA", raising=False)
    from orisel.runtime.settings import get_settings

    get_settings.cache_clear()
    rc = main(
        [
            "ablate",
            "--checkpoint",
            str(tiny_checkpoint),
            "--scores",
            str(scores),
            "--out",
            str(tmp_path / "a"),
        ]
    )
    assert rc == 2
    assert "--data: must be the labelled images to evaluate on" in capsys.readouterr().err


def test_ablate_layer_not_scored(
    tiny_checkpoint: Path,
    python_archive: Path,
    scores: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    rc = main(
        [
            "ablate",
            *_common(tiny_checkpoint, python_archive, scores, tmp_path / "a"),
            "--layers",
            "layer3",
        ]
    )
    assert rc == 3
    assert "layer layer3 was not scored by the tune run" in capsys.readouterr().err


def test_missing_scores(
    tiny_checkpoint: Path, python_archive: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = main(
        ["ablate", *_common(tiny_checkpoint, python_archive, tmp_path / "none", tmp_path / "a")]
    )
    assert rc == 3
    assert "run `orisel tune` first" in capsys.readouterr().err


def test_report_collects_every_part(
    tiny_checkpoint: Path, python_archive: Path, scores: Path, tmp_path: Path
) -> None:
    run = tmp_path / "analysis"
    run.mkdir()
    (run / "train").symlink_to(tiny_checkpoint.parent)
    (run / "tune").symlink_to(scores)
    common = _common(tiny_checkpoint, python_archive, scores, run / "ablate")
    assert (
        main(["ablate", *common, "--layers", "layer1", "--fractions", "0,1", "--seeds", "0"]) == 0
    )
    common = _common(tiny_checkpoint, python_archive, scores, run / "invariance")
    assert main(["invariance", *common, "--layers", "layer5", "--ablate-layers", "layer1"]) == 0
    assert main(["report", "--run", str(run), "-q"]) == 0
    text = (run / "report.md").read_text()
    for heading in (
        "## Training",
        "## Orientation selectivity (C1)",
        "## Ablation (C4)",
        "## Shift-invariance (C5)",
        "## Commands",
    ):
        assert heading in text
    assert "| gratings | layer1 | 32 |" in text
    assert "| layer1 | gosi |" in text
    assert "orisel ablate" in text


def test_report_of_an_empty_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "--run", str(tmp_path)]) == 3
    assert "nothing to report" in capsys.readouterr().err


def test_the_paper_report_reads_what_the_analyses_wrote(
    tiny_checkpoint: Path, python_archive: Path, scores: Path, tmp_path: Path
) -> None:
    """Each analysis's summary.json reads back as the result it returned, and the report's
    collection carries those results' numbers, whatever the network's folder is called."""
    import shutil

    from orisel.ablation.results import AblateResult, InvarianceResult
    from orisel.report.collect import collect
    from orisel.report.data import ReportData
    from orisel.scoring.results import TuneResult

    folder = tmp_path / "analysis" / "any name"
    (folder / "best").mkdir(parents=True)
    shutil.copy(tiny_checkpoint.parent / "manifest.json", folder / "manifest.json")
    (folder / "best" / "tune").symlink_to(scores)
    common = _common(tiny_checkpoint, python_archive, scores, folder / "best" / "ablate")
    assert (
        main(["ablate", *common, "--layers", "layer1", "--fractions", "0,1", "--seeds", "0"]) == 0
    )
    common = _common(tiny_checkpoint, python_archive, scores, folder / "best" / "invariance")
    args = ["--layers", "layer5,fc1", "--ablate-layers", "layer1", "--seeds", "0"]
    assert main(["invariance", *common, *args]) == 0

    texts = {
        a: (folder / "best" / a / "summary.json").read_text()
        for a in ("tune", "ablate", "invariance")
    }
    tune = TuneResult.model_validate_json(texts["tune"])
    ablate = AblateResult.model_validate_json(texts["ablate"])
    inv = InvarianceResult.model_validate_json(texts["invariance"])
    for result, text in (
        (tune, texts["tune"]),
        (ablate, texts["ablate"]),
        (inv, texts["invariance"]),
    ):
        assert result.to_json() == text
    assert inv.summary["none:intact"].loss_increase == 0.0  # the intact network: no damage

    data = collect(tmp_path / "analysis")
    ((name, v),) = data.variants.items()
    assert name == "cnn7-c0-s0"
    assert v.analysed == "best"
    assert tune.summary.gratings is not None
    assert v.tune is not None
    assert v.tune.gratings == tune.summary.gratings.layers
    assert v.tune.checkpoint_sha256 == tune.network.checkpoint_sha256
    assert v.ablate is not None
    assert v.ablate.splits == ablate.splits
    assert {(c.layer, c.fraction) for c in v.ablate.curves} == {("layer1", 0.0), ("layer1", 1.0)}
    assert v.invariance is not None
    assert v.invariance.spec == inv.spec
    again = ReportData.model_validate_json(data.to_json())
    assert again.to_json() == data.to_json()
