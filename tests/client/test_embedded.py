"""Embedded mode for real: `orisel up --paper` with no servers (filesystem broker, SQLite
job database, local store), the pipeline submitted through the gRPC client, the report
fetched."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from orisel.control.db import JobDB
from orisel.control.job import JobState

pytestmark = pytest.mark.integration


def test_up_runs_the_paper_pipeline_without_servers(tmp_path: Path, python_archive: Path) -> None:
    home = tmp_path / "home"
    env = {**os.environ, "ORISEL_CACHE_DIR": str(tmp_path / "cache")}
    env.pop("ORISEL_BROKER_URL", None)
    cmd = [
        sys.executable,
        "-m",
        "orisel",
        "up",
        "--paper",
        "--home",
        str(home),
        "--port",
        "0",
        "--data",
        str(python_archive),
        "--label-corruptions",
        "0,0.5",
        "--seeds",
        "0",
        "--epochs",
        "1",
        "--val-size",
        "50",
        "--permutations",
        "5",
        "--random-halves",
        "5",
        "--json",
    ]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout)
    assert out["state"] == "JOB_STATE_SUCCEEDED"
    report = Path(out["report"])
    assert report == home / "report" / "report.md"
    text = report.read_text()
    assert "cnn7-c0-s0" in text
    assert "cnn7-c0.5-s0" in text
    data = json.loads((home / "report" / "data.json").read_text())
    assert data["meta"]["job"] == out["id"]
    assert len(data["variants"]["cnn7-c0-s0"]["trajectory"]) == 5
    db = JobDB(f"sqlite:///{home / 'jobs.sqlite'}")  # the same schema as PostgreSQL
    children = db.children(out["id"])
    assert {c.kind for c in children} == {"training", "extraction", "scoring", "ablation"}
    assert all(c.state == JobState.SUCCEEDED for c in children)
    assert db.events(out["id"])[0].type == "created"
    assert not list((home / "work" / "broker" / "queue").glob("*.msg"))  # nothing left queued


def test_up_names_a_missing_data_set(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "ORISEL_DATA"}
    cmd = [sys.executable, "-m", "orisel", "up", "--paper", "--home", str(tmp_path / "h")]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "--data" in done.stderr
