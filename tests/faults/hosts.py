"""Processes on other hosts: a worker or a front end in a network namespace (tests.faults.
netns) that reaches this host's PostgreSQL and Redis only over its link, through proxies
listening on the link's address (the servers themselves listen on the loopback)."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.control.proxy import Proxy
from tests.faults import netns
from tests.procs import env_for, guarded
from tests.stack import REDIS, Stack

PG, REDIS_PORT = 5432, 6379


@dataclass
class Remote:
    """A host and the proxies that carry its link to this host's database and broker."""

    host: netns.Host
    pg: Proxy
    broker: Proxy
    env: dict[str, str]
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(
        self, live: Stack, cmd: list[str], log: Path, env: dict[str, str], wrap: list[str]
    ) -> subprocess.Popen[bytes]:
        """`wrap... orisel cmd...` on the host (output appended to `log`), ended with the test."""
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                guarded(self.host.command([*wrap, sys.executable, "-m", "orisel", *cmd])),
                env={**self.env, **env},
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        live.procs.append(proc)
        self.procs.append(proc)
        return proc

    def worker(
        self, live: Stack, log: Path, clock: str = "", lease_s: float | None = None
    ) -> subprocess.Popen[bytes]:
        """A training worker; clock: its wall clock that far off ("+10m", libfaketime's
        offset); lease_s: the lease it takes, when not the stack's."""
        env = {} if lease_s is None else {"ORISEL_LEASE_S": str(lease_s)}
        # A host's wall clock set wrong; its monotonic clock, as on a real host, runs true.
        wrap = ["faketime", "-f", clock] if clock else []
        env |= {"FAKETIME_DONT_FAKE_MONOTONIC": "1"} if clock else {}
        cmd = ["worker", "--queues", "training", "--pool", "prefork"]
        return self.start(live, cmd, log, env, wrap)


@contextlib.contextmanager
def remote(live: Stack, name: str, delay_s: float = 0.0) -> Iterator[Remote]:
    """Host `name` (on a free slot: tests.faults.netns.Host) with this stack's settings, its
    database and broker reached over the link; delay_s: the link's latency from that host."""
    with (
        netns.Host(name) as host,
        Proxy(PG, host.here, delay_s) as pg,
        Proxy(REDIS_PORT, host.here, delay_s) as broker,
    ):
        env = {
            **env_for(live.settings),
            "ORISEL_DATABASE_URL": live.settings.database_url.replace(
                f"127.0.0.1:{PG}", f"{host.here}:{pg.port}"
            ),
            "ORISEL_BROKER_URL": REDIS.replace(
                f"127.0.0.1:{REDIS_PORT}", f"{host.here}:{broker.port}"
            ),
        }
        far = Remote(host, pg, broker, env)
        try:
            yield far
        finally:
            # Ended over a working link, before it goes: cut off, a worker's shutdown would
            # wait on its connections until killed.
            host.heal()
            for proc in far.procs:
                proc.terminate()
            for proc in far.procs:
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
