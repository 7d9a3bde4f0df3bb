"""A Submit wakes the controller of its process: the new job's message goes out at once,
not at the controller's next round."""

from __future__ import annotations

import queue

from orisel.control.controller import Controller
from orisel.control.db import JobDB
from orisel.control.outbox import Due
from orisel.runtime.settings import Settings
from tests.control.jobdb import new_job

ROUND_S = 3600.0  # a round an hour: only a wake-up sends within the test


class Recorded:
    """A broker that keeps what it is sent."""

    def __init__(self) -> None:
        self.sent: queue.Queue[str] = queue.Queue()

    def send(self, due: Due) -> None:
        self.sent.put(due.id)

    def waiting(self, queue: str) -> int | None:
        return None


def test_a_created_job_is_sent_without_waiting_for_the_next_round(db: JobDB) -> None:
    broker = Recorded()
    settings = Settings(database_url=db.url, controller_interval_s=ROUND_S)
    first = new_job(db)
    controller = Controller(db, broker, settings).start()
    try:
        assert broker.sent.get(timeout=10) == first  # the first round, at start
        second = new_job(db)  # then the controller sleeps for an hour, unless woken
        assert broker.sent.get(timeout=10) == second
    finally:
        controller.stop()
    assert db.on_created == []  # a stopped controller is not woken any more
