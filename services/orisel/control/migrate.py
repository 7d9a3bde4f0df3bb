"""Schema migrations of the job database (Alembic), run by `orisel db upgrade`, by a
Kubernetes Job before the services start, and by embedded mode at start.

Concurrent upgrades are safe: on PostgreSQL they queue on an advisory lock, on SQLite on
the database's write lock.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, event, text

from orisel.control.engine import make_engine

MIGRATIONS = Path(__file__).with_name("migrations")
LOCK_ID = 0x0715E1  # an arbitrary advisory-lock number that names "orisel migrations"


def _config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def head() -> str:
    rev = ScriptDirectory.from_config(_config()).get_current_head()
    assert rev is not None
    return rev


def current(engine: Engine) -> str | None:
    with engine.connect() as c:
        return MigrationContext.configure(c).get_current_revision()


def _run(url: str, action: str, target: str) -> None:
    engine = make_engine(url)
    if engine.dialect.name == "sqlite":
        # SQLite changes a constraint by copying the table, which foreign keys forbid: off for
        # the migration (SQLite's documented procedure), then every reference checked.
        event.listen(engine, "connect", lambda dbapi, _: dbapi.execute("PRAGMA foreign_keys=OFF"))
    try:
        with engine.begin() as c:
            if c.dialect.name == "postgresql":
                c.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": LOCK_ID})
            cfg = _config()
            cfg.attributes["connection"] = c
            getattr(command, action)(cfg, target)
            if c.dialect.name == "sqlite":
                broken = c.exec_driver_sql("PRAGMA foreign_key_check").all()
                if broken:
                    raise RuntimeError(f"migration left broken references: {broken[:5]}")
    finally:
        engine.dispose()


def upgrade(url: str, target: str = "head") -> None:
    _run(url, "upgrade", target)


def downgrade(url: str, target: str) -> None:
    _run(url, "downgrade", target)
