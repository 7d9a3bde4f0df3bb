"""Helpers for tests that start real processes: none may outlive the test run."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import uuid
from typing import Any

from orisel.core.settings import Settings

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def env_for(settings: Settings) -> dict[str, str]:
    """The environment that gives a child process exactly these settings."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for name, value in settings.model_dump().items():
        if value is not None:
            raw: Any = value.get_secret_value() if hasattr(value, "get_secret_value") else value
            env[f"ORISEL_{name.upper()}"] = str(raw)
    return env


def start_worker(settings: Settings, queues: str, pool: str = "solo") -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "orisel", "worker", "--queues", queues, "--pool", pool]
    return subprocess.Popen(
        cmd,
        env=env_for(settings),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=_die_with_parent,
    )


def unique_prefix() -> str:
    """A Redis key prefix of this test run, so no other worker can take its tasks."""
    return f"orisel-test-{uuid.uuid4().hex[:12]}:"
