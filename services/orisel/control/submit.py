"""Creating jobs: one, or many Submits in one transaction, each idempotent by its owner's key.

The job row doubles as the transactional outbox: a new job's `dispatch_at` says its message
is owed, so the job and the duty to send its task commit together (control.outbox sends).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError

from orisel.control.job import ACTIVE, Job, JobState
from orisel.control.rows import NewJob, event_row, new_row, queued_job
from orisel.control.schema import jobs
from orisel.control.transactions import INSERT_EVENT, Transactions
from orisel.kernel.errors import AlreadyExists, FailedPrecondition, OriselError
from orisel.runtime import metrics

log = logging.getLogger(__name__)

INSERT_JOB = insert(jobs)


class Submissions(Transactions):
    """Create jobs."""

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
        values = new_row(new, self.clock.time())
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
                c.execute(INSERT_EVENT, self._created_event(values, principal or owner))
        except IntegrityError:
            if not idempotency_key:
                raise
            return self._existing(values), False
        return self._created(values), True

    def create_many(self, batch: Sequence[NewJob]) -> list[tuple[Job, bool] | OriselError]:
        """Many top-level Submits in one transaction (group commit under a burst), each with
        exactly the outcome create() would give it, in order."""
        out: list[tuple[Job, bool] | OriselError | None] = [None] * len(batch)
        rows: list[tuple[int, dict[str, Any]]] = []
        for i, new in enumerate(batch):
            assert not new.parent_id, "children are created one by one (their parent is locked)"
            try:
                rows.append((i, new_row(new, self.clock.time())))
            except OriselError as exc:
                out[i] = exc
        if rows:
            upsert = (pg_insert if self.postgres else sqlite_insert)(jobs).on_conflict_do_nothing()
            with self.begin() as c:
                c.execute(upsert, [v for _, v in rows])
                ids = [v["id"] for _, v in rows]
                made = set(c.execute(select(jobs.c.id).where(jobs.c.id.in_(ids))).scalars())
                events = [self._created_event(v, v["owner"]) for _, v in rows if v["id"] in made]
                if events:
                    c.execute(INSERT_EVENT, events)
            for i, values in rows:
                if values["id"] in made:
                    out[i] = (self._created(values), True)
                    continue
                try:
                    out[i] = (self._existing(values), False)
                except OriselError as exc:
                    out[i] = exc
        return [r for r in out if r is not None]

    @staticmethod
    def _created_event(values: dict[str, Any], principal: str) -> dict[str, Any]:
        return event_row(
            values["id"], 1, values["created_at"], "created", JobState.QUEUED, principal, {}
        )

    def _created(self, values: dict[str, Any]) -> Job:
        """A committed new job: counted, and told to whoever waits for new jobs."""
        job = queued_job(values)
        metrics.JOBS.labels(job.kind, "queued").inc()
        for wake in self.on_created:
            try:
                wake(job)
            except Exception:  # a listener's failure is not the Submit's
                log.exception("on_created listener failed for job %s", job.id)
        return job

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
