"""A new user's first hour with the services, end to end: `orisel up --port 0 --home H` in one
terminal, and in another `orisel jobs`, `token create`, `push`, `submit --wait`, `watch`,
`get`, `fetch JOB --out d` with at most `--home H`: no --server, no --service, no token."""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

STARTUP_S = 90.0


def _orisel(
    env: dict[str, str], *args: str, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "orisel", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def up(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], Path, dict[str, str]]]:
    """`orisel up` running with its own HOME (so its runtime file is this test's alone)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORISEL_")}
    env |= {"HOME": str(tmp_path), "ORISEL_CACHE_DIR": str(tmp_path / "cache")}
    home = tmp_path / "h"
    proc = subprocess.Popen(
        [sys.executable, "-m", "orisel", "up", "--port", "0", "--home", str(home)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    runtime = tmp_path / ".local/share/orisel/runtime"
    deadline = time.monotonic() + STARTUP_S
    while not list(runtime.glob("server-*.json")):
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.monotonic() < deadline, "orisel up wrote no runtime file"
        time.sleep(0.2)
    try:
        yield proc, home, env
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def test_every_remote_command_finds_the_local_up_by_itself(
    up: tuple[subprocess.Popen[str], Path, dict[str, str]], python_archive: Path, tmp_path: Path
) -> None:
    proc, home, env = up
    done = _orisel(env, "jobs")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "no jobs"
    assert _orisel(env, "jobs", "--home", str(home)).returncode == 0

    created = _orisel(env, "token", "create", "alice", "--home", str(home), "--json")
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["token"].startswith("orisel_")
    listed = _orisel(env, "token", "list")  # the one local `up`'s database, found by itself
    assert listed.returncode == 0, listed.stderr
    assert "alice" in listed.stdout

    me = json.loads((next((tmp_path / ".local/share/orisel/runtime").glob("*.json"))).read_text())
    assert Path(me["home"]) == home.resolve()
    user = getpass.getuser()  # the owner `orisel up` issued its admin token to
    pushed = _orisel(env, "push", str(python_archive), f"users/{user}/cifar.tar.gz")
    assert pushed.returncode == 0, pushed.stderr
    submitted = _orisel(
        env,
        "submit",
        "train",
        "--data-key",
        f"users/{user}/cifar.tar.gz",
        "--epochs",
        "1",
        "--val-size",
        "50",
        "--json",
    )
    assert submitted.returncode == 0, submitted.stderr
    job = json.loads(submitted.stdout)["id"]

    watched = _orisel(env, "watch", job)  # no --service: JobService answers for every kind
    assert watched.returncode == 0, watched.stderr
    got = _orisel(env, "get", job, "--json")
    assert json.loads(got.stdout)["state"] == "JOB_STATE_SUCCEEDED"

    out = tmp_path / "d"
    fetched = _orisel(env, "fetch", job, "--out", str(out), "--json")
    assert fetched.returncode == 0, fetched.stderr
    files = json.loads(fetched.stdout)["files"]
    assert {Path(f["path"]).name for f in files} >= {"best.pt", "manifest.json"}
    for f in files:
        assert hashlib.sha256(Path(f["path"]).read_bytes()).hexdigest() == f["sha256"]
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    again = _orisel(env, "fetch", job, "--out", str(out))
    assert again.returncode == 4  # refused: nothing is written over
    assert "exists" in again.stderr
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".d.")]  # no partial folder

    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 130
    assert "INFO" not in proc.communicate()[1]  # quiet unless -v


def test_a_token_command_without_a_database_says_what_to_pass(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORISEL_")}
    env["HOME"] = str(tmp_path)
    done = _orisel(env, "token", "create", "alice")
    assert done.returncode == 4
    assert "--home" in done.stderr
    assert "ORISEL_DATABASE_URL" in done.stderr
    assert not list(tmp_path.rglob("jobs.sqlite"))  # no new empty database made
    done = _orisel(env, "token", "list", "--home", str(tmp_path / "nowhere"))
    assert done.returncode == 4
    assert "no job database" in done.stderr
