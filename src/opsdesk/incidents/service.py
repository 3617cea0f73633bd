"""Incidents: opened from alerts, acknowledged and resolved by people or by recovery, with a timeline."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from opsdesk.core.actor import Actor
from opsdesk.core.errors import conflict, not_found
from opsdesk.core.schemas import ID_MAX
from opsdesk.incidents.models import Incident, IncidentStatus, TimelineEntry

OPEN = (IncidentStatus.triggered.value, IncidentStatus.acknowledged.value)


def get_incident(s: Session, incident_id: int) -> Incident:
    inc = s.get(Incident, incident_id)
    if inc is None:
        raise not_found("incident", incident_id)
    return inc


def parse_key(ref: str) -> int:
    """``INC-42``, ``inc-42`` or ``42`` → 42."""
    digits = ref.strip()
    if digits.upper().startswith("INC-"):
        digits = digits[4:]
    if not (digits.isascii() and digits.isdigit()) or not 0 < int(digits) <= ID_MAX:
        raise not_found("incident", repr(ref))
    return int(digits)


def list_incidents(
    s: Session,
    *,
    status: list[str] | None = None,
    service_id: int | None = None,
    before_id: int | None = None,
    limit: int = 100,
) -> list[Incident]:
    q = select(Incident).order_by(Incident.id.desc()).limit(limit)
    if status:
        q = q.where(Incident.status.in_(status))
    if service_id is not None:
        q = q.where(Incident.service_id == service_id)
    if before_id:
        q = q.where(Incident.id < before_id)
    return list(s.scalars(q))


def timeline(s: Session, incident_id: int) -> list[TimelineEntry]:
    return list(
        s.scalars(
            select(TimelineEntry)
            .where(TimelineEntry.incident_id == incident_id)
            .order_by(TimelineEntry.at, TimelineEntry.id)
        )
    )


def add_timeline(
    s: Session,
    incident_id: int,
    *,
    kind: str,
    message: str,
    at: datetime,
    actor: str = "opsdesk",
    data: dict[str, Any] | None = None,
) -> None:
    s.add(
        TimelineEntry(
            incident_id=incident_id, at=at, kind=kind, actor=actor, message=message, data=data or {}
        )
    )


# --- people act on incidents -------------------------------------------------------------------


def acknowledge(s: Session, incident_id: int, *, actor: Actor, now: datetime, note: str = "") -> Incident:
    inc = get_incident(s, incident_id)
    if inc.status == IncidentStatus.resolved.value:
        raise conflict(f"{inc.key} is already resolved")
    if inc.status == IncidentStatus.acknowledged.value:
        return inc
    inc.status = IncidentStatus.acknowledged.value
    inc.acknowledged_at = now
    inc.acknowledged_by_id = actor.id
    inc.updated_at = now
    add_timeline(
        s,
        inc.id,
        kind="acknowledged",
        at=now,
        actor=actor.label,
        message=f"Acknowledged by {actor.label}" + (f": {note}" if note else ""),
    )
    return inc


def resolve(s: Session, incident_id: int, *, actor: Actor, now: datetime, note: str = "") -> Incident:
    from opsdesk.alerts import service as alerts

    inc = get_incident(s, incident_id)
    if inc.status == IncidentStatus.resolved.value:
        return inc
    inc.status = IncidentStatus.resolved.value
    inc.resolved_at = now
    inc.resolved_by_id = actor.id
    inc.updated_at = now
    closed = alerts.resolve_for_incident(s, inc.id, now=now)
    msg = f"Resolved by {actor.label}" + (f": {note}" if note else "")
    if closed:
        msg += f" ({closed} firing alert(s) closed with it)"
    add_timeline(s, inc.id, kind="resolved", at=now, actor=actor.label, message=msg)
    _notify(s, inc, "resolved", now)
    return inc


# --- notifications -----------------------------------------------------------------------------


def _notify(s: Session, inc: Incident, what: str, now: datetime) -> None:
    """Queue an e-mail to each member of the owner team of the incident's service."""
    from opsdesk.auth import service as auth
    from opsdesk.cmdb import service as cmdb
    from opsdesk.notify import service as notify

    if inc.service_id is None:
        add_timeline(
            s, inc.id, kind="notification", at=now, message="Nobody notified: the incident has no service"
        )
        return
    svc = cmdb.get_service(s, inc.service_id)
    if svc.owner_team_id is None:
        add_timeline(
            s,
            inc.id,
            kind="notification",
            at=now,
            message=f"Nobody notified: service {svc.name} has no owner team",
        )
        return
    recipients = auth.team_member_emails(s, svc.owner_team_id)
    if not recipients:
        add_timeline(
            s,
            inc.id,
            kind="notification",
            at=now,
            message=f"Nobody notified: the owner team of {svc.name} has no members",
        )
        return
    subject, body = _message(inc, what, svc.name)
    for user_id, email in recipients:
        notify.enqueue(
            s,
            channel="email",
            recipient=email,
            subject=subject,
            body=body,
            idempotency_key=f"incident:{inc.id}:{what}:{inc.updated_at.timestamp():.0f}:user:{user_id}",
            incident_id=inc.id,
            now=now,
        )
    add_timeline(
        s,
        inc.id,
        kind="notification",
        at=now,
        message=f"E-mail ({what}) queued for {', '.join(e for _, e in recipients)}",
    )


def _message(inc: Incident, what: str, service_name: str) -> tuple[str, str]:
    if what == "opened":
        subject = f"[opsdesk] {inc.key} {inc.severity.upper()}: {inc.title}"
        lead = "A new incident was opened."
    else:
        subject = f"[opsdesk] {inc.key} RESOLVED: {inc.title}"
        lead = "The incident is resolved."
    body = (
        f"{lead}\n\n"
        f"Incident: {inc.key}\n"
        f"Title:    {inc.title}\n"
        f"Service:  {service_name}\n"
        f"Severity: {inc.severity}\n"
        f"Status:   {inc.status}\n"
        f"Opened:   {inc.opened_at.isoformat()}\n"
    )
    if inc.resolved_at:
        body += f"Resolved: {inc.resolved_at.isoformat()}\n"
    return subject, body
