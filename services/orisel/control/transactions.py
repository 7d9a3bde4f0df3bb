"""The job database's transactions: its engine, its clock, and the one conditional update
every change of a job goes through, with the event it records.

Each write names the state (and, for a worker, the lease) it expects, so a terminal state
never changes, a cancel can never be overwritten by a late progress report, and two workers
can never both hold a job. The verbs on top (control.submit, queries, leases, outbox) share
these steps, so the conditions they share (expected state, lease, version) read and change
in one place.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Float,
    Row,
    cast,
    extract,
    func,
    insert,
    literal,
    select,
    update,
)

from orisel.control.clock import WALL, Clock
from orisel.control.engine import IDLE_S, make_engine, reachable
from orisel.control.job import ACTIVE, Job, JobState
from orisel.control.rows import event_row
from orisel.control.schema import job_events, jobs
from orisel.runtime import metrics

INSERT_EVENT = insert(job_events)


class Transactions:
    """A handle on the job database: every public method of its subclasses is one
    transaction.

    clock: where now is read. None: the database server's clock on PostgreSQL (leases and
    the outbox are compared and stamped there, never by the caller's clock: a worker whose
    clock is minutes off would otherwise hold a lease for minutes, lose it at once, or take
    another's, and owe its next segment minutes late), this process's on SQLite (a file on
    this machine). A clock given (tests move one by hand) is used for every stamp on both.
    """

    def __init__(
        self,
        url: str,
        *,
        max_attempts: int = 5,
        idle_s: float = IDLE_S,
        clock: Clock | None = None,
    ) -> None:
        self.url = url
        self.engine = make_engine(url, idle_s)
        self.max_attempts = max_attempts
        self.postgres = self.engine.dialect.name == "postgresql"
        self.clock = clock or WALL
        self._server_clock = clock is None and self.postgres
        # Called with each job a create made, after its commit (the in-process controller
        # sends it at once instead of at its next round).
        self.on_created: list[Callable[[Job], None]] = []

    def close(self) -> None:
        self.engine.dispose()

    @contextlib.contextmanager
    def begin(self) -> Iterator[Connection]:
        """One write transaction; the database unreachable (or lost mid-transaction) is
        Unavailable: a passing outage, never a failed request."""
        with reachable(), self.engine.begin() as c:
            yield c

    @contextlib.contextmanager
    def connect(self) -> Iterator[Connection]:
        """One read-only connection; unreachable is Unavailable, as for begin()."""
        with reachable(), self.engine.connect() as c:
            yield c.execution_options(orisel_readonly=True)

    def ping(self) -> None:
        """Raise Unavailable unless the database answers (the servers' readiness)."""
        with self.connect() as c:
            c.execute(select(1))

    def _now(self) -> ColumnElement[float]:
        """Now by the clock (see the class): PostgreSQL's by default, its transaction's start."""
        if self._server_clock:
            return cast(extract("epoch", func.now()), Float)
        return literal(self.clock.time(), Float)

    @staticmethod
    def _record(c: Connection, row: Row[Any], type_: str, principal: str = "", **data: Any) -> None:
        # Parameters apart from the statement: one compiled statement serves every call.
        c.execute(
            INSERT_EVENT,
            event_row(row.id, row.version, row.updated_at, type_, row.state, principal, data),
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
