"""The durable outbox: notifications are rows first, deliveries second.

A message is enqueued in the same transaction as the change that caused it, so a committed
incident always has its notifications. Delivery claims due rows with a lease, sends, and marks
them sent; a crash between send and mark means a second send with the same idempotency key
(at least once, never zero).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from opsdesk.core.errors import conflict, not_found
from opsdesk.notify.models import OutboxMessage, OutboxStatus


def enqueue(
    s: Session,
    *,
    channel: str,
    recipient: str,
    subject: str,
    body: str,
    idempotency_key: str,
    now: datetime,
    incident_id: int | None = None,
    data: dict[str, Any] | None = None,
    not_before: datetime | None = None,
    user_id: int | None = None,
    channel_id: int | None = None,
    page_id: int | None = None,
) -> OutboxMessage:
    """Queue a message; enqueueing the same idempotency key again returns the first one."""
    existing = s.scalar(select(OutboxMessage).where(OutboxMessage.idempotency_key == idempotency_key))
    if existing is not None:
        return existing
    msg = OutboxMessage(
        idempotency_key=idempotency_key,
        channel=channel,
        recipient=recipient,
        subject=subject,
        body=body,
        data=data or {},
        incident_id=incident_id,
        status=OutboxStatus.pending.value,
        attempts=0,
        next_attempt_at=not_before or now,
        last_error="",
        created_at=now,
        user_id=user_id,
        channel_id=channel_id,
        page_id=page_id,
    )
    s.add(msg)
    s.flush()
    return msg


@dataclass(frozen=True)
class Claimed:
    id: int
    channel: str
    recipient: str
    subject: str
    body: str
    idempotency_key: str
    incident_id: int | None
    attempts: int
    data: dict[str, Any]
    channel_id: int | None = None
    user_id: int | None = None
    page_id: int | None = None
    # The channel's decrypted settings (address, URL, signing secrets), filled in at claim time.
    target: dict[str, Any] | None = None


def claim_due(s: Session, *, now: datetime, limit: int = 100, lease_seconds: float = 60) -> list[Claimed]:
    q = (
        select(OutboxMessage)
        .where(
            OutboxMessage.status == OutboxStatus.pending.value,
            OutboxMessage.next_attempt_at <= now,
            or_(OutboxMessage.lease_until.is_(None), OutboxMessage.lease_until <= now),
        )
        .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id)
        .limit(limit)
    )
    if s.get_bind().dialect.name == "postgresql":
        q = q.with_for_update(skip_locked=True)
    out = []
    for m in s.scalars(q):
        m.lease_until = now + timedelta(seconds=lease_seconds)
        out.append(
            Claimed(
                m.id,
                m.channel,
                m.recipient,
                m.subject,
                m.body,
                m.idempotency_key,
                m.incident_id,
                m.attempts,
                dict(m.data),
                m.channel_id,
                m.user_id,
                m.page_id,
            )
        )
    return out


def mark_sent(s: Session, message_id: int, *, now: datetime) -> OutboxMessage:
    m = _get(s, message_id)
    m.status = OutboxStatus.sent.value
    m.attempts += 1
    m.sent_at = now
    m.lease_until = None
    m.last_error = ""
    return m


def mark_all_sent(s: Session, message_ids: list[int], *, now: datetime) -> None:
    """Record a batch of successful sends in one statement."""
    s.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id.in_(message_ids))
        .values(
            status=OutboxStatus.sent.value,
            attempts=OutboxMessage.attempts + 1,
            sent_at=now,
            lease_until=None,
            last_error="",
        )
        .execution_options(synchronize_session=False)
    )


def mark_failed(
    s: Session,
    message_id: int,
    error: str,
    *,
    now: datetime,
    max_attempts: int,
    backoff_seconds: float,
    backoff_max_seconds: float = 3600.0,
) -> OutboxMessage:
    """Record a failed attempt; retry later with exponential backoff and jitter, or give up."""
    m = _get(s, message_id)
    m.attempts += 1
    m.last_error = error[:1000]
    m.lease_until = None
    if m.attempts >= max_attempts:
        m.status = OutboxStatus.dead.value
    else:
        delay = min(backoff_seconds * 2 ** min(m.attempts - 1, 30), backoff_max_seconds)
        m.next_attempt_at = now + timedelta(seconds=delay * random.uniform(0.8, 1.2))
    return m


def retry(s: Session, message_id: int, *, now: datetime) -> OutboxMessage:
    """Put a dead-lettered message back in the queue."""
    m = _get(s, message_id)
    if m.status != OutboxStatus.dead.value:
        raise conflict(f"message {message_id} is {m.status}, only dead messages can be retried")
    m.status = OutboxStatus.pending.value
    m.next_attempt_at = now
    m.attempts = 0  # a fresh set of attempts, with backoff from the start
    return m


def _get(s: Session, message_id: int) -> OutboxMessage:
    m = s.get(OutboxMessage, message_id)
    if m is None:
        raise not_found("outbox message", message_id)
    return m


def cancel_pages(s: Session, incident_id: int, *, now: datetime) -> int:
    """Cancel an incident's page notifications not yet sent (it was acknowledged or resolved)."""
    res = s.execute(
        update(OutboxMessage)
        .where(
            OutboxMessage.incident_id == incident_id,
            OutboxMessage.page_id.is_not(None),
            OutboxMessage.status == OutboxStatus.pending.value,
        )
        .values(
            status=OutboxStatus.cancelled.value,
            last_error="cancelled: acknowledged or resolved",
            lease_until=None,
        )
    )
    return int(getattr(res, "rowcount", 0) or 0)


def pending_count(s: Session) -> int:
    return (
        s.scalar(
            select(func.count())
            .select_from(OutboxMessage)
            .where(OutboxMessage.status == OutboxStatus.pending.value)
        )
        or 0
    )


def list_messages(s: Session, *, incident_id: int | None = None, limit: int = 100) -> list[OutboxMessage]:
    q = select(OutboxMessage).order_by(OutboxMessage.id.desc()).limit(limit)
    if incident_id is not None:
        q = q.where(OutboxMessage.incident_id == incident_id)
    return list(s.scalars(q))
