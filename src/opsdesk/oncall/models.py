from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from opsdesk.core.db import Base, JSONType


class Schedule(Base):
    """An on-call schedule: layers of rotations in one time zone, plus overrides."""

    __tablename__ = "oncall_schedules"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    description: Mapped[str] = mapped_column(String(2000), default="")
    time_zone: Mapped[str] = mapped_column(String(64))
    team_id: Mapped[int | None] = mapped_column(ForeignKey("teams.id", ondelete="SET NULL"), index=True)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    layers: Mapped[list[ScheduleLayer]] = relationship(
        back_populates="schedule",
        cascade="all, delete-orphan",
        order_by="ScheduleLayer.position",
    )


class ScheduleLayer(Base):
    """One rotation of a schedule; a higher ``position`` wins where both have someone on call."""

    __tablename__ = "oncall_layers"
    __table_args__ = (Index("ix_oncall_layers_schedule", "schedule_id", "position"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    schedule_id: Mapped[int] = mapped_column(ForeignKey("oncall_schedules.id", ondelete="CASCADE"))
    position: Mapped[int]
    name: Mapped[str] = mapped_column(String(100))
    rotation_start: Mapped[datetime]
    turn_length: Mapped[int]
    turn_unit: Mapped[str] = mapped_column(String(10))
    # User ids in rotation order (a user may appear twice: a longer share of the turns).
    participants: Mapped[list[int]] = mapped_column(JSONType, default=list)
    # [{"days": ["mon", ...], "start": "09:00", "end": "17:00"}, ...]; empty: no restriction.
    restrictions: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    ends_at: Mapped[datetime | None]

    schedule: Mapped[Schedule] = relationship(back_populates="layers")


class ScheduleOverride(Base):
    """A person on call over every layer of a schedule for a period."""

    __tablename__ = "oncall_overrides"
    __table_args__ = (
        Index("ix_oncall_overrides_schedule_ends", "schedule_id", "ends_at"),
        CheckConstraint("ends_at > starts_at", name="override_ends_after_start"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    schedule_id: Mapped[int] = mapped_column(ForeignKey("oncall_schedules.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    note: Mapped[str] = mapped_column(String(500), default="")
    created_by: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime]


class CalendarFeed(Base):
    """A secret iCal URL: a schedule's final shifts, or one person's shifts on every schedule.

    The token is kept encrypted (so its owner can see the URL again) and as a SHA-256 digest (so a
    request finds its feed without decrypting every row).
    """

    __tablename__ = "oncall_feeds"
    __table_args__ = (
        CheckConstraint(
            "(schedule_id IS NULL) <> (user_id IS NULL)", name="feed_is_for_a_schedule_or_a_user"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    schedule_id: Mapped[int | None] = mapped_column(
        ForeignKey("oncall_schedules.id", ondelete="CASCADE"), unique=True
    )
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), unique=True)
    token_digest: Mapped[str] = mapped_column(String(64), unique=True)
    token_secret: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[datetime]


class EscalationPolicy(Base):
    """Ordered levels, each paging users, schedules or teams, then waiting before the next level;
    the whole policy runs ``repeat`` more times; it stops as soon as someone acknowledges."""

    __tablename__ = "escalation_policies"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    description: Mapped[str] = mapped_column(String(2000), default="")
    repeat: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    levels: Mapped[list[EscalationLevel]] = relationship(
        back_populates="policy", cascade="all, delete-orphan", order_by="EscalationLevel.position"
    )


class EscalationLevel(Base):
    __tablename__ = "escalation_levels"
    __table_args__ = (Index("ix_escalation_levels_policy", "policy_id", "position"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    policy_id: Mapped[int] = mapped_column(ForeignKey("escalation_policies.id", ondelete="CASCADE"))
    position: Mapped[int]
    # Minutes to wait, after paging this level, before the next level (or the next round).
    timeout_minutes: Mapped[int]
    # [{"type": "user" | "schedule" | "team", "id": 3}, ...]
    targets: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)

    policy: Mapped[EscalationPolicy] = relationship(back_populates="levels")


class Escalation(Base):
    """An incident's run through its service's policy: which level pages next, and when."""

    __tablename__ = "incident_escalations"
    __table_args__ = (Index("ix_incident_escalations_due", "state", "next_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"), unique=True)
    policy_id: Mapped[int | None] = mapped_column(
        ForeignKey("escalation_policies.id", ondelete="SET NULL"), index=True
    )
    state: Mapped[str] = mapped_column(String(20))  # active, acknowledged, resolved, exhausted, stopped
    run: Mapped[int] = mapped_column(default=1)  # 1, then one more each time the incident reopens
    level: Mapped[int] = mapped_column(default=0)  # the level that pages at next_at
    round: Mapped[int] = mapped_column(default=0)  # 0 for the first pass, then each repeat
    next_at: Mapped[datetime | None]
    steps: Mapped[int] = mapped_column(default=0)
    started_at: Mapped[datetime]
    stopped_at: Mapped[datetime | None]
    reason: Mapped[str] = mapped_column(String(500), default="")


class Page(Base):
    """One person paged at one escalation step: once per person per step (the unique key), the
    unit of on-call load. Its notifications are outbox messages keyed by this row."""

    __tablename__ = "oncall_pages"
    __table_args__ = (
        UniqueConstraint(
            "incident_id", "run", "round", "level", "user_id", name="one_page_per_person_per_step"
        ),
        Index("ix_oncall_pages_user_at", "user_id", "at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(index=True)
    run: Mapped[int]
    round: Mapped[int]
    level: Mapped[int]
    policy_id: Mapped[int | None] = mapped_column(ForeignKey("escalation_policies.id", ondelete="SET NULL"))
    team_id: Mapped[int | None] = mapped_column(ForeignKey("teams.id", ondelete="SET NULL"), index=True)
    via: Mapped[str] = mapped_column(String(200), default="")  # "schedule Primary", "team DBA", "user"
    urgency: Mapped[str] = mapped_column(String(10), default="high")
