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
from typing import Any

import grpc
import pytest
import redis
import torch

from orisel.api.common.v1 import common_pb2
from orisel.api.training.v1 import training_pb2, training_pb2_grpc
from orisel.client.jobs import JobClient
from orisel.core.jobs import Job, JobState
from orisel.core.storage import LocalStore
from tests.procs import env_for, free_port, guarded, moto_server
from tests.stack import Stack, stack

pytestmark = pytest.mark.integration

BOUND_S = 90.0  # every job below ends within this, faults included
# Seconds from each fault to its job's end; `make bench` reads them (ORISEL_FAULT_REPORT).
RECOVERY: dict[str, float] = {}


@pytest.fixture(scope="module", autouse=True)
def _report() -> Iterator[None]:
    yield
    if path := os.environ.get("ORISEL_FAULT_REPORT"):
        Path(path).write_text(json.dumps({k: round(v, 1) for k, v in RECOVERY.items()}))


def _recovered(name: str, t0: float) -> None:
    RECOVERY[name] = time.monotonic() - t0


SPEC = {"epochs": 4, "batch_size": 4, "val_size": 50, "epochs_per_segment": 2}
SEGMENTS = 2


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


# Two networks trained as one population job (one worker, one task per segment).
POPULATION = [training_pb2.Variant(seed=0), training_pb2.Variant(seed=1, label_corruption=0.5)]


def _submit(address: str, key: str, population: bool = False) -> str:
    with grpc.insecure_channel(address) as ch:
        stub = training_pb2_grpc.TrainingServiceStub(ch)
        spec = training_pb2.TrainSpec(**SPEC, population=POPULATION if population else [])  # type: ignore[arg-type]
        return str(stub.Submit(training_pb2.SubmitRequest(idempotency_key=key, spec=spec)).job.id)


def _wait(live: Stack, job_id: str, until: Any = None, bound: float = BOUND_S) -> Job:
    """Poll the database until `until(job)` holds (default: the job ended)."""
    until = until or (lambda j: j.state.done)
    deadline = time.monotonic() + bound
    while time.monotonic() < deadline:
        job = live.db.get(job_id)
        if until(job):
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not get there within {bound} s: {live.db.get(job_id)}")


def _mid_segment(job: Job) -> bool:
    return job.state == JobState.RUNNING and 0.05 < job.fraction < 0.4


def _weights(live: Stack, job: Job) -> dict[str, torch.Tensor]:
    """Every best checkpoint of the job (one per network of a population), by network."""
    store = LocalStore(live.settings.store_root, live.settings.bucket)
    state: dict[str, torch.Tensor] = {}
    for ref in (r for r in job.outputs if r.key.endswith("best.pt")):
        network = ref.key.removeprefix(f"runs/{job.id}/")
        path = store.get_file(ref, live.settings.work_dir / "check" / job.id / network)
        for name, value in torch.load(path, weights_only=False)["model"].items():
            state[f"{network}:{name}"] = value
    assert state, job.outputs
    return state


def _same_as_reference(live: Stack, reference: Job, job: Job) -> None:
    assert job.state == JobState.SUCCEEDED, job.error
    a, b = _weights(live, reference), _weights(live, job)
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name
    # One lost segment at most is redone.
    assert SEGMENTS <= job.attempts <= SEGMENTS + 2


def _controller(live: Stack) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        guarded([sys.executable, "-m", "orisel", "controller"]),
        env=env_for(live.settings),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    live.procs.append(proc)
    return proc


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, python_archive: Path) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("faults")
    with stack(root, data=python_archive, lease_s=3.0, dispatch_timeout_s=4.0) as s:
        s.serve(("training",))
        yield s


@pytest.fixture(autouse=True)
def _own_processes(live: Stack) -> Iterator[None]:
    """Every worker, controller and front end a test starts ends with it, passed or failed."""
    started = len(live.procs)
    yield
    live.stop(started)


@pytest.fixture(scope="module")
def reference(live: Stack) -> Job:
    """The undisturbed run every faulty run must reproduce."""
    started = len(live.procs)
    _controller(live)
    live.worker("training", pool="prefork")
    try:
        job = _wait(live, _submit(live.address, "reference"))
    finally:
        live.stop(started)  # ended even when the reference fails: no stray worker stays
    assert job.state == JobState.SUCCEEDED, job.error
    assert job.attempts == SEGMENTS
    return job


@pytest.fixture(scope="module")
def reference_population(live: Stack) -> Job:
    """The undisturbed population job a killed one must reproduce, network by network."""
    started = len(live.procs)
    _controller(live)
    live.worker("training", pool="prefork")
    try:
        job = _wait(live, _submit(live.address, "reference-population", population=True))
    finally:
        live.stop(started)  # ended even when the reference fails: no stray worker stays
    assert job.state == JobState.SUCCEEDED, job.error
    return job


def test_worker_child_killed_mid_population(live: Stack, reference_population: Job) -> None:
    """A population's segment killed inside the training loop: the job is sent again and
    every network resumes from its last checkpoint to the reference's weights, bit for bit."""
    _controller(live)
    worker = live.worker("training", pool="prefork")
    job_id = _submit(live.address, "population-child-killed", population=True)
    _wait(live, job_id, _mid_segment)
    (child,) = _children(worker.pid)
    os.kill(child, signal.SIGKILL)
    t0 = time.monotonic()
    job = _wait(live, job_id)
    _recovered("worker_child_killed_mid_population", t0)
    _same_as_reference(live, reference_population, job)
    assert len({k.split(":")[0] for k in _weights(live, job)}) == len(POPULATION)
    assert job.retries == 1


def test_worker_child_killed_mid_segment(live: Stack, reference: Job) -> None:
    _controller(live)
    worker = live.worker("training", pool="prefork")
    job_id = _submit(live.address, "child-killed")
    _wait(live, job_id, _mid_segment)
    (child,) = _children(worker.pid)
    os.kill(child, signal.SIGKILL)  # Celery's pool process, inside the training loop
    t0 = time.monotonic()
    job = _wait(live, job_id)
    _recovered("worker_child_killed", t0)
    _same_as_reference(live, reference, job)
    assert job.retries == 1


def test_whole_worker_killed_mid_segment(live: Stack, reference: Job) -> None:
    _controller(live)
    victim = live.worker("training", pool="prefork", own_group=True)
    job_id = _submit(live.address, "worker-killed")
    _wait(live, job_id, _mid_segment)
    os.killpg(victim.pid, signal.SIGKILL)  # the pod is gone: parent and pool process
    t0 = time.monotonic()
    victim.wait()
    live.worker("training", pool="prefork")  # the survivor
    job = _wait(live, job_id)
    _recovered("whole_worker_killed", t0)
    _same_as_reference(live, reference, job)
    assert job.retries == 1


def test_controller_killed_between_insert_and_send(live: Stack, reference: Job) -> None:
    controller = _controller(live)
    controller.send_signal(signal.SIGKILL)  # no controller: jobs are saved, owed, unsent
    controller.wait()
    live.worker("training", pool="prefork")
    job_id = _submit(live.address, "controller-killed")
    time.sleep(1.0)
    assert live.db.get(job_id).state == JobState.QUEUED  # saved, nothing lost, nothing sent
    t0 = time.monotonic()
    _controller(live)  # a new controller sends what the outbox owes
    job = _wait(live, job_id)
    _recovered("controller_killed_then_restarted", t0)
    _same_as_reference(live, reference, job)
    assert job.retries == 0


def test_broker_emptied_with_queued_work(live: Stack, reference: Job) -> None:
    _controller(live)  # no worker yet: the message waits in Redis
    job_id = _submit(live.address, "broker-emptied")
    queue = f"{live.settings.broker_prefix}training"
    client = redis.Redis.from_url(live.settings.broker_url)
    deadline = time.monotonic() + 10
    while client.llen(queue) == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert client.llen(queue) == 1
    client.delete(queue)  # the broker restarted without its data: the message is gone
    t0 = time.monotonic()
    live.worker("training", pool="prefork")
    job = _wait(live, job_id)  # re-sent after dispatch_timeout_s
    _recovered("broker_emptied", t0)
    _same_as_reference(live, reference, job)
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
    _controller(live)
    live.worker("training", pool="prefork")
    client = JobClient(f"127.0.0.1:{port}", "training")
    deadline = time.monotonic() + 30
    while True:
        try:
            job_id = _submit(f"127.0.0.1:{port}", "watched")
            break
        except grpc.RpcError:
            assert time.monotonic() < deadline
            time.sleep(0.2)
    seen: list[common_pb2.Job] = []
    watcher = threading.Thread(target=lambda: seen.extend(client.watch(job_id, timeout=120)))
    watcher.start()
    _wait(live, job_id, _mid_segment)
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
    _same_as_reference(live, reference, live.db.get(job_id))
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
        job_id = _submit(own.address, "broker-down")
        try:
            _wait(own, job_id, _mid_segment)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\nworker log:\n{log.read_text()[-3000:]}") from exc
        broker.send_signal(signal.SIGKILL)  # down while the first segment still trains
        broker.wait()
        # The segment ends and is recorded in the database; sending the next one fails.
        _wait(own, job_id, lambda j: j.attempts == 1 and j.fraction >= 0.5, bound=60)
        time.sleep(2.0)
        assert own.db.get(job_id).state == JobState.RUNNING
        t0 = time.monotonic()
        broker = _redis_server(port)  # back, and empty
        job = _wait(own, job_id)
        _recovered("broker_down_at_segment_end_after_restart", t0)
        worker.terminate()
        worker.wait(30)
        a, b = _weights(live, reference), _weights(own, job)
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
            job_id = _submit(own.address, "store-killed")
            _wait(own, job_id, _mid_segment)
            # Kill the S3 server (moto's process) while the segment trains: uploading its
            # checkpoints fails, is retried with backoff, then the job FAILS with the reason.
            subprocess.run(["pkill", "-9", "-f", f"moto_server -H {host} -p {port}"], check=True)
            t0 = time.monotonic()
            job = _wait(own, job_id)
            _recovered("store_killed_to_failed", t0)
            assert job.state == JobState.FAILED
            assert job.error.startswith("gave up after 2 attempts: ")
            assert "Error" in job.error
            worker.terminate()
            worker.wait(30)


def test_cancel_stops_a_running_segment_cleanly(live: Stack, tmp_path: Path) -> None:
    log = tmp_path / "worker.log"
    _controller(live)
    live.worker("training", pool="prefork", log=log)
    job_id = _submit(live.address, "cancelled")
    _wait(live, job_id, _mid_segment)
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
