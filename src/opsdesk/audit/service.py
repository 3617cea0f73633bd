"""The audit log: every change of configuration, written in the same transaction as the change."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from opsdesk.audit.models import AuditEntry
from opsdesk.core.actor import Actor


def record(
    s: Session,
    *,
    actor: Actor,
    action: str,
    entity_type: str,
    entity_id: object,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    at: datetime,
) -> AuditEntry:
    entry = AuditEntry(
        at=at,
        actor_id=actor.id,
        actor=actor.label,
        action=action,
        entity_type=entity_type,
        entity_id=str(entity_id),
        before=_redact(before),
        after=_redact(after),
    )
    s.add(entry)
    return entry


def created(
    s: Session, entity_type: str, entity_id: object, after: dict[str, Any], *, actor: Actor, at: datetime
) -> AuditEntry:
    return record(
        s,
        actor=actor,
        action="create",
        entity_type=entity_type,
        entity_id=entity_id,
        before=None,
        after=after,
        at=at,
    )


def updated(
    s: Session,
    entity_type: str,
    entity_id: object,
    before: dict[str, Any],
    after: dict[str, Any],
    *,
    actor: Actor,
    at: datetime,
) -> AuditEntry:
    return record(
        s,
        actor=actor,
        action="update",
        entity_type=entity_type,
        entity_id=entity_id,
        before=before,
        after=after,
        at=at,
    )


def deleted(
    s: Session, entity_type: str, entity_id: object, before: dict[str, Any], *, actor: Actor, at: datetime
) -> AuditEntry:
    return record(
        s,
        actor=actor,
        action="delete",
        entity_type=entity_type,
        entity_id=entity_id,
        before=before,
        after=None,
        at=at,
    )


_SECRET_KEYS = {"password", "password_hash", "token", "token_hash", "secret"}


def _redact(values: dict[str, Any] | None) -> dict[str, Any] | None:
    if values is None:
        return None
    return {k: ("***" if k in _SECRET_KEYS else v) for k, v in values.items()}


def list_entries(
    s: Session,
    *,
    entity_type: str | None = None,
    entity_id: str | None = None,
    before_id: int | None = None,
    limit: int = 50,
) -> list[AuditEntry]:
    q = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
    if entity_type:
        q = q.where(AuditEntry.entity_type == entity_type)
    if entity_id:
        q = q.where(AuditEntry.entity_id == entity_id)
    if before_id:
        q = q.where(AuditEntry.id < before_id)
    return list(s.scalars(q))


def snapshot(obj: object, fields: list[str]) -> dict[str, Any]:
    """The JSON-safe values of ``fields`` on ``obj``, for before/after records."""
    out: dict[str, Any] = {}
    for f in fields:
        v = getattr(obj, f)
        out[f] = v.isoformat() if isinstance(v, datetime) else v
    return out


def entity_types(s: Session) -> list[str]:
    """The kinds of entity the log holds, for filters."""
    return list(s.scalars(select(AuditEntry.entity_type).distinct().order_by(AuditEntry.entity_type)))
