"""monitor state: alert and flap state, locations and quorum, heartbeats, state history, daily
stats, per-location state and remote probes

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql

from opsdesk.core.db import UTCDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("monitors", schema=None) as b:
        b.add_column(sa.Column("alert_firing", sa.Boolean(), server_default=sa.false(), nullable=False))
        b.add_column(sa.Column("recent", sa.String(length=32), server_default="", nullable=False))
        b.add_column(sa.Column("flapping", sa.Boolean(), server_default=sa.false(), nullable=False))
        b.add_column(sa.Column("check_state", JSON, server_default="{}", nullable=False))
        b.add_column(sa.Column("locations", JSON, server_default='["local"]', nullable=False))
        b.add_column(sa.Column("quorum", sa.Integer(), server_default="1", nullable=False))
        b.add_column(sa.Column("ping_key", sa.String(length=64), nullable=True))
        b.add_column(sa.Column("last_ping_at", UTCDateTime(timezone=True), nullable=True))
        b.add_column(sa.Column("run_started_at", UTCDateTime(timezone=True), nullable=True))
        b.create_unique_constraint(b.f("uq_monitors_ping_key"), ["ping_key"])
    # Monitors that were down before this revision have paged.
    op.execute("UPDATE monitors SET alert_firing = (status = 'down')")

    op.create_table(
        "monitor_state_changes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("monitor_id", sa.Integer(), nullable=False),
        sa.Column("at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("old", sa.String(length=20), nullable=False),
        sa.Column("new", sa.String(length=20), nullable=False),
        sa.Column("flapping", sa.Boolean(), nullable=False),
        sa.Column("message", sa.String(length=1000), nullable=False),
        sa.ForeignKeyConstraint(
            ["monitor_id"],
            ["monitors.id"],
            name=op.f("fk_monitor_state_changes_monitor_id_monitors"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_monitor_state_changes")),
    )
    op.create_index("ix_monitor_state_changes_monitor_at", "monitor_state_changes", ["monitor_id", "at"])
    op.create_table(
        "monitor_daily",
        sa.Column("monitor_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("checks", sa.Integer(), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("latency_sum_ms", sa.Double(), nullable=False),
        sa.Column("latency_count", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["monitor_id"],
            ["monitors.id"],
            name=op.f("fk_monitor_daily_monitor_id_monitors"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("monitor_id", "day", name=op.f("pk_monitor_daily")),
    )
    op.create_table(
        "monitor_locations",
        sa.Column("monitor_id", sa.Integer(), nullable=False),
        sa.Column("location", sa.String(length=100), nullable=False),
        sa.Column("ok", sa.Boolean(), nullable=True),
        sa.Column("consecutive_failures", sa.Integer(), nullable=False),
        sa.Column("last_check_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_message", sa.String(length=1000), nullable=False),
        sa.ForeignKeyConstraint(
            ["monitor_id"],
            ["monitors.id"],
            name=op.f("fk_monitor_locations_monitor_id_monitors"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("monitor_id", "location", name=op.f("pk_monitor_locations")),
    )
    op.create_table(
        "probes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("location", sa.String(length=100), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_address", sa.String(length=100), nullable=False),
        sa.Column("version", sa.String(length=50), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_probes")),
        sa.UniqueConstraint("location", name=op.f("uq_probes_location")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_probes_token_hash")),
    )


def downgrade() -> None:
    op.drop_table("probes")
    op.drop_table("monitor_locations")
    op.drop_table("monitor_daily")
    op.drop_index("ix_monitor_state_changes_monitor_at", table_name="monitor_state_changes")
    op.drop_table("monitor_state_changes")
    with op.batch_alter_table("monitors", schema=None) as b:
        b.drop_constraint(b.f("uq_monitors_ping_key"), type_="unique")
        for col in (
            "run_started_at",
            "last_ping_at",
            "ping_key",
            "quorum",
            "locations",
            "check_state",
            "flapping",
            "recent",
            "alert_firing",
        ):
            b.drop_column(col)
