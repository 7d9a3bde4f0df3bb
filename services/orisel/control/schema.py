"""The job database's tables, shared by the repository (control.db) and the migrations.

Times are Unix seconds (float) so that SQLite and PostgreSQL store and compare them alike.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
)

ID_LEN = 32  # uuid4().hex
KEY_LEN = 256  # idempotency keys
NAME_LEN = 128  # kinds, task names, queues, lease holders, principals

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

jobs = Table(
    "jobs",
    metadata,
    Column("id", String(ID_LEN), primary_key=True),
    Column("kind", String(NAME_LEN), nullable=False),
    Column("state", SmallInteger, nullable=False),
    Column("spec", JSON, nullable=False),
    Column("spec_sha256", String(64), nullable=False),
    # NULL when the client gave none: NULLs never collide in the unique constraint.
    Column("idempotency_key", String(KEY_LEN), nullable=True),
    Column("owner", String(NAME_LEN), nullable=False, server_default=""),
    Column("parent_id", String(ID_LEN), ForeignKey("jobs.id"), nullable=True),
    # The message that runs the job: the task's name and its queue (the outbox row).
    Column("task", String(NAME_LEN), nullable=False),
    Column("queue", String(NAME_LEN), nullable=False),
    Column("phase", String(KEY_LEN), nullable=False, server_default=""),
    Column("fraction", Float, nullable=False, server_default="0"),
    Column("eta_seconds", Float, nullable=False, server_default="-1"),
    Column("metrics", JSON, nullable=False),
    Column("error", Text, nullable=False, server_default=""),
    Column("outputs", JSON, nullable=False),
    # Claims by a worker (each training segment is one) and retries spent on lost workers
    # or store/broker errors, bounded by the settings' max_attempts.
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("retries", Integer, nullable=False, server_default="0"),
    Column("lease_owner", String(NAME_LEN), nullable=True),
    Column("lease_until", Float, nullable=True),
    # Outbox: a message is owed when dispatch_at is set and due; sent_at is the last send.
    Column("dispatch_at", Float, nullable=True),
    Column("sent_at", Float, nullable=True),
    # Bumped by every recorded change; the sequence number of the job's latest event.
    Column("version", BigInteger, nullable=False, server_default="0"),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("finished_at", Float, nullable=True),
    # Keys are per owner: another user's key neither collides nor reveals their job.
    UniqueConstraint("kind", "owner", "idempotency_key"),
    Index(None, "kind", "created_at", "id"),
    Index(None, "parent_id"),
    Index(None, "dispatch_at"),
    Index(None, "state", "lease_until"),
)

job_events = Table(
    "job_events",
    metadata,
    Column("job_id", String(ID_LEN), ForeignKey("jobs.id"), primary_key=True),
    Column("seq", BigInteger, primary_key=True),
    Column("at", Float, nullable=False),
    Column("type", String(32), nullable=False),  # created, transition, progress, dispatch, ...
    Column("state", SmallInteger, nullable=False),
    Column("principal", String(NAME_LEN), nullable=False, server_default=""),
    Column("data", JSON, nullable=False),
)

# Bearer tokens issued by `orisel token create`: the secret itself is never stored.
tokens = Table(
    "tokens",
    metadata,
    Column("id", String(16), primary_key=True),
    Column("user", String(NAME_LEN), nullable=False),
    Column("secret_sha256", String(64), nullable=False),
    Column("admin", Boolean, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=True),
    Column("revoked_at", Float, nullable=True),
)
