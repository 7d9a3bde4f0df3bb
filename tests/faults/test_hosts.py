"""Faults between hosts, not in processes: workers and a front end on other hosts (network
namespaces) reaching this host's PostgreSQL and Redis over links that are cut, cut from the
database only, made slow and lossy, or whose hosts' clocks are wrong. After each, a checker
compares what the jobs acknowledged with what is stored: every job ended, with the weights
of an undisturbed run, one job per idempotency key, outputs whose checksums are the stored
objects' and no others, and nothing recorded by a worker after its job changed hands.

One stack and one undisturbed run serve the module (tests.faults.conftest); each host takes
a slot of its own (tests.faults.netns), so the scenarios, and runs beside them, share
nothing else."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from orisel.api.common.v1 import common_pb2
from orisel.api.training.v1 import training_pb2
from orisel.client.jobs import JobClient
from orisel.control.engine import UNREACHABLE_S
from orisel.control.job import Job, JobState
from orisel.rpc.server import RETRY_HEADER
from orisel.runtime.settings import get_settings
from orisel.store.backend import LocalStore
from tests.certs import make_pki
from tests.faults import netns
from tests.faults.hosts import remote
from tests.faults.jobs import (
    BOUND_S,
    SEGMENTS,
    SPEC,
    differences,
    mid_segment,
    same_as_reference,
    start_controller,
    submit,
    wait_for,
)
from tests.stack import Stack

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not netns.available(), reason="needs root and iproute2 (namespaces)"),
]


SERVING, NOT_SERVING = 1, 2  # grpc.health.v1 HealthCheckResponse.ServingStatus


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


def _checked(live: Stack, reference: Job, job: Job, key: str) -> None:
    """The job is the undisturbed run's, once; the store holds its outputs, and under its
    prefix the same objects as the undisturbed run's, none twice or left over."""
    same_as_reference(live, reference, job)
    assert [j.id for j in live.db.list(page_size=1000)[0] if j.idempotency_key == key] == [job.id]
    store = LocalStore(live.settings.store_root, live.settings.bucket)
    for ref in job.outputs:
        assert store.stat(ref.key) == ref
    # The same objects byte for byte, a manifest per segment at the same steps: none from a
    # fenced attempt, no segment continued from what a fenced attempt left on its worker.
    assert differences(store, reference.id, job.id, live.settings.work_dir / "check") == []


def test_a_worker_partitioned_mid_segment_changes_nothing_after_the_hand_over(
    live: Stack, reference: Job, tmp_path: Path
) -> None:
    with remote(live, "partition") as far:
        log = tmp_path / "cut-off.log"
        far.worker(live, log)
        start_controller(live)
        job_id = submit(live.address, "partitioned")
        wait_for(live, job_id, mid_segment)
        cut_off = _holder(live, job_id)
        far.host.partition()  # its packets are dropped: no reset, its calls hang
        live.worker("training", pool="prefork")
        # The survivor redoes the cut-off segment after a lease: twice the others' bound.
        job = wait_for(live, job_id, bound=2 * BOUND_S)
        far.host.heal()
        # It learnt at its next write that it had lost the job (or, the link lost again
        # before it could say so, left the outcome unrecorded): nothing retried or ended.
        assert _ended(log) in ("'STOPPED'", "'UNRECORDED'")
    # The checker, once the cut-off worker ended.
    assert live.db.get(job_id) == job  # nothing changed since the survivor ended it
    _checked(live, reference, job, "partitioned")
    events = live.db.events(job_id)
    handed = next(i for i, e in enumerate(events) if e.type == "lease-expired")
    assert cut_off not in {e.principal for e in events[handed:]}
    assert _holder(live, job_id) != cut_off
    assert job.state == JobState.SUCCEEDED


def test_jobs_end_the_same_over_a_slow_lossy_link(
    live: Stack, reference: Job, tmp_path: Path
) -> None:
    """200 ms more from the worker's host, 20% of packets lost each way: TCP resends, every
    call is slow, and the job still ends as undisturbed. A resend backs off for seconds, so
    the worker takes a lease of 15 s (deployed: 60 s), not the 3 s the other faults use to
    be quick: the lease must outlast a heartbeat's resends, or the job is handed over and
    lost over again until its retries are spent (seen with 3 s)."""
    with remote(live, "lossy", delay_s=0.2) as far:
        far.host.lossy(20)
        far.worker(live, tmp_path / "lossy.log", lease_s=15.0)
        start_controller(live)
        job = wait_for(live, submit(live.address, "lossy"), bound=3 * BOUND_S)
    _checked(live, reference, job, "lossy")
    assert "lease-expired" not in {e.type for e in live.db.events(job.id)}


def test_workers_with_clocks_minutes_off_keep_their_leases(
    live: Stack, reference: Job, tmp_path: Path
) -> None:
    """Leases go by the database's clock: a worker ten minutes behind does not see its lease
    lapse at once, one ten minutes ahead does not hold it for ten minutes or take another's,
    and neither owes its next segment late."""
    with (
        remote(live, "behind") as behind,
        remote(live, "ahead") as ahead,
    ):
        behind.worker(live, tmp_path / "behind.log", clock="-10m")
        ahead.worker(live, tmp_path / "ahead.log", clock="+10m")
        start_controller(live)
        keys = ["skewed-0", "skewed-1"]
        ids = [submit(live.address, key) for key in keys]
        jobs = [wait_for(live, job_id) for job_id in ids]
    for job, key in zip(jobs, keys, strict=True):
        _checked(live, reference, job, key)
        assert job.attempts == SEGMENTS  # no lease broken, no segment run twice
        assert "lease-expired" not in {e.type for e in live.db.events(job.id)}
        # Stamped by the database's clock, not the skewed worker's.
        assert abs(job.finished_at - time.time()) < BOUND_S


def _health(address: str) -> int:
    """The front end's readiness, as a probe reads it (plaintext, health only)."""
    with grpc.insecure_channel(address) as ch:
        answer = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=5)
    return int(answer.status)


def _until(check: Callable[[], bool], bound: float, what: str) -> None:
    """Poll until `check()` holds; fail with `what` after `bound` seconds."""
    t0 = time.monotonic()
    while not check():
        assert time.monotonic() - t0 < bound, what
        time.sleep(0.2)


def test_a_front_end_cut_off_from_the_database_answers_and_its_watch_resumes(
    live: Stack, reference: Job, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A front end on another host loses the database, not its clients: it answers every
    call at once with UNAVAILABLE and a retry hint, reads NOT_SERVING, and once the link
    is back serves again; a Watch through it resumes and misses nothing, a Submit retried
    with its key makes one job."""
    with remote(live, "frontend") as far:
        pki = make_pki(tmp_path / "pki", [far.host.there])
        port, health_port = 50051, 50052  # the host's own: nothing else listens there
        far.start(
            live,
            ["serve", "training"],
            tmp_path / "front-end.log",
            {
                "ORISEL_GRPC_HOST": far.host.there,
                "ORISEL_GRPC_PORT": str(port),
                "ORISEL_HEALTH_PORT": str(health_port),
                "ORISEL_AUTH": "token",
                "ORISEL_TLS_CERT_FILE": str(pki.server_cert),
                "ORISEL_TLS_KEY_FILE": str(pki.server_key),
                "ORISEL_TLS_CLIENT_CA_FILE": str(pki.ca),
            },
            [],
        )
        start_controller(live)
        live.worker("training", pool="prefork")
        # This process's client presents a certificate of the deployment's CA.
        monkeypatch.setenv("ORISEL_CA", str(pki.ca))
        monkeypatch.setenv("ORISEL_CLIENT_CERT", str(pki.client_cert))
        monkeypatch.setenv("ORISEL_CLIENT_KEY", str(pki.client_key))
        get_settings.cache_clear()
        client = JobClient(f"{far.host.there}:{port}", "training")
        probe = f"{far.host.there}:{health_port}"

        def submit_(key: str) -> str:
            spec = training_pb2.TrainSpec(**SPEC)  # type: ignore[arg-type]
            request = training_pb2.SubmitRequest(idempotency_key=key, spec=spec)
            return str(client.submit(request).id)

        _until(lambda: _answers(lambda: _health(probe)), 30, "the front end did not start")
        job_id = submit_("watched-across")
        seen: list[common_pb2.Job] = []
        watcher = threading.Thread(target=lambda: seen.extend(client.watch(job_id, timeout=300)))
        watcher.start()
        wait_for(live, job_id, mid_segment)
        far.host.cut(far.pg.port)  # the database's packets dropped; clients still reach it
        _until(lambda: _health(probe) == NOT_SERVING, 30, "still SERVING")
        for call in (lambda: client.get(job_id), lambda: submit_("while-cut")):
            t0 = time.monotonic()
            with pytest.raises(grpc.RpcError) as refused:
                call()
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE, refused.value
            # An answer once the database went unanswered, not a call hung on the link.
            assert time.monotonic() - t0 < UNREACHABLE_S + 5
            hint = dict(refused.value.trailing_metadata() or ())
            assert int(hint[RETRY_HEADER]) > 0
        wait_for(live, job_id)  # it ends meanwhile, unseen through this front end
        assert watcher.is_alive()
        far.host.heal()
        _until(lambda: _health(probe) == SERVING, 30, "not SERVING again")
        retried = submit_("while-cut")
        watcher.join(BOUND_S)
        assert not watcher.is_alive()
        assert submit_("while-cut") == retried  # the same job, however often asked
        client.close()
        second = wait_for(live, retried)
    get_settings.cache_clear()
    assert seen[-1].state == common_pb2.JOB_STATE_SUCCEEDED
    seqs = [j.seq for j in seen]
    assert seqs == sorted(set(seqs))  # resumed after the last seq: nothing twice
    _checked(live, reference, live.db.get(job_id), "watched-across")
    _checked(live, reference, second, "while-cut")


def _answers(call: Callable[[], object]) -> bool:
    try:
        call()
    except grpc.RpcError:
        return False
    return True
