"""The controller: the only sender of tasks, and the reconciler that strands nothing.

Each round it gives back jobs whose worker's lease lapsed and re-owes jobs whose message was
lost: no worker took it and its queue no longer holds it (control.db.JobDB.reconcile, which
asks the broker how many messages each queue holds), then sends every owed message (the outbox)
to the job's queue. A failed send (broker down) is owed again after a backoff, so Submit
never waits for the broker and a broker outage only delays work. Run as `orisel controller`
(one per deployment; more replicas are safe: PostgreSQL row locks keep them from sending
one message twice), or inside `orisel up`.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Protocol

from orisel.control.db import JobDB
from orisel.control.job import KINDS, Job, JobState
from orisel.control.outbox import Due
from orisel.runtime import metrics
from orisel.runtime.settings import Settings

log = logging.getLogger(__name__)

SEND_BACKOFF_S = 2.0
GAUGE_EVERY_S = 10.0


class Broker(Protocol):
    def send(self, due: Due) -> None:
        """Send the job's task to its queue; raise if the broker did not take it."""

    def waiting(self, queue: str) -> int | None:
        """Messages waiting in `queue`; None when the broker cannot say."""


class CeleryBroker:
    """Tasks by name to their queues, with no broker-side retries (the outbox retries)."""

    def __init__(self, settings: Settings) -> None:
        from orisel.control.celery_app import make_celery

        self.app = make_celery(settings)

    def send(self, due: Due) -> None:
        self.app.send_task(due.task, args=(due.id,), queue=due.queue, retry=False)

    def waiting(self, queue: str) -> int | None:
        # Declared as Celery's workers declare it (AMQP refuses other arguments); a
        # declaration reports the queue's depth on every transport, Redis and files included.
        try:
            with self.app.pool.acquire(block=True, timeout=5) as conn:
                declared = self.app.amqp.queues[queue].bind(conn.default_channel).queue_declare()
            return int(declared.message_count)
        except Exception as exc:
            log.warning("queue %s: depth unknown (%s); nothing re-sent from it", queue, exc)
            return None


class Controller:
    def __init__(self, db: JobDB, broker: Broker, settings: Settings) -> None:
        self.db = db
        self.broker = broker
        self.settings = settings
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._gauged = 0.0

    def tick(self) -> dict[str, int]:
        """One round: reconcile, then dispatch; returns what it did."""
        counts = self.db.reconcile(self.settings.dispatch_timeout_s, self.broker.waiting)
        attempted: list[Due] = []

        def send(due: Due) -> None:
            attempted.append(due)
            self.broker.send(due)

        try:
            counts["sent"] = self.db.dispatch_due(send)
        except Exception as exc:
            counts["sent"] = max(len(attempted) - 1, 0)
            if not attempted:
                raise
            log.warning("sending %s to %s failed: %s", attempted[-1].task, attempted[-1].queue, exc)
            self.db.defer(attempted[-1].id, SEND_BACKOFF_S)
        if time.monotonic() - self._gauged > GAUGE_EVERY_S:
            counts_now = {(k, s.name.lower()): n for (k, s), n in self.db.counts().items()}
            states = [s.name.lower() for s in JobState]
            metrics.set_job_counts(counts_now, KINDS, states)
            self._gauged = time.monotonic()
        return counts

    def run_forever(self) -> None:
        while not self._stop.is_set():
            try:
                counts = self.tick()
                # Sending is routine; giving back lost work is worth an operator's attention.
                if counts["expired"] or counts["failed"] or counts["resent"]:
                    log.info("controller: %s", counts)
                elif counts["sent"]:
                    log.debug("controller: %s", counts)
            except Exception as exc:  # database away: keep trying, the state is durable
                log.warning("controller round failed: %s", exc)
            self._wake.wait(self.settings.controller_interval_s)
            self._wake.clear()

    def kick(self) -> None:
        """Run a round now (something was just created)."""
        self._wake.set()

    def _created(self, job: Job) -> None:
        self.kick()

    def start(self) -> Controller:
        """Run rounds in a thread, and one at once whenever this process's JobDB creates a
        job (a Submit to a front end in this process, or embedded mode's), so its message
        goes out without waiting for the next round."""
        self.db.on_created.append(self._created)
        self._thread = threading.Thread(target=self.run_forever, daemon=True, name="controller")
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._created in self.db.on_created:
            self.db.on_created.remove(self._created)
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(10)
