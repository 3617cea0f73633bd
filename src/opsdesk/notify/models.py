from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from opsdesk.core.db import Base


class OutboxStatus(StrEnum):
    pending = "pending"
    sent = "sent"
    dead = "dead"
    cancelled = "cancelled"  # a page made moot (acknowledged or resolved) before it was sent


class OutboxMessage(Base):
    """A notification to deliver at least once. The idempotency key makes a retried enqueue a no-op."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_due", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    channel: Mapped[str] = mapped_column(String(40))
    recipient: Mapped[str] = mapped_column(String(500))
    subject: Mapped[str] = mapped_column(String(500))
    body: Mapped[str] = mapped_column(Text)
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    incident_id: Mapped[int | None] = mapped_column(
        ForeignKey("incidents.id", ondelete="SET NULL"), index=True
    )
    status: Mapped[str] = mapped_column(String(20), default=OutboxStatus.pending.value)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime]
    lease_until: Mapped[datetime | None]
    last_error: Mapped[str] = mapped_column(String(1000), default="")
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
    # Which person this notifies, through which channel, for which page (all optional: notices
    # to a team e-mail list have none of them).
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), index=True)
    channel_id: Mapped[int | None] = mapped_column(ForeignKey("notify_channels.id", ondelete="SET NULL"))
    page_id: Mapped[int | None] = mapped_column(
        ForeignKey("oncall_pages.id", ondelete="SET NULL"), index=True
    )


class ChannelKind(StrEnum):
    email = "email"
    apprise = "apprise"
    webhook = "webhook"


class NotifyChannel(Base):
    """Where notifications go: a person's own contact method (``user_id`` set) or a shared one (a
    team's chat room, a generic webhook). The address, apprise URL or webhook URL and its signing
    secrets are kept encrypted in ``config_secret``; ``display`` is what may be shown."""

    __tablename__ = "notify_channels"
    __table_args__ = (UniqueConstraint("user_id", "name", name="channel_name_per_owner"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(20))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    config_secret: Mapped[str] = mapped_column(Text)
    display: Mapped[str] = mapped_column(String(500), default="")
    rate_per_minute: Mapped[int | None]
    enabled: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class NotificationRule(Base):
    """A person's rule: for incidents of ``urgency`` (or any), notify ``channel`` (None: the
    account's e-mail address) ``delay_minutes`` after being paged, unless acknowledged by then."""

    __tablename__ = "notification_rules"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    urgency: Mapped[str] = mapped_column(String(10), default="any")
    delay_minutes: Mapped[int] = mapped_column(default=0)
    channel_id: Mapped[int | None] = mapped_column(ForeignKey("notify_channels.id", ondelete="CASCADE"))
    created_at: Mapped[datetime]


class UsedActionLink(Base):
    """The nonce of an acknowledge/resolve link that was used: a second click is refused."""

    __tablename__ = "action_links_used"

    nonce: Mapped[str] = mapped_column(String(64), primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"), index=True)
    used_at: Mapped[datetime]
    expires_at: Mapped[datetime] = mapped_column(index=True)
