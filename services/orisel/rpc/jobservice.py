"""The job verbs: Submit (idempotent by constraint), Get, Watch, Cancel, List.

Each domain service passes its generated module, its job kind and how to turn a request into
its kind's JobSpec (which names the task that runs it); the servicer only translates messages
and acts on its own kind only (another kind's job is NOT_FOUND). JobService offers Get/Watch/
Cancel/List over every kind. Blocking database and store calls run on the server's executor;
every Watch stream waits on one shared Watcher, which polls the versions of all watched
jobs in one query per interval, so a thousand streams cost one query, not a thousand
threads.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from types import ModuleType
from typing import Any

from orisel.control.db import JobDB, open_db
from orisel.control.job import KINDS, Job, JobSpec, JobState
from orisel.control.rows import NewJob, check_id
from orisel.kernel.errors import InvalidArgument
from orisel.rpc.server import Registration
from orisel.runtime.settings import Settings
from orisel.security import auth
from orisel.store.backend import ArtifactStore, make_store

WATCH_POLL_S = 0.2
MAX_PAGE_BYTES = 3 * 2**20  # under the 4 MiB message limit
MAX_WATCHERS = 10_000


def job_state(value: int, field: str = "state") -> JobState | None:
    if value == 0:
        return None
    try:
        return JobState(value)
    except ValueError as exc:
        raise InvalidArgument(field, "a JobState value", value) from exc


class Watcher:
    """Wakes the Watch streams of jobs whose version changed; one poll for all of them. Each
    stream is woken when the job's version differs from the one that stream last sent, so no
    change can slip between a stream's read and its wait."""

    def __init__(self, db: JobDB, interval: float = WATCH_POLL_S) -> None:
        self.db = db
        self.interval = interval
        self._subs: dict[str, dict[asyncio.Event, int]] = {}
        self._task: asyncio.Task[None] | None = None

    async def _poll(self) -> None:
        while self._subs:
            await asyncio.sleep(self.interval)
            ids = list(self._subs)
            try:
                versions = await asyncio.to_thread(self.db.versions, ids)
            except Exception:  # database away for a moment: the streams wait, then resume
                continue
            for job_id, (version, _) in versions.items():
                for ev, seen in self._subs.get(job_id, {}).items():
                    if version != seen:
                        ev.set()
        self._task = None

    async def watch(
        self, job_id: str, after_seq: int, kind: str | None, owner: str | None = None
    ) -> AsyncIterator[Job]:
        check_id(job_id)
        if after_seq < 0:
            raise InvalidArgument("after_seq", "0 or a seq the server sent", after_seq)
        if sum(len(s) for s in self._subs.values()) >= MAX_WATCHERS:
            raise InvalidArgument("id", "a job to watch when fewer streams are open", job_id)
        ev = asyncio.Event()
        subs = self._subs.setdefault(job_id, {})
        subs[ev] = -1  # registered before the first read: any later change wakes it
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._poll())
        try:
            job = await asyncio.to_thread(self.db.get, job_id, kind, owner)
            last = after_seq
            while True:
                subs[ev] = job.version
                if job.version > last:
                    last = job.version
                    yield job
                if job.state.done:
                    return
                await ev.wait()
                ev.clear()
                job = await asyncio.to_thread(self.db.get, job_id)
        finally:
            subs.pop(ev, None)
            if not subs and self._subs.get(job_id) is subs:
                del self._subs[job_id]


class SubmitBatcher:
    """Submits that arrive together are written in one transaction (group commit): while one
    batch is being written the next gathers, so a burst costs a few commits, not hundreds."""

    def __init__(self, db: JobDB, max_batch: int = 256) -> None:
        self.db = db
        self.max_batch = max_batch
        self._pending: list[tuple[NewJob, asyncio.Future[tuple[Job, bool]]]] = []
        self._draining = False

    async def create(self, new: NewJob) -> tuple[Job, bool]:
        fut: asyncio.Future[tuple[Job, bool]] = asyncio.get_running_loop().create_future()
        self._pending.append((new, fut))
        if not self._draining:
            self._draining = True
            asyncio.get_running_loop().create_task(self._drain())
        return await fut

    async def _drain(self) -> None:
        try:
            while self._pending:
                batch = self._pending[: self.max_batch]
                del self._pending[: self.max_batch]
                try:
                    results: list[Any] = await asyncio.to_thread(
                        self.db.create_many, [new for new, _ in batch]
                    )
                except Exception as exc:  # the database away: every waiting Submit hears it
                    results = [exc] * len(batch)
                for (_, fut), result in zip(batch, results, strict=True):
                    if fut.done():
                        continue
                    if isinstance(result, BaseException):
                        fut.set_exception(result)
                    else:
                        fut.set_result(result)
        finally:
            self._draining = False


class JobVerbs:
    """Get/Watch/Cancel/List over `kind` (None: every kind), limited to the caller's own jobs
    unless the caller is an admin; another owner's job reads as NOT_FOUND."""

    def __init__(self, db: JobDB, kind: str | None, watcher: Watcher) -> None:
        self.db = db
        self.kind = kind
        self.watcher = watcher

    async def get(self, job_id: str) -> Job:
        return await asyncio.to_thread(self.db.get, job_id, self.kind, auth.current().owner)

    async def cancel(self, job_id: str) -> Job:
        who = auth.current()
        return await asyncio.to_thread(self.db.cancel, job_id, self.kind, who.name, who.owner)

    def watch(self, job_id: str, after_seq: int) -> AsyncIterator[Job]:
        return self.watcher.watch(job_id, after_seq, self.kind, auth.current().owner)

    async def list(self, request: Any, **filters: Any) -> tuple[list[Any], str]:
        """A page of jobs as messages, bounded by count and bytes, and the next token."""
        state = job_state(request.state)
        parent = request.parent_id
        jobs, token = await asyncio.to_thread(
            self.db.list,
            kind=self.kind or filters.pop("kind", None),
            state=state,
            parent_id=parent,
            page_size=request.page_size,
            page_token=request.page_token,
            owner=auth.current().owner,
            **filters,
        )
        out: list[Any] = []
        size = 0
        for i, job in enumerate(jobs):
            msg = job.to_proto()
            size += msg.ByteSize()
            if size > MAX_PAGE_BYTES and out:
                from orisel.control.queries import encode_token

                return out, encode_token(jobs[i - 1])
            out.append(msg)
        return out, token


class JobServicer:
    """The five RPCs of one orisel.api.<domain>.v1 service."""

    def __init__(
        self,
        pb2: ModuleType,
        kind: str,
        db: JobDB,
        watcher: Watcher,
        batcher: SubmitBatcher,
        spec_of: Callable[[Any], JobSpec],
    ) -> None:
        self.pb2 = pb2
        self.kind = kind
        self.db = db
        self.batcher = batcher
        self.spec_of = spec_of
        self.verbs = JobVerbs(db, kind, watcher)

    async def Submit(self, request: Any, context: Any) -> Any:
        # Validation may read the store (an artifact's checksum): off the event loop.
        spec = await asyncio.to_thread(self.spec_of, request)
        owner = auth.current().name
        new = NewJob(
            self.kind, spec.row(), spec.task_name, self.kind, request.idempotency_key, owner
        )
        job, _ = await self.batcher.create(new)
        return self.pb2.SubmitResponse(job=job.to_proto())

    async def Get(self, request: Any, context: Any) -> Any:
        return self.pb2.GetResponse(job=(await self.verbs.get(request.id)).to_proto())

    async def Watch(self, request: Any, context: Any) -> AsyncIterator[Any]:
        async for job in self.verbs.watch(request.id, request.after_seq):
            yield self.pb2.WatchResponse(job=job.to_proto())

    async def Cancel(self, request: Any, context: Any) -> Any:
        return self.pb2.CancelResponse(job=(await self.verbs.cancel(request.id)).to_proto())

    async def List(self, request: Any, context: Any) -> Any:
        jobs, token = await self.verbs.list(request)
        return self.pb2.ListResponse(jobs=jobs, next_page_token=token)


class JobsServicer:
    """orisel.api.jobs.v1.JobService: every kind's jobs."""

    def __init__(self, db: JobDB, watcher: Watcher) -> None:
        from orisel.api.jobs.v1 import jobs_pb2

        self.pb2 = jobs_pb2
        self.verbs = JobVerbs(db, None, watcher)

    async def GetJob(self, request: Any, context: Any) -> Any:
        return self.pb2.GetJobResponse(job=(await self.verbs.get(request.id)).to_proto())

    async def WatchJob(self, request: Any, context: Any) -> AsyncIterator[Any]:
        async for job in self.verbs.watch(request.id, request.after_seq):
            yield self.pb2.WatchJobResponse(job=job.to_proto())

    async def CancelJob(self, request: Any, context: Any) -> Any:
        return self.pb2.CancelJobResponse(job=(await self.verbs.cancel(request.id)).to_proto())

    async def ListJobs(self, request: Any, context: Any) -> Any:
        if request.kind and request.kind not in KINDS:
            raise InvalidArgument("kind", f"empty or one of {', '.join(KINDS)}", request.kind)
        filters: dict[str, Any] = {"kind": request.kind or None}
        for name in ("created_after", "created_before"):
            if request.HasField(name):
                filters[name] = getattr(request, name).ToNanoseconds() / 1e9
        jobs, token = await self.verbs.list(request, **filters)
        return self.pb2.ListJobsResponse(jobs=jobs, next_page_token=token)


class Backends:
    """What a front-end process serves from: settings, the job database, one watcher for
    all its streams, and the artifact store (opened on first use)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.db = open_db(
            settings.database_url, settings.max_attempts, settings.db_idle_in_transaction_s
        )
        self.watcher = Watcher(self.db)
        self.batcher = SubmitBatcher(self.db)
        self._store: ArtifactStore | None = None

    @property
    def store(self) -> ArtifactStore:
        """The store as the current caller may see it (security.access)."""
        if self._store is None:
            from orisel.security.access import GuardedStore

            raw = make_store(self.settings)
            self._store = GuardedStore(raw, self.db)
        return self._store


def jobs_registration(b: Backends) -> Registration:
    from orisel.api.jobs.v1 import jobs_pb2, jobs_pb2_grpc

    name = jobs_pb2.DESCRIPTOR.services_by_name["JobService"].full_name
    return jobs_pb2_grpc.add_JobServiceServicer_to_server, JobsServicer(b.db, b.watcher), name


def job_registration(
    b: Backends,
    pb2: ModuleType,
    add_servicer: Callable[[Any, Any], None],
    service_name: str,
    kind: str,
    spec_of: Callable[[Any], JobSpec],
) -> Registration:
    """One job kind's servicer on the job database: `spec_of` reads a SubmitRequest as the
    kind's JobSpec, which names the task that runs it."""
    servicer = JobServicer(pb2, kind, b.db, b.watcher, b.batcher, spec_of)
    return add_servicer, servicer, service_name
