"""Idempotency keys per owner; bearer tokens.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Batch mode: SQLite changes a constraint by copying the table (control.migrate).
    with op.batch_alter_table("jobs") as batch:
        batch.drop_constraint("uq_jobs_kind_idempotency_key", type_="unique")
        batch.create_unique_constraint(
            "uq_jobs_kind_owner_idempotency_key", ["kind", "owner", "idempotency_key"]
        )
    op.create_table(
        "tokens",
        sa.Column("id", sa.String(16), nullable=False),
        sa.Column("user", sa.String(128), nullable=False),
        sa.Column("secret_sha256", sa.String(64), nullable=False),
        sa.Column("admin", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=True),
        sa.Column("revoked_at", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_tokens"),
    )


def downgrade() -> None:
    op.drop_table("tokens")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_constraint("uq_jobs_kind_owner_idempotency_key", type_="unique")
        batch.create_unique_constraint("uq_jobs_kind_idempotency_key", ["kind", "idempotency_key"])
