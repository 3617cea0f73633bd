"""Read-only views of the outbox for the notifications page and ``opsdesk notifications``:
messages newest first filtered by status, and how many there are in each status. Changes (retry)
go through :mod:`opsdesk.notify.service`."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from opsdesk.auth.models import User
from opsdesk.notify.models import NotifyChannel, OutboxMessage, OutboxStatus

STATUSES = [st.value for st in OutboxStatus]


def counts(s: Session) -> dict[str, int]:
    """Messages per status (every status, zero when none)."""
    rows = s.execute(select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status)).all()
    found = {str(status): int(n) for status, n in rows}
    return {st: found.get(st, 0) for st in STATUSES}


def messages(s: Session, *, status: str | None = None, limit: int = 200) -> list[OutboxMessage]:
    q = select(OutboxMessage).order_by(OutboxMessage.id.desc()).limit(limit)
    if status:
        q = q.where(OutboxMessage.status == status)
    return list(s.scalars(q))


def dead_ids(s: Session) -> list[int]:
    return list(
        s.scalars(
            select(OutboxMessage.id)
            .where(OutboxMessage.status == OutboxStatus.dead.value)
            .order_by(OutboxMessage.id)
        )
    )


def message_dict(s: Session, m: OutboxMessage, names: dict[int, str] | None = None) -> dict[str, Any]:
    """A message for display: never the body (it holds the signed acknowledge/resolve links)."""
    from opsdesk.incidents.service import key_of

    names = names if names is not None else {}
    if m.user_id is not None and m.user_id not in names:
        u = s.get(User, m.user_id)
        names[m.user_id] = u.name if u else f"user {m.user_id} (deleted)"
    ch = s.get(NotifyChannel, m.channel_id) if m.channel_id else None
    return {
        "id": m.id,
        "status": m.status,
        "channel": m.channel,
        "channel_name": ch.name if ch else None,
        "recipient": m.recipient,
        "user_id": m.user_id,
        "user": names.get(m.user_id) if m.user_id is not None else None,
        "subject": m.subject,
        "incident_id": m.incident_id,
        "incident_key": key_of(m.incident_id) if m.incident_id is not None else None,
        "attempts": m.attempts,
        "last_error": m.last_error,
        "next_attempt_at": m.next_attempt_at,
        "created_at": m.created_at,
        "sent_at": m.sent_at,
    }
