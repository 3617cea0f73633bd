"""event batches: a request's events stored whole before its 202 and turned into events rows by
the pipeline; id blocks: the last events id handed out (SQLite)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 05:17:53.440394
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import opsdesk.core.db

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "event_batches",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("received_at", opsdesk.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("ids", sa.String(), nullable=True),
        sa.Column("names", sa.String(), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("error", sa.String(length=2000), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_event_batches")),
    )
    op.create_table(
        "id_blocks",
        sa.Column("name", sa.String(length=50), nullable=False),
        sa.Column("last", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_id_blocks")),
    )


def downgrade() -> None:
    op.drop_table("id_blocks")
    op.drop_table("event_batches")
