"""The selectivity term on real CIFAR-10: a few hundred steps move the lower layers' gOSI,
as `orisel tune` measures it on its whole grating grid, in the direction alpha asks, both
ways, against the same network trained without the term, while every network still learns."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import orisel
from orisel.data.prepare import SplitSpec, prepare
from orisel.data.sources import load_cifar10
from orisel.models.checkpoint import list_checkpoints
from orisel.runtime.settings import Settings
from orisel.training.config import TrainConfig
from orisel.training.loop import Trainer
from tests.conftest import SHARED_CIFAR

LOWER = ("layer1", "layer2", "layer3")
EPOCHS = 8  # of 2,000 images: 504 steps


def _lower_gosi(checkpoint: Path) -> float:
    """Mean over layer1-3 of each layer's mean gOSI over live units, by tune itself."""
    net = orisel.load(checkpoint, device="cpu")
    units = orisel.tune(net, stimuli=("gratings",), layers=LOWER, permutations=0, progress=False)
    live = units[~units.dead]
    return float(np.mean([live[live.layer == n].gosi.mean() for n in LOWER]))


@pytest.mark.integration
@pytest.mark.skipif(not SHARED_CIFAR.exists(), reason="the shared CIFAR-10 archive is not here")
def test_the_term_moves_lower_layer_selectivity_both_ways(tmp_path: Path) -> None:
    spec = SplitSpec(val_size=200, train_subset=2000, test_subset=500)
    data = prepare(load_cifar10(SHARED_CIFAR, Settings().cache_dir), spec)
    measured, accuracy, loss = {}, {}, {}
    for alpha in (0.25, 0.0, -0.25):
        cfg = TrainConfig(
            data=spec,
            device="cpu",
            epochs=EPOCHS,
            select_reg=alpha,
            select_every=2,
            early_checkpoint_until=0,
            checkpoint_every_epochs=EPOCHS,
            eval_batch_size=500,
        )
        run = tmp_path / f"a{alpha}"
        trainer = Trainer.open(cfg, data, run, resume=False, progress=False)
        trainer.run()
        last = trainer.state.history[-1]
        assert last["epoch"] == EPOCHS
        accuracy[alpha] = last["metrics"]["test"]["accuracy"]
        loss[alpha] = last["metrics"]["train"]["loss"]
        measured[alpha] = _lower_gosi(list_checkpoints(run)[-1])
    # Same initialisation, batches and augmentations: only the term differs.
    assert measured[0.25] > measured[0.0] + 0.05, measured
    assert measured[-0.25] < measured[0.0] - 0.05, measured
    for alpha in measured:
        # Chance is 0.1 (SE 0.013 on 500 images) and an untrained network's loss ln 10 = 2.30.
        assert accuracy[alpha] > 0.2, (alpha, accuracy)
        assert loss[alpha] < 2.0, (alpha, loss)
