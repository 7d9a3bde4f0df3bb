"""A small Python client for the jobs: submit (through the job's own service), then get, watch,
cancel and list through JobService, which answers for every kind."""

from __future__ import annotations

import time
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import grpc

from orisel.api.ablation.v1 import ablation_pb2, ablation_pb2_grpc
from orisel.api.common.v1 import common_pb2
from orisel.api.extraction.v1 import extraction_pb2, extraction_pb2_grpc
from orisel.api.jobs.v1 import jobs_pb2, jobs_pb2_grpc
from orisel.api.pipeline.v1 import pipeline_pb2, pipeline_pb2_grpc
from orisel.api.scoring.v1 import scoring_pb2, scoring_pb2_grpc
from orisel.api.training.v1 import training_pb2, training_pb2_grpc
from orisel.client.channel import open_channel
from orisel.kernel.errors import InvalidArgument

SERVICES: dict[str, tuple[ModuleType, Any]] = {
    "training": (training_pb2, training_pb2_grpc.TrainingServiceStub),
    "extraction": (extraction_pb2, extraction_pb2_grpc.ExtractionServiceStub),
    "scoring": (scoring_pb2, scoring_pb2_grpc.ScoringServiceStub),
    "ablation": (ablation_pb2, ablation_pb2_grpc.AblationServiceStub),
    "pipeline": (pipeline_pb2, pipeline_pb2_grpc.PipelineServiceStub),
}
RECONNECT_S = 120.0


class JobClient:
    """Jobs at `address` (host:port): submitted to `service` (needed only to submit), and
    read, watched, cancelled and listed through JobService whatever their kind."""

    def __init__(self, address: str, service: str | None = None) -> None:
        if service is not None and service not in SERVICES:
            raise InvalidArgument("service", f"one of {', '.join(SERVICES)}", service)
        self.service = service
        self.channel = open_channel(address)
        self.jobs = jobs_pb2_grpc.JobServiceStub(self.channel)  # type: ignore[no-untyped-call]

    def close(self) -> None:
        self.channel.close()

    def submit(self, request: Any) -> common_pb2.Job:
        if self.service is None:
            raise InvalidArgument("service", f"one of {', '.join(SERVICES)}", None)
        stub = SERVICES[self.service][1](self.channel)
        job: common_pb2.Job = stub.Submit(request).job
        return job

    def get(self, job_id: str) -> common_pb2.Job:
        job: common_pb2.Job = self.jobs.GetJob(jobs_pb2.GetJobRequest(id=job_id)).job
        return job

    def cancel(self, job_id: str) -> common_pb2.Job:
        job: common_pb2.Job = self.jobs.CancelJob(jobs_pb2.CancelJobRequest(id=job_id)).job
        return job

    def watch(
        self, job_id: str, timeout: float | None = None, reconnect_s: float = RECONNECT_S
    ) -> Iterator[common_pb2.Job]:
        """The job at every change until it ends. A lost connection (a server restarted) is
        retried with backoff for up to `reconnect_s` and resumes after the last seq seen."""
        seq, delay, lost_since = 0, 0.2, None
        while True:
            try:
                request = jobs_pb2.WatchJobRequest(id=job_id, after_seq=seq)
                for update in self.jobs.WatchJob(request, timeout=timeout):
                    seq, lost_since, delay = update.job.seq, None, 0.2
                    yield update.job
                return
            except grpc.RpcError as exc:
                if exc.code() != grpc.StatusCode.UNAVAILABLE:
                    raise
                lost_since = lost_since or time.monotonic()
                if time.monotonic() - lost_since > reconnect_s:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 5.0)

    def list(
        self,
        state: common_pb2.JobState = common_pb2.JOB_STATE_UNSPECIFIED,
        parent_id: str = "",
        kind: str = "",
    ) -> list[common_pb2.Job]:
        """Every job the caller may see (of `kind`, when given), page after page."""
        jobs: list[common_pb2.Job] = []
        token = ""
        while True:
            request = jobs_pb2.ListJobsRequest(
                kind=kind, state=state, page_token=token, parent_id=parent_id
            )
            page = self.jobs.ListJobs(request)
            jobs += page.jobs
            token = page.next_page_token
            if not token:
                return jobs
