"""A job as every layer sees it: an immutable snapshot of one row of the job database, and
the typed spec its row holds."""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field
from typing import Any, ClassVar, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    SerializerFunctionWrapHandler,
    ValidationError,
    model_serializer,
)

from orisel.kernel.errors import FailedPrecondition
from orisel.store.backend import ArtifactRef

KINDS = ("training", "extraction", "scoring", "ablation", "pipeline")


class JobState(enum.IntEnum):
    """Mirrors orisel.api.common.v1.JobState."""

    QUEUED = 1
    RUNNING = 2
    SUCCEEDED = 3
    FAILED = 4
    CANCELLED = 5

    @property
    def done(self) -> bool:
        return self in TERMINAL


TERMINAL = (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)
ACTIVE = (JobState.QUEUED, JobState.RUNNING)


@dataclass(frozen=True)
class Job:
    id: str
    kind: str
    state: JobState
    spec: dict[str, Any]
    idempotency_key: str = ""
    owner: str = ""
    parent_id: str = ""
    task: str = ""
    queue: str = ""
    phase: str = ""
    fraction: float = 0.0
    eta_seconds: float = -1.0
    metrics: dict[str, float] = field(default_factory=dict)
    error: str = ""
    outputs: tuple[ArtifactRef, ...] = ()
    attempts: int = 0
    retries: int = 0
    version: int = 0
    created_at: float = 0.0
    updated_at: float = 0.0
    finished_at: float = 0.0

    @classmethod
    def from_row(cls, row: Any) -> Job:
        m = row._mapping
        return cls(
            id=m["id"],
            kind=m["kind"],
            state=JobState(m["state"]),
            spec=m["spec"],
            idempotency_key=m["idempotency_key"] or "",
            owner=m["owner"],
            parent_id=m["parent_id"] or "",
            task=m["task"],
            queue=m["queue"],
            phase=m["phase"],
            fraction=m["fraction"],
            eta_seconds=m["eta_seconds"],
            metrics=m["metrics"],
            error=m["error"],
            outputs=tuple(ArtifactRef(**o) for o in m["outputs"]),
            attempts=m["attempts"],
            retries=m["retries"],
            version=m["version"],
            created_at=m["created_at"],
            updated_at=m["updated_at"],
            finished_at=m["finished_at"] or 0.0,
        )

    def output(self, suffix: str) -> ArtifactRef | None:
        """The first output whose key ends with `suffix`."""
        return next((r for r in self.outputs if r.key.endswith(suffix)), None)

    def to_proto(self) -> Any:
        from google.protobuf.timestamp_pb2 import Timestamp

        from orisel.api.common.v1 import common_pb2

        def ts(t: float) -> Timestamp | None:
            if not t:
                return None
            out = Timestamp()
            out.FromNanoseconds(int(t * 1e9))
            return out

        return common_pb2.Job(
            id=self.id,
            kind=self.kind,
            state=f"JOB_STATE_{self.state.name}",
            progress=common_pb2.Progress(
                phase=self.phase,
                fraction=self.fraction,
                eta_seconds=self.eta_seconds,
                metrics=self.metrics,
            ),
            created_at=ts(self.created_at),
            updated_at=ts(self.updated_at),
            finished_at=ts(self.finished_at),
            error=self.error,
            idempotency_key=self.idempotency_key,
            outputs=[o.to_proto() for o in self.outputs],
            spec_json=json.dumps(self.spec, sort_keys=True),
            owner=self.owner,
            parent_id=self.parent_id,
            attempts=self.attempts,
            seq=self.version,
        )


class JobSpec(BaseModel):
    """What a job of one kind is asked to do, as its row holds it: each capability's spec.py
    declares one per kind with the task that runs it; the servicer (or a parent job) builds
    it, the row stores `row()`, and the task reads it back with `of(job)`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    TASK: ClassVar[str]
    # Fields a row holds only when they are set, as rows were written before specs were
    # typed: a reused idempotency key is compared with the row's bytes (spec_sha256), so the
    # same request must still write the same JSON.
    SPARSE: ClassVar[frozenset[str]] = frozenset()

    @property
    def task_name(self) -> str:
        """The Celery task that runs this job."""
        return self.TASK

    def sparse(self) -> frozenset[str]:
        """The fields left out of the row when they are None."""
        return self.SPARSE

    @model_serializer(mode="wrap")
    def _leave_out_unset(self, handler: SerializerFunctionWrapHandler) -> Any:
        out = handler(self)
        drop = self.sparse()
        return {k: v for k, v in out.items() if v is not None or k not in drop}

    def row(self) -> dict[str, Any]:
        """The spec as the job's row stores it (JSON)."""
        return self.model_dump(mode="json")

    @classmethod
    def of(cls, job: Job) -> Self:
        """`job`'s spec read as this kind's; a row it cannot read fails the job, naming the
        field."""
        try:
            return cls.model_validate(job.spec)
        except ValidationError as exc:
            err = exc.errors()[0]
            name = ".".join(["spec", *(str(p) for p in err["loc"])])
            why = err["msg"].removeprefix("Value error, ").lower()
            raise FailedPrecondition(
                f"job {job.id}: its spec is no {cls.__name__}: {name}: {why}"
            ) from exc
