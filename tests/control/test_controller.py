"""The controller against a real broker (Redis): a message waiting behind a busy worker is
never sent twice, however long it waits; one the broker lost is sent again, once."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from orisel.control.controller import CeleryBroker, Controller
from orisel.control.migrate import upgrade
from tests.control.jobdb import new_job
from tests.stack import REDIS, stack

pytestmark = pytest.mark.service  # the controller in this process, on PostgreSQL and Redis
BACKLOG = 30


def test_queued_messages_are_resent_only_when_the_broker_lost_them(tmp_path: Path) -> None:
    # A timeout this short (a microsecond: less than any Redis round trip between two rounds,
    # where a millisecond was not always) makes every untaken message overdue at once: only
    # its being known lost may send it again.
    with stack(tmp_path, dispatch_timeout_s=1e-6) as live:
        upgrade(live.settings.database_url)
        controller = Controller(live.db, CeleryBroker(live.settings), live.settings)
        queue = redis.Redis.from_url(REDIS)
        key = f"{live.settings.broker_prefix}training"
        ids = {new_job(live.db) for _ in range(BACKLOG)}
        assert controller.tick()["sent"] == BACKLOG
        # No worker consumes: the messages wait in the queue, as behind a busy worker.
        for _ in range(5):
            counts = controller.tick()
            assert (counts["resent"], counts["sent"]) == (0, 0)
        assert queue.llen(key) == BACKLOG
        # A worker takes one message and dies before claiming: that job is lost, the rest wait.
        assert queue.rpop(key) is not None
        assert controller.tick()["resent"] == 1
        assert queue.llen(key) == BACKLOG
        # The broker restarts empty: every job is sent again, once.
        queue.delete(key)
        assert controller.tick()["resent"] == BACKLOG
        assert controller.tick()["resent"] == 0
        assert queue.llen(key) == BACKLOG
        assert {live.db.get(i).state.name for i in ids} == {"QUEUED"}
