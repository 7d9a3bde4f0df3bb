"""Clients find a local `orisel up` by its runtime file: the one serving --home, or the only
one running; a file left by a dead server is ignored and a guess between two is refused."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from orisel.kernel.errors import FailedPrecondition
from orisel.runtime import local as runtime


@pytest.fixture(autouse=True)
def runtime_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "runtime"
    monkeypatch.setattr(runtime, "RUNTIME_DIR", folder)
    return folder


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_the_only_running_server_is_found_and_a_dead_ones_file_skipped(tmp_path: Path) -> None:
    assert runtime.find_local() is None
    path = runtime.write_runtime("127.0.0.1:4001", "orisel_a_b", tmp_path / "h1")
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700
    dead = runtime.runtime_file("127.0.0.1:4002")
    dead.write_text(
        f'{{"address": "127.0.0.1:4002", "token": "t", "home": "x", "pid": {_dead_pid()}}}'
    )
    runtime.runtime_file("127.0.0.1:4003").write_text("{not json")
    found = runtime.find_local()
    assert found == runtime.LocalServer(
        "127.0.0.1:4001", "orisel_a_b", tmp_path / "h1", os.getpid()
    )


def test_home_picks_one_of_several_and_no_home_refuses_to_guess(tmp_path: Path) -> None:
    runtime.write_runtime("127.0.0.1:4001", "a", tmp_path / "h1")
    runtime.write_runtime("127.0.0.1:4002", "b", tmp_path / "h2")
    local = runtime.find_local(tmp_path / "h2")
    assert local is not None
    assert local.address == "127.0.0.1:4002"
    with pytest.raises(FailedPrecondition, match=r"2 local servers run.*--home"):
        runtime.find_local()
    with pytest.raises(FailedPrecondition, match="no running `orisel up --home"):
        runtime.find_local(tmp_path / "h3")


def test_server_flag_and_setting_win_over_a_local_server(tmp_path: Path) -> None:
    from orisel.client.channel import DEFAULT_SERVER, server_address
    from orisel.runtime.settings import Settings

    assert server_address(None, None, Settings()) == DEFAULT_SERVER
    runtime.write_runtime("127.0.0.1:4001", "a", tmp_path / "h1")
    assert server_address(None, None, Settings()) == "127.0.0.1:4001"
    assert server_address(None, None, Settings(server="10.0.0.1:443")) == "10.0.0.1:443"
    assert server_address("10.0.0.2:443", None, Settings(server="10.0.0.1:443")) == "10.0.0.2:443"
