"""Training segments as the task runs them: each starts from what the store holds, whatever a
fenced attempt (a zombie whose lease lapsed while it trained on) left in the worker's folder,
and the same training stores the same bytes."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, cast

import pytest
import torch

from orisel.api.training.v1 import training_pb2
from orisel.control.job import Job, JobState
from orisel.control.lifecycle import JobRun, JobStopped
from orisel.models.checkpoint import save_checkpoint
from orisel.runtime.settings import Settings
from orisel.store.backend import ArtifactRef, ArtifactStore, LocalStore
from orisel.training.servicer import spec_of
from orisel.training.spec import TrainJob
from orisel.training.tasks import population, segment

# Two segments of one epoch, a checkpoint at each epoch's end.
SPEC = training_pb2.TrainSpec(
    epochs=2,
    epochs_per_segment=1,
    batch_size=4,
    train_subset=16,
    val_size=16,
    test_subset=20,
    early_checkpoint_until=0.0,
    deterministic=True,
)


class Refusing:
    """The store as a fenced attempt sees it: reads pass, writes whose key `refused` picks
    raise JobStopped (its lease went to another worker)."""

    def __init__(self, inner: ArtifactStore, refused: str) -> None:
        self.inner, self.refused = inner, refused

    def put_file(self, key: str, path: Path) -> ArtifactRef:
        if self.refused in key:
            raise JobStopped(key)
        return self.inner.put_file(key, path)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class Attempt:
    """One attempt of a job, as JobRun is to the task body: its own worker name, the store
    it writes through, and how it ended."""

    def __init__(self, job: Job, store: Any, worker: str) -> None:
        self.job, self.store, self.worker = job, store, worker
        self.outcome = ""

    def progress(self, **_: Any) -> None:
        pass

    def again(self) -> None:
        self.outcome = "again"

    def succeed(self, outputs: Any) -> None:
        self.outcome = "succeeded"


def attempt(settings: Settings, job: Job, store: Any, worker: str) -> str:
    run = Attempt(job, store, worker)
    body = population if TrainJob.of(job).population else segment
    body(cast(JobRun, run), settings)
    return run.outcome


def stored(store: LocalStore, job: Job, scratch: Path) -> dict[str, Any]:
    """The job's objects: checkpoints by their bytes' sha256, manifests by their contents
    less the sessions (each records its own wall time and host)."""
    out: dict[str, Any] = {}
    for ref in store.list(f"runs/{job.id}/"):
        name = ref.key.removeprefix(f"runs/{job.id}/")
        data = store.get_file(ref, scratch / job.id / name).read_bytes()
        if name.endswith(".json"):
            manifest = json.loads(data)
            manifest.pop("sessions")
            out[name] = manifest
        else:
            out[name] = hashlib.sha256(data).hexdigest()
    return out


@pytest.fixture
def settings(tmp_path: Path, python_archive: Path) -> Settings:
    return Settings(
        data=python_archive,
        cache_dir=tmp_path / "cache",
        work_dir=tmp_path / "work",
        store_root=tmp_path / "store",
    )


def new_job(
    settings: Settings, store: LocalStore, job_id: str, spec: training_pb2.TrainSpec = SPEC
) -> Job:
    request = training_pb2.SubmitRequest(spec=spec)
    return Job(id=job_id, kind="train", state=JobState.RUNNING, spec=spec_of(request, store).row())


def run_to_end(settings: Settings, store: LocalStore, job: Job, first: int = 0) -> int:
    """Segments, each on a worker of its own, until the job succeeds; how many it took."""
    for n in range(first, first + 4):
        if attempt(settings, job, store, f"host{n}:1:{n:08x}") == "succeeded":
            return n + 1 - first
    raise AssertionError("the job never ended")


@pytest.mark.integration  # trains (two segments, each attempt)
@pytest.mark.parametrize(
    "refused",
    [
        # Cut off for the whole segment: nothing of it landed, its run folder is ahead of
        # the store (the job's first segment: the store holds nothing yet).
        "runs/",
        # Cut off after its checkpoints' upload: the store holds a checkpoint that no stored
        # manifest names.
        "manifests/",
    ],
)
def test_a_segment_starts_from_the_store_not_from_a_fenced_attempts_folder(
    settings: Settings, refused: str
) -> None:
    store = LocalStore(settings.store_root, settings.bucket)
    undisturbed = new_job(settings, store, "undisturbed")
    assert run_to_end(settings, store, undisturbed) == 2
    want = stored(store, undisturbed, settings.work_dir / "check")
    assert sum(k.startswith("manifests/") for k in want) == 2

    job = new_job(settings, store, "disturbed")
    # The zombie trains its segment in the folder every worker of this host uses for the
    # job, then finds its writes refused.
    with pytest.raises(JobStopped):
        attempt(settings, job, Refusing(store, refused), "zombie:1:0000")
    # The segment is sent again: it must redo exactly that segment, then the next.
    assert run_to_end(settings, store, job, first=10) == 2
    # Trained on the data read from the cache (the undisturbed run decoded it), whose mean
    # image is a transposed view: stored in C order all the same.
    best = store.get_file(store.stat("runs/disturbed/best.pt"), settings.work_dir / "best.pt")
    assert torch.load(best, weights_only=True)["mean_image"].is_contiguous()
    assert stored(store, job, settings.work_dir / "check") == want


@pytest.mark.integration  # trains (a population of two, two segments, three times)
def test_a_population_resumes_from_the_segment_all_its_networks_stored(
    settings: Settings,
) -> None:
    """An attempt fenced between two networks' uploads stored the first network a segment
    further than the second: the next attempt starts both from the segment both stored
    (the first had only its newest checkpoint to go back from, and failed)."""
    spec = training_pb2.TrainSpec()
    spec.CopyFrom(SPEC)
    spec.population.extend([training_pb2.Variant(seed=0), training_pb2.Variant(seed=1)])
    store = LocalStore(settings.store_root, settings.bucket)
    undisturbed = new_job(settings, store, "undisturbed", spec)
    assert run_to_end(settings, store, undisturbed) == 2
    want = stored(store, undisturbed, settings.work_dir / "check")

    job = new_job(settings, store, "disturbed", spec)
    assert attempt(settings, job, store, "first:1:0000") == "again"
    second = [name for name, _ in TrainJob.of(job).networks()][1]
    with pytest.raises(JobStopped):  # its second network's manifest refused, the first's not
        attempt(settings, job, Refusing(store, f"{second}/manifests/"), "zombie:1:0000")
    assert run_to_end(settings, store, job, first=10) == 1
    assert stored(store, job, settings.work_dir / "check") == want


def test_the_same_state_is_saved_as_the_same_bytes(tmp_path: Path) -> None:
    """Checkpoints written twice from equal state (each through its own temporary file, the
    way every save goes) are equal byte for byte, mean image included."""
    mean = torch.rand(32, 32, 3).permute(2, 0, 1)  # a CHW view of HWC data
    state = {"model": {"w": torch.arange(12.0).reshape(3, 4)}, "mean_image": mean, "step": 4}
    save_checkpoint(tmp_path / "a" / "e1.pt", state)
    save_checkpoint(tmp_path / "b" / "e1.pt", state)
    assert (tmp_path / "a" / "e1.pt").read_bytes() == (tmp_path / "b" / "e1.pt").read_bytes()
