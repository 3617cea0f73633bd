"""metrics store: series, raw samples (+ their time-ordered write buffer), 5-minute and 1-hour
rollups, rollup progress marks

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql")


def _rollup_table(name: str) -> None:
    op.create_table(
        name,
        sa.Column("series_id", sa.Integer(), nullable=False),
        sa.Column("bucket", sa.BigInteger(), nullable=False),
        sa.Column("min_value", sa.Double(), nullable=False),
        sa.Column("max_value", sa.Double(), nullable=False),
        sa.Column("sum_value", sa.Double(), nullable=False),
        sa.Column("sample_count", sa.Integer(), nullable=False),
        sa.Column("last_value", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("series_id", "bucket", name=op.f(f"pk_{name}")),
        sqlite_with_rowid=False,
    )


def upgrade() -> None:
    op.create_table(
        "metric_series",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("labels", JSON, nullable=False),
        sa.Column("series_key", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_metric_series")),
        sa.UniqueConstraint("series_key", name=op.f("uq_metric_series_series_key")),
    )
    op.create_index("ix_metric_series_name", "metric_series", ["name"])
    op.create_table(
        "metric_samples",
        sa.Column("series_id", sa.Integer(), nullable=False),
        sa.Column("ts", sa.BigInteger(), nullable=False),
        sa.Column("value", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("series_id", "ts", name=op.f("pk_metric_samples")),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "metric_samples_recent",
        sa.Column("ts", sa.BigInteger(), nullable=False),
        sa.Column("series_id", sa.Integer(), nullable=False),
        sa.Column("value", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("ts", "series_id", name=op.f("pk_metric_samples_recent")),
        sqlite_with_rowid=False,
    )
    _rollup_table("metric_rollups_5m")
    _rollup_table("metric_rollups_1h")
    op.create_table(
        "metric_rollup_marks",
        sa.Column("resolution", sa.String(length=8), nullable=False),
        sa.Column("done_until", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("resolution", name=op.f("pk_metric_rollup_marks")),
    )


def downgrade() -> None:
    op.drop_table("metric_rollup_marks")
    op.drop_table("metric_rollups_1h")
    op.drop_table("metric_rollups_5m")
    op.drop_table("metric_samples_recent")
    op.drop_table("metric_samples")
    op.drop_index("ix_metric_series_name", table_name="metric_series")
    op.drop_table("metric_series")
