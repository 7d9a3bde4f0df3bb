"""The prepared GPU script, run on this CPU at a tiny size: it trains a population in one
call and packs what the analyses need for the trip back."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration


def test_the_population_script_trains_and_packs(python_archive: Path, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "PYTHON": sys.executable,
        "DEVICE": "cpu",
        "EPOCHS": "1",
        "CORRUPTIONS": "0,1.0",
        "SEEDS": "0,1",
        "DATA": str(python_archive),
        "RUNS": str(tmp_path / "runs"),
        "OUT": str(tmp_path / "out"),
        "WHEELS": "none",
        "EXTRA": "--val-size 50",
        "ORISEL_CACHE_DIR": str(tmp_path / "cache"),
        "BENCH_NETWORKS": "2",
        "BENCH_STEPS": "2",
        "BENCH_FLAGS": "--train-images 150 --val-size 50",
        "BENCH_OPTIONS": "--tf32",  # CUDA graphs need CUDA, compiling takes a minute here
    }
    done = subprocess.run(
        [str(ROOT / "deploy" / "device" / "train_population.sh")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    bench = (tmp_path / "out" / "bench_population.txt").read_text()
    assert "TFLOP/s achieved" in bench, done.stderr[-3000:]
    runs = json.loads((tmp_path / "out" / "population.json").read_text())["runs"]
    assert sorted(Path(r["run_dir"]).name for r in runs) == [
        "cnn7-c0-s0",
        "cnn7-c0-s1",
        "cnn7-c1-s0",
        "cnn7-c1-s1",
    ]
    assert all(r["status"] == "completed" for r in runs)
    packed = set()
    for archive in (tmp_path / "out").glob("runs-*.tar"):
        with tarfile.open(archive) as tar:
            packed |= set(tar.getnames())
    for name in ("cnn7-c0-s0", "cnn7-c1-s1"):
        assert {f"{name}/manifest.json", f"{name}/best.pt"} <= packed
