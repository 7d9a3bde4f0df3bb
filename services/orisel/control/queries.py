"""Reading jobs: one job, a parent's children, their versions for the watchers, a job's
events, counts for the gauges, and List's pages with their tokens."""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Iterable

from sqlalchemy import func, or_, select

from orisel.control.job import Job, JobState
from orisel.control.rows import Event, check_id
from orisel.control.schema import job_events, jobs
from orisel.control.transactions import Transactions
from orisel.kernel.errors import InvalidArgument, NotFound, OriselError

MAX_PAGE = 1000
DEFAULT_PAGE = 100


class Queries(Transactions):
    """Read jobs; nothing here writes."""

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

    def counts(self) -> dict[tuple[str, JobState], int]:
        """Jobs by (kind, state), for the job-state gauges."""
        with self.connect() as c:
            rows = c.execute(
                select(jobs.c.kind, jobs.c.state, func.count()).group_by(jobs.c.kind, jobs.c.state)
            ).all()
        return {(k, JobState(s)): n for k, s, n in rows}

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
