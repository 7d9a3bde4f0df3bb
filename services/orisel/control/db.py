"""The job database: every job's state, moved only by conditional updates.

One row per job and one event per recorded change, written in the same transaction. Each
write names the state (and, for a worker, the lease) it expects, so a terminal state never
changes, a cancel can never be overwritten by a late progress report, and two workers can
never both hold a job. The row doubles as the transactional outbox: `dispatch_at` says a
message is owed, so a job and the duty to send its task are committed together and a
dispatcher (control.controller) sends and marks.

PostgreSQL for services and workers; SQLite (WAL, immediate transactions) for one machine.

Longer than 400 lines on purpose: every statement that moves a job's state is here, side by
side, so that the conditions they share (expected state, lease, version) can be read and
changed together; split apart they would drift.
"""

from __future__ import annotations

import base64
import binascii
import builtins
import contextlib
import hashlib
import json
import logging
import math
import os
import re
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Float,
    Row,
    cast,
    create_engine,
    event,
    extract,
    func,
    insert,
    literal,
    make_url,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.pool import NullPool

from orisel.control.job import ACTIVE, KINDS, TERMINAL, Job, JobState
from orisel.control.schema import KEY_LEN, NAME_LEN, job_events, jobs
from orisel.kernel.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    OriselError,
    ResourceExhausted,
    Unavailable,
)
from orisel.runtime import metrics
from orisel.store.backend import ArtifactRef

log = logging.getLogger(__name__)

ID_RE = re.compile(r"[0-9a-f]{32}")
INSERT_JOB = insert(jobs)
INSERT_EVENT = insert(job_events)
MAX_SPEC_BYTES = 64 * 1024
MAX_PAGE = 1000
DEFAULT_PAGE = 100
IDLE_S = 120.0  # Settings.db_idle_in_transaction_s
# A PostgreSQL server that has not acknowledged what was sent to it (or answered a keepalive,
# or a connect) this long is unreachable: a partition drops packets, it resets nothing, and
# TCP alone would wait for minutes to hours. Long enough that a lossy link's resends pass.
UNREACHABLE_S = 10


def canonical(spec: dict[str, Any]) -> str:
    return json.dumps(spec, sort_keys=True, separators=(",", ":"))


def check_id(job_id: str, field: str = "id") -> str:
    if not isinstance(job_id, str) or not ID_RE.fullmatch(job_id):
        raise InvalidArgument(field, "a job id as returned by Submit (32 hex digits)", job_id)
    return job_id


def make_engine(url: str, idle_s: float | None = None) -> Engine:
    """An engine on `url`. idle_s (PostgreSQL): the server ends a session left idle inside a
    transaction this long. A worker stopped or cut off while it holds a job's row lock
    (JobDB.holding) would otherwise hold it until TCP gave up on the connection, hours later,
    and no other worker could take the job. No lock_timeout: a claim waiting for a stranded
    holder is what must outlast it (the server ends each one ahead of it in turn), and a
    lock timeout would turn that take-over into an error; every statement here is short, so a
    lock is only ever held long by a transaction that is idle."""
    if url.startswith("sqlite"):
        # The default file lives under the user's data directory, which a fresh machine or
        # container has not made yet: sqlite opens a file, never a folder.
        database = make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
            _owner_only(Path(database))
        # Several processes share the file: WAL lets readers run beside the one writer, and
        # every write transaction starts IMMEDIATE so it waits for the lock (busy_timeout)
        # instead of failing when it upgrades from reading to writing.
        engine = create_engine(
            url, connect_args={"timeout": 30, "check_same_thread": False}, poolclass=NullPool
        )

        @event.listens_for(engine, "connect")
        def _connect(dbapi: Any, _: Any) -> None:
            dbapi.isolation_level = None
            cur = dbapi.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _begin(conn: Connection) -> None:
            readonly = conn.get_execution_options().get("orisel_readonly", False)
            conn.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")

        return engine
    connect_args: dict[str, Any] = {
        "connect_timeout": UNREACHABLE_S,
        "tcp_user_timeout": UNREACHABLE_S * 1000,
        "keepalives": 1,
        "keepalives_idle": UNREACHABLE_S,
        "keepalives_interval": 2,
        "keepalives_count": 3,
    }
    if idle_s is not None:
        ms = round(idle_s * 1000)
        connect_args["options"] = f"-c idle_in_transaction_session_timeout={ms}"
    return create_engine(
        url,
        pool_size=20,
        max_overflow=20,
        pool_pre_ping=True,
        pool_timeout=10,
        connect_args=connect_args,
    )


def _disk_full(exc: OperationalError) -> bool:
    """SQLite's SQLITE_FULL or PostgreSQL's disk_full (SQLSTATE 53100)."""
    orig = exc.orig
    return (
        getattr(orig, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL
        or getattr(orig, "sqlstate", None) == "53100"
    )


def _owner_only(path: Path) -> None:
    """The file readable by its owner alone: it holds every job's spec and the tokens'
    hashes. SQLite gives its -wal and -shm files the database's own mode, so they follow."""
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    if path.stat().st_mode & 0o077:
        path.chmod(0o600)


@dataclass(frozen=True)
class NewJob:
    """What a Submit (or a parent creating a child) asks for."""

    kind: str
    spec: dict[str, Any]
    task: str
    queue: str
    idempotency_key: str = ""
    owner: str = ""
    parent_id: str = ""


@dataclass(frozen=True)
class Event:
    job_id: str
    seq: int
    at: float
    type: str
    state: JobState
    principal: str
    data: dict[str, Any]


class Fence:
    """A job's row locked by its lease holder, in one transaction (JobDB.holding)."""

    def __init__(self, c: Connection, job_id: str, held: Sequence[Any]) -> None:
        self._query = select(jobs.c.id).where(jobs.c.id == job_id, *held).with_for_update()
        self._c = c
        self.held = self.confirm()

    def confirm(self) -> bool:
        """Whether the job is still held, asked again on the same transaction: False once it
        changed hands; Unavailable once the server ended the transaction (the holder was
        stopped or cut off past its idle limit), so a write that resumes then never lands."""
        return self._c.execute(self._query).first() is not None


@dataclass(frozen=True)
class Due:
    """A message the outbox owes: send `task` with the job id to `queue`."""

    id: str
    task: str
    queue: str
    dispatch_at: float


class JobDB:
    """Create, read and move jobs; every method is one transaction."""

    def __init__(self, url: str, *, max_attempts: int = 5, idle_s: float = IDLE_S) -> None:
        self.url = url
        self.engine = make_engine(url, idle_s)
        self.max_attempts = max_attempts
        self.postgres = self.engine.dialect.name == "postgresql"

    def close(self) -> None:
        self.engine.dispose()

    # -- plumbing ------------------------------------------------------------------------

    @contextlib.contextmanager
    def begin(self) -> Iterator[Connection]:
        """One write transaction; the database unreachable (or lost mid-transaction) is
        Unavailable: a passing outage, never a failed request."""
        with self._reachable(), self.engine.begin() as c:
            yield c

    @contextlib.contextmanager
    def connect(self) -> Iterator[Connection]:
        """One read-only connection; unreachable is Unavailable, as for begin()."""
        with self._reachable(), self.engine.connect() as c:
            yield c.execution_options(orisel_readonly=True)

    @staticmethod
    @contextlib.contextmanager
    def _reachable() -> Iterator[None]:
        try:
            yield
        except (OperationalError, PoolTimeout) as exc:
            # The cause names a host and port, or a file: the operator's to read, not a client's.
            if isinstance(exc, OperationalError) and _disk_full(exc):
                log.warning("job database out of space: %s", exc)
                raise ResourceExhausted(
                    "the job database is out of disk space: retry once space was freed"
                ) from exc
            log.warning("job database unavailable: %s", exc)
            raise Unavailable("the job database is unavailable: retry in a few seconds") from exc

    def _now(self) -> ColumnElement[float]:
        """Now by the database's clock (PostgreSQL: its transaction's start). Leases and the
        outbox are compared and stamped there, never by the caller's clock: a worker whose
        clock is minutes off would otherwise hold a lease for minutes, lose it at once, or
        take another's, and owe its next segment minutes late. SQLite is a file on this
        machine: its clock is this process's."""
        if self.postgres:
            return cast(extract("epoch", func.now()), Float)
        return literal(time.time(), Float)

    def ping(self) -> None:
        """Raise Unavailable unless the database answers (the servers' readiness)."""
        with self.connect() as c:
            c.execute(select(1))

    @staticmethod
    def _record(c: Connection, row: Row[Any], type_: str, principal: str = "", **data: Any) -> None:
        JobDB._event(c, row.id, row.version, row.updated_at, type_, row.state, principal, data)

    @staticmethod
    def _event(
        c: Connection,
        job_id: str,
        seq: int,
        at: float,
        type_: str,
        state: int,
        principal: str,
        data: dict[str, Any],
    ) -> None:
        # Parameters apart from the statement: one compiled statement serves every call.
        c.execute(
            INSERT_EVENT,
            {
                "job_id": job_id,
                "seq": seq,
                "at": at,
                "type": type_,
                "state": state,
                "principal": principal[:NAME_LEN],
                "data": data,
            },
        )

    def _move(
        self,
        c: Connection,
        job_id: str,
        where: Sequence[Any],
        values: dict[str, Any],
        type_: str,
        principal: str = "",
        **data: Any,
    ) -> Row[Any] | None:
        """One conditional update of one job plus its event; None if `where` did not hold."""
        stmt = (
            update(jobs)
            .where(jobs.c.id == job_id, *where)
            .values(**values, version=jobs.c.version + 1, updated_at=self._now())
            .returning(*jobs.c)
        )
        row = c.execute(stmt).one_or_none()
        if row is None:
            return None
        self._record(c, row, type_, principal, **data)
        if "state" in values:
            metrics.JOBS.labels(row.kind, JobState(row.state).name.lower()).inc()
        return row

    @staticmethod
    def _lock_parent(c: Connection, job_id: str) -> None:
        """Lock the job's parent row first: every transaction that touches a parent and its
        child locks the parent before the child (a cancel walks down, an ending child wakes
        its parent up), so two of them can never wait on each other (a deadlock)."""
        parent = c.execute(select(jobs.c.parent_id).where(jobs.c.id == job_id)).scalar()
        if parent:
            c.execute(select(jobs.c.id).where(jobs.c.id == parent).with_for_update()).all()

    def _wake_parent(self, c: Connection, parent_id: str | None) -> None:
        """A child ended: its parent owes itself a run (coalesced with one already owed)."""
        if parent_id:
            c.execute(
                update(jobs)
                .where(jobs.c.id == parent_id, jobs.c.state.in_(ACTIVE))
                .values(dispatch_at=func.coalesce(jobs.c.dispatch_at, self._now()))
            )

    # -- clients -------------------------------------------------------------------------

    def _prepare(self, new: NewJob) -> dict[str, Any]:
        """The row of a new job, its fields checked; raises InvalidArgument naming the field."""
        if new.kind not in KINDS:
            raise InvalidArgument("kind", f"one of {', '.join(KINDS)}", new.kind)
        key = new.idempotency_key
        if len(key) > KEY_LEN or any(ord(ch) < 32 or ord(ch) == 127 for ch in key):
            raise InvalidArgument("idempotency_key", f"at most {KEY_LEN} printable characters", key)
        body = canonical(new.spec).encode()
        if len(body) > MAX_SPEC_BYTES:
            raise InvalidArgument("spec", f"at most {MAX_SPEC_BYTES} bytes as JSON", len(body))
        now = time.time()
        return {
            "id": uuid.uuid4().hex,
            "kind": new.kind,
            "state": int(JobState.QUEUED),
            "spec": new.spec,
            "spec_sha256": hashlib.sha256(body).hexdigest(),
            "idempotency_key": new.idempotency_key or None,
            "owner": new.owner,
            "parent_id": new.parent_id or None,
            "task": new.task,
            "queue": new.queue,
            "metrics": {},
            "outputs": [],
            "version": 1,
            "created_at": now,
            "updated_at": now,
            "dispatch_at": now,
        }

    @staticmethod
    def _job(values: dict[str, Any]) -> Job:
        return Job(
            id=values["id"],
            kind=values["kind"],
            state=JobState.QUEUED,
            spec=values["spec"],
            idempotency_key=values["idempotency_key"] or "",
            owner=values["owner"],
            parent_id=values["parent_id"] or "",
            task=values["task"],
            queue=values["queue"],
            version=1,
            created_at=values["created_at"],
            updated_at=values["updated_at"],
        )

    def _existing(self, values: dict[str, Any]) -> Job:
        """The job that holds this new job's idempotency key: the same spec or ALREADY_EXISTS."""
        key = values["idempotency_key"]
        with self.connect() as c:
            found = c.execute(
                select(*jobs.c).where(
                    jobs.c.kind == values["kind"],
                    jobs.c.owner == values["owner"],
                    jobs.c.idempotency_key == key,
                )
            ).one()
        if found.spec_sha256 != values["spec_sha256"]:
            raise AlreadyExists(
                f"idempotency_key {key!r} was used for job {found.id} with a different spec: "
                "choose a new key"
            )
        return Job.from_row(found)

    def create(
        self,
        kind: str,
        spec: dict[str, Any],
        *,
        task: str,
        queue: str,
        idempotency_key: str = "",
        owner: str = "",
        parent_id: str = "",
        principal: str = "",
    ) -> tuple[Job, bool]:
        """(job, created). The same key and spec return the existing job; the same key with a
        different spec is ALREADY_EXISTS. The job and its owed message commit together."""
        new = NewJob(kind, spec, task, queue, idempotency_key, owner, parent_id)
        values = self._prepare(new)
        try:
            with self.begin() as c:
                if parent_id:
                    # Serialised with a cancel of the parent: no child is born to a dead parent.
                    alive = c.execute(
                        select(jobs.c.state).where(jobs.c.id == parent_id).with_for_update()
                    ).scalar()
                    if alive not in ACTIVE:
                        raise FailedPrecondition(f"job {parent_id} has ended: no new children")
                c.execute(INSERT_JOB, values)
                self._event(
                    c,
                    values["id"],
                    1,
                    values["created_at"],
                    "created",
                    JobState.QUEUED,
                    principal or owner,
                    {},
                )
        except IntegrityError:
            if not idempotency_key:
                raise
            return self._existing(values), False
        metrics.JOBS.labels(kind, "queued").inc()
        return self._job(values), True

    def create_many(self, batch: Sequence[NewJob]) -> list[tuple[Job, bool] | OriselError]:
        """Many top-level Submits in one transaction (group commit under a burst), each with
        exactly the outcome create() would give it, in order."""
        out: list[tuple[Job, bool] | OriselError | None] = [None] * len(batch)
        rows: list[tuple[int, dict[str, Any]]] = []
        for i, new in enumerate(batch):
            assert not new.parent_id, "children are created one by one (their parent is locked)"
            try:
                rows.append((i, self._prepare(new)))
            except OriselError as exc:
                out[i] = exc
        if rows:
            upsert = (pg_insert if self.postgres else sqlite_insert)(jobs).on_conflict_do_nothing()
            with self.begin() as c:
                c.execute(upsert, [v for _, v in rows])
                ids = [v["id"] for _, v in rows]
                made = set(c.execute(select(jobs.c.id).where(jobs.c.id.in_(ids))).scalars())
                events = [
                    {
                        "job_id": v["id"],
                        "seq": 1,
                        "at": v["created_at"],
                        "type": "created",
                        "state": int(JobState.QUEUED),
                        "principal": v["owner"],
                        "data": {},
                    }
                    for _, v in rows
                    if v["id"] in made
                ]
                if events:
                    c.execute(INSERT_EVENT, events)
            for i, values in rows:
                if values["id"] in made:
                    metrics.JOBS.labels(values["kind"], "queued").inc()
                    out[i] = (self._job(values), True)
                    continue
                try:
                    out[i] = (self._existing(values), False)
                except OriselError as exc:
                    out[i] = exc
        return [r for r in out if r is not None]

    def get(self, job_id: str, kind: str | None = None, owner: str | None = None) -> Job:
        """The job; NOT_FOUND also when it exists but is of another kind than `kind`, or
        belongs to another owner than `owner` (None: any owner): no hint that it exists."""
        check_id(job_id)
        with self.connect() as c:
            row = c.execute(select(*jobs.c).where(jobs.c.id == job_id)).one_or_none()
        hidden = row is not None and owner is not None and row.owner != owner
        if row is None or hidden or (kind is not None and row.kind != kind):
            raise NotFound(f"job {job_id} does not exist" + (f" among {kind} jobs" if kind else ""))
        return Job.from_row(row)

    def children(self, parent_id: str) -> list[Job]:
        with self.connect() as c:
            rows = c.execute(
                select(*jobs.c).where(jobs.c.parent_id == parent_id).order_by(jobs.c.created_at)
            ).all()
        return [Job.from_row(r) for r in rows]

    def versions(self, ids: Iterable[str]) -> dict[str, tuple[int, bool]]:
        """{id: (version, ended)} of many jobs in one query, for the watchers."""
        ids = list(ids)
        out: dict[str, tuple[int, bool]] = {}
        with self.connect() as c:
            for i in range(0, len(ids), 500):
                q = select(jobs.c.id, jobs.c.version, jobs.c.state).where(
                    jobs.c.id.in_(ids[i : i + 500])
                )
                out |= {r.id: (r.version, JobState(r.state).done) for r in c.execute(q)}
        return out

    def events(self, job_id: str, after_seq: int = 0) -> list[Event]:
        with self.connect() as c:
            rows = c.execute(
                select(*job_events.c)
                .where(job_events.c.job_id == job_id, job_events.c.seq > after_seq)
                .order_by(job_events.c.seq)
            ).all()
        return [
            Event(r.job_id, r.seq, r.at, r.type, JobState(r.state), r.principal, r.data)
            for r in rows
        ]

    def cancel(
        self, job_id: str, kind: str | None = None, principal: str = "", owner: str | None = None
    ) -> Job:
        """Cancel a job and its unfinished descendants. Always wins over a running task: every
        write a task makes requires the job to be unfinished (and leased to it)."""
        job = self.get(job_id, kind, owner)
        with self.begin() as c:
            self._lock_parent(c, job_id)
            frontier, first = [job_id], True
            while frontier:
                nxt: list[str] = []
                for jid in frontier:
                    row = self._move(
                        c,
                        jid,
                        [jobs.c.state.in_(ACTIVE)],
                        {
                            "state": int(JobState.CANCELLED),
                            "finished_at": self._now(),
                            "lease_owner": None,
                            "lease_until": None,
                            "dispatch_at": None,
                        },
                        "transition",
                        principal,
                        reason="cancelled" if first else "parent cancelled",
                    )
                    if row is not None and first:
                        self._wake_parent(c, row.parent_id)
                    nxt += (
                        c.execute(
                            select(jobs.c.id).where(
                                jobs.c.parent_id == jid, jobs.c.state.in_(ACTIVE)
                            )
                        )
                        .scalars()
                        .all()
                    )
                frontier, first = nxt, False
        return self.get(job.id)

    def list(
        self,
        *,
        kind: str | None = None,
        state: JobState | None = None,
        parent_id: str = "",
        created_after: float | None = None,
        created_before: float | None = None,
        page_size: int = DEFAULT_PAGE,
        page_token: str = "",
        owner: str | None = None,
    ) -> tuple[list[Job], str]:
        """A page in creation order, by keyset (created_at, id), and the next page's token."""
        if not 0 <= page_size <= MAX_PAGE:
            raise InvalidArgument("page_size", f"between 0 (default 100) and {MAX_PAGE}", page_size)
        size = page_size or DEFAULT_PAGE
        q = select(*jobs.c)
        if kind:
            q = q.where(jobs.c.kind == kind)
        if state:
            q = q.where(jobs.c.state == int(state))
        if owner is not None:
            q = q.where(jobs.c.owner == owner)
        if parent_id:
            q = q.where(jobs.c.parent_id == check_id(parent_id, "parent_id"))
        if created_after is not None:
            q = q.where(jobs.c.created_at > created_after)
        if created_before is not None:
            q = q.where(jobs.c.created_at < created_before)
        if page_token:
            at, last = decode_token(page_token)
            q = q.where(or_(jobs.c.created_at > at, (jobs.c.created_at == at) & (jobs.c.id > last)))
        q = q.order_by(jobs.c.created_at, jobs.c.id).limit(size + 1)
        with self.connect() as c:
            rows = c.execute(q).all()
        page = [Job.from_row(r) for r in rows[:size]]
        return page, encode_token(page[-1]) if len(rows) > size else ""

    # -- workers -------------------------------------------------------------------------

    def claim(self, job_id: str, worker: str, lease_s: float) -> Job | None:
        """Take the job for `worker` until now + lease_s, unless it ended or another holds it."""
        now = self._now()
        with self.begin() as c:
            # A lease that lapsed is a lost worker whether the controller or a worker notices
            # first (a message sent again may be taken before the controller looks): the same
            # retry is spent either way. The parent is locked only then (it may end the job),
            # so claims of siblings do not queue behind each other.
            lapsed = c.execute(
                select(jobs.c.id).where(
                    jobs.c.id == job_id,
                    jobs.c.state == int(JobState.RUNNING),
                    jobs.c.lease_until < now,
                )
            ).first()
            if lapsed is not None:
                self._lock_parent(c, job_id)
                self._lapse(c, job_id, now)
            before = c.execute(select(jobs.c.state).where(jobs.c.id == job_id)).scalar()
            row = self._move(
                c,
                job_id,
                [
                    jobs.c.state.in_(ACTIVE),
                    or_(jobs.c.lease_until.is_(None), jobs.c.lease_until < now),
                ],
                {
                    "state": int(JobState.RUNNING),
                    "lease_owner": worker[:NAME_LEN],
                    "lease_until": now + lease_s,
                    "attempts": jobs.c.attempts + 1,
                    # The message was taken: nothing is owed or in flight any more.
                    "dispatch_at": None,
                    "sent_at": None,
                },
                "transition" if before == JobState.QUEUED else "claimed",
                worker,
            )
        return None if row is None else Job.from_row(row)

    def heartbeat(self, job_id: str, worker: str, lease_s: float) -> bool:
        """Extend the lease; False once the job ended (cancelled) or the lease was lost."""
        with self.begin() as c:
            result = c.execute(
                update(jobs)
                .where(
                    jobs.c.id == job_id,
                    jobs.c.state == int(JobState.RUNNING),
                    jobs.c.lease_owner == worker[:NAME_LEN],
                )
                .values(lease_until=self._now() + lease_s)
            )
        return bool(result.rowcount)

    @contextlib.contextmanager
    def holding(self, job_id: str, worker: str) -> Iterator[Fence]:
        """A write transaction in which the job is still `worker`'s (Fence.held) or not. The
        row stays locked to the end of the block (on SQLite every writer waits), so a claim by
        another worker waits for what the block writes instead of passing it: a write made
        under a lease lands before the job changes hands, never after (a fence). A holder
        stopped inside the block has its session ended by the server (make_engine's idle_s),
        so it calls Fence.confirm just before its write becomes visible."""
        with self.begin() as c:
            fence = Fence(c, job_id, self._held(worker))
            yield fence

    def _held(self, worker: str) -> builtins.list[Any]:
        return [jobs.c.state == int(JobState.RUNNING), jobs.c.lease_owner == worker[:NAME_LEN]]

    def progress(
        self,
        job_id: str,
        worker: str,
        *,
        phase: str | None = None,
        fraction: float | None = None,
        eta_seconds: float | None = None,
        metrics: dict[str, float] | None = None,
    ) -> bool:
        """Record progress; never changes state; False (and nothing written) once the job
        ended or the lease is no longer this worker's."""
        values: dict[str, Any] = {}
        if phase is not None:
            values["phase"] = phase[:KEY_LEN]
        if fraction is not None:
            values["fraction"] = min(max(float(fraction), 0.0), 1.0)
        if eta_seconds is not None:
            values["eta_seconds"] = float(eta_seconds)
        if metrics is not None:
            values["metrics"] = {k: float(v) for k, v in metrics.items()}
        with self.begin() as c:
            row = self._move(c, job_id, self._held(worker), values, "progress", worker, **values)
        return row is not None

    def finish(
        self,
        job_id: str,
        worker: str,
        state: JobState,
        *,
        error: str = "",
        outputs: Sequence[ArtifactRef] = (),
    ) -> bool:
        """End the job this worker holds; False if it had already ended (cancelled)."""
        assert state in TERMINAL
        values: dict[str, Any] = {
            "state": int(state),
            "error": error,
            "finished_at": self._now(),
            "outputs": [r.__dict__ for r in outputs],
            "lease_owner": None,
            "lease_until": None,
            "dispatch_at": None,
        }
        if state == JobState.SUCCEEDED:
            values |= {"fraction": 1.0, "phase": "done", "eta_seconds": 0.0}
        with self.begin() as c:
            self._lock_parent(c, job_id)
            row = self._move(
                c, job_id, self._held(worker), values, "transition", worker, error=error
            )
            if row is not None:
                self._wake_parent(c, row.parent_id)
        return row is not None

    def release(
        self,
        job_id: str,
        worker: str,
        *,
        again_in: float | None = None,
        error: str = "",
    ) -> JobState | None:
        """Give the job back. again_in: owe it another run that many seconds from now (the next
        training segment). error: the run failed for a passing reason (store or broker down)
        and spends one retry, or ends FAILED once max_attempts are spent. None if not held."""
        values: dict[str, Any] = {"lease_owner": None, "lease_until": None}
        if again_in is not None:
            values["dispatch_at"] = self._now() + again_in
        if error:
            values["retries"] = jobs.c.retries + 1
        with self.begin() as c:
            if error:  # may end the job, waking its parent
                self._lock_parent(c, job_id)
            row = self._move(
                c,
                job_id,
                self._held(worker),
                values,
                "retry" if error else "released",
                worker,
                error=error,
            )
            if row is None:
                return None
            if error and row.retries >= self.max_attempts:
                message = f"gave up after {row.retries} attempts: {error}"
                if self._give_up(c, job_id, message, self._now()):
                    return JobState.FAILED
        return JobState(row.state)

    # -- controller ----------------------------------------------------------------------

    def dispatch_due(self, send: Callable[[Due], None], limit: int = 100) -> int:
        """Send what the outbox owes (due, and not leased), oldest first; mark each as sent
        only after its send returned. A crash in between sends it again: tasks are
        idempotent, and a second message for a leased or finished job does nothing."""
        now = self._now()
        q = (
            select(jobs.c.id, jobs.c.task, jobs.c.queue, jobs.c.dispatch_at)
            .where(
                jobs.c.dispatch_at <= now,
                jobs.c.state.in_(ACTIVE),
                or_(jobs.c.lease_until.is_(None), jobs.c.lease_until < now),
            )
            .order_by(jobs.c.dispatch_at)
            .limit(limit)
        )
        sent = 0
        if self.postgres:
            # Rows stay locked while their messages go out, so replicas never send one twice.
            with self.begin() as c:
                for r in c.execute(q.with_for_update(skip_locked=True)).all():
                    due = Due(r.id, r.task, r.queue, r.dispatch_at)
                    send(due)
                    self._mark_sent(c, due)
                    sent += 1
            return sent
        with self.connect() as c:
            rows = c.execute(q).all()
        for r in rows:
            due = Due(r.id, r.task, r.queue, r.dispatch_at)
            send(due)
            with self.begin() as c:
                self._mark_sent(c, due)
            sent += 1
        return sent

    def _mark_sent(self, c: Connection, due: Due) -> None:
        c.execute(
            update(jobs)
            .where(jobs.c.id == due.id, jobs.c.dispatch_at == due.dispatch_at)
            .values(dispatch_at=None, sent_at=self._now())
        )

    def defer(self, job_id: str, delay: float) -> None:
        """A send failed (broker down): owe it again after `delay` seconds."""
        with self.begin() as c:
            c.execute(
                update(jobs)
                .where(jobs.c.id == job_id, jobs.c.dispatch_at.is_not(None))
                .values(dispatch_at=self._now() + delay)
            )

    def _lapse(self, c: Connection, job_id: str, now: ColumnElement[float]) -> JobState | None:
        """If the job runs on a lease that lapsed before `now` (its worker is lost), give it
        back, spending one retry, owed again now, or FAILED once max_attempts are spent; the
        state it is left in, None if its lease had not lapsed. The caller locked the parent."""
        row = self._move(
            c,
            job_id,
            [jobs.c.state == int(JobState.RUNNING), jobs.c.lease_until < now],
            {
                "lease_owner": None,
                "lease_until": None,
                "retries": jobs.c.retries + 1,
                "dispatch_at": now,
            },
            "lease-expired",
            "controller",
        )
        if row is None:
            return None
        if row.retries < self.max_attempts:
            return JobState(row.state)
        message = f"lost its worker {row.retries} times (lease lapsed); gave up"
        self._give_up(c, job_id, message, now)
        return JobState.FAILED

    def _give_up(self, c: Connection, job_id: str, error: str, now: ColumnElement[float]) -> bool:
        """End an active job FAILED with `error` (its retries are spent) and wake its parent;
        False if it had already ended. The caller locked the parent."""
        failed = self._move(
            c,
            job_id,
            [jobs.c.state.in_(ACTIVE)],
            {
                "state": int(JobState.FAILED),
                "finished_at": now,
                "dispatch_at": None,
                "error": error,
            },
            "transition",
            "controller",
        )
        if failed is not None:
            self._wake_parent(c, failed.parent_id)
        return failed is not None

    def reconcile(
        self, dispatch_timeout_s: float, waiting: Callable[[str], int | None]
    ) -> dict[str, int]:
        """Find what lost its worker or its message and owe it another run.

        A running job whose lease lapsed (worker killed, node lost) is given back and sent
        again, spending one retry, or FAILED with the reason once max_attempts are spent.

        A job sent more than dispatch_timeout_s ago that no worker took is sent again only
        when its message is known lost: no longer among the `waiting(queue)` messages its
        queue holds (None: unknown, nothing re-sent). A queue hands its messages out oldest
        first, so those waiting are the newest sent; an older one that no worker took went
        to a worker that died before claiming it, or with a broker that restarted empty. Age
        alone would re-send every message waiting behind a busy worker each timeout. Stale
        messages in the queue (for jobs already taken) only make this wait longer.
        """
        now = self._now()
        counts = {"expired": 0, "failed": 0, "resent": 0}
        with self.connect() as c:
            lapsed = (
                c.execute(
                    select(jobs.c.id).where(
                        jobs.c.state == int(JobState.RUNNING), jobs.c.lease_until < now
                    )
                )
                .scalars()
                .all()
            )
        for job_id in lapsed:
            with self.begin() as c:
                self._lock_parent(c, job_id)
                lapsed_state = self._lapse(c, job_id, now)
            if lapsed_state is not None:
                counts["expired"] += 1
                counts["failed"] += lapsed_state == JobState.FAILED
        # Sent and never taken. A parent waiting for its children was taken and given back
        # (sent_at cleared): its children wake it, not the controller.
        untaken = [
            jobs.c.state.in_(ACTIVE),
            jobs.c.lease_owner.is_(None),
            jobs.c.dispatch_at.is_(None),
            jobs.c.sent_at.is_not(None),
        ]
        overdue = jobs.c.sent_at < now - dispatch_timeout_s
        with self.connect() as c:
            queues = list(
                c.execute(select(jobs.c.queue).where(*untaken, overdue).distinct()).scalars()
            )
        for queue in queues:
            held = waiting(queue)
            if held is None:
                continue
            gone = (
                select(jobs.c.id)
                .where(*untaken, jobs.c.queue == queue)
                .order_by(jobs.c.sent_at.desc())
                .offset(held)
            )
            with self.begin() as c:
                counts["resent"] += c.execute(
                    update(jobs)
                    .where(jobs.c.id.in_(gone), *untaken, overdue)
                    .values(dispatch_at=now)
                ).rowcount
        return counts

    def counts(self) -> dict[tuple[str, JobState], int]:
        """Jobs by (kind, state), for the job-state gauges."""
        with self.connect() as c:
            rows = c.execute(
                select(jobs.c.kind, jobs.c.state, func.count()).group_by(jobs.c.kind, jobs.c.state)
            ).all()
        return {(k, JobState(s)): n for k, s, n in rows}


_OPEN: dict[str, JobDB] = {}


def open_db(url: str, max_attempts: int = 5, idle_s: float = IDLE_S) -> JobDB:
    """This process's handle on the database at `url` (one connection pool per process)."""
    db = _OPEN.get(url)
    if db is None:
        db = _OPEN[url] = JobDB(url, max_attempts=max_attempts, idle_s=idle_s)
    return db


# A forked worker child must not share its parent's connections: it opens its own.
os.register_at_fork(after_in_child=_OPEN.clear)


def encode_token(last: Job) -> str:
    raw = json.dumps([last.created_at, last.id]).encode()
    return base64.urlsafe_b64encode(raw).decode()


def decode_token(token: str) -> tuple[float, str]:
    """The keyset a token encodes, checked as a job's (created_at, id): its id reaches the
    database, which must never see a value a job id cannot be (a NUL, 5,000 characters)."""
    try:
        if len(token) > 200:
            raise ValueError("too long")
        at, last = json.loads(base64.urlsafe_b64decode(token.encode()))
        if not isinstance(at, (int, float)) or not math.isfinite(at) or not isinstance(last, str):
            raise ValueError("malformed")
        return float(at), check_id(last)
    except (OriselError, ValueError, TypeError, binascii.Error, UnicodeError) as exc:
        raise InvalidArgument("page_token", "a token returned by List", token) from exc
