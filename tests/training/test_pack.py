"""A population's packed training state: exact where training resumes from it, slimmed where
only the analyses read it, refused when damaged, and a run split into segments in fresh
processes (deploy/device/continue_population.sh) ends bit-identical to an unsplit run."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from orisel.data.prepare import PreparedData, prepare
from orisel.data.sources import load_cifar10
from orisel.kernel.errors import FailedPrecondition, NotFound
from orisel.models.checkpoint import copy_checkpoint, list_checkpoints, load_checkpoint
from orisel.training.config import run_name
from orisel.training.loop import Trainer
from orisel.training.pack import (
    INDEX,
    decode,
    encode,
    missing_parts,
    pack,
    read_index,
    unpack,
)
from orisel.training.population import PopulationTrainer
from tests.training.conftest import SPEC, tiny_config

REPO = Path(__file__).resolve().parents[2]
SEEDS = (0, 1)


@pytest.fixture(scope="module")
def data(python_archive: Path) -> PreparedData:
    return prepare(load_cifar10(python_archive), SPEC)


def _population(data: PreparedData, root: Path, resume: bool = False) -> list[Trainer]:
    return [
        Trainer.open(
            tiny_config(seed=seed), data, root / run_name("cnn7", 0.0, seed), resume, progress=False
        )
        for seed in SEEDS
    ]


@pytest.fixture(scope="module")
def trained(data: PreparedData, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two networks trained to step 6, then the first alone to step 8: stopped between two
    networks' checkpoints, as a kill in the middle of writing them leaves a population."""
    root = tmp_path_factory.mktemp("population")
    PopulationTrainer(_population(data, root)).run(max_steps=6)
    first = _population(data, root, resume=True)[0]
    first.run(max_steps=8)
    # As when step 8 was its best: best.pt is newer than the state the population resumes from.
    copy_checkpoint(list_checkpoints(first.run_dir)[-1], first.run_dir / "best.pt")
    return root


@pytest.mark.parametrize("size", [0, 1, 7, 64, 1001])
@pytest.mark.parametrize("planes", [1, 4])
def test_the_codec_is_lossless(size: int, planes: int) -> None:
    data = torch.randn(size, generator=torch.Generator().manual_seed(size)).numpy().tobytes()
    data = data[: size * 3 + 1]  # lengths that are not whole floats too
    assert decode(encode(data, planes), planes) == data


@pytest.mark.integration  # trains
def test_a_pack_holds_the_exact_state_and_slim_copies_for_analysis(
    trained: Path, tmp_path: Path
) -> None:
    index = pack(trained, tmp_path / "pack", trajectory_epochs=(0, 0.25, 0.5, 1), part_bytes=2**20)
    assert index["resume_step"] == 6  # the last step both networks have a checkpoint for
    assert all(p["bytes"] <= 2**20 for p in index["parts"])
    assert len(index["parts"]) > 1
    root = tmp_path / "root"
    unpack(tmp_path / "pack", root)
    for seed in SEEDS:
        name = run_name("cnn7", 0.0, seed)
        original, unpacked = trained / name, root / name
        state = original / "checkpoints" / list_checkpoints(unpacked)[-1].name
        assert list_checkpoints(unpacked)[-1].read_bytes() == state.read_bytes()
        assert load_checkpoint(state)["step"] == 6
        assert (unpacked / "manifest.json").read_bytes() == (
            original / "manifest.json"
        ).read_bytes()
        best = load_checkpoint(unpacked / "best.pt", "cnn7")
        # The best as of the resume step, though the first network's best.pt may be step 8's.
        assert best["step"] == load_checkpoint(state)["best"]["step"]
        assert "optimizer" not in best
        assert best["model"]["layer1.weight"].dtype == torch.float16
        exact = load_checkpoint(original / best["best"]["file"])["model"]["layer1.weight"]
        torch.testing.assert_close(
            best["model"]["layer1.weight"].float(), exact, rtol=1e-3, atol=1e-4
        )
        # Only the first run keeps a trajectory: epochs 0, 0.25 and 0.5 (step 6, epoch 0.75, is
        # the state itself; epoch 1 is past it).
        steps = [int(p.stem.split("_s")[1]) for p in list_checkpoints(unpacked)]
        assert steps == ([0, 2, 4, 6] if seed == 0 else [6])
    # A pack of an unpacked population holds the same files, byte for byte.
    again = pack(root, tmp_path / "again", trajectory_epochs=(0, 0.25, 0.5, 1))
    assert [f["sha256"] for f in again["files"]] == [f["sha256"] for f in index["files"]]


@pytest.mark.integration  # trains
def test_a_damaged_or_incomplete_pack_is_refused(trained: Path, tmp_path: Path) -> None:
    src = tmp_path / "pack"
    index = pack(trained, src, part_bytes=2**20)
    first = src / index["parts"][0]["name"]
    damaged = bytearray(first.read_bytes())
    damaged[100] ^= 1
    first.write_bytes(damaged)
    (src / index["parts"][-1]["name"]).unlink()
    assert missing_parts(src) == [index["parts"][0]["name"], index["parts"][-1]["name"]]
    with pytest.raises(FailedPrecondition, match="lacks parts"):
        unpack(src, tmp_path / "root")
    assert not (tmp_path / "root").exists()
    (src / INDEX).unlink()  # a pack cut short before its index was written
    with pytest.raises(NotFound, match=r"holds no index\.json"):
        read_index(src)


@pytest.mark.integration  # trains
def test_a_pack_is_written_only_into_a_new_folder(trained: Path, tmp_path: Path) -> None:
    (tmp_path / "pack").mkdir()
    (tmp_path / "pack" / "notes.txt").write_text("mine")
    with pytest.raises(FailedPrecondition, match="not a new or empty folder"):
        pack(trained, tmp_path / "pack")
    assert [p.name for p in (tmp_path / "pack").iterdir()] == ["notes.txt"]


def _segment(archive: Path, work: Path, k: int, max_steps: int, carried: Path) -> int:
    """One call of the GPU script, on the CPU: `carried` (the pack of segment k-1, or some of
    its parts) in, segment k's pack out; returns its exit status."""
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHON": sys.executable,
        "DEVICE": "cpu",
        "EPOCHS": "2",
        "CORRUPTIONS": "0,0.5",
        "SEEDS": "0",
        "DATA": str(archive),
        "PACK": str(carried),
        "STAGE": str(work / f"stage{k}"),
        "ROOT": str(work / f"root{k}"),
        "OUT": str(work / f"out{k}"),
        "MAX_STEPS": str(max_steps),
        "PART_BYTES": str(2**20),
        "EVAL_BATCH": "64",
        "EXTRA": "--val-size 50 --deterministic",
        "WHEELS": "none",
        "ORISEL_CACHE_DIR": str(work / "cache"),
    }
    done = subprocess.run(
        [str(REPO / "deploy" / "device" / "continue_population.sh")],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode in (0, 75), done.stdout[-2000:] + done.stderr[-2000:]
    return done.returncode


def _carry(pack_dir: Path, dest: Path, parts: slice) -> Path:
    """Some of a pack's parts with its index, as one call of the device tool carries them."""
    dest.mkdir()
    shutil.copy(pack_dir / INDEX, dest)
    for part in sorted(pack_dir.glob("part-*.bin"))[parts]:
        shutil.copy(part, dest)
    return dest


@pytest.mark.integration  # four calls of the GPU script, each up to three fresh processes
def test_a_run_split_across_processes_ends_bit_identical(
    python_archive: Path, tmp_path: Path
) -> None:
    from orisel.client.cli import main

    whole = tmp_path / "whole"
    flags = ["--val-size", "50", "--deterministic", "--eval-batch-size", "64", "-q"]
    common = ["--label-corruptions", "0,0.5", "--seeds", "0", "--epochs", "2", "--device", "cpu"]
    args = ["train", "--population", *common, "--data", str(python_archive), "--out", str(whole)]
    assert main([*args, *flags]) == 0
    assert _segment(python_archive, tmp_path, 1, 6, tmp_path / "none") == 0
    # The second segment's pack comes in over two calls: the first only stages what it brings.
    first = _carry(tmp_path / "out1" / "pack", tmp_path / "carry2a", slice(0, 2))
    rest = _carry(tmp_path / "out1" / "pack", tmp_path / "carry2b", slice(2, None))
    assert _segment(python_archive, tmp_path, 2, 11, first) == 75
    assert not (tmp_path / "root2").exists()
    # Step 11 is no checkpoint: the third segment goes on from step 10's, as after a kill.
    assert _segment(python_archive, tmp_path, 2, 11, rest) == 0
    assert _segment(python_archive, tmp_path, 3, 16, tmp_path / "out2" / "pack") == 0
    steps = [read_index(tmp_path / f"out{k}" / "pack")["resume_step"] for k in (1, 2, 3)]
    assert steps == [6, 10, 16]
    final = tmp_path / "final"
    unpack(tmp_path / "out3" / "pack", final)
    for name in ("cnn7-c0-s0", "cnn7-c0.5-s0"):
        a = load_checkpoint(list_checkpoints(whole / name)[-1])
        b = load_checkpoint(list_checkpoints(final / name)[-1])
        assert a["step"] == b["step"] == 16
        for part in ("model", "optimizer"):
            assert _bytes(a[part]) == _bytes(b[part]), (name, part)
        assert a["metrics"] == b["metrics"]
        assert a["best"] == b["best"]


def _bytes(obj: object) -> bytes:
    """A state dict's every tensor and number, in order, as bytes: equal means bit-identical."""
    if isinstance(obj, torch.Tensor):
        return obj.reshape(-1).contiguous().view(torch.uint8).numpy().tobytes()
    if isinstance(obj, dict):
        return b"".join(str(k).encode() + _bytes(v) for k, v in obj.items())
    if isinstance(obj, list | tuple):
        return b"".join(_bytes(v) for v in obj)
    return repr(obj).encode()
