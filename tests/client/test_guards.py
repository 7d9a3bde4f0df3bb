"""Guards a demanding user expects: scores of another checkpoint are refused unless asked,
a network near chance is called out in the output, fp16 on a CPU is refused, and errors
have distinct exit codes (and JSON under --json)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from orisel.client.cli import main

SMALL = ["--stimuli", "gratings", "--layers", "layer1", "--permutations", "3", "-q"]


@pytest.fixture(scope="module")
def scores(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("scores") / "tune"
    assert main(["tune", "--checkpoint", str(tiny_checkpoint), "--out", str(out), *SMALL]) == 0
    return out


@pytest.mark.integration  # `orisel tune` then `ablate` end to end
def test_scores_of_another_checkpoint_are_refused_unless_allowed(
    tiny_checkpoint: Path,
    python_archive: Path,
    scores: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    other = sorted((tiny_checkpoint.parent / "checkpoints").glob("*.pt"))[0]  # the untrained one
    base = [
        "ablate",
        "--checkpoint",
        str(other),
        "--data",
        str(python_archive),
        "--scores",
        str(scores),
        "--layers",
        "layer1",
        "--orders",
        "gosi",
        "--seeds",
        "0",
        "--fractions",
        "0,1",
        "-q",
    ]
    rc = main([*base, "--out", str(tmp_path / "a"), "--json"])
    assert rc == 4
    err = json.loads(capsys.readouterr().out)
    assert err["exit_code"] == 4
    assert "--allow-mismatch" in err["error"]
    assert not (tmp_path / "a").exists()
    assert main([*base, "--out", str(tmp_path / "b"), "--allow-mismatch"]) == 0


@pytest.mark.integration  # reads what `orisel tune` wrote end to end
def test_a_network_near_chance_is_called_out(tiny_checkpoint: Path, scores: Path) -> None:
    accuracy = torch.load(tiny_checkpoint, weights_only=False)["metrics"]["test"]["accuracy"]
    warnings = json.loads((scores / "summary.json").read_text())["warnings"]
    assert bool(warnings) == (accuracy < 0.15)
    if warnings:
        assert "near chance" in warnings[0]


@pytest.mark.skipif(torch.cuda.is_available(), reason="fp16 is allowed on a GPU")
def test_fp16_on_a_cpu_is_refused(python_archive: Path, tmp_path: Path) -> None:
    flags = ["--device", "auto", "--amp", "fp16", "--epochs", "1", "--val-size", "50", "-q"]
    rc = main(["train", "--data", str(python_archive), "--out", str(tmp_path / "r"), *flags])
    assert rc == 2
    assert not (tmp_path / "r" / "checkpoints").exists()


def test_exit_codes_are_documented() -> None:
    from orisel.client.cli import build_parser

    epilog = build_parser().epilog or ""
    for code in ("2  usage", "3  input", "4  refused", "5  service"):
        assert code in epilog


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--seeds", "-5"], "--seeds"),
        (["--label-corruptions", "1.5"], "--label-corruptions"),
        (["--select-regs", "0,101"], "--select-regs"),
    ],
)
def test_a_population_network_out_of_bounds_is_refused_naming_its_flag(
    flags: list[str], named: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Refused before any data is read: --data names nothing.
    args = ["train", "--population", "--data", str(tmp_path / "none"), "--out", str(tmp_path)]
    assert main([*args, *flags]) == 2
    assert named in capsys.readouterr().err
