"""Jobs and their event log.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(128), nullable=False),
        sa.Column("state", sa.SmallInteger(), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("spec_sha256", sa.String(64), nullable=False),
        sa.Column("idempotency_key", sa.String(256), nullable=True),
        sa.Column("owner", sa.String(128), server_default="", nullable=False),
        sa.Column("parent_id", sa.String(32), nullable=True),
        sa.Column("task", sa.String(128), nullable=False),
        sa.Column("queue", sa.String(128), nullable=False),
        sa.Column("phase", sa.String(256), server_default="", nullable=False),
        sa.Column("fraction", sa.Float(), server_default="0", nullable=False),
        sa.Column("eta_seconds", sa.Float(), server_default="-1", nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("error", sa.Text(), server_default="", nullable=False),
        sa.Column("outputs", sa.JSON(), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("retries", sa.Integer(), server_default="0", nullable=False),
        sa.Column("lease_owner", sa.String(128), nullable=True),
        sa.Column("lease_until", sa.Float(), nullable=True),
        sa.Column("dispatch_at", sa.Float(), nullable=True),
        sa.Column("sent_at", sa.Float(), nullable=True),
        sa.Column("version", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.Column("finished_at", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(["parent_id"], ["jobs.id"], name="fk_jobs_parent_id_jobs"),
        sa.PrimaryKeyConstraint("id", name="pk_jobs"),
        sa.UniqueConstraint("kind", "idempotency_key", name="uq_jobs_kind_idempotency_key"),
    )
    op.create_index("ix_jobs_kind_created_at_id", "jobs", ["kind", "created_at", "id"])
    op.create_index("ix_jobs_parent_id", "jobs", ["parent_id"])
    op.create_index("ix_jobs_dispatch_at", "jobs", ["dispatch_at"])
    op.create_index("ix_jobs_state_lease_until", "jobs", ["state", "lease_until"])
    op.create_table(
        "job_events",
        sa.Column("job_id", sa.String(32), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("state", sa.SmallInteger(), nullable=False),
        sa.Column("principal", sa.String(128), server_default="", nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name="fk_job_events_job_id_jobs"),
        sa.PrimaryKeyConstraint("job_id", "seq", name="pk_job_events"),
    )


def downgrade() -> None:
    op.drop_table("job_events")
    op.drop_index("ix_jobs_state_lease_until", table_name="jobs")
    op.drop_index("ix_jobs_dispatch_at", table_name="jobs")
    op.drop_index("ix_jobs_parent_id", table_name="jobs")
    op.drop_index("ix_jobs_kind_created_at_id", table_name="jobs")
    op.drop_table("jobs")
