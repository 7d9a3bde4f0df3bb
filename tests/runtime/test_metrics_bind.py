"""/metrics binds loopback unless told otherwise (the container image sets 0.0.0.0)."""

from __future__ import annotations

import urllib.request
from pathlib import Path

from orisel.runtime import metrics
from orisel.runtime.settings import Settings
from tests.procs import free_port


def _listening_on(port: int) -> set[str]:
    """Local addresses listening on `port`, from the kernel's table (IPv4, state LISTEN)."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        addr, hex_port = local.split(":")
        if int(hex_port, 16) == port and state == "0A":
            found.add(".".join(str(int(addr[i : i + 2], 16)) for i in (6, 4, 2, 0)))
    return found


def test_metrics_bind_loopback_by_default() -> None:
    assert Settings().metrics_host == "127.0.0.1"
    port = free_port()
    metrics.serve(port, Settings().metrics_host)
    assert _listening_on(port) == {"127.0.0.1"}
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        assert b"orisel_grpc_server_started" in r.read()
