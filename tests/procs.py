"""Helpers for tests that start real processes: none may outlive the test run."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from orisel.core.settings import Settings, settings_env

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def env_for(settings: Settings) -> dict[str, str]:
    """The environment that gives a child process exactly these settings."""
    return {**os.environ, "OMP_NUM_THREADS": "1", **settings_env(settings)}


def unique_prefix() -> str:
    """A Redis key prefix of this test run, so no other worker can take its tasks."""
    return f"orisel-test-{uuid.uuid4().hex[:12]}:"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def loopback_server(
    cmd: list[str], port: int, env: dict[str, str] | None = None, what: str = "server"
) -> Iterator[str]:
    """Start `cmd` (which listens on `port`), wait until it accepts; yields host:port."""
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        preexec_fn=_die_with_parent,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        else:
            raise RuntimeError(f"{what} did not start")
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


def moto_server() -> contextlib.AbstractContextManager[str]:
    """A real S3 API (moto's server) on a loopback port; yields host:port."""
    port = free_port()
    exe = Path(sys.executable).parent / "moto_server"
    return loopback_server([str(exe), "-H", "127.0.0.1", "-p", str(port)], port, what="moto")
