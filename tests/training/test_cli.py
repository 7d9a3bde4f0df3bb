"""`orisel train` end to end, in-process and as a real process killed mid-run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from orisel.client.cli import main
from orisel.models.checkpoint import list_checkpoints, load_checkpoint

TINY = ["--val-size", "50", "--epochs", "2", "--deterministic", "--device", "cpu", "-q"]


def _args(archive: Path, tmp: Path, out: str, *extra: str) -> list[str]:
    return [
        "train",
        "--data",
        str(archive),
        "--cache-dir",
        str(tmp / "cache"),
        "--out",
        str(tmp / out),
        *TINY,
        *extra,
    ]


@pytest.mark.integration  # `orisel train` end to end
def test_train_json_summary(
    python_archive: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(_args(python_archive, tmp_path, "run", "--json")) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["status"] == "completed"
    assert summary["epoch"] == 2.0
    assert summary["checkpoints"] == 9  # steps 0, 2, 4, ..., 16: quarter epochs of 8 steps
    assert 0 <= summary["best"]["metrics"]["test"]["accuracy"] <= 1


@pytest.mark.integration  # `orisel train` end to end, twice
def test_resume_of_a_completed_run_changes_nothing(
    python_archive: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(_args(python_archive, tmp_path, "run", "--epochs", "1")) == 0
    before = (tmp_path / "run" / "best.pt").read_bytes()
    capsys.readouterr()
    assert main(_args(python_archive, tmp_path, "run", "--epochs", "1", "--resume", "--json")) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["status"] == "completed"
    assert summary["step"] == 8
    assert (tmp_path / "run" / "best.pt").read_bytes() == before


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--epochs", "-3"], "--epochs: Input should be greater than or equal to 1 (got -3)"),
        (
            ["--label-corruption", "1.5"],
            "--label-corruption: Input should be less than or equal to 1",
        ),
        (["--model", "nope"], "model 'nope' is unknown; choose cnn7"),
        (["--val-size", "999"], "val_size: must be less than the 300 training images"),
        (["--max-steps", "0"], "--max-steps: must be a positive number of steps"),
        (["--amp", "fp16"], "amp=fp16 needs a CUDA device"),
    ],
)
def test_bad_input_is_one_clear_line(
    python_archive: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    flags: list[str],
    message: str,
) -> None:
    rc = main(_args(python_archive, tmp_path, "run", *flags))
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == (3 if "unknown" in message else 2)  # a missing model is input, not usage
    assert err[-1].startswith("orisel: error:")
    assert message in err[-1]
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_missing_data_names_the_fix(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["train", "--data", str(tmp_path / "none.tar.gz"), "--out", str(tmp_path / "r")])
    assert rc == 3
    assert "pass --data PATH or set ORISEL_DATA" in capsys.readouterr().err


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "orisel", *args]


@pytest.mark.integration
def test_sigkill_then_resume_equals_uninterrupted(python_archive: Path, tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    common = ["--epochs", "3", "--early-checkpoint-until", "0"]
    subprocess.run(_cli(*_args(python_archive, tmp_path, "whole", *common)), env=env, check=True)

    proc = subprocess.Popen(_cli(*_args(python_archive, tmp_path, "killed", *common)), env=env)
    deadline = time.monotonic() + 120
    while len(list_checkpoints(tmp_path / "killed")) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    survivors = list_checkpoints(tmp_path / "killed")
    assert 2 <= len(survivors) <= 4
    for path in survivors:  # nothing half-written is visible
        load_checkpoint(path, "cnn7")

    resume = _cli(*_args(python_archive, tmp_path, "killed", *common, "--resume"))
    subprocess.run(resume, env=env, check=True)
    a = load_checkpoint(list_checkpoints(tmp_path / "whole")[-1])
    b = load_checkpoint(list_checkpoints(tmp_path / "killed")[-1])
    assert a["step"] == b["step"] == 24
    for k, v in a["model"].items():
        assert torch.equal(v, b["model"][k]), k
    assert a["metrics"] == b["metrics"]
