from __future__ import annotations

from pathlib import Path

import pytest

from orisel.api.common.v1 import common_pb2
from orisel.core.errors import FailedPrecondition, InvalidArgument, NotFound
from orisel.core.jobs import JobState, JobStore
from orisel.core.storage import ArtifactRef, LocalStore


@pytest.fixture
def jobs(tmp_path: Path) -> JobStore:
    return JobStore(LocalStore(tmp_path / "store"))


def test_same_idempotency_key_same_job(jobs: JobStore) -> None:
    a, created_a = jobs.create("training", {"epochs": 3}, idempotency_key="k1")
    b, created_b = jobs.create("training", {"epochs": 3}, idempotency_key="k1")
    c, _ = jobs.create("training", {"epochs": 3}, idempotency_key="k2")
    assert created_a
    assert not created_b
    assert a.id == b.id != c.id
    assert jobs.create("scoring", {}, idempotency_key="k1")[0].id != a.id  # keys are per kind


def test_lifecycle_and_restart(jobs: JobStore, tmp_path: Path) -> None:
    job, _ = jobs.create("ablation", {"layers": ["layer1"]})
    assert job.state == JobState.QUEUED
    jobs.update(job.id, state=JobState.RUNNING, phase="sweep", fraction=0.5, metrics={"acc": 0.7})
    ref = ArtifactRef("orisel", "analyses/x/curves.csv", "ab" * 32, 10)
    done = jobs.update(job.id, state=JobState.SUCCEEDED, fraction=1.0, outputs=(ref,))
    assert done.finished_at >= done.created_at > 0
    with pytest.raises(FailedPrecondition, match="already succeeded"):
        jobs.update(job.id, state=JobState.RUNNING)
    restarted = JobStore(LocalStore(tmp_path / "store"))  # a new service process
    again = restarted.get(job.id)
    assert again == done
    assert [j.id for j in restarted.list(kind="ablation", state=JobState.SUCCEEDED)] == [job.id]
    assert restarted.list(kind="training") == []


def test_unknown_and_malformed_ids(jobs: JobStore) -> None:
    with pytest.raises(NotFound, match="job deadbeef does not exist"):
        jobs.get("deadbeef")
    with pytest.raises(InvalidArgument, match=r"^id: must be a job id"):
        jobs.get("../etc/passwd")
    with pytest.raises(InvalidArgument, match=r"^kind: must be one of"):
        jobs.create("juggling", {})


def test_to_proto(jobs: JobStore) -> None:
    job, _ = jobs.create("training", {"epochs": 3}, idempotency_key="k")
    job = jobs.update(job.id, state=JobState.FAILED, error="boom")
    msg = job.to_proto()
    assert msg.state == common_pb2.JOB_STATE_FAILED
    assert msg.error == "boom"
    assert msg.idempotency_key == "k"
    assert msg.finished_at.ToNanoseconds() > 0
    assert '"epochs": 3' in msg.spec_json
