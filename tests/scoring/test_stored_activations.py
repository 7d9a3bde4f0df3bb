"""Activations as artifacts, locally: `orisel extract` then `orisel tune --responses` gives
the numbers of `orisel tune` exactly, and scoring again with other statistics settings runs
no forward pass."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch

import orisel
from orisel.client.cli import EXIT_INPUT, EXIT_REFUSED, EXIT_USAGE, main
from orisel.extraction.activations import read
from orisel.kernel.tables import read_table

pytestmark = pytest.mark.integration  # `orisel extract` and `tune` end to end

LAYERS = "layer1,layer2,fc1"


@contextmanager
def forward_passes() -> Iterator[list[int]]:
    """Counts every module call in the process (a forward pass calls at least one)."""
    calls = [0]

    def count(*_: object) -> None:
        calls[0] += 1

    handle = torch.nn.modules.module.register_module_forward_hook(count)
    try:
        yield calls
    finally:
        handle.remove()


@pytest.fixture(scope="module")
def folders(
    tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint: Path, python_archive: Path
) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("stored")
    net = ["--checkpoint", str(tiny_checkpoint), "--data", str(python_archive)]
    net += ["--cache-dir", str(root / "cache"), "--layers", LAYERS, "-q"]
    stats = ["--permutations", "40", "--seed", "3"]
    assert main(["tune", *net, *stats, "--out", str(root / "one_step")]) == 0
    assert main(["extract", *net, "--out", str(root / "acts")]) == 0
    return {"one_step": root / "one_step", "acts": root / "acts", "root": root}


def test_tune_from_responses_is_the_one_step_tuning(folders: dict[str, Path]) -> None:
    out = folders["root"] / "two_step"
    with forward_passes() as calls:
        stored = ["--responses", str(folders["acts"])]
        rc = main(["tune", *stored, "--permutations", "40", "--seed", "3", "--out", str(out), "-q"])
    assert rc == 0
    assert calls[0] == 0
    one, two = read_table(folders["one_step"] / "units.csv"), read_table(out / "units.csv")
    assert list(one) == list(two)
    for col in one:
        np.testing.assert_array_equal(np.asarray(one[col]), np.asarray(two[col]), err_msg=col)
    assert (folders["one_step"] / "units.csv").read_bytes() == (out / "units.csv").read_bytes()
    # class selectivity came from the stored test-image responses
    assert np.isfinite(np.asarray(two["csi"], dtype=float)).all()
    s1 = json.loads((folders["one_step"] / "summary.json").read_text())
    s2 = json.loads((out / "summary.json").read_text())
    assert s1["summary"] == s2["summary"]
    assert s1["activations"]["key"] == s2["activations"]["key"]
    assert s2["network"]["checkpoint_sha256"] == s1["network"]["checkpoint_sha256"]


def test_other_statistics_run_no_forward_pass(folders: dict[str, Path]) -> None:
    acts = read(folders["acts"])
    with forward_passes() as calls:
        strict = orisel.tune(
            folders["acts"], permutations=60, threshold=0.5, alpha=0.01, progress=False
        )
    assert calls[0] == 0
    assert len(strict) == 2 * (32 + 32 + 512)
    # the same responses, scored by hand: gOSI of the first unit of layer1 to gratings
    from orisel.extraction.extract import make_stimuli
    from orisel.science import indices as ix
    from orisel.scoring.spec import TuneSpec

    stim = make_stimuli("gratings", 32, TuneSpec())
    r = acts.stimuli["gratings"]["layer1"]
    want = ix.gosi(ix.tuning(r, stim.shape).curves)
    got = strict[(strict.stimulus == "gratings") & (strict.layer == "layer1")].gosi.to_numpy()
    np.testing.assert_array_equal(got, want)
    assert set(acts.arrays()) >= {"gratings/layer1", "bars/fc1", "images/layer2", "labels"}


def test_the_api_extracts_what_the_command_line_does(
    folders: dict[str, Path], tiny_checkpoint: Path
) -> None:
    net = orisel.load(tiny_checkpoint, device="cpu")
    summary = orisel.extract(
        net, folders["root"] / "api", layers=tuple(LAYERS.split(",")), progress=False
    )
    cli = json.loads((folders["acts"] / "summary.json").read_text())
    # without test images these are other activations, but the same stimulus responses
    assert summary["key"] != cli["key"]
    api = read(folders["root"] / "api")
    for kind, by_layer in api.stimuli.items():
        for layer, r in by_layer.items():
            np.testing.assert_array_equal(r, read(folders["acts"]).stimuli[kind][layer])


def test_other_grid_or_a_changed_file_is_refused(folders: dict[str, Path]) -> None:
    out = folders["root"] / "refused"
    acts = ["tune", "--responses", str(folders["acts"]), "--out", str(out), "-q"]
    assert main([*acts, "--n-phases", "2"]) == EXIT_REFUSED
    assert main([*acts, "--layers", "layer3"]) == EXIT_REFUSED
    assert main([*acts, "--checkpoint", "best.pt"]) == EXIT_USAGE
    tampered = folders["root"] / "tampered"
    tampered.mkdir()
    for name in ("summary.json", "responses.npz"):
        (tampered / name).write_bytes((folders["acts"] / name).read_bytes())
    with np.load(tampered / "responses.npz") as f:
        arrays = {k: f[k] for k in f.files}
    arrays["gratings/layer1"] = arrays["gratings/layer1"] * 2
    np.savez(tampered / "responses.npz", **arrays)
    assert main(["tune", "--responses", str(tampered), "--out", str(out), "-q"]) == EXIT_INPUT
    assert not out.exists()
