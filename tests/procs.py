"""Helpers for tests that start real processes: none may outlive the test run."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from orisel.runtime.settings import Settings, settings_env

# The child asks the kernel to kill it when the test process dies (PR_SET_PDEATHSIG = 1), then
# becomes the command. Done in the child after exec, not in a preexec_fn: the test process runs
# gRPC, database and controller threads, and Python code between fork and exec can deadlock
# or die there (the child then never runs, silently).
_DIE_WITH_PARENT = (
    "import ctypes, os, signal, sys; "
    "ctypes.CDLL('libc.so.6', use_errno=True).prctl(1, signal.SIGKILL); "
    "os.execvp(sys.argv[1], sys.argv[1:])"
)


def guarded(cmd: list[str]) -> list[str]:
    """`cmd`, run so that it dies with the test process (none may outlive the test run)."""
    return [sys.executable, "-c", _DIE_WITH_PARENT, *cmd]


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
        guarded(cmd), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
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
