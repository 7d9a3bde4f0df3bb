"""The job API at the edge, on a real front end and PostgreSQL: every bad input gets a clear
status naming the field (never UNKNOWN), Submit is idempotent under a burst, a reused key
with another spec is ALREADY_EXISTS, each domain service sees only its own kind, and
Watch resumes after a sequence number."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest

from orisel.api.common.v1 import common_pb2
from orisel.api.jobs.v1 import jobs_pb2, jobs_pb2_grpc
from orisel.api.pipeline.v1 import pipeline_pb2, pipeline_pb2_grpc
from orisel.api.scoring.v1 import scoring_pb2, scoring_pb2_grpc
from orisel.api.training.v1 import training_pb2, training_pb2_grpc
from orisel.kernel.errors import InvalidArgument
from orisel.runtime import metrics
from orisel.store.backend import ArtifactRef
from orisel.store.scratch import local_path
from tests.stack import Stack, stack

pytestmark = pytest.mark.service  # servicers in this process, on a real database


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with stack(tmp_path_factory.mktemp("edge")) as s:
        s.serve()  # no controller, no worker: jobs stay queued
        yield s


@pytest.fixture(scope="module")
def channel(live: Stack) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(live.address) as ch:
        yield ch


def _code(call: object, *args: object) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as err:
        call(*args)  # type: ignore[operator]
    return err.value.code(), err.value.details() or ""


def _train(epochs: int = 2, **kw: object) -> training_pb2.TrainSpec:
    return training_pb2.TrainSpec(epochs=epochs, **kw)  # type: ignore[arg-type]


def test_burst_of_submits_with_one_key_makes_one_job(channel: grpc.Channel) -> None:
    stub = training_pb2_grpc.TrainingServiceStub(channel)
    request = training_pb2.SubmitRequest(idempotency_key="burst", spec=_train())
    with ThreadPoolExecutor(32) as pool:
        ids = set(pool.map(lambda _: stub.Submit(request).job.id, range(32)))
    assert len(ids) == 1
    other = training_pb2.SubmitRequest(idempotency_key="burst", spec=_train(epochs=3))
    code, details = _code(stub.Submit, other)
    assert code == grpc.StatusCode.ALREADY_EXISTS
    assert "idempotency_key 'burst'" in details


BAD_SUBMITS = [
    (_train(epochs=10_001), "spec.epochs"),
    (_train(batch_size=100_000), "spec.batch_size"),
    (_train(model="../../etc/passwd"), "spec.model"),
    (_train(model="x" * 5000), "spec.model"),
    (_train(seed=-1), "spec.seed"),
    (_train(train_subset=-5), "spec.train_subset"),
    (_train(epochs_per_segment=20_000), "spec.epochs_per_segment"),
    (_train(lr=1e9), "spec.lr"),
]


@pytest.mark.parametrize(("spec", "field"), BAD_SUBMITS)
def test_bad_training_specs_name_the_field(
    channel: grpc.Channel, spec: training_pb2.TrainSpec, field: str
) -> None:
    stub = training_pb2_grpc.TrainingServiceStub(channel)
    code, details = _code(stub.Submit, training_pb2.SubmitRequest(spec=spec))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert details.startswith(f"{field}:")
    assert len(details) < 400


def test_bad_pipeline_and_scoring_specs(channel: grpc.Channel) -> None:
    pipe = pipeline_pb2_grpc.PipelineServiceStub(channel)
    many = pipeline_pb2.PaperSpec(label_corruptions=[i / 100 for i in range(40)])
    code, details = _code(pipe.Submit, pipeline_pb2.SubmitRequest(spec=many))
    assert (code, details.split(":")[0]) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "spec.label_corruptions",
    )
    huge = pipeline_pb2.PaperSpec(permutations=10**6)
    assert _code(pipe.Submit, pipeline_pb2.SubmitRequest(spec=huge))[1].startswith(
        "spec.permutations"
    )
    score = scoring_pb2_grpc.ScoringServiceStub(channel)
    for key in ("../../etc/passwd", "a\x00b", "x/" * 600):
        spec = scoring_pb2.ScoreSpec(checkpoint=common_pb2.ArtifactRef(key=key))
        code, details = _code(score.Submit, scoring_pb2.SubmitRequest(spec=spec))
        assert code == grpc.StatusCode.INVALID_ARGUMENT
        assert details.startswith("key:")
    long_key = scoring_pb2.SubmitRequest(idempotency_key="k" * 300, spec=scoring_pb2.ScoreSpec())
    assert _code(score.Submit, long_key)[0] == grpc.StatusCode.INVALID_ARGUMENT


def test_no_request_field_names_a_path_or_bucket(live: Stack, channel: grpc.Channel) -> None:
    """A data reference is resolved in the store at Submit: a crafted checksum or bucket
    never reaches a worker's file system or S3 client, and nothing is created."""
    stub = training_pb2_grpc.TrainingServiceStub(channel)
    before = len(live.db.list(page_size=1000)[0])
    crafted = [
        common_pb2.ArtifactRef(key="x/passwd", sha256="../../../../etc"),
        common_pb2.ArtifactRef(key="../../etc/passwd"),
        common_pb2.ArtifactRef(bucket="someone-elses", key="datasets/c.tar.gz"),
    ]
    for ref in crafted:
        code, details = _code(stub.Submit, training_pb2.SubmitRequest(spec=_train(data=ref)))
        assert code in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT), details
    assert len(live.db.list(page_size=1000)[0]) == before
    with pytest.raises(InvalidArgument, match="sha256"):
        local_path(Path("/work/cache"), ArtifactRef("b", "x/passwd", "../../../../etc", 1))


def _token(at: float, last: str) -> str:
    return base64.urlsafe_b64encode(json.dumps([at, last]).encode()).decode()


def test_bad_ids_tokens_and_enums(channel: grpc.Channel) -> None:
    stub = training_pb2_grpc.TrainingServiceStub(channel)
    jobs = jobs_pb2_grpc.JobServiceStub(channel)
    for bad in ("x" * 5000, "", "../../etc", "é" * 32):
        assert (
            _code(stub.Get, training_pb2.GetRequest(id=bad))[0] == grpc.StatusCode.INVALID_ARGUMENT
        )
        assert _code(jobs.CancelJob, jobs_pb2.CancelJobRequest(id=bad))[1].startswith("id:")
        watch = jobs.WatchJob(jobs_pb2.WatchJobRequest(id=bad))
        assert _code(next, watch)[0] == grpc.StatusCode.INVALID_ARGUMENT
    assert _code(stub.Get, training_pb2.GetRequest(id="0" * 32))[0] == grpc.StatusCode.NOT_FOUND
    # A token that decodes, but to an id no job has: a NUL never reaches PostgreSQL.
    forged = [_token(1.0, "\x00"), _token(1.0, "0" * 31 + "\x00"), _token(float("inf"), "0" * 32)]
    for token in ("x", "e30=", "%%%", "W1tdLCAiIl0=" * 30, *forged):
        code, details = _code(jobs.ListJobs, jobs_pb2.ListJobsRequest(page_token=token))
        assert (code, details.split(":")[0]) == (grpc.StatusCode.INVALID_ARGUMENT, "page_token")
    code, details = _code(stub.List, training_pb2.ListRequest(state=99))  # type: ignore[arg-type]
    assert (code, details.split(":")[0]) == (grpc.StatusCode.INVALID_ARGUMENT, "state")
    code, details = _code(jobs.ListJobs, jobs_pb2.ListJobsRequest(kind="juggling"))
    assert details.startswith("kind:")
    assert _code(stub.List, training_pb2.ListRequest(page_size=5000))[1].startswith("page_size:")


def test_each_service_sees_its_own_kind_and_jobservice_sees_all(channel: grpc.Channel) -> None:
    training = training_pb2_grpc.TrainingServiceStub(channel)
    pipeline = pipeline_pb2_grpc.PipelineServiceStub(channel)
    jobs = jobs_pb2_grpc.JobServiceStub(channel)
    job = training.Submit(training_pb2.SubmitRequest(spec=_train())).job
    code, _ = _code(pipeline.Cancel, pipeline_pb2.CancelRequest(id=job.id))
    assert code == grpc.StatusCode.NOT_FOUND  # not a pipeline job: left alone
    assert jobs.GetJob(jobs_pb2.GetJobRequest(id=job.id)).job.kind == "training"
    listed = jobs.ListJobs(jobs_pb2.ListJobsRequest(kind="training", page_size=1000)).jobs
    assert job.id in [j.id for j in listed]
    assert jobs.ListJobs(jobs_pb2.ListJobsRequest(kind="pipeline")).jobs == []
    cancelled = jobs.CancelJob(jobs_pb2.CancelJobRequest(id=job.id)).job
    assert cancelled.state == common_pb2.JOB_STATE_CANCELLED


def test_list_pages_through_grpc(channel: grpc.Channel) -> None:
    stub = pipeline_pb2_grpc.PipelineServiceStub(channel)
    made = [
        stub.Submit(pipeline_pb2.SubmitRequest(spec=pipeline_pb2.PaperSpec(epochs=i + 1))).job.id
        for i in range(25)
    ]
    seen, token = [], ""
    while True:
        page = stub.List(pipeline_pb2.ListRequest(page_size=10, page_token=token))
        seen += [j.id for j in page.jobs]
        token = page.next_page_token
        if not token:
            break
    assert seen == made


def test_watch_resumes_after_a_seq_and_streams_are_counted_by_code(
    live: Stack, channel: grpc.Channel
) -> None:
    jobs = jobs_pb2_grpc.JobServiceStub(channel)
    training = training_pb2_grpc.TrainingServiceStub(channel)
    job = training.Submit(training_pb2.SubmitRequest(spec=_train())).job
    first = next(iter(jobs.WatchJob(jobs_pb2.WatchJobRequest(id=job.id), timeout=5)))
    assert first.job.seq == 1
    # A stream that resumes after what it saw waits for the next change: the deadline ends it.
    before = metrics.GRPC_HANDLED.labels("JobService", "WatchJob", "DEADLINE_EXCEEDED")._value.get()
    waiting = jobs.WatchJob(jobs_pb2.WatchJobRequest(id=job.id, after_seq=1), timeout=1)
    assert _code(lambda: list(waiting))[0] == grpc.StatusCode.DEADLINE_EXCEEDED
    live.db.cancel(job.id)
    resumed = list(jobs.WatchJob(jobs_pb2.WatchJobRequest(id=job.id, after_seq=1), timeout=10))
    assert [u.job.state for u in resumed] == [common_pb2.JOB_STATE_CANCELLED]
    assert resumed[0].job.seq == 2
    # The server learns of the deadline a moment after the client does.
    deadline = time.monotonic() + 5
    while (
        metrics.GRPC_HANDLED.labels("JobService", "WatchJob", "DEADLINE_EXCEEDED")._value.get()
        == before
    ):
        assert time.monotonic() < deadline, [
            (s.labels["code"], s.value)
            for m in metrics.GRPC_HANDLED.collect()
            for s in m.samples
            if s.labels.get("method") == "WatchJob"
        ]
        time.sleep(0.05)
