"""`orisel trajectory`: every checkpoint of a run tuned, beside the run's own accuracies."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import orisel
from orisel.client.cli import main
from orisel.kernel.tables import read_table

pytestmark = pytest.mark.integration  # `orisel trajectory` end to end: every checkpoint tuned

FLAGS = ["--stimuli", "gratings", "--layers", "layer1,layer2", "--permutations", "3"]
FLAGS += ["--n-orientations", "4", "--n-phases", "2", "--n-frequencies", "2", "-q"]


def test_trajectory_of_a_run(tiny_checkpoint: Path, tmp_path: Path) -> None:
    run = tiny_checkpoint.parent
    history = json.loads((run / "manifest.json").read_text())["history"]
    out = tmp_path / "traj"
    assert main(["trajectory", "--run", str(run), "--out", str(out), *FLAGS]) == 0
    table = read_table(out / "trajectory.csv")
    assert len(table["epoch"]) == 2 * len(history)  # two layers per checkpoint
    np.testing.assert_allclose(
        table["test_accuracy"][table["layer"] == "layer1"],
        [h["metrics"]["test"]["accuracy"] for h in history],
    )
    assert list(table["epoch"][table["layer"] == "layer1"]) == [h["epoch"] for h in history]
    assert (out / "trajectory.png").stat().st_size > 10_000
    # The run itself can never be the output.
    assert main(["trajectory", "--run", str(run), "--out", str(run), *FLAGS, "--force"]) == 4
    frame = orisel.trajectory(
        run,
        stimuli=("gratings",),
        layers=("layer1", "layer2"),
        permutations=3,
        n_orientations=4,
        n_phases=2,
        n_frequencies=2,
    )
    np.testing.assert_allclose(frame["mean_gosi"].to_numpy(), table["mean_gosi"], rtol=1e-6)


def test_a_trajectory_at_chosen_epochs(tiny_checkpoint: Path, tmp_path: Path) -> None:
    """--epochs tunes only the checkpoints at those epochs (a 200-epoch run keeps 200), with
    the same numbers as the full trajectory there; an epoch no checkpoint has is no row, a
    list that matches none is NOT_FOUND, and a word is INVALID_ARGUMENT naming the flag."""
    run = tiny_checkpoint.parent
    history = json.loads((run / "manifest.json").read_text())["history"]
    chosen = [history[-1]["epoch"]]
    full, some = tmp_path / "full", tmp_path / "some"
    assert main(["trajectory", "--run", str(run), "--out", str(full), *FLAGS]) == 0
    epochs = ",".join(str(e) for e in [*chosen, 123.5])
    assert (
        main(["trajectory", "--run", str(run), "--out", str(some), "--epochs", epochs, *FLAGS]) == 0
    )
    a, b = read_table(full / "trajectory.csv"), read_table(some / "trajectory.csv")
    assert sorted(set(b["epoch"])) == sorted(chosen)
    assert len(chosen) < len(history)
    keep = np.isin(a["epoch"], chosen)
    np.testing.assert_array_equal(b["mean_gosi"], a["mean_gosi"][keep])
    assert json.loads((some / "summary.json").read_text())["epochs"] == sorted([*chosen, 123.5])
    none = tmp_path / "none"
    assert (
        main(["trajectory", "--run", str(run), "--out", str(none), "--epochs", "999", *FLAGS]) == 3
    )
    assert not none.exists()
    assert main(["trajectory", "--run", str(run), "--out", str(none), "--epochs", "x", *FLAGS]) == 2


def test_a_trajectory_again_with_other_statistics_reads_kept_activations(
    tiny_checkpoint: Path, tmp_path: Path
) -> None:
    """--activations keeps each checkpoint's activations; a second trajectory with other
    statistics settings reads them (no new ones, none rewritten) and has the numbers of a
    trajectory that ran every forward pass."""
    run, kept = tiny_checkpoint.parent, tmp_path / "kept"
    history = json.loads((run / "manifest.json").read_text())["history"]
    base = ["trajectory", "--run", str(run), *FLAGS]
    assert main([*base, "--activations", str(kept), "--out", str(tmp_path / "a")]) == 0
    summaries = sorted(kept.glob("*/summary.json"))
    assert len(summaries) == len(history)
    written = [p.stat().st_mtime_ns for p in summaries]
    other = ["--threshold", "0.5", "--alpha", "0.2"]
    assert main([*base, *other, "--activations", str(kept), "--out", str(tmp_path / "b")]) == 0
    assert sorted(kept.glob("*/summary.json")) == summaries
    assert [p.stat().st_mtime_ns for p in summaries] == written
    assert main([*base, *other, "--out", str(tmp_path / "c")]) == 0
    b = (tmp_path / "b" / "trajectory.csv").read_bytes()
    assert b == (tmp_path / "c" / "trajectory.csv").read_bytes()
