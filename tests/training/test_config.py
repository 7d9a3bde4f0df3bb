from __future__ import annotations

import pytest
from pydantic import ValidationError

from orisel.training.config import TrainConfig, checkpoint_steps, steps_per_epoch


def test_defaults_are_the_papers_recipe() -> None:
    cfg = TrainConfig()
    assert (cfg.model, cfg.optimizer, cfg.lr, cfg.batch_size, cfg.epochs) == (
        "cnn7",
        "adam",
        1e-3,
        32,
        200,
    )
    assert cfg.weight_decay == 0
    assert cfg.select_by == "val_loss"
    assert cfg.data.val_size == 10_000
    assert cfg.data.label_corruption == 0
    assert cfg.augment
    assert cfg.hflip
    assert cfg.max_shift == 0.1


def test_quarter_epoch_checkpoints_for_two_epochs_then_every_epoch() -> None:
    cfg = TrainConfig(epochs=4, early_checkpoint_every=0.25, early_checkpoint_until=2)
    assert checkpoint_steps(cfg, 8) == [0, 2, 4, 6, 8, 10, 12, 14, 16, 24, 32]


def test_sparse_epoch_checkpoints_still_end_with_the_last_step() -> None:
    cfg = TrainConfig(epochs=5, checkpoint_every_epochs=2, early_checkpoint_until=0)
    assert checkpoint_steps(cfg, 10) == [0, 20, 40, 50]


def test_paper_schedule_size() -> None:
    spe = steps_per_epoch(40_000, 32)
    assert spe == 1250
    steps = checkpoint_steps(TrainConfig(), spe)
    assert len(steps) == 1 + 6 + 200  # initial, 6 quarters that are not epoch ends, 200 ends
    assert steps[:8] == [0, 312, 625, 938, 1250, 1562, 1875, 2188]


@pytest.mark.parametrize(
    ("field", "value"),
    [("epochs", -1), ("batch_size", 0), ("lr", 0.0), ("max_shift", 0.9), ("device", "tpu")],
)
def test_impossible_values_are_rejected(field: str, value: object) -> None:
    with pytest.raises(ValidationError, match=field):
        TrainConfig.model_validate({field: value})


def test_unknown_field_is_rejected() -> None:
    with pytest.raises(ValidationError, match="epochz"):
        TrainConfig.model_validate({"epochz": 3})


def test_run_names() -> None:
    """One format for a network's run name (the report reads the network from its manifest)."""
    from orisel.training.config import run_name

    assert run_name("cnn7", 0.5, 3) == "cnn7-c0.5-s3"
    assert run_name("cnn7", 0.0, 0) == "cnn7-c0-s0"
    assert run_name("resnet18", 0.25, 12) == "resnet18-c0.25-s12"
    assert run_name("cnn7", 0.0, 1, 0.5) == "cnn7-c0-s1-a0.5"
    assert run_name("cnn7", 0.0, 1, -2.0) == "cnn7-c0-s1-a-2"
    assert run_name("cnn7", 0.0, 1, 0.0) == "cnn7-c0-s1"
