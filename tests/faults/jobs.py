"""The jobs the fault tests run and how they check them: a small training job in two
segments, submitted through the front end, waited for in the job database, and compared
weight for weight with an undisturbed run of the same spec."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import grpc
import torch

from orisel.api.training.v1 import training_pb2, training_pb2_grpc
from orisel.control.job import Job, JobState
from orisel.store.backend import LocalStore
from tests.procs import env_for, guarded
from tests.stack import Stack

BOUND_S = 90.0  # every job below ends within this, faults included

SPEC = {"epochs": 4, "batch_size": 4, "val_size": 50, "epochs_per_segment": 2}
SEGMENTS = 2


def children_of(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


# Two networks trained as one population job (one worker, one task per segment).
POPULATION = [training_pb2.Variant(seed=0), training_pb2.Variant(seed=1, label_corruption=0.5)]


def submit(address: str, key: str, population: bool = False) -> str:
    with grpc.insecure_channel(address) as ch:
        stub = training_pb2_grpc.TrainingServiceStub(ch)
        spec = training_pb2.TrainSpec(**SPEC, population=POPULATION if population else [])  # type: ignore[arg-type]
        return str(stub.Submit(training_pb2.SubmitRequest(idempotency_key=key, spec=spec)).job.id)


def wait_for(live: Stack, job_id: str, until: Any = None, bound: float = BOUND_S) -> Job:
    """Poll the database until `until(job)` holds (default: the job ended)."""
    until = until or (lambda j: j.state.done)
    deadline = time.monotonic() + bound
    while time.monotonic() < deadline:
        job = live.db.get(job_id)
        if until(job):
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not get there within {bound} s: {live.db.get(job_id)}")


def mid_segment(job: Job) -> bool:
    return job.state == JobState.RUNNING and 0.05 < job.fraction < 0.4


def weights_of(live: Stack, job: Job) -> dict[str, torch.Tensor]:
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


def same_as_reference(live: Stack, reference: Job, job: Job) -> None:
    assert job.state == JobState.SUCCEEDED, job.error
    a, b = weights_of(live, reference), weights_of(live, job)
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name
    # One lost segment at most is redone.
    assert SEGMENTS <= job.attempts <= SEGMENTS + 2


def start_controller(live: Stack) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        guarded([sys.executable, "-m", "orisel", "controller"]),
        env=env_for(live.settings),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    live.procs.append(proc)
    return proc
