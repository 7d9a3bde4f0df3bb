from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch

from orisel.data.prepare import PreparedData
from orisel.kernel.errors import FailedPrecondition
from orisel.models.checkpoint import list_checkpoints, load_checkpoint
from orisel.training.loop import Trainer
from tests.training.conftest import tiny_config

EXPECTED_FILES = [
    "e000.000_s00000000.pt",
    "e000.250_s00000002.pt",
    "e000.500_s00000004.pt",
    "e000.750_s00000006.pt",
    "e001.000_s00000008.pt",
]


def _train(
    data: PreparedData, run: Path, resume: bool = False, max_steps: int | None = None, **cfg: object
) -> dict[str, Any]:
    trainer = Trainer.open(tiny_config(**cfg), data, run, resume=resume, progress=False)
    return trainer.run(max_steps=max_steps)


@pytest.mark.integration  # trains
def test_one_epoch_writes_checkpoints_and_manifest(tiny_data: PreparedData, tmp_path: Path) -> None:
    summary = _train(tiny_data, tmp_path / "run", epochs=1)
    run = tmp_path / "run"
    assert [p.name for p in list_checkpoints(run)] == EXPECTED_FILES
    assert (run / "best.pt").is_file()
    assert not list(run.rglob("*.tmp"))

    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "completed"
    assert manifest["config"]["epochs"] == 1
    assert manifest["config"]["seed"] == 0
    assert manifest["seeds"] == {
        "model_init": 0,
        "shuffle_and_augment": 0,
        "split": 0,
        "label_corruption": 0,
    }
    assert manifest["data"]["sha256"] == tiny_data.sha256
    assert manifest["data"]["train"] == 250
    assert manifest["data"]["validation"] == 50
    env = manifest["environment"]
    assert env["torch"] == torch.__version__
    assert env["device"] == "cpu"
    assert env["code_version"]
    assert [h["step"] for h in manifest["history"]] == [0, 2, 4, 6, 8]

    ckpt = load_checkpoint(run / "checkpoints" / EXPECTED_FILES[-1], "cnn7")
    assert ckpt["epoch"] == 1.0
    assert ckpt["step"] == 8
    assert ckpt["model_name"] == "cnn7"
    assert set(ckpt) >= {"model", "optimizer", "config", "metrics", "mean_image"}
    for split in ("train", "validation", "test"):
        m = ckpt["metrics"][split]
        assert m["loss"] > 0
        assert 0 <= m["accuracy"] <= 1
    assert load_checkpoint(run / "checkpoints" / EXPECTED_FILES[0])["metrics"]["train"] is None

    best = manifest["best"]
    losses = {h["step"]: h["metrics"]["validation"]["loss"] for h in manifest["history"]}
    assert best["step"] == min(losses, key=losses.__getitem__)
    best_ckpt = torch.load(run / "best.pt", weights_only=True)
    assert best_ckpt["step"] == best["step"]
    assert summary["best"]["step"] == best["step"]
    assert summary["status"] == "completed"


@pytest.mark.integration  # trains
def test_training_learns_the_tiny_task(tiny_data: PreparedData, tmp_path: Path) -> None:
    summary = _train(tiny_data, tmp_path / "run", epochs=6, deterministic=False)
    # Training accuracy only: with Keras' BN momentum (0.99) the running statistics used in
    # evaluation need hundreds of steps to settle, far more than this tiny run has.
    last = summary["last"]
    assert last["step"] == 48
    assert last["metrics"]["train"]["accuracy"] > 0.9
    assert last["metrics"]["train"]["loss"] < math.log(10) / 5


def _final_state(run: Path) -> dict[str, Any]:
    return load_checkpoint(list_checkpoints(run)[-1])


def _assert_same(a: dict[str, Any], b: dict[str, Any]) -> None:
    for k, v in a["model"].items():
        assert torch.equal(v, b["model"][k]), k
    for sa, sb in zip(
        a["optimizer"]["state"].values(), b["optimizer"]["state"].values(), strict=True
    ):
        for k in sa:
            assert torch.equal(sa[k], sb[k]), k
    assert a["metrics"] == b["metrics"]


@pytest.mark.integration  # trains
@pytest.mark.parametrize("stop_at", [5, 8, 11])
def test_resume_is_bit_identical(tiny_data: PreparedData, tmp_path: Path, stop_at: int) -> None:
    _train(tiny_data, tmp_path / "whole")
    part = tmp_path / "part"
    stopped = _train(tiny_data, part, max_steps=stop_at)
    assert stopped["status"] == "stopped"
    # Whatever ran after the last checkpoint is lost, as after a crash, and redone on resume.
    resumed = _train(tiny_data, part, resume=True)
    assert resumed["status"] == "completed"
    _assert_same(_final_state(tmp_path / "whole"), _final_state(part))
    whole = json.loads((tmp_path / "whole" / "manifest.json").read_text())
    again = json.loads((part / "manifest.json").read_text())
    assert whole["history"] == again["history"]
    assert len(again["sessions"]) == 2


@pytest.mark.integration  # trains
def test_an_interrupted_run_records_its_session_and_resumes_exactly(
    tiny_data: PreparedData, tmp_path: Path
) -> None:
    _train(tiny_data, tmp_path / "whole")
    run = tmp_path / "cut"
    trainer = Trainer.open(tiny_config(), tiny_data, run, resume=False, progress=False)

    def stop(entry: dict[str, Any]) -> None:
        if entry["step"] == 6:
            raise KeyboardInterrupt  # what SIGINT (e.g. `timeout -s INT`) does mid-run

    trainer.on_checkpoint = stop
    with pytest.raises(KeyboardInterrupt):
        trainer.run()
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "stopped"
    assert [(s["from_step"], s["to_step"]) for s in manifest["sessions"]] == [(0, 6)]
    assert _train(tiny_data, run, resume=True)["status"] == "completed"
    _assert_same(_final_state(tmp_path / "whole"), _final_state(run))


@pytest.mark.integration  # trains
def test_resume_may_extend_epochs(tiny_data: PreparedData, tmp_path: Path) -> None:
    _train(tiny_data, tmp_path / "whole", epochs=3)
    _train(tiny_data, tmp_path / "grown", epochs=2)
    trainer = Trainer.open(
        tiny_config(epochs=3),
        tiny_data,
        tmp_path / "grown",
        resume=True,
        explicit={"epochs"},
        progress=False,
    )
    trainer.run()
    _assert_same(_final_state(tmp_path / "whole"), _final_state(tmp_path / "grown"))


def test_existing_run_needs_resume(tiny_data: PreparedData, tmp_path: Path) -> None:
    _train(tiny_data, tmp_path / "run", max_steps=0)  # a run folder, its step-0 state
    with pytest.raises(FailedPrecondition, match="already holds a run; pass --resume"):
        _train(tiny_data, tmp_path / "run", epochs=1)


def test_resume_refuses_a_changed_recipe(tiny_data: PreparedData, tmp_path: Path) -> None:
    _train(tiny_data, tmp_path / "run", max_steps=0)  # a run folder, its step-0 state
    with pytest.raises(FailedPrecondition, match=r"lr is 0.01 but the run was started with 0.001"):
        Trainer.open(
            tiny_config(lr=0.01),
            tiny_data,
            tmp_path / "run",
            resume=True,
            explicit={"lr"},
            progress=False,
        )


def test_checkpoint_of_another_model_is_refused(tiny_data: PreparedData, tmp_path: Path) -> None:
    _train(tiny_data, tmp_path / "run", max_steps=0)  # a run folder, its step-0 state
    with pytest.raises(FailedPrecondition, match="is for model 'cnn7', not 'resnet18'"):
        load_checkpoint(list_checkpoints(tmp_path / "run")[-1], "resnet18")


def test_resume_refuses_other_data(tiny_data: PreparedData, tmp_path: Path) -> None:
    _train(tiny_data, tmp_path / "run", max_steps=0)  # a run folder, its step-0 state
    other = PreparedData(**{**vars(tiny_data), "sha256": "f" * 64})
    with pytest.raises(FailedPrecondition, match="sha256 ffffffffffff differs"):
        Trainer.open(tiny_config(), other, tmp_path / "run", resume=True, progress=False)
