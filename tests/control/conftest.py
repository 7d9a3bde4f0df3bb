"""The job database under test: every test of it runs on PostgreSQL (the service tier) and
on SQLite (the unit tier), from the same migrations."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from orisel.control import migrate
from orisel.control.db import JobDB
from tests.control.fakeclock import FakeClock
from tests.stack import pg_database


@pytest.fixture(params=[pytest.param("postgresql", marks=pytest.mark.service), "sqlite"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'jobs.sqlite'}"
    else:
        with pg_database() as pg:
            yield pg


@pytest.fixture
def db(url: str) -> Iterator[JobDB]:
    migrate.upgrade(url)
    handle = JobDB(url, max_attempts=3)
    yield handle
    handle.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def clocked_db(url: str, clock: FakeClock) -> Iterator[JobDB]:
    """The job database on `clock`: leases lapse when the test advances it."""
    migrate.upgrade(url)
    handle = JobDB(url, max_attempts=3, clock=clock)
    yield handle
    handle.close()
