"""The job verbs every service shares: Submit (idempotent), Get, Watch, Cancel, List.

Each service passes its generated module, its job kind, how to turn a request's spec into a
validated JSON spec, and how to enqueue a job; the servicer only translates messages.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any, cast

import grpc
from pydantic import BaseModel, ValidationError

from orisel.core.errors import InvalidArgument
from orisel.core.grpcserver import Registration
from orisel.core.jobs import Job, JobState, JobStore
from orisel.core.settings import Settings, make_store
from orisel.core.storage import ArtifactStore

WATCH_POLL_S = 0.25
MAX_PAGE = 1000


def validated(model: type[BaseModel], fields: dict[str, Any], where: str) -> dict[str, Any]:
    """`fields` checked by `model`, as JSON; the first problem named as `<where>.<field>`."""
    try:
        return model.model_validate(fields).model_dump(mode="json")
    except ValidationError as exc:
        err = exc.errors()[0]
        name = ".".join(str(p) for p in err["loc"])
        raise InvalidArgument(f"{where}.{name}", err["msg"].lower(), err.get("input")) from exc


class JobServicer:
    """Implements the five RPCs of any orisel.api.<domain>.v1 service."""

    def __init__(
        self, pb2: ModuleType, kind: str, jobs: JobStore,
        spec_of: Callable[[Any], dict[str, Any]], enqueue: Callable[[Job], None],
    ) -> None:  # fmt: skip
        self.pb2 = pb2
        self.kind = kind
        self.jobs = jobs
        self.spec_of = spec_of
        self.enqueue = enqueue

    def Submit(self, request: Any, context: grpc.ServicerContext) -> Any:
        job, created = self.jobs.create(self.kind, self.spec_of(request), request.idempotency_key)
        if created:
            self.enqueue(job)
        return self.pb2.SubmitResponse(job=job.to_proto())

    def Get(self, request: Any, context: grpc.ServicerContext) -> Any:
        return self.pb2.GetResponse(job=self.jobs.get(request.id).to_proto())

    def Watch(self, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        last = -1.0
        while context.is_active():
            job = self.jobs.get(request.id)
            if job.updated_at != last:
                last = job.updated_at
                yield self.pb2.WatchResponse(job=job.to_proto())
            if job.state.done:
                return
            time.sleep(WATCH_POLL_S)

    def Cancel(self, request: Any, context: grpc.ServicerContext) -> Any:
        job = self.jobs.get(request.id)
        # Running tasks read the record when they finish and schedule nothing further.
        if not job.state.done:
            job = self.jobs.update(job.id, state=JobState.CANCELLED)
        return self.pb2.CancelResponse(job=job.to_proto())

    def List(self, request: Any, context: grpc.ServicerContext) -> Any:
        if not 0 <= request.page_size <= MAX_PAGE:
            raise InvalidArgument(
                "page_size", f"between 0 (default 100) and {MAX_PAGE}", request.page_size
            )
        if request.page_token and not request.page_token.isdigit():
            raise InvalidArgument("page_token", "a token returned by List", request.page_token)
        state = JobState(request.state) if request.state else None
        jobs = self.jobs.list(kind=self.kind, state=state)
        size = request.page_size or 100
        start = int(request.page_token or 0)
        token = str(start + size) if start + size < len(jobs) else ""
        return self.pb2.ListResponse(
            jobs=[j.to_proto() for j in jobs[start : start + size]], next_page_token=token
        )


def job_registration(
    settings: Settings, pb2: ModuleType, add_servicer: Callable[[Any, grpc.Server], None],
    service_name: str, kind: str, spec_of: Callable[[Any, ArtifactStore], dict[str, Any]],
    task_of: Callable[[Job], str],
) -> Registration:  # fmt: skip
    """One job kind's servicer wired to the settings' store and broker: each new job's task is
    sent by name to the queue named after its kind."""
    from orisel.core.celery_app import make_celery

    store = cast(ArtifactStore, make_store(settings))
    celery = make_celery(settings)

    def enqueue(job: Job) -> None:
        celery.send_task(task_of(job), args=(job.id,), queue=kind)

    servicer = JobServicer(pb2, kind, JobStore(store), lambda r: spec_of(r, store), enqueue)
    return add_servicer, servicer, service_name
