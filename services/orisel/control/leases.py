"""Workers' side of a job: the lease a claim takes and heartbeats renew, the fence a write
made under it holds, progress, the end of a run, giving a job back, and leases that lapsed
(a lost worker) given back or failed."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import ColumnElement, Connection, or_, select, update

from orisel.control.job import ACTIVE, TERMINAL, Job, JobState
from orisel.control.schema import KEY_LEN, NAME_LEN, jobs
from orisel.control.transactions import Transactions
from orisel.store.backend import ArtifactRef


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


class Leases(Transactions):
    """Claim, hold, report on, end and give back jobs; expire lost leases."""

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

    def _held(self, worker: str) -> list[Any]:
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

    def expire_leases(self, now: ColumnElement[float]) -> dict[str, int]:
        """Give back every running job whose lease lapsed before `now` (worker killed, node
        lost), spending one retry, or FAILED once max_attempts are spent: how many of each."""
        counts = {"expired": 0, "failed": 0}
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
        return counts
