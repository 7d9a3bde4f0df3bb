"""Connections to the job database: the engine (PostgreSQL keepalives and idle limit; SQLite
in WAL with immediate transactions), and its failures as passing errors."""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.pool import NullPool

from orisel.kernel.errors import ResourceExhausted, Unavailable

log = logging.getLogger(__name__)

IDLE_S = 120.0  # Settings.db_idle_in_transaction_s
# A PostgreSQL server that has not acknowledged what was sent to it (or answered a keepalive,
# or a connect) this long is unreachable: a partition drops packets, it resets nothing, and
# TCP alone would wait for minutes to hours. Long enough that a lossy link's resends pass.
UNREACHABLE_S = 10


def make_engine(url: str, idle_s: float | None = None) -> Engine:
    """An engine on `url`. idle_s (PostgreSQL): the server ends a session left idle inside a
    transaction this long. A worker stopped or cut off while it holds a job's row lock
    (JobDB.holding) would otherwise hold it until TCP gave up on the connection, hours later,
    and no other worker could take the job. No lock_timeout: a claim waiting for a stranded
    holder is what must outlast it (the server ends each one ahead of it in turn), and a
    lock timeout would turn that take-over into an error; every statement here is short, so a
    lock is only ever held long by a transaction that is idle."""
    if url.startswith("sqlite"):
        # The default file lives under the user's data directory, which a fresh machine or
        # container has not made yet: sqlite opens a file, never a folder.
        database = make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
            _owner_only(Path(database))
        # Several processes share the file: WAL lets readers run beside the one writer, and
        # every write transaction starts IMMEDIATE so it waits for the lock (busy_timeout)
        # instead of failing when it upgrades from reading to writing.
        engine = create_engine(
            url, connect_args={"timeout": 30, "check_same_thread": False}, poolclass=NullPool
        )

        @event.listens_for(engine, "connect")
        def _connect(dbapi: Any, _: Any) -> None:
            dbapi.isolation_level = None
            cur = dbapi.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _begin(conn: Connection) -> None:
            readonly = conn.get_execution_options().get("orisel_readonly", False)
            conn.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")

        return engine
    connect_args: dict[str, Any] = {
        "connect_timeout": UNREACHABLE_S,
        "tcp_user_timeout": UNREACHABLE_S * 1000,
        "keepalives": 1,
        "keepalives_idle": UNREACHABLE_S,
        "keepalives_interval": 2,
        "keepalives_count": 3,
    }
    if idle_s is not None:
        ms = round(idle_s * 1000)
        connect_args["options"] = f"-c idle_in_transaction_session_timeout={ms}"
    return create_engine(
        url,
        pool_size=20,
        max_overflow=20,
        pool_pre_ping=True,
        pool_timeout=10,
        connect_args=connect_args,
    )


def _disk_full(exc: OperationalError) -> bool:
    """SQLite's SQLITE_FULL or PostgreSQL's disk_full (SQLSTATE 53100)."""
    orig = exc.orig
    return (
        getattr(orig, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL
        or getattr(orig, "sqlstate", None) == "53100"
    )


def _owner_only(path: Path) -> None:
    """The file readable by its owner alone: it holds every job's spec and the tokens'
    hashes. SQLite gives its -wal and -shm files the database's own mode, so they follow."""
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    if path.stat().st_mode & 0o077:
        path.chmod(0o600)


@contextlib.contextmanager
def reachable() -> Iterator[None]:
    """The database unreachable (or lost mid-transaction) is Unavailable, out of disk space
    ResourceExhausted: a passing outage, never a failed request."""
    try:
        yield
    except (OperationalError, PoolTimeout) as exc:
        # The cause names a host and port, or a file: the operator's to read, not a client's.
        if isinstance(exc, OperationalError) and _disk_full(exc):
            log.warning("job database out of space: %s", exc)
            raise ResourceExhausted(
                "the job database is out of disk space: retry once space was freed"
            ) from exc
        log.warning("job database unavailable: %s", exc)
        raise Unavailable("the job database is unavailable: retry in a few seconds") from exc
