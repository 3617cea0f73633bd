"""escalation policies and their runs, pages, notification channels and per-user rules, used
action links; outbox rows know their person, channel and page; services reference a policy

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06 05:37:04.224261
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql

import opsdesk.core.db

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql")

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "escalation_policies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("description", sa.String(length=2000), nullable=False),
        sa.Column("repeat", sa.Integer(), nullable=False),
        sa.Column("created_at", opsdesk.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", opsdesk.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_escalation_policies")),
        sa.UniqueConstraint("name", name=op.f("uq_escalation_policies_name")),
    )
    op.create_table(
        "escalation_levels",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("policy_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("timeout_minutes", sa.Integer(), nullable=False),
        sa.Column("targets", JSON, nullable=False),
        sa.ForeignKeyConstraint(
            ["policy_id"],
            ["escalation_policies.id"],
            name=op.f("fk_escalation_levels_policy_id_escalation_policies"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_escalation_levels")),
    )
    with op.batch_alter_table("escalation_levels", schema=None) as batch_op:
        batch_op.create_index("ix_escalation_levels_policy", ["policy_id", "position"], unique=False)

    op.create_table(
        "notify_channels",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("config_secret", sa.Text(), nullable=False),
        sa.Column("display", sa.String(length=500), nullable=False),
        sa.Column("rate_per_minute", sa.Integer(), nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", opsdesk.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", opsdesk.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_notify_channels_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notify_channels")),
        sa.UniqueConstraint("user_id", "name", name="channel_name_per_owner"),
    )
    with op.batch_alter_table("notify_channels", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_notify_channels_user_id"), ["user_id"], unique=False)

    op.create_table(
        "notification_rules",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("urgency", sa.String(length=10), nullable=False),
        sa.Column("delay_minutes", sa.Integer(), nullable=False),
        sa.Column("channel_id", sa.Integer(), nullable=True),
        sa.Column("created_at", opsdesk.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["channel_id"],
            ["notify_channels.id"],
            name=op.f("fk_notification_rules_channel_id_notify_channels"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_notification_rules_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notification_rules")),
    )
    with op.batch_alter_table("notification_rules", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_notification_rules_user_id"), ["user_id"], unique=False)

    op.create_table(
        "action_links_used",
        sa.Column("nonce", sa.String(length=64), nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=False),
        sa.Column("used_at", opsdesk.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", opsdesk.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["incident_id"],
            ["incidents.id"],
            name=op.f("fk_action_links_used_incident_id_incidents"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("nonce", name=op.f("pk_action_links_used")),
    )
    with op.batch_alter_table("action_links_used", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_action_links_used_expires_at"), ["expires_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_action_links_used_incident_id"), ["incident_id"], unique=False)

    op.create_table(
        "incident_escalations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=False),
        sa.Column("policy_id", sa.Integer(), nullable=True),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("run", sa.Integer(), nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("round", sa.Integer(), nullable=False),
        sa.Column("next_at", opsdesk.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("steps", sa.Integer(), nullable=False),
        sa.Column("started_at", opsdesk.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("stopped_at", opsdesk.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.ForeignKeyConstraint(
            ["incident_id"],
            ["incidents.id"],
            name=op.f("fk_incident_escalations_incident_id_incidents"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["policy_id"],
            ["escalation_policies.id"],
            name=op.f("fk_incident_escalations_policy_id_escalation_policies"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incident_escalations")),
        sa.UniqueConstraint("incident_id", name=op.f("uq_incident_escalations_incident_id")),
    )
    with op.batch_alter_table("incident_escalations", schema=None) as batch_op:
        batch_op.create_index("ix_incident_escalations_due", ["state", "next_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_incident_escalations_policy_id"), ["policy_id"], unique=False)

    op.create_table(
        "oncall_pages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("at", opsdesk.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("run", sa.Integer(), nullable=False),
        sa.Column("round", sa.Integer(), nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("policy_id", sa.Integer(), nullable=True),
        sa.Column("team_id", sa.Integer(), nullable=True),
        sa.Column("via", sa.String(length=200), nullable=False),
        sa.Column("urgency", sa.String(length=10), nullable=False),
        sa.ForeignKeyConstraint(
            ["incident_id"],
            ["incidents.id"],
            name=op.f("fk_oncall_pages_incident_id_incidents"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["policy_id"],
            ["escalation_policies.id"],
            name=op.f("fk_oncall_pages_policy_id_escalation_policies"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["team_id"], ["teams.id"], name=op.f("fk_oncall_pages_team_id_teams"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_oncall_pages_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_oncall_pages")),
        sa.UniqueConstraint(
            "incident_id", "run", "round", "level", "user_id", name="one_page_per_person_per_step"
        ),
    )
    with op.batch_alter_table("oncall_pages", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_oncall_pages_at"), ["at"], unique=False)
        batch_op.create_index(batch_op.f("ix_oncall_pages_incident_id"), ["incident_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_oncall_pages_team_id"), ["team_id"], unique=False)
        batch_op.create_index("ix_oncall_pages_user_at", ["user_id", "at"], unique=False)

    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("user_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("channel_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("page_id", sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f("ix_outbox_page_id"), ["page_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_outbox_user_id"), ["user_id"], unique=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_outbox_page_id_oncall_pages"),
            "oncall_pages",
            ["page_id"],
            ["id"],
            ondelete="SET NULL",
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_outbox_channel_id_notify_channels"),
            "notify_channels",
            ["channel_id"],
            ["id"],
            ondelete="SET NULL",
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_outbox_user_id_users"), "users", ["user_id"], ["id"], ondelete="SET NULL"
        )

    with op.batch_alter_table("services", schema=None) as batch_op:
        batch_op.add_column(sa.Column("escalation_policy_id", sa.Integer(), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_services_escalation_policy_id"), ["escalation_policy_id"], unique=False
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_services_escalation_policy_id_escalation_policies"),
            "escalation_policies",
            ["escalation_policy_id"],
            ["id"],
            ondelete="RESTRICT",
        )


def downgrade() -> None:
    with op.batch_alter_table("services", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_services_escalation_policy_id_escalation_policies"), type_="foreignkey"
        )
        batch_op.drop_index(batch_op.f("ix_services_escalation_policy_id"))
        batch_op.drop_column("escalation_policy_id")

    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_outbox_user_id_users"), type_="foreignkey")
        batch_op.drop_constraint(batch_op.f("fk_outbox_channel_id_notify_channels"), type_="foreignkey")
        batch_op.drop_constraint(batch_op.f("fk_outbox_page_id_oncall_pages"), type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_outbox_user_id"))
        batch_op.drop_index(batch_op.f("ix_outbox_page_id"))
        batch_op.drop_column("page_id")
        batch_op.drop_column("channel_id")
        batch_op.drop_column("user_id")

    with op.batch_alter_table("oncall_pages", schema=None) as batch_op:
        batch_op.drop_index("ix_oncall_pages_user_at")
        batch_op.drop_index(batch_op.f("ix_oncall_pages_team_id"))
        batch_op.drop_index(batch_op.f("ix_oncall_pages_incident_id"))
        batch_op.drop_index(batch_op.f("ix_oncall_pages_at"))

    op.drop_table("oncall_pages")
    with op.batch_alter_table("incident_escalations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_incident_escalations_policy_id"))
        batch_op.drop_index("ix_incident_escalations_due")

    op.drop_table("incident_escalations")
    with op.batch_alter_table("action_links_used", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_action_links_used_incident_id"))
        batch_op.drop_index(batch_op.f("ix_action_links_used_expires_at"))

    op.drop_table("action_links_used")
    with op.batch_alter_table("notification_rules", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_notification_rules_user_id"))

    op.drop_table("notification_rules")
    with op.batch_alter_table("notify_channels", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_notify_channels_user_id"))

    op.drop_table("notify_channels")
    with op.batch_alter_table("escalation_levels", schema=None) as batch_op:
        batch_op.drop_index("ix_escalation_levels_policy")

    op.drop_table("escalation_levels")
    op.drop_table("escalation_policies")
