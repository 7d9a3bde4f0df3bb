"""The outbox: messages the job rows owe (`dispatch_at`), sent by the controller and marked,
deferred after a failed send, and owed again when a sent message was lost."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import ColumnElement, Connection, or_, select, update

from orisel.control.job import ACTIVE
from orisel.control.schema import jobs
from orisel.control.transactions import Transactions


@dataclass(frozen=True)
class Due:
    """A message the outbox owes: send `task` with the job id to `queue`."""

    id: str
    task: str
    queue: str
    dispatch_at: float


class Outbox(Transactions):
    """Send what is owed; find what was lost on the way."""

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

    def resend_lost(
        self,
        now: ColumnElement[float],
        dispatch_timeout_s: float,
        waiting: Callable[[str], int | None],
    ) -> int:
        """Owe again at `now` every message sent more than dispatch_timeout_s ago that no
        worker took and its queue no longer holds (JobDB.reconcile); how many."""
        # Sent and never taken. A parent waiting for its children was taken and given back
        # (sent_at cleared): its children wake it, not the controller.
        untaken = [
            jobs.c.state.in_(ACTIVE),
            jobs.c.lease_owner.is_(None),
            jobs.c.dispatch_at.is_(None),
            jobs.c.sent_at.is_not(None),
        ]
        overdue = jobs.c.sent_at < now - dispatch_timeout_s
        resent = 0
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
                resent += c.execute(
                    update(jobs)
                    .where(jobs.c.id.in_(gone), *untaken, overdue)
                    .values(dispatch_at=now)
                ).rowcount
        return resent
