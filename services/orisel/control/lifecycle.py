"""The life of one task run of a job, the same for every kind.

    run = JobRun.claim(db, job_id, settings)      # None: ended, or another worker holds it
    if run is not None:
        with run:
            ...  run.progress(...); run.check(); run.succeed(outputs)

Claiming takes a lease that a background thread renews; the run stops cooperatively
(JobStopped at the next progress report or check) once the job was cancelled or the lease
was lost, and leaves without a traceback. On leaving the block:
    - a domain error (OriselError) ends the job FAILED with its message, unless it is a
      passing one (Unavailable, ResourceExhausted);
    - a passing error (store, broker or database unreachable, a full disk) gives the job
      back to be sent again after a backoff, until max_attempts are spent, then FAILED;
    - any other exception ends it FAILED with its type and message (logged with traceback);
    - a body that neither ended nor re-queued the job gives it back (a parent waiting for
      its children is sent again when one of them ends).
A claim that fails (the database away) takes nothing: the controller sends the job again.
Recorded errors never carry the worker's file paths. Nothing escapes to Celery, so no
message is retried behind the database's back.
"""

from __future__ import annotations

import logging
import os
import socket
import tempfile
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from types import TracebackType
from typing import Any

from orisel.control.db import JobDB
from orisel.control.job import Job, JobSpec, JobState
from orisel.kernel.errors import FULL, OriselError, ResourceExhausted, Unavailable
from orisel.runtime.settings import Settings
from orisel.store.backend import ArtifactRef, ArtifactStore, Publisher

log = logging.getLogger(__name__)

BACKOFF_S = (2.0, 10.0, 30.0, 60.0, 120.0)


class JobStopped(Exception):
    """The job was cancelled or its lease lost: stop the work, record nothing more."""


def is_transient(exc: BaseException) -> bool:
    """Errors of reaching a store, broker or database, which a later attempt may not meet."""
    import kombu.exceptions
    import redis.exceptions
    import sqlalchemy.exc
    import urllib3.exceptions
    from minio.error import S3Error, ServerError

    if isinstance(exc, S3Error):
        return exc.code in ("SlowDown", "ServiceUnavailable")
    if isinstance(exc, OSError) and exc.errno in FULL:
        return True  # a full disk is freed, or the next attempt lands on another worker's
    return isinstance(
        exc,
        (
            Unavailable,
            ResourceExhausted,
            ConnectionError,
            TimeoutError,
            ServerError,
            urllib3.exceptions.HTTPError,
            kombu.exceptions.OperationalError,
            redis.exceptions.ConnectionError,
            redis.exceptions.TimeoutError,
            sqlalchemy.exc.OperationalError,
        ),
    )


def describe(exc: BaseException) -> str:
    """An error as the job records it, which its owner reads: an OSError without the file
    names it carries (the worker's paths are the operator's; the log has them)."""
    if isinstance(exc, OriselError):
        return str(exc)  # in its own words, as a failed job's error is
    if isinstance(exc, OSError) and exc.errno in FULL:
        # The store and the job database say so themselves (ResourceExhausted): a bare one
        # is the worker's own scratch space.
        return f"the worker's disk is out of space ({exc.strerror})"
    if isinstance(exc, OSError) and exc.errno is not None:
        return f"{type(exc).__name__}: [Errno {exc.errno}] {exc.strerror}"
    return f"{type(exc).__name__}: {exc}"


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class FencedStore:
    """The store as one attempt of a job writes to it: every write is made inside
    JobDB.holding, while the job is still leased to this attempt (its token: the worker name
    of this claim). A zombie, whose job was handed to another worker while it was paused or
    cut off, is refused before it writes anything (JobStopped), and the new attempt's claim
    waits for a write in progress, so no stale object lands once the job changed hands. A
    worker stopped or cut off in the middle of a write loses its transaction to the server's
    idle limit (Settings.db_idle_in_transaction_s), so the job can change hands; the fence is
    asked again just before the object becomes visible, and fails then. Reads pass through."""

    def __init__(self, inner: Publisher, db: JobDB, job_id: str, worker: str) -> None:
        self.inner = inner
        self.db = db
        self.job_id = job_id
        self.worker = worker
        self.bucket = inner.bucket

    def put_file(self, key: str, path: Path) -> ArtifactRef:
        with self.db.holding(self.job_id, self.worker) as fence:
            if not fence.held:
                raise JobStopped(self.job_id)

            def still_held() -> None:
                if not fence.confirm():
                    raise JobStopped(self.job_id)

            return self.inner.put_file(key, path, before_publish=still_held)

    def delete(self, key: str) -> None:
        with self.db.holding(self.job_id, self.worker) as fence:
            if not fence.held:
                raise JobStopped(self.job_id)
            self.inner.delete(key)

    def get_file(self, ref: ArtifactRef, dest: Path) -> Path:
        return self.inner.get_file(ref, dest)

    def stat(self, key: str) -> ArtifactRef:
        return self.inner.stat(key)

    def exists(self, key: str) -> bool:
        return self.inner.exists(key)

    def list(self, prefix: str) -> list[ArtifactRef]:
        return self.inner.list(prefix)

    def url(self, key: str, expires: timedelta = timedelta(hours=1)) -> str:
        return self.inner.url(key, expires)


class JobRun:
    """One worker's hold on one job, from claim to release. Every write it makes, to the
    database (progress, end, release) and to the store (`store`), carries its lease token
    and is refused once the job was handed to another worker."""

    def __init__(self, db: JobDB, job: Job, worker: str, settings: Settings) -> None:
        self.db = db
        self.job = job
        self.worker = worker
        self.settings = settings
        self.lease_s = settings.lease_s
        self._store: FencedStore | None = None
        self.ended = False
        self.outcome = "RUNNING"
        self._stop = threading.Event()
        self._done = threading.Event()
        self._beat = threading.Thread(target=self._heartbeat, daemon=True, name="lease")

    @classmethod
    def claim(cls, db: JobDB, job_id: str, settings: Settings) -> JobRun | None:
        worker = worker_name()
        job = db.claim(job_id, worker, settings.lease_s)
        if job is None:
            log.info("job %s: ended or held by another worker; nothing to do", job_id)
            return None
        return cls(db, job, worker, settings)

    @property
    def store(self) -> ArtifactStore:
        """The artifact store, fenced by this attempt's lease (FencedStore)."""
        if self._store is None:
            from orisel.store.backend import make_store

            self._store = FencedStore(make_store(self.settings), self.db, self.job.id, self.worker)
        return self._store

    def _heartbeat(self) -> None:
        while not self._done.wait(self.lease_s / 3):
            try:
                held = self.db.heartbeat(self.job.id, self.worker, self.lease_s)
            except Exception as exc:  # the database away for a moment: try again next beat
                log.warning("job %s: lease not renewed: %s", self.job.id, exc)
                continue
            if not held:
                self._stop.set()
                return

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def check(self) -> None:
        """Raise JobStopped once the job was cancelled or the lease lost."""
        if self._stop.is_set():
            raise JobStopped(self.job.id)

    def progress(
        self,
        *,
        phase: str | None = None,
        fraction: float | None = None,
        eta_seconds: float | None = None,
        metrics: dict[str, float] | None = None,
    ) -> None:
        self.check()
        if not self.db.progress(
            self.job.id,
            self.worker,
            phase=phase,
            fraction=fraction,
            eta_seconds=eta_seconds,
            metrics=metrics,
        ):
            self._stop.set()
            raise JobStopped(self.job.id)

    def succeed(self, outputs: Sequence[ArtifactRef] = ()) -> None:
        self._end(JobState.SUCCEEDED, outputs=outputs)

    def fail(self, error: str) -> None:
        self._end(JobState.FAILED, error=error)

    def _end(self, state: JobState, error: str = "", outputs: Sequence[ArtifactRef] = ()) -> None:
        self.ended = True
        if self.db.finish(self.job.id, self.worker, state, error=error, outputs=outputs):
            self.outcome = state.name
        else:
            self.outcome = "STOPPED"

    def again(self, delay: float = 0.0) -> None:
        """Give the job back and owe it another run (the next training segment)."""
        self.ended = True
        self.outcome = "CONTINUED"
        self.db.release(self.job.id, self.worker, again_in=delay)

    def __enter__(self) -> JobRun:
        self._beat.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        self._done.set()
        self._beat.join()
        try:
            return self._leave(exc)
        except Exception as inner:
            # The database itself is away: the lease will lapse and the controller sends
            # the job again, so the job is not lost; say so and let the task end.
            log.warning(
                "job %s: outcome not recorded (%s); its lease will lapse", self.job.id, inner
            )
            self.outcome = "UNRECORDED"
            return True

    def _leave(self, exc: BaseException | None) -> bool:
        job_id = self.job.id
        if exc is None:
            if not self.ended:
                self.db.release(job_id, self.worker)
                self.outcome = "WAITING"
            return False
        if isinstance(exc, JobStopped):
            log.info("job %s: stopped (cancelled or lease lost)", job_id)
            self.db.release(job_id, self.worker)
            self.outcome = "STOPPED"
            return True
        if not isinstance(exc, Exception):
            return False  # KeyboardInterrupt, SystemExit: the worker is going away
        if isinstance(exc, OriselError) and not is_transient(exc):
            self.fail(str(exc))
            return True
        if is_transient(exc):
            message = describe(exc)
            delay = BACKOFF_S[min(self.job.retries, len(BACKOFF_S) - 1)]
            log.warning("job %s: %s; sending it again in %.0f s", job_id, message, delay)
            state = self.db.release(job_id, self.worker, again_in=delay, error=message)
            # None: the job had already changed hands (or ended), so nothing was retried.
            outcomes = {None: "STOPPED", JobState.FAILED: "FAILED"}
            self.outcome = outcomes.get(state, "RETRY")
            return True
        log.exception("job %s: unexpected error", job_id, exc_info=exc)
        self.fail(describe(exc))
        return True


def run_job(db: JobDB, job_id: str, settings: Settings, body: Any) -> str:
    """Claim `job_id` and run `body(run)` inside its lifecycle; returns the outcome."""
    try:
        run = JobRun.claim(db, job_id, settings)
    except Exception as exc:
        # Nothing was taken, so the job is still owed a run; its message is spent and the
        # controller, finding it neither waiting in its queue nor taken, sends another.
        # Raised, the error would reach Celery, which acknowledges the message all the same.
        log.warning(
            "job %s: not claimed (%s); the controller sends it again",
            job_id,
            exc,
            exc_info=not is_transient(exc),
        )
        return "UNCLAIMED"
    if run is None:
        return "SKIPPED"
    with run:
        body(run)
    return run.outcome


def one_task_job(
    run: JobRun,
    settings: Settings,
    name: str,
    work: Callable[[Settings, ArtifactStore, Job, Path], None],
) -> None:
    """A job that one task completes: `work` writes its outputs into a folder, which is
    uploaded to analyses/<job>/<name>/ (the same keys on a re-run)."""
    from orisel.kernel import progress
    from orisel.store.scratch import upload_dir

    store = run.store
    run.progress(phase=name, fraction=0.0)

    def report(step: str, fraction: float) -> None:
        # The analysis's own steps, scaled below 1: the upload still follows.
        run.progress(phase=f"{name}: {step}", fraction=0.95 * fraction)

    with tempfile.TemporaryDirectory() as tmp, progress.reported(report):
        out = Path(tmp) / name
        work(settings, store, run.job, out)
        run.check()
        refs = upload_dir(store, f"analyses/{run.job.id}/{name}", out)
    run.succeed(refs)


@dataclass(frozen=True)
class Child:
    """A job that a parent job (a pipeline, a sweep) needs: unique by name within it."""

    name: str  # e.g. "train/cnn7-c0-s0", "chunk/layer1"
    kind: str
    spec: JobSpec  # which names the task that runs it


def children_of(run: JobRun) -> dict[str, Job]:
    """The parent's children by name (their idempotency keys are <parent id>/<name>)."""
    prefix = f"{run.job.id}/"
    return {c.idempotency_key.removeprefix(prefix): c for c in run.db.children(run.job.id)}


def ensure_children(run: JobRun, wanted: Sequence[Child], made: dict[str, Job]) -> list[Job]:
    """Create the children not yet made, through the same outbox as a Submit: each one is
    sent by the controller and wakes the parent when it ends. Re-running creates nothing
    twice (the idempotency key)."""
    out = []
    for c in wanted:
        if c.name not in made:
            run.check()
            made[c.name], _ = run.db.create(
                c.kind,
                c.spec.row(),
                task=c.spec.task_name,
                queue=c.kind,
                owner=run.job.owner,
                idempotency_key=f"{run.job.id}/{c.name}",
                parent_id=run.job.id,
            )
        out.append(made[c.name])
    return out
