"""Carrier call statuses (Twilio status callbacks), kept by the carrier's call id.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07

Frozen like 0001: the column types are spelled out here, not imported from the model.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create the carrier_statuses table."""
    op.create_table(
        "carrier_statuses",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("carrier_call_id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column(
            "details",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_carrier_statuses_carrier_call_id", "carrier_statuses", ["carrier_call_id"])


def downgrade() -> None:
    """Drop the carrier statuses."""
    op.drop_index("ix_carrier_statuses_carrier_call_id", table_name="carrier_statuses")
    op.drop_table("carrier_statuses")
