from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, String
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
