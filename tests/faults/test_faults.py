"""Faults, each made real: a process killed, a broker emptied or stopped, an S3 server
killed, a front end killed under a Watch. Every job still ends within a stated bound, with
the same outputs as an undisturbed run and no duplicate work beyond one segment.

Leases are short here (3 s, renewed every second) and the controller runs every 0.2 s, so a
lost worker is noticed within about 3.5 s; a lost message within dispatch_timeout_s = 4 s.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import redis
import torch

from orisel.api.common.v1 import common_pb2
from orisel.client.jobs import JobClient
from orisel.control.job import Job, JobState
from tests.faults.jobs import (
    BOUND_S,
    POPULATION,
    SEGMENTS,
    children_of,
    mid_segment,
    same_as_reference,
    start_controller,
    submit,
    wait_for,
    weights_of,
)
from tests.procs import env_for, free_port, guarded, moto_server
from tests.stack import Stack, stack

pytestmark = pytest.mark.integration

# Seconds from each fault to its job's end; `make bench` reads them (ORISEL_FAULT_REPORT).
RECOVERY: dict[str, float] = {}


@pytest.fixture(scope="module", autouse=True)
def _report() -> Iterator[None]:
    yield
    if path := os.environ.get("ORISEL_FAULT_REPORT"):
        Path(path).write_text(json.dumps({k: round(v, 1) for k, v in RECOVERY.items()}))


def _recovered(name: str, t0: float) -> None:
    RECOVERY[name] = time.monotonic() - t0


def test_worker_child_killed_mid_population(live: Stack, reference_population: Job) -> None:
    """A population's segment killed inside the training loop: the job is sent again and
    every network resumes from its last checkpoint to the reference's weights, bit for bit."""
    start_controller(live)
    worker = live.worker("training", pool="prefork")
    job_id = submit(live.address, "population-child-killed", population=True)
    wait_for(live, job_id, mid_segment)
    (child,) = children_of(worker.pid)
    os.kill(child, signal.SIGKILL)
    t0 = time.monotonic()
    job = wait_for(live, job_id)
    _recovered("worker_child_killed_mid_population", t0)
    same_as_reference(live, reference_population, job)
    assert len({k.split(":")[0] for k in weights_of(live, job)}) == len(POPULATION)
    assert job.retries == 1


def test_worker_child_killed_mid_segment(live: Stack, reference: Job) -> None:
    start_controller(live)
    worker = live.worker("training", pool="prefork")
    job_id = submit(live.address, "child-killed")
    wait_for(live, job_id, mid_segment)
    (child,) = children_of(worker.pid)
    os.kill(child, signal.SIGKILL)  # Celery's pool process, inside the training loop
    t0 = time.monotonic()
    job = wait_for(live, job_id)
    _recovered("worker_child_killed", t0)
    same_as_reference(live, reference, job)
    assert job.retries == 1


def test_whole_worker_killed_mid_segment(live: Stack, reference: Job) -> None:
    start_controller(live)
    victim = live.worker("training", pool="prefork", own_group=True)
    job_id = submit(live.address, "worker-killed")
    wait_for(live, job_id, mid_segment)
    os.killpg(victim.pid, signal.SIGKILL)  # the pod is gone: parent and pool process
    t0 = time.monotonic()
    victim.wait()
    live.worker("training", pool="prefork")  # the survivor
    job = wait_for(live, job_id)
    _recovered("whole_worker_killed", t0)
    same_as_reference(live, reference, job)
    assert job.retries == 1


def test_controller_killed_between_insert_and_send(live: Stack, reference: Job) -> None:
    controller = start_controller(live)
    controller.send_signal(signal.SIGKILL)  # no controller: jobs are saved, owed, unsent
    controller.wait()
    live.worker("training", pool="prefork")
    job_id = submit(live.address, "controller-killed")
    time.sleep(1.0)
    assert live.db.get(job_id).state == JobState.QUEUED  # saved, nothing lost, nothing sent
    t0 = time.monotonic()
    start_controller(live)  # a new controller sends what the outbox owes
    job = wait_for(live, job_id)
    _recovered("controller_killed_then_restarted", t0)
    same_as_reference(live, reference, job)
    assert job.retries == 0


def test_broker_emptied_with_queued_work(live: Stack, reference: Job) -> None:
    start_controller(live)  # no worker yet: the message waits in Redis
    job_id = submit(live.address, "broker-emptied")
    queue = f"{live.settings.broker_prefix}training"
    client = redis.Redis.from_url(live.settings.broker_url)
    deadline = time.monotonic() + 10
    while client.llen(queue) == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert client.llen(queue) == 1
    client.delete(queue)  # the broker restarted without its data: the message is gone
    t0 = time.monotonic()
    live.worker("training", pool="prefork")
    job = wait_for(live, job_id)  # re-sent after dispatch_timeout_s
    _recovered("broker_emptied", t0)
    same_as_reference(live, reference, job)
    assert live.db.events(job_id)[1].type == "transition"  # first claimed after the re-send


def test_front_end_killed_during_watch(live: Stack, reference: Job) -> None:
    port = free_port()
    env = {**env_for(live.settings), "ORISEL_GRPC_PORT": str(port)}
    cmd = [sys.executable, "-m", "orisel", "serve", "training"]

    def front_end() -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            guarded(cmd), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        live.procs.append(proc)
        return proc

    server = front_end()
    start_controller(live)
    live.worker("training", pool="prefork")
    client = JobClient(f"127.0.0.1:{port}", "training")
    deadline = time.monotonic() + 30
    while True:
        try:
            job_id = submit(f"127.0.0.1:{port}", "watched")
            break
        except grpc.RpcError:
            assert time.monotonic() < deadline
            time.sleep(0.2)
    seen: list[common_pb2.Job] = []
    watcher = threading.Thread(target=lambda: seen.extend(client.watch(job_id, timeout=120)))
    watcher.start()
    wait_for(live, job_id, mid_segment)
    server.send_signal(signal.SIGKILL)
    t0 = time.monotonic()
    server.wait()
    time.sleep(1.0)
    front_end()  # a new replica on the same address
    watcher.join(BOUND_S)
    _recovered("front_end_killed_during_watch", t0)
    assert not watcher.is_alive()
    assert seen[-1].state == common_pb2.JOB_STATE_SUCCEEDED
    seqs = [j.seq for j in seen]
    assert seqs == sorted(set(seqs))  # resumed after the last seq: nothing twice
    same_as_reference(live, reference, live.db.get(job_id))
    client.close()


def _redis_server(port: int) -> subprocess.Popen[bytes]:
    cmd = ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", ""]
    cmd += ["--appendonly", "no"]
    proc = subprocess.Popen(guarded(cmd), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            redis.Redis(port=port, socket_timeout=1).ping()
            return proc
        except redis.ConnectionError:
            time.sleep(0.05)
    raise RuntimeError("redis-server did not start")


def test_broker_down_when_a_segment_ends(
    tmp_path: Path, python_archive: Path, live: Stack, reference: Job
) -> None:
    port = free_port()
    broker = _redis_server(port)
    url = f"redis://127.0.0.1:{port}/0"
    with stack(
        tmp_path, data=python_archive, broker_url=url, lease_s=3.0, dispatch_timeout_s=4.0
    ) as own:
        own.serve(("training",))
        own.start_controller()
        log = tmp_path / "worker.log"
        worker = own.worker("training", pool="prefork", log=log)
        job_id = submit(own.address, "broker-down")
        try:
            wait_for(own, job_id, mid_segment)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\nworker log:\n{log.read_text()[-3000:]}") from exc
        broker.send_signal(signal.SIGKILL)  # down while the first segment still trains
        broker.wait()
        # The segment ends and is recorded in the database; sending the next one fails.
        wait_for(own, job_id, lambda j: j.attempts == 1 and j.fraction >= 0.5, bound=60)
        time.sleep(2.0)
        assert own.db.get(job_id).state == JobState.RUNNING
        t0 = time.monotonic()
        broker = _redis_server(port)  # back, and empty
        job = wait_for(own, job_id)
        _recovered("broker_down_at_segment_end_after_restart", t0)
        worker.terminate()
        worker.wait(30)
        a, b = weights_of(live, reference), weights_of(own, job)
        assert all(torch.equal(a[k], b[k]) for k in a)
        assert job.attempts == SEGMENTS
    broker.terminate()
    broker.wait(10)


def test_store_killed_mid_task(tmp_path: Path, python_archive: Path) -> None:
    with moto_server() as endpoint:
        host, port = endpoint.split(":")
        with stack(
            tmp_path,
            data=python_archive,
            store="s3",
            s3_endpoint=endpoint,
            s3_access_key="test",
            s3_secret_key="test",
            bucket="faults",
            lease_s=2.0,
            max_attempts=2,
        ) as own:
            own.serve(("training",))
            own.start_controller()
            worker = own.worker("training", pool="prefork")
            job_id = submit(own.address, "store-killed")
            wait_for(own, job_id, mid_segment)
            # Kill the S3 server (moto's process) while the segment trains: uploading its
            # checkpoints fails, is retried with backoff, then the job FAILS with the reason.
            subprocess.run(["pkill", "-9", "-f", f"moto_server -H {host} -p {port}"], check=True)
            t0 = time.monotonic()
            job = wait_for(own, job_id)
            _recovered("store_killed_to_failed", t0)
            assert job.state == JobState.FAILED
            assert job.error.startswith("gave up after 2 attempts: ")
            assert "Error" in job.error
            worker.terminate()
            worker.wait(30)


def test_cancel_stops_a_running_segment_cleanly(live: Stack, tmp_path: Path) -> None:
    log = tmp_path / "worker.log"
    start_controller(live)
    live.worker("training", pool="prefork", log=log)
    job_id = submit(live.address, "cancelled")
    wait_for(live, job_id, mid_segment)
    cancelled = live.db.cancel(job_id)
    assert cancelled.state == JobState.CANCELLED
    # The task notices at its next progress report, stops and gives the job back.
    deadline = time.monotonic() + 30
    while "stopped (cancelled or lease lost)" not in log.read_text():
        assert time.monotonic() < deadline, log.read_text()[-2000:]
        time.sleep(0.1)
    text = log.read_text()
    assert "Traceback" not in text
    assert "raised unexpected" not in text
    assert live.db.get(job_id) == cancelled  # nothing written after the cancel
