"""The job database: every job's state, moved only by conditional updates, on one handle.

One row per job and one event per recorded change, written in the same transaction. The
verbs live by concern: creating jobs (control.submit), reading them (control.queries), a
worker's lease on one (control.leases), the messages they owe (control.outbox), all on the
transactions of control.transactions; JobDB puts them on one handle, with cancel and the
controller's reconcile, which span them.

PostgreSQL for services and workers; SQLite (WAL, immediate transactions) for one machine.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from sqlalchemy import select

from orisel.control.engine import IDLE_S
from orisel.control.job import ACTIVE, Job, JobState
from orisel.control.leases import Leases
from orisel.control.outbox import Outbox
from orisel.control.queries import Queries
from orisel.control.schema import jobs
from orisel.control.submit import Submissions


class JobDB(Submissions, Queries, Leases, Outbox):
    """Create, read and move jobs; every method is one transaction."""

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
        counts = self.expire_leases(now)
        counts["resent"] = self.resend_lost(now, dispatch_timeout_s, waiting)
        return counts


_OPEN: dict[str, JobDB] = {}


def open_db(url: str, max_attempts: int = 5, idle_s: float = IDLE_S) -> JobDB:
    """This process's handle on the database at `url` (one connection pool per process)."""
    db = _OPEN.get(url)
    if db is None:
        db = _OPEN[url] = JobDB(url, max_attempts=max_attempts, idle_s=idle_s)
    return db


# A forked worker child must not share its parent's connections: it opens its own.
os.register_at_fork(after_in_child=_OPEN.clear)
