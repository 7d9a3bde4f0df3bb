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
        "MEMORIZE_CORRUPTIONS": "0.5",
        "DATA": str(python_archive),
        "ROOT": str(tmp_path / "root"),
        "OUT": str(tmp_path / "out"),
        "WHEELS": "none",
        "EXTRA": "--val-size 50",
        "TRAJECTORY_EPOCHS": "0,0.5,1",
        "TRAJECTORY_PERMUTATIONS": "5",
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
    assert "TFLOP/s achieved" in bench, done.stdout[-3000:]
    packed: dict[str, bytes] = {}
    for archive in (tmp_path / "out").glob("runs-*.tar"):
        with tarfile.open(archive) as tar:
            for member in tar.getmembers():
                file = tar.extractfile(member)
                assert file is not None
                packed[member.name] = file.read()
    runs = json.loads(packed["population/population.json"])["runs"]
    assert sorted(Path(r["run_dir"]).name for r in runs) == [
        "cnn7-c0-s0",
        "cnn7-c0-s1",
        "cnn7-c1-s0",
        "cnn7-c1-s1",
    ]
    assert all(r["status"] == "completed" for r in runs)
    memorized = json.loads(packed["memorize/population.json"])["runs"]
    assert [Path(r["run_dir"]).name for r in memorized] == ["cnn7-c0.5-s0"]
    manifest = json.loads(packed["memorize/cnn7-c0.5-s0/manifest.json"])
    assert manifest["config"]["augment"] is False
    for name in ("population/cnn7-c0-s0", "population/cnn7-c1-s1", "memorize/cnn7-c0.5-s0"):
        assert {f"{name}/manifest.json", f"{name}/best.pt"} <= set(packed)
    # Each run's trajectory was tuned at the asked epochs, and the report reads it.
    from orisel.report.collect import collect

    analysis = tmp_path / "analysis"
    for name, content in packed.items():
        if name.startswith("analysis/population/"):
            (analysis / name).parent.mkdir(parents=True, exist_ok=True)
            (analysis / name).write_bytes(content)
    for run in ("cnn7-c0-s0", "cnn7-c0-s1", "cnn7-c1-s0", "cnn7-c1-s1"):
        (analysis / "analysis/population" / run / "manifest.json").write_bytes(
            packed[f"population/{run}/manifest.json"]
        )
    variants = collect(analysis / "analysis/population").variants
    trajectory = variants["cnn7-c0-s0"].trajectory or []
    assert [t.epoch for t in trajectory] == [0.0, 0.5, 1.0]
    last = trajectory[-1]
    assert set(last.metrics or {}) == {"train", "validation", "test"}
    assert 0.0 <= last.gratings["layer1"].mean_gosi <= 1.0
