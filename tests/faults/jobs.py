"""The jobs the fault tests run and how they check them: a small training job in two
segments, submitted through the front end, waited for in the job database, and compared
weight for weight with an undisturbed run of the same spec, and object for object with
what that run stored."""

from __future__ import annotations

import hashlib
import json
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


# Where, when and how long a run trained, not what it computed: left out of a manifest when
# two runs' objects are compared.
CIRCUMSTANCES = ("sessions", "environment")


def objects(store: LocalStore, job_id: str, scratch: Path) -> dict[str, str]:
    """What the job stored under runs/<job>/, by name: a checkpoint's sha256, a manifest's
    over its contents less CIRCUMSTANCES. Equal for a run and its undisturbed twin: the same
    names (one manifest per segment, at the same steps) and the same bytes."""
    found: dict[str, str] = {}
    for ref in store.list(f"runs/{job_id}/"):
        name = ref.key.removeprefix(f"runs/{job_id}/")
        if name.endswith(".json"):
            manifest = _manifest(store.get_file(ref, scratch / job_id / name))
            found[name] = hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()
        else:
            found[name] = ref.sha256
    return found


def differences(store: LocalStore, want_id: str, job_id: str, scratch: Path) -> list[str]:
    """How the objects of `job_id` differ from those of `want_id` (its undisturbed twin): each
    name only one holds, and for an object both hold, which of its entries differ (a
    checkpoint's by path, tensors by value and layout; a manifest's by key)."""
    want, got = objects(store, want_id, scratch), objects(store, job_id, scratch)
    found = [f"{name}: only the undisturbed run's" for name in sorted(want.keys() - got.keys())]
    found += [f"{name}: not the undisturbed run's" for name in sorted(got.keys() - want.keys())]
    for name in sorted(n for n in want.keys() & got.keys() if want[n] != got[n]):
        a, b = (scratch / i / name for i in (want_id, job_id))
        for i, path in zip((want_id, job_id), (a, b), strict=True):
            if not path.is_file():
                store.get_file(store.stat(f"runs/{i}/{name}"), path)
        if name.endswith(".json"):
            entries = _entries(_manifest(a), _manifest(b), "")
        else:
            entries = _entries(
                torch.load(a, weights_only=False), torch.load(b, weights_only=False), ""
            )
        found += [f"{name}: {e}" for e in entries] or [f"{name}: equal entries, other bytes"]
    return found


def _manifest(path: Path) -> dict[str, Any]:
    manifest: dict[str, Any] = json.loads(path.read_text())
    for key in CIRCUMSTANCES:
        manifest.pop(key, None)
    return manifest


def _entries(a: Any, b: Any, at: str) -> list[str]:
    """The paths at which two loaded objects differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = [f"{at}.{k} in one only" for k in sorted(a.keys() ^ b.keys(), key=str)]
        for k in sorted(a.keys() & b.keys(), key=str):
            out += _entries(a[k], b[k], f"{at}.{k}")
        return out
    if isinstance(a, list | tuple) and isinstance(b, list | tuple) and len(a) == len(b):
        return [
            e
            for i, (x, y) in enumerate(zip(a, b, strict=True))
            for e in _entries(x, y, f"{at}[{i}]")
        ]
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        if a.dtype != b.dtype or a.shape != b.shape or not torch.equal(a, b):
            return [f"{at or '.'}: other values"]
        if a.stride() != b.stride():
            return [f"{at or '.'}: equal values, strides {a.stride()} and {b.stride()}"]
        return []
    return [] if a == b else [f"{at or '.'}: {str(a)[:80]} and {str(b)[:80]}"]
