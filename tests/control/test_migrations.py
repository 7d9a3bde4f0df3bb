"""The job database's schema: Alembic migrations up and down, on empty and populated
databases, equal to the declared tables, and an upgrade that keeps every job."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import inspect

from orisel.control import migrate
from orisel.control.db import JobDB
from orisel.control.job import JobState
from tests.control.jobdb import new_job


def test_migrations_down_and_up_on_empty_and_populated(url: str) -> None:
    migrate.upgrade(url)
    db = JobDB(url)
    new_job(db, "kept")
    migrate.downgrade(url, "base")
    assert set(inspect(db.engine).get_table_names()) <= {"alembic_version"}
    migrate.upgrade(url)
    migrate.upgrade(url)  # at head already: nothing to do
    assert migrate.current(db.engine) == migrate.head()
    assert db.list()[0] == []
    new_job(db, "again")
    migrate.downgrade(url, "base")
    migrate.upgrade(url)
    db.close()


def test_the_migrations_build_exactly_the_declared_schema(url: str) -> None:
    """control/schema.py and the Alembic scripts describe the same tables, constraints and
    indexes, on both databases."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from orisel.control.schema import metadata

    migrate.upgrade(url)
    db = JobDB(url)
    with db.engine.connect() as c:
        diff = compare_metadata(MigrationContext.configure(c), metadata)
    db.close()
    assert diff == []


def test_an_upgrade_from_0001_keeps_every_job_and_scopes_keys_by_owner(url: str) -> None:
    migrate.downgrade(url, "base")
    migrate.upgrade(url, "0001")
    db = JobDB(url)
    old = new_job(db, "k")
    migrate.upgrade(url)
    assert db.get(old).idempotency_key == "k"
    again = new_job(db, "k", {"x": 1}, owner="someone")
    assert again != old  # the same key under another owner is another job
    db.close()


def test_a_sqlite_database_in_a_folder_not_made_yet_is_created(tmp_path: Path) -> None:
    """The default database sits in the user's data directory, which a fresh machine or
    container has not made: the first front end or worker makes it."""
    url = f"sqlite:///{tmp_path / 'home' / '.local' / 'orisel' / 'jobs.sqlite'}"
    migrate.upgrade(url)
    handle = JobDB(url)
    try:
        assert handle.get(new_job(handle)).state == JobState.QUEUED
    finally:
        handle.close()
