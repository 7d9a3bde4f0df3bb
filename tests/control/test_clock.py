"""Leases and the outbox go by the database's clock: a worker whose own clock is minutes
off (another host, no NTP) neither stretches nor breaks a lease, takes no job another
holds, and owes its next segment now. PostgreSQL only: SQLite is one machine's file, whose
clock is its processes'."""

from __future__ import annotations

import time
from collections.abc import Iterator
from types import SimpleNamespace

import psycopg
import pytest

from orisel.control import clock as clock_module
from orisel.control import migrate
from orisel.control.db import JobDB
from orisel.control.job import JobState
from orisel.control.outbox import Due
from tests.control.jobdb import new_job
from tests.stack import pg_database

pytestmark = pytest.mark.service
SKEW_S = 600.0
LEASE_S = 3.0


@pytest.fixture
def pg() -> Iterator[tuple[JobDB, str]]:
    with pg_database() as url:
        migrate.upgrade(url)
        handle = JobDB(url, max_attempts=3)
        yield handle, url.replace("postgresql+psycopg", "postgresql")
        handle.close()


def server_now(url: str) -> float:
    """The database server's clock, read apart from the code under test."""
    with psycopg.connect(url) as c:
        row = c.execute("SELECT extract(epoch FROM clock_timestamp())::float8").fetchone()
    assert row is not None
    return float(row[0])


def lease(url: str, job_id: str) -> tuple[str, float]:
    """Who holds the job and until when, as its row says."""
    with psycopg.connect(url) as c:
        row = c.execute("SELECT lease_owner, lease_until FROM jobs WHERE id = %s", (job_id,))
        owner, until = row.fetchone() or ("", 0.0)
    return str(owner), float(until)


def skew(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    """This process's clock, as the job database reads it, `seconds` off the true one."""
    monkeypatch.setattr(clock_module, "time", SimpleNamespace(time=lambda: time.time() + seconds))


@pytest.mark.parametrize("seconds", [SKEW_S, -SKEW_S])
def test_a_skewed_worker_holds_its_lease_for_the_lease_time(
    pg: tuple[JobDB, str], monkeypatch: pytest.MonkeyPatch, seconds: float
) -> None:
    db, url = pg
    job_id = new_job(db)
    skew(monkeypatch, seconds)
    assert db.claim(job_id, "skewed", lease_s=LEASE_S) is not None
    assert 0 < lease(url, job_id)[1] - server_now(url) <= LEASE_S
    assert db.heartbeat(job_id, "skewed", LEASE_S)
    assert 0 < lease(url, job_id)[1] - server_now(url) <= LEASE_S
    # The controller, on the true clock, leaves a live lease alone, however the worker's runs.
    monkeypatch.undo()
    assert db.reconcile(600, lambda queue: 0)["expired"] == 0
    assert lease(url, job_id)[0] == "skewed"


def test_a_worker_ahead_takes_no_job_another_holds(
    pg: tuple[JobDB, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    db, url = pg
    job_id = new_job(db)
    assert db.claim(job_id, "on-time", lease_s=LEASE_S) is not None
    skew(monkeypatch, SKEW_S)
    assert db.claim(job_id, "ahead", lease_s=LEASE_S) is None
    assert lease(url, job_id)[0] == "on-time"
    assert db.get(job_id).retries == 0


@pytest.mark.parametrize("seconds", [SKEW_S, -SKEW_S])
def test_a_segment_given_back_by_a_skewed_worker_is_owed_now(
    pg: tuple[JobDB, str], monkeypatch: pytest.MonkeyPatch, seconds: float
) -> None:
    db, url = pg
    job_id = new_job(db)
    sent: list[Due] = []
    assert db.dispatch_due(sent.append) == 1
    skew(monkeypatch, seconds)
    assert db.claim(job_id, "skewed", lease_s=LEASE_S) is not None
    before = server_now(url)
    assert db.release(job_id, "skewed", again_in=0) == JobState.RUNNING
    monkeypatch.undo()
    assert db.dispatch_due(sent.append) == 1  # due at once, on the true clock
    assert abs(sent[-1].dispatch_at - before) < 1.0
