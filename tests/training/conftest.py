from __future__ import annotations

from pathlib import Path

import pytest

from orisel.data.prepare import PreparedData, SplitSpec, prepare
from orisel.data.sources import load_cifar10
from orisel.training.config import TrainConfig

SPEC = SplitSpec(val_size=50)


@pytest.fixture(scope="session")
def tiny_data(python_archive: Path) -> PreparedData:
    return prepare(load_cifar10(python_archive), SPEC)


def tiny_config(**overrides: object) -> TrainConfig:
    """250 training images in batches of 32: 8 steps an epoch, checkpoints every 2 steps."""
    base: dict[str, object] = {
        "epochs": 2,
        "data": SPEC,
        "device": "cpu",
        "deterministic": True,
        "eval_batch_size": 64,
    }
    return TrainConfig.model_validate({**base, **overrides})
