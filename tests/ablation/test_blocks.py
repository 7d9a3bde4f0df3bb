"""A sweep split into blocks of images gives the numbers of the whole sweep: per-image
outcomes concatenate, then summarise once (counts and sums, never averages of averages)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from orisel.ablation.scores import UnitScores
from orisel.ablation.spec import AblateSpec
from orisel.ablation.sweep import (
    chunks,
    evaluation_tensors,
    rows_from_blocks,
    run_block,
    run_chunks,
)
from orisel.client.cli import main
from orisel.data.sources import load_cifar10
from orisel.extraction.network import load_network

LAYERS = ("layer1", "layer3")


@pytest.fixture(scope="module")
def scores(
    untrained_checkpoint: Path, python_archive: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    out = tmp_path_factory.mktemp("blocks") / "tune"
    assert (
        main(
            [
                "tune",
                "--checkpoint",
                str(untrained_checkpoint),
                "--data",
                str(python_archive),
                "--layers",
                ",".join(LAYERS),
                "--stimuli",
                "gratings",
                "--permutations",
                "5",
                "--out",
                str(out),
                "-q",
            ]
        )
        == 0
    )
    return out


@pytest.mark.parametrize(("mode", "chunk_images"), [("zero", 20), ("mean", 20), ("zero", 2000)])
def test_blocks_combine_into_the_whole_sweep(
    untrained_checkpoint: Path, python_archive: Path, scores: Path, mode: str, chunk_images: int
) -> None:
    net = load_network(untrained_checkpoint, device="cpu")
    ds = load_cifar10(python_archive)
    spec = AblateSpec(
        layers=LAYERS,
        seeds=(0, 1),
        fractions=(0.0, 0.3, 1.0),
        mode=mode,
        chunk_images=chunk_images,
        random_halves=5,
    )
    units = UnitScores(scores, "gratings")
    x, y = evaluation_tensors(net, ds.test_images, ds.test_labels)
    todo = chunks(spec)
    whole = run_chunks(net, spec, units, todo, x, y)
    parts = [
        run_block(net, spec, units, todo, x, y, slice(a, b))
        for a, b in ((0, 20), (20, 60), (60, 100))
    ]
    split = rows_from_blocks(net, spec, units, todo, parts, ds.test_labels)
    assert [r["order"] for r in split.curves] == [r["order"] for r in whole.curves]
    for a, b in zip(split.curves, whole.curves, strict=True):
        assert a["accuracy"] == b["accuracy"]  # counts: exact
        assert a["n_ablated"] == b["n_ablated"]
        if chunk_images == 20:  # the same batches either way: bit for bit
            assert a["loss_increase_mean"] == b["loss_increase_mean"]
            assert a["loss_increase_sem"] == b["loss_increase_sem"]
        else:  # other batch shapes: float32 rounding only
            np.testing.assert_allclose(
                a["loss_increase_mean"], b["loss_increase_mean"], rtol=1e-5, atol=1e-7
            )
    if chunk_images == 20:
        assert split.splits == whole.splits
