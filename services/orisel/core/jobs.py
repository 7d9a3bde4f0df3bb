"""Job records kept in the artifact store, so any service replica (or a restarted one)
answers Get/Watch/List for any job.

    jobs/<id>.json               the record
    jobs/by-key/<sha of key>     the id submitted under an idempotency key
"""

from __future__ import annotations

import enum
import hashlib
import json
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, cast

from orisel.core import metrics
from orisel.core.errors import (
    DataError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    OriselError,
)
from orisel.core.settings import Settings, get_settings, make_store
from orisel.core.storage import ArtifactRef, ArtifactStore, get_bytes, put_bytes


class JobState(enum.IntEnum):
    """Mirrors orisel.api.common.v1.JobState."""

    QUEUED = 1
    RUNNING = 2
    SUCCEEDED = 3
    FAILED = 4
    CANCELLED = 5

    @property
    def done(self) -> bool:
        return self in (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)


READ_ATTEMPTS = 20
KINDS = ("training", "extraction", "scoring", "ablation", "invariance", "pipeline")


@dataclass(frozen=True)
class Job:
    id: str
    kind: str
    state: JobState
    spec: dict[str, Any]
    idempotency_key: str = ""
    phase: str = ""
    fraction: float = 0.0
    eta_seconds: float = -1.0
    metrics: dict[str, float] = field(default_factory=dict)
    created_at: float = 0.0
    updated_at: float = 0.0
    finished_at: float = 0.0
    error: str = ""
    outputs: tuple[ArtifactRef, ...] = ()

    def to_json(self) -> bytes:
        d = asdict(self)
        d["state"] = int(self.state)
        return json.dumps(d, sort_keys=True).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> Job:
        d = json.loads(raw)
        d["state"] = JobState(d["state"])
        d["outputs"] = tuple(ArtifactRef(**o) for o in d["outputs"])
        return cls(**d)

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
        )


def open_job(job_id: str) -> tuple[Settings, ArtifactStore, JobStore, Job]:
    """What a task needs about its job: settings, the store, the job records, the job."""
    settings = get_settings()
    store = cast(ArtifactStore, make_store(settings))
    jobs = JobStore(store)
    return settings, store, jobs, jobs.get(job_id)


class JobStore:
    """Create, read and update job records; writes go through the store's atomic puts."""

    def __init__(self, store: ArtifactStore) -> None:
        self.store = store

    @staticmethod
    def _key(job_id: str) -> str:
        return f"jobs/{job_id}.json"

    @staticmethod
    def _idem_key(kind: str, key: str) -> str:
        return f"jobs/by-key/{hashlib.sha256(f'{kind}:{key}'.encode()).hexdigest()}"

    def create(
        self, kind: str, spec: dict[str, Any], idempotency_key: str = ""
    ) -> tuple[Job, bool]:
        """(job, created): the same idempotency key returns the existing job, created=False."""
        if kind not in KINDS:
            raise InvalidArgument("kind", f"one of {', '.join(KINDS)}", kind)
        if idempotency_key:
            idem = self._idem_key(kind, idempotency_key)
            if self.store.exists(idem):
                return self.get(get_bytes(self.store, self.store.stat(idem)).decode()), False
        now = time.time()
        job = Job(
            uuid.uuid4().hex,
            kind,
            JobState.QUEUED,
            spec,
            idempotency_key,
            created_at=now,
            updated_at=now,
        )
        put_bytes(self.store, self._key(job.id), job.to_json())
        metrics.JOBS.labels(kind, "queued").inc()
        if idempotency_key:
            put_bytes(self.store, self._idem_key(kind, idempotency_key), job.id.encode())
        return job, True

    def get(self, job_id: str) -> Job:
        if not job_id or "/" in job_id:
            raise InvalidArgument("id", "a job id as returned by Submit", job_id)
        for _ in range(READ_ATTEMPTS):
            try:
                ref = self.store.stat(self._key(job_id))
            except NotFound as exc:
                raise NotFound(f"job {job_id} does not exist") from exc
            try:
                return Job.from_json(get_bytes(self.store, ref))
            except DataError:
                # Rewritten between stat and read (a worker reporting progress): read again.
                time.sleep(0.01)
        raise DataError(f"job {job_id}: its record kept changing while being read")

    def update(self, job_id: str, **changes: Any) -> Job:
        job = self.get(job_id)
        if job.state.done and "state" in changes and changes["state"] != job.state:
            raise FailedPrecondition(f"job {job_id} is already {job.state.name.lower()}")
        now = time.time()
        state = changes.get("state", job.state)
        if JobState(state).done and not job.finished_at:
            changes["finished_at"] = now
        new = replace(job, updated_at=now, **changes)
        put_bytes(self.store, self._key(job_id), new.to_json())
        if new.state != job.state:
            metrics.JOBS.labels(job.kind, new.state.name.lower()).inc()
        return new

    def list(self, kind: str | None = None, state: JobState | None = None) -> list[Job]:
        keys = [r.key for r in self.store.list("jobs/") if r.key.count("/") == 1]
        ids = [k.removeprefix("jobs/").removesuffix(".json") for k in keys if k.endswith(".json")]
        jobs = [self.get(i) for i in ids]
        jobs = [
            j
            for j in jobs
            if (kind is None or j.kind == kind) and (state is None or j.state == state)
        ]
        return sorted(jobs, key=lambda j: j.created_at)


def one_task_job(
    job_id: str, name: str, work: Callable[[Settings, ArtifactStore, Job, Path], None]
) -> str:
    """Run a job that one task completes: `work` writes its outputs into a folder, which is
    uploaded to analyses/<job>/<name>/; domain errors mark the job FAILED with the message."""
    from orisel.core.artifacts import upload_dir

    settings, store, jobs, job = open_job(job_id)
    if job.state.done:
        return job.state.name
    jobs.update(job_id, state=JobState.RUNNING, phase=name)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / name
            work(settings, store, job, out)
            refs = upload_dir(store, f"analyses/{job_id}/{name}", out)
    except OriselError as exc:
        jobs.update(job_id, state=JobState.FAILED, error=str(exc))
        return "FAILED"
    if jobs.get(job_id).state.done:  # cancelled while it ran
        return jobs.get(job_id).state.name
    jobs.update(job_id, state=JobState.SUCCEEDED, fraction=1.0, phase="done", outputs=tuple(refs))
    return "SUCCEEDED"
