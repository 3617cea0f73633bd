"""on-call schedules: layers (rotations with restrictions), overrides, secret iCal feeds

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06 05:29:25.208025
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql

import opsdesk.core.db

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql")

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "oncall_schedules",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("description", sa.String(length=2000), nullable=False),
        sa.Column("time_zone", sa.String(length=64), nullable=False),
        sa.Column("team_id", sa.Integer(), nullable=True),
        sa.Column("created_at", opsdesk.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", opsdesk.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["team_id"], ["teams.id"], name=op.f("fk_oncall_schedules_team_id_teams"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_oncall_schedules")),
        sa.UniqueConstraint("name", name=op.f("uq_oncall_schedules_name")),
    )
    with op.batch_alter_table("oncall_schedules", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_oncall_schedules_team_id"), ["team_id"], unique=False)

    op.create_table(
        "oncall_feeds",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("schedule_id", sa.Integer(), nullable=True),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("token_digest", sa.String(length=64), nullable=False),
        sa.Column("token_secret", sa.String(length=500), nullable=False),
        sa.Column("created_at", opsdesk.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "(schedule_id IS NULL) <> (user_id IS NULL)",
            name=op.f("ck_oncall_feeds_feed_is_for_a_schedule_or_a_user"),
        ),
        sa.ForeignKeyConstraint(
            ["schedule_id"],
            ["oncall_schedules.id"],
            name=op.f("fk_oncall_feeds_schedule_id_oncall_schedules"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_oncall_feeds_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_oncall_feeds")),
        sa.UniqueConstraint("schedule_id", name=op.f("uq_oncall_feeds_schedule_id")),
        sa.UniqueConstraint("token_digest", name=op.f("uq_oncall_feeds_token_digest")),
        sa.UniqueConstraint("user_id", name=op.f("uq_oncall_feeds_user_id")),
    )
    op.create_table(
        "oncall_layers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("schedule_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("rotation_start", opsdesk.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("turn_length", sa.Integer(), nullable=False),
        sa.Column("turn_unit", sa.String(length=10), nullable=False),
        sa.Column("participants", JSON, nullable=False),
        sa.Column("restrictions", JSON, nullable=False),
        sa.Column("ends_at", opsdesk.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["schedule_id"],
            ["oncall_schedules.id"],
            name=op.f("fk_oncall_layers_schedule_id_oncall_schedules"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_oncall_layers")),
    )
    with op.batch_alter_table("oncall_layers", schema=None) as batch_op:
        batch_op.create_index("ix_oncall_layers_schedule", ["schedule_id", "position"], unique=False)

    op.create_table(
        "oncall_overrides",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("schedule_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("starts_at", opsdesk.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("ends_at", opsdesk.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("note", sa.String(length=500), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", opsdesk.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("ends_at > starts_at", name=op.f("ck_oncall_overrides_override_ends_after_start")),
        sa.ForeignKeyConstraint(
            ["schedule_id"],
            ["oncall_schedules.id"],
            name=op.f("fk_oncall_overrides_schedule_id_oncall_schedules"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_oncall_overrides_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_oncall_overrides")),
    )
    with op.batch_alter_table("oncall_overrides", schema=None) as batch_op:
        batch_op.create_index("ix_oncall_overrides_schedule_ends", ["schedule_id", "ends_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_oncall_overrides_user_id"), ["user_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("oncall_overrides", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_oncall_overrides_user_id"))
        batch_op.drop_index("ix_oncall_overrides_schedule_ends")

    op.drop_table("oncall_overrides")
    with op.batch_alter_table("oncall_layers", schema=None) as batch_op:
        batch_op.drop_index("ix_oncall_layers_schedule")

    op.drop_table("oncall_layers")
    op.drop_table("oncall_feeds")
    with op.batch_alter_table("oncall_schedules", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_oncall_schedules_team_id"))

    op.drop_table("oncall_schedules")
