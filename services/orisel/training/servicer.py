"""TrainingService: validates specs, records jobs, enqueues segments. Thin by design."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc
from pydantic import ValidationError

from orisel.api.training.v1 import training_pb2, training_pb2_grpc
from orisel.core.errors import InvalidArgument
from orisel.core.jobs import Job, JobState, JobStore
from orisel.core.storage import ArtifactRef
from orisel.training.config import TrainConfig

WATCH_POLL_S = 0.25


def spec_from_proto(spec: training_pb2.TrainSpec) -> dict[str, Any]:
    """The job's spec: its TrainConfig, data and segment size; proto zeros mean "the default"."""
    fields: dict[str, Any] = {}
    for name in ("model", "epochs", "batch_size", "lr", "seed"):
        value = getattr(spec, name)
        if value:
            fields[name] = value
    data: dict[str, Any] = {}
    if spec.label_corruption:
        data["label_corruption"] = spec.label_corruption
    if spec.train_subset:
        data["train_subset"] = spec.train_subset
    if spec.val_size:
        data["val_size"] = spec.val_size
    try:
        cfg = TrainConfig.model_validate({**fields, "data": data, "device": "auto"})
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise InvalidArgument(f"spec.{where}", err["msg"].lower(), err.get("input")) from exc
    if spec.epochs_per_segment < 0:
        raise InvalidArgument(
            "spec.epochs_per_segment", "0 (the service default) or more", spec.epochs_per_segment
        )
    return {
        "config": cfg.model_dump(mode="json"),
        "data": ArtifactRef.from_proto(spec.data).__dict__ if spec.HasField("data") else None,
        "segment_epochs": spec.epochs_per_segment or None,
    }


class TrainingServicer(training_pb2_grpc.TrainingServiceServicer):
    def __init__(self, jobs: JobStore, enqueue: Callable[[str], None]) -> None:
        self.jobs = jobs
        self.enqueue = enqueue

    def Submit(
        self, request: training_pb2.SubmitRequest, context: grpc.ServicerContext
    ) -> training_pb2.SubmitResponse:
        job, created = self.jobs.create(
            "training", spec_from_proto(request.spec), request.idempotency_key
        )
        if created:
            self.enqueue(job.id)
        return training_pb2.SubmitResponse(job=job.to_proto())

    def Get(
        self, request: training_pb2.GetRequest, context: grpc.ServicerContext
    ) -> training_pb2.GetResponse:
        return training_pb2.GetResponse(job=self._get(request.id).to_proto())

    def Watch(
        self, request: training_pb2.WatchRequest, context: grpc.ServicerContext
    ) -> Iterator[training_pb2.WatchResponse]:
        last = -1.0
        while context.is_active():
            job = self._get(request.id)
            if job.updated_at != last:
                last = job.updated_at
                yield training_pb2.WatchResponse(job=job.to_proto())
            if job.state.done:
                return
            time.sleep(WATCH_POLL_S)

    def Cancel(
        self, request: training_pb2.CancelRequest, context: grpc.ServicerContext
    ) -> training_pb2.CancelResponse:
        job = self._get(request.id)
        # A running segment sees the record at its end and enqueues no successor.
        if not job.state.done:
            job = self.jobs.update(job.id, state=JobState.CANCELLED)
        return training_pb2.CancelResponse(job=job.to_proto())

    def List(
        self, request: training_pb2.ListRequest, context: grpc.ServicerContext
    ) -> training_pb2.ListResponse:
        state = JobState(request.state) if request.state else None
        jobs = self.jobs.list(kind="training", state=state)
        size = request.page_size or 100
        if size < 0:
            raise InvalidArgument("page_size", "a positive number", size)
        start = int(request.page_token or 0)
        page = jobs[start : start + size]
        token = str(start + size) if start + size < len(jobs) else ""
        return training_pb2.ListResponse(jobs=[j.to_proto() for j in page], next_page_token=token)

    def _get(self, job_id: str) -> Job:
        return self.jobs.get(job_id)
