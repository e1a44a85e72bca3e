"""The outbox: CRM and webhook writes waiting to be delivered (frontdesk.store.outbox).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25

Frozen like 0001: the column types are spelled out here, not imported from the model.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _timestamp() -> sa.DateTime:
    # timestamptz on PostgreSQL; SQLite stores naive UTC (see models.UTCDateTime).
    return sa.DateTime(timezone=True)


def _json() -> sa.types.TypeEngine:
    # JSONB on PostgreSQL, JSON text elsewhere (models.JSONColumn).
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    """Create the outbox table and its indexes."""
    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("destination", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("payload", _json(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=200), nullable=False),
        sa.Column("progress", _json(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", _timestamp(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("delivered_at", _timestamp(), nullable=True),
        sa.Column("created_at", _timestamp(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("destination", "idempotency_key", name="uq_outbox_destination_key"),
    )
    op.create_index("ix_outbox_due", "outbox", ["delivered_at", "next_attempt_at"], unique=False)


def downgrade() -> None:
    """Drop the outbox (undelivered writes are lost)."""
    op.drop_index("ix_outbox_due", table_name="outbox")
    op.drop_table("outbox")
