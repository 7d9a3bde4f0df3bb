"""A partition between hosts, not a process killed: a worker on another host (a network
namespace, reaching PostgreSQL and Redis over a link) is cut off mid-segment, its job goes to
a worker on this host, and the link comes back while the cut-off worker still runs. Then a
checker compares what the job acknowledged with what is stored: the same weights as an
undisturbed run, outputs whose checksums are the stored objects', and nothing recorded by
the cut-off worker after its job changed hands."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from orisel.core.jobs import Job, JobState
from orisel.core.storage import LocalStore
from tests.core.proxy import Proxy
from tests.faults import netns
from tests.faults.jobs import (
    BOUND_S,
    mid_segment,
    same_as_reference,
    start_controller,
    submit,
    wait_for,
)
from tests.procs import env_for, guarded
from tests.stack import REDIS, Stack

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not netns.available(), reason="needs root and iproute2 (namespaces)"),
]
PG, REDIS_PORT = 5432, 6379


def _holder(live: Stack, job_id: str) -> str:
    """The worker (its lease token) that took the job last."""
    taken = [e for e in live.db.events(job_id) if e.type in ("transition", "claimed")]
    return taken[-1].principal


def _ended(log: Path, bound: float = BOUND_S) -> str:
    """Wait for the cut-off worker's task to end, as its Celery log says; its outcome."""
    deadline = time.monotonic() + bound
    while "succeeded in" not in (text := log.read_text()):
        assert time.monotonic() < deadline, text[-2000:]
        time.sleep(0.2)
    return text.rpartition("succeeded in")[2].split(":", 1)[1].strip().splitlines()[0]


def test_a_worker_partitioned_mid_segment_changes_nothing_after_the_hand_over(
    live: Stack, reference: Job, tmp_path: Path
) -> None:
    with (
        netns.Host("orisel-partition", 7) as host,
        Proxy(PG, host.here) as pg,
        Proxy(REDIS_PORT, host.here) as broker,
    ):
        # The other host reaches this one's servers only over the link.
        env = {
            **env_for(live.settings),
            "ORISEL_DATABASE_URL": live.settings.database_url.replace(
                f"127.0.0.1:{PG}", f"{host.here}:{pg.port}"
            ),
            "ORISEL_BROKER_URL": REDIS.replace(
                f"127.0.0.1:{REDIS_PORT}", f"{host.here}:{broker.port}"
            ),
        }
        log = tmp_path / "cut-off.log"
        cmd = [sys.executable, "-m", "orisel", "worker", "--queues", "training"]
        with open(log, "ab") as out:
            far = subprocess.Popen(
                guarded(host.command([*cmd, "--pool", "prefork"])),
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        live.procs.append(far)
        start_controller(live)
        job_id = submit(live.address, "partitioned")
        wait_for(live, job_id, mid_segment)
        cut_off = _holder(live, job_id)
        host.partition()  # its packets are dropped: no reset, its calls hang
        live.worker("training", pool="prefork")
        # The survivor redoes the cut-off segment after a lease: twice the others' bound.
        job = wait_for(live, job_id, bound=2 * BOUND_S)
        host.heal()
        # It learnt at its next write that it had lost the job (or, the link lost again
        # before it could say so, left the outcome unrecorded): nothing retried or ended.
        assert _ended(log) in ("'STOPPED'", "'UNRECORDED'")
    # The checker, once the cut-off worker ended.
    assert live.db.get(job_id) == job  # nothing changed since the survivor ended it
    same_as_reference(live, reference, job)
    events = live.db.events(job_id)
    handed = next(i for i, e in enumerate(events) if e.type == "lease-expired")
    assert cut_off not in {e.principal for e in events[handed:]}
    assert _holder(live, job_id) != cut_off
    store = LocalStore(live.settings.store_root, live.settings.bucket)
    for ref in job.outputs:
        assert store.stat(ref.key) == ref
    assert job.state == JobState.SUCCEEDED
