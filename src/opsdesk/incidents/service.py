"""Incidents: opened from alerts (see :mod:`opsdesk.incidents.correlate`) or declared by people, then
worked through their lifecycle — acknowledged, prioritised, assigned, commented on, updated for
stakeholders, merged or split, resolved, reopened, closed — each step recorded in the timeline.

Every function that changes an incident records a timeline entry naming the actor, bumps
``updated_at`` (the live incident page watches it) and returns the incident. Incident work is
operational data, not configuration: its history is the timeline, not the audit log.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import String, cast, func, or_, select
from sqlalchemy.orm import Session

from opsdesk.core import metrics
from opsdesk.core.actor import SYSTEM, Actor
from opsdesk.core.errors import OpsdeskError, conflict, invalid, not_found
from opsdesk.core.schemas import ID_MAX
from opsdesk.core.settings import Settings
from opsdesk.incidents.models import (
    Incident,
    IncidentLink,
    IncidentStatus,
    StatusUpdate,
    TimelineEntry,
    UpdateStatus,
)
from opsdesk.incidents.priority import LEVELS, from_severity, priority_of

OPEN = (IncidentStatus.triggered.value, IncidentStatus.acknowledged.value)
SEVERITIES = ("critical", "error", "warning", "info")
TAG = re.compile(r"[a-z0-9][a-z0-9_.:-]{0,49}")
MAX_TAGS = 20
# The people an incident names, by the column that holds them.
ROLE_FIELDS = {
    "assignee_id": "assignee",
    "commander_id": "incident commander",
    "comms_lead_id": "communications lead",
}
EDITABLE = (
    "title",
    "severity",
    "impact",
    "urgency",
    "team_id",
    "assignee_id",
    "commander_id",
    "comms_lead_id",
    "tags",
)


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


def key_of(incident_id: int) -> str:
    return f"INC-{incident_id}"


def _like(q: str) -> str:
    """A LIKE pattern matching ``q`` literally anywhere (``%`` and ``_`` are not wildcards)."""
    return "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def list_incidents(
    s: Session,
    *,
    status: list[str] | None = None,
    service_id: int | None = None,
    priority: list[str] | None = None,
    assignee_id: int | None = None,
    team_id: int | None = None,
    tag: str | None = None,
    q: str | None = None,
    before_id: int | None = None,
    limit: int = 100,
) -> list[Incident]:
    """Incidents, newest first. ``tag`` must be a valid tag (see :func:`normalize_tags`)."""
    stmt = select(Incident).order_by(Incident.id.desc()).limit(limit)
    if status:
        stmt = stmt.where(Incident.status.in_(status))
    if service_id is not None:
        stmt = stmt.where(Incident.service_id == service_id)
    if priority:
        stmt = stmt.where(Incident.priority.in_(priority))
    if assignee_id is not None:
        stmt = stmt.where(Incident.assignee_id == assignee_id)
    if team_id is not None:
        stmt = stmt.where(Incident.team_id == team_id)
    if tag:
        (wanted,) = normalize_tags([tag], field="tag")
        # Tags are JSON arrays of strings from a quote-free alphabet: '"tag"' matches exactly one.
        stmt = stmt.where(cast(Incident.tags, String).like(_like(f'"{wanted}"'), escape="\\"))
    if q and q.strip():
        stmt = stmt.where(func.lower(Incident.title).like(_like(q.strip().lower()), escape="\\"))
    if before_id:
        stmt = stmt.where(Incident.id < before_id)
    return list(s.scalars(stmt))


# --- the timeline ------------------------------------------------------------------------------


def timeline(s: Session, incident_id: int) -> list[TimelineEntry]:
    return list(
        s.scalars(
            select(TimelineEntry)
            .where(TimelineEntry.incident_id == incident_id)
            .order_by(TimelineEntry.at, TimelineEntry.id)
        )
    )


def timeline_after(s: Session, incident_id: int, after_id: int, *, limit: int = 200) -> list[TimelineEntry]:
    """Entries added after the entry ``after_id`` (in id order): what a live page has not seen."""
    return list(
        s.scalars(
            select(TimelineEntry)
            .where(TimelineEntry.incident_id == incident_id, TimelineEntry.id > after_id)
            .order_by(TimelineEntry.id)
            .limit(limit)
        )
    )


def live_marker(s: Session, incident_id: int) -> tuple[datetime, int] | None:
    """``(updated_at, last timeline id)`` of an incident, or None when it is gone: one cheap query
    the live page's event stream runs every second."""
    last = (
        select(func.coalesce(func.max(TimelineEntry.id), 0))
        .where(TimelineEntry.incident_id == incident_id)
        .scalar_subquery()
    )
    row = s.execute(select(Incident.updated_at, last).where(Incident.id == incident_id)).first()
    return None if row is None else (row[0], int(row[1]))


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


# --- guards ------------------------------------------------------------------------------------


def _actable(s: Session, incident_id: int, *, closed_ok: bool = False) -> Incident:
    """The incident, unless it was merged into another (act on that one) or, by default, closed."""
    inc = get_incident(s, incident_id)
    if inc.merged_into_id is not None:
        target = key_of(inc.merged_into_id)
        raise conflict(f"{inc.key} was merged into {target}; act on {target} instead", merged_into=target)
    if inc.closed_at is not None and not closed_ok:
        raise conflict(f"{inc.key} is closed")
    return inc


def _label(actor: Actor | None) -> str:
    return (actor or SYSTEM).label


def _by(actor: Actor | None) -> str:
    return f"by {_label(actor)}" if actor is not None else "automatically"


def _with_note(msg: str, note: str) -> str:
    note = note.strip()
    return msg + (f": {note}" if note else "")


# --- the lifecycle -----------------------------------------------------------------------------


def declare(
    s: Session,
    *,
    title: str,
    service_id: int | None = None,
    severity: str = "error",
    impact: str | None = None,
    urgency: str | None = None,
    description: str = "",
    actor: Actor,
    now: datetime,
) -> Incident:
    """A person opens an incident by hand; the description becomes the first comment."""
    from opsdesk.cmdb import service as cmdb

    title = title.strip()
    if not title:
        raise invalid("title", "must not be empty")
    if len(title) > 500:
        raise invalid("title", "must be at most 500 characters")
    _check_choice("severity", severity, SEVERITIES)
    default_impact, default_urgency, _ = from_severity(severity)
    impact = impact or default_impact
    urgency = urgency or default_urgency
    _check_choice("impact", impact, LEVELS)
    _check_choice("urgency", urgency, LEVELS)
    team_id = None
    service_name = None
    if service_id is not None:
        try:
            svc = cmdb.get_service(s, service_id)
        except OpsdeskError:
            raise invalid("service_id", f"no service with id {service_id}") from None
        team_id, service_name = svc.owner_team_id, svc.name
    inc = Incident(
        title=title,
        status=IncidentStatus.triggered.value,
        severity=severity,
        service_id=service_id,
        opened_at=now,
        updated_at=now,
        impact=impact,
        urgency=urgency,
        priority=priority_of(impact, urgency),
        team_id=team_id,
        tags=[],
    )
    s.add(inc)
    s.flush()
    metrics.INCIDENTS_OPENED.inc()
    add_timeline(
        s,
        inc.id,
        kind="opened",
        at=now,
        actor=actor.label,
        message=f"Incident declared by {actor.label}"
        + (f" on {service_name}" if service_name else "")
        + f" ({severity}, {inc.priority})",
    )
    if description.strip():
        add_timeline(s, inc.id, kind="comment", at=now, actor=actor.label, message=description.strip())
    _notify(s, inc, "opened", now)
    return inc


def acknowledge(s: Session, incident_id: int, *, actor: Actor, now: datetime, note: str = "") -> Incident:
    inc = _actable(s, incident_id)
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
        message=_with_note(f"Acknowledged by {actor.label}", note),
    )
    from opsdesk.oncall import escalation

    escalation.stop(s, inc.id, state="acknowledged", reason=f"acknowledged by {actor.label}", now=now)
    return inc


def resolve(s: Session, incident_id: int, *, actor: Actor, now: datetime, note: str = "") -> Incident:
    from opsdesk.alerts import service as alerts
    from opsdesk.incidents import postmortems

    inc = _actable(s, incident_id, closed_ok=True)
    if inc.status == IncidentStatus.resolved.value:
        return inc
    inc.status = IncidentStatus.resolved.value
    inc.resolved_at = now
    inc.resolved_by_id = actor.id
    inc.updated_at = now
    closed = alerts.resolve_for_incident(s, inc.id, now=now)
    msg = _with_note(f"Resolved by {actor.label}", note)
    if closed:
        msg += f" ({closed} firing alert(s) closed with it)"
    add_timeline(s, inc.id, kind="resolved", at=now, actor=actor.label, message=msg)
    _notify(s, inc, "resolved", now)
    postmortems.ensure_draft(s, inc, now=now)
    return inc


def reopen(s: Session, incident_id: int, *, actor: Actor | None, now: datetime, note: str = "") -> Incident:
    """Back to triggered (``actor=None``: opsdesk itself, e.g. an alert fired again). Refused once
    closed, and for an incident that is not resolved."""
    inc = _actable(s, incident_id)
    if inc.status != IncidentStatus.resolved.value:
        raise conflict(f"{inc.key} is not resolved ({inc.status}); only a resolved incident can be reopened")
    inc.status = IncidentStatus.triggered.value
    inc.resolved_at = None
    inc.resolved_by_id = None
    inc.acknowledged_at = None
    inc.acknowledged_by_id = None
    inc.reopened_count += 1
    inc.updated_at = now
    add_timeline(
        s,
        inc.id,
        kind="reopened",
        at=now,
        actor=_label(actor),
        message=_with_note(f"Reopened {_by(actor)}", note) + f" (reopened {inc.reopened_count} time(s))",
    )
    _notify(s, inc, "reopened", now)
    return inc


def close(
    s: Session, incident_id: int, *, actor: Actor, now: datetime, settings: Settings, note: str = ""
) -> Incident:
    """Close a resolved incident, unless its postmortem rules say it may not be closed yet."""
    from opsdesk.incidents import postmortems

    inc = _actable(s, incident_id, closed_ok=True)
    if inc.closed_at is not None:
        return inc
    if inc.status != IncidentStatus.resolved.value:
        raise conflict(f"{inc.key} is {inc.status}; resolve it before closing it")
    reason = postmortems.close_blocker(s, inc, settings)
    if reason:
        raise conflict(reason, reason=reason)
    inc.closed_at = now
    inc.updated_at = now
    add_timeline(
        s,
        inc.id,
        kind="closed",
        at=now,
        actor=actor.label,
        message=_with_note(f"Closed by {actor.label}", note),
    )
    return inc


# --- priority, severity, assignment, tags ------------------------------------------------------


def _check_choice(field: str, value: object, choices: Iterable[str]) -> None:
    options = list(choices)
    if value not in options:
        raise invalid(field, f"{value!r} is not one of {', '.join(options)}")


def set_priority(
    s: Session, incident_id: int, *, impact: str, urgency: str, actor: Actor, now: datetime
) -> Incident:
    """Impact x urgency → priority (see :mod:`opsdesk.incidents.priority`)."""
    _check_choice("impact", impact, LEVELS)
    _check_choice("urgency", urgency, LEVELS)
    inc = _actable(s, incident_id)
    if (inc.impact, inc.urgency) == (impact, urgency):
        return inc
    old = inc.priority
    inc.impact, inc.urgency = impact, urgency
    inc.priority = priority_of(impact, urgency)
    inc.updated_at = now
    change = f"{old} → {inc.priority}" if old != inc.priority else f"stays {inc.priority}"
    add_timeline(
        s,
        inc.id,
        kind="priority",
        at=now,
        actor=actor.label,
        message=f"Priority {change} (impact {impact}, urgency {urgency}) by {actor.label}",
        data={"from": old, "to": inc.priority, "impact": impact, "urgency": urgency},
    )
    return inc


def set_severity(s: Session, incident_id: int, *, severity: str, actor: Actor, now: datetime) -> Incident:
    _check_choice("severity", severity, SEVERITIES)
    inc = _actable(s, incident_id)
    if inc.severity == severity:
        return inc
    old, inc.severity = inc.severity, severity
    inc.updated_at = now
    add_timeline(
        s,
        inc.id,
        kind="severity",
        at=now,
        actor=actor.label,
        message=f"Severity {old} → {severity} by {actor.label}",
        data={"from": old, "to": severity},
    )
    return inc


def set_title(s: Session, incident_id: int, *, title: str, actor: Actor, now: datetime) -> Incident:
    title = title.strip()
    if not title:
        raise invalid("title", "must not be empty")
    if len(title) > 500:
        raise invalid("title", "must be at most 500 characters")
    inc = _actable(s, incident_id)
    if inc.title == title:
        return inc
    old, inc.title = inc.title, title
    inc.updated_at = now
    add_timeline(
        s,
        inc.id,
        kind="edited",
        at=now,
        actor=actor.label,
        message=f"Title changed by {actor.label}: {title}",
        data={"from": old, "to": title},
    )
    return inc


def _team_name(s: Session, team_id: int, field: str = "team_id") -> str:
    from opsdesk.auth import service as auth

    try:
        return auth.get_team(s, team_id).name
    except OpsdeskError:
        raise invalid(field, f"no team with id {team_id}") from None


def _active_user_email(s: Session, user_id: int, field: str) -> str:
    from opsdesk.auth import service as auth

    try:
        user = auth.get_user(s, user_id)
    except OpsdeskError:
        raise invalid(field, f"no user with id {user_id}") from None
    if not user.active:
        raise invalid(field, f"user {user.email} is deactivated")
    return user.email


def set_team(s: Session, incident_id: int, team_id: int | None, *, actor: Actor, now: datetime) -> Incident:
    name = _team_name(s, team_id) if team_id is not None else None
    inc = _actable(s, incident_id)
    if inc.team_id == team_id:
        return inc
    inc.team_id = team_id
    inc.updated_at = now
    add_timeline(
        s,
        inc.id,
        kind="assignment",
        at=now,
        actor=actor.label,
        message=f"Team set to {name} by {actor.label}" if name else f"Team cleared by {actor.label}",
        data={"team_id": team_id},
    )
    if team_id is not None and inc.assignee_id is not None:
        _warn_if_outside_team(s, inc, inc.assignee_id, now)
    return inc


def set_person(
    s: Session, incident_id: int, field: str, user_id: int | None, *, actor: Actor, now: datetime
) -> Incident:
    """Set the assignee (``assignee_id``), incident commander (``commander_id``) or communications
    lead (``comms_lead_id``); the person must be an active user. An assignee outside the incident's
    team is accepted with a warning in the timeline."""
    if field not in ROLE_FIELDS:
        raise invalid("field", f"{field!r} is not one of {', '.join(ROLE_FIELDS)}")
    email = _active_user_email(s, user_id, field) if user_id is not None else None
    inc = _actable(s, incident_id)
    if getattr(inc, field) == user_id:
        return inc
    setattr(inc, field, user_id)
    inc.updated_at = now
    role = ROLE_FIELDS[field]
    msg = (
        f"{role.capitalize()}: {email} (set by {actor.label})"
        if email
        else f"{role.capitalize()} cleared by {actor.label}"
    )
    add_timeline(s, inc.id, kind="assignment", at=now, actor=actor.label, message=msg, data={field: user_id})
    if field == "assignee_id" and user_id is not None:
        _warn_if_outside_team(s, inc, user_id, now)
    return inc


def _warn_if_outside_team(s: Session, inc: Incident, user_id: int, now: datetime) -> None:
    from opsdesk.auth import service as auth

    if inc.team_id is None:
        return
    team = auth.get_team(s, inc.team_id)
    if user_id in auth.team_member_ids(team):
        return
    email = auth.get_user(s, user_id).email
    add_timeline(
        s,
        inc.id,
        kind="warning",
        at=now,
        message=f"The assignee {email} is not a member of team {team.name}",
        data={"user_id": user_id, "team_id": team.id},
    )


def normalize_tags(tags: Iterable[str], *, field: str = "tags") -> list[str]:
    """Lower-cased, checked against ``[a-z0-9][a-z0-9_.:-]{0,49}``, deduplicated in order, ≤ 20."""
    out: list[str] = []
    for raw in tags:
        if not isinstance(raw, str):
            raise invalid(field, f"{raw!r} is not a string")
        t = raw.strip().lower()
        if not TAG.fullmatch(t):
            raise invalid(
                field,
                f"{raw!r} is not a tag: 1 to 50 of a-z 0-9 _ . : - starting with a letter or digit",
            )
        if t not in out:
            out.append(t)
    if len(out) > MAX_TAGS:
        raise invalid(field, f"at most {MAX_TAGS} tags, got {len(out)}")
    return out


def set_tags(s: Session, incident_id: int, tags: Iterable[str], *, actor: Actor, now: datetime) -> Incident:
    wanted = normalize_tags(tags)
    inc = _actable(s, incident_id, closed_ok=True)
    if list(inc.tags or []) == wanted:
        return inc
    before = list(inc.tags or [])
    inc.tags = wanted
    inc.updated_at = now
    added = [t for t in wanted if t not in before]
    removed = [t for t in before if t not in wanted]
    parts = ([f"added {', '.join(added)}"] if added else []) + (
        [f"removed {', '.join(removed)}"] if removed else []
    )
    add_timeline(
        s,
        inc.id,
        kind="tags",
        at=now,
        actor=actor.label,
        message=f"Tags {'; '.join(parts) or 'reordered'} by {actor.label}",
        data={"tags": wanted},
    )
    return inc


def update(
    s: Session, incident_id: int, changes: Mapping[str, Any], *, actor: Actor, now: datetime
) -> Incident:
    """Apply several edits at once (the API's PATCH); one transaction, so all or nothing."""
    unknown = [k for k in changes if k not in EDITABLE]
    if unknown:
        raise invalid(unknown[0], "cannot be changed here")
    for f in ("title", "severity", "impact", "urgency", "tags"):
        if f in changes and changes[f] is None:
            raise invalid(f, "must not be null")
    inc = _actable(s, incident_id, closed_ok=set(changes) <= {"tags"})
    if "title" in changes:
        set_title(s, inc.id, title=changes["title"], actor=actor, now=now)
    if "severity" in changes:
        set_severity(s, inc.id, severity=changes["severity"], actor=actor, now=now)
    if "impact" in changes or "urgency" in changes:
        set_priority(
            s,
            inc.id,
            impact=changes.get("impact", inc.impact),
            urgency=changes.get("urgency", inc.urgency),
            actor=actor,
            now=now,
        )
    if "team_id" in changes:
        set_team(s, inc.id, changes["team_id"], actor=actor, now=now)
    for f in ROLE_FIELDS:
        if f in changes:
            set_person(s, inc.id, f, changes[f], actor=actor, now=now)
    if "tags" in changes:
        set_tags(s, inc.id, changes["tags"], actor=actor, now=now)
    return inc


# --- comments and stakeholder updates ----------------------------------------------------------


def comment(s: Session, incident_id: int, *, text: str, actor: Actor, now: datetime) -> Incident:
    text = text.strip()
    if not text:
        raise invalid("text", "must not be empty")
    inc = _actable(s, incident_id, closed_ok=True)
    inc.updated_at = now
    add_timeline(s, inc.id, kind="comment", at=now, actor=actor.label, message=text)
    return inc


def post_update(
    s: Session,
    incident_id: int,
    *,
    status: UpdateStatus | str,
    message: str,
    public: bool,
    actor: Actor,
    now: datetime,
) -> Incident:
    """A status update for stakeholders; public ones are shown on the status page."""
    _check_choice("status", str(status), [u.value for u in UpdateStatus])
    message = message.strip()
    if not message:
        raise invalid("message", "must not be empty")
    inc = _actable(s, incident_id)
    s.add(
        StatusUpdate(
            incident_id=inc.id, at=now, status=str(status), message=message, public=public, author=actor.label
        )
    )
    inc.updated_at = now
    add_timeline(
        s,
        inc.id,
        kind="status_update",
        at=now,
        actor=actor.label,
        message=f"{'Public' if public else 'Internal'} update ({status}) by {actor.label}: {message}",
        data={"status": str(status), "public": public},
    )
    return inc


def list_updates(s: Session, incident_id: int, *, public_only: bool = False) -> list[StatusUpdate]:
    q = select(StatusUpdate).where(StatusUpdate.incident_id == incident_id)
    if public_only:
        q = q.where(StatusUpdate.public.is_(True))
    return list(s.scalars(q.order_by(StatusUpdate.at.desc(), StatusUpdate.id.desc())))


# --- related incidents -------------------------------------------------------------------------


def _link_between(s: Session, a: int, b: int) -> IncidentLink | None:
    return s.scalar(
        select(IncidentLink).where(
            or_(
                (IncidentLink.incident_id == a) & (IncidentLink.related_id == b),
                (IncidentLink.incident_id == b) & (IncidentLink.related_id == a),
            )
        )
    )


def link(s: Session, incident_id: int, related_id: int, *, actor: Actor, now: datetime) -> Incident:
    """Mark two incidents as related (listed on both); no self-links, no duplicates."""
    if incident_id == related_id:
        raise invalid("related", "an incident cannot be related to itself")
    inc = _actable(s, incident_id, closed_ok=True)
    other = get_incident(s, related_id)
    if _link_between(s, inc.id, other.id) is not None:
        raise conflict(f"{inc.key} and {other.key} are already related")
    s.add(IncidentLink(incident_id=inc.id, related_id=other.id, created_by=actor.label, created_at=now))
    for a, b in ((inc, other), (other, inc)):
        a.updated_at = now
        add_timeline(
            s,
            a.id,
            kind="related",
            at=now,
            actor=actor.label,
            message=f"Related to {b.key} ({b.title}) by {actor.label}",
            data={"related_id": b.id},
        )
    return inc


def unlink(s: Session, incident_id: int, related_id: int, *, actor: Actor, now: datetime) -> Incident:
    inc = _actable(s, incident_id, closed_ok=True)
    other = get_incident(s, related_id)
    row = _link_between(s, inc.id, other.id)
    if row is None:
        raise not_found("link between", f"{inc.key} and {other.key}")
    s.delete(row)
    for a, b in ((inc, other), (other, inc)):
        a.updated_at = now
        add_timeline(
            s,
            a.id,
            kind="related",
            at=now,
            actor=actor.label,
            message=f"No longer related to {b.key} (by {actor.label})",
            data={"unrelated_id": b.id},
        )
    return inc


def related(s: Session, incident_id: int) -> list[Incident]:
    """Incidents linked to this one, in either direction, by id."""
    ids = set(s.scalars(select(IncidentLink.related_id).where(IncidentLink.incident_id == incident_id)))
    ids |= set(s.scalars(select(IncidentLink.incident_id).where(IncidentLink.related_id == incident_id)))
    if not ids:
        return []
    return list(s.scalars(select(Incident).where(Incident.id.in_(ids)).order_by(Incident.id)))


def merged_into_this(s: Session, incident_id: int) -> list[Incident]:
    return list(
        s.scalars(select(Incident).where(Incident.merged_into_id == incident_id).order_by(Incident.id))
    )


# --- correlation by hand: merge and split ------------------------------------------------------


def fold_into(
    s: Session,
    into: Incident,
    other: Incident,
    *,
    now: datetime,
    actor: str,
    why: str,
    resolved_by_id: int | None = None,
) -> int:
    """``other`` merged into ``into``: its alerts move, it is resolved and points at ``into``, and
    both timelines say so. Returns how many alerts moved. People merging (:func:`merge`) and the
    pipeline finding a cause after its symptoms (:mod:`opsdesk.incidents.correlate`) both use it."""
    from opsdesk.alerts import service as alerts

    moved = alerts.move_alerts(s, other.id, into.id)
    if other.status != IncidentStatus.resolved.value:
        other.status = IncidentStatus.resolved.value
        other.resolved_at = now
        other.resolved_by_id = resolved_by_id
    other.merged_into_id = into.id
    other.updated_at = now
    into.updated_at = now
    from opsdesk.oncall import escalation

    escalation.stop(s, other.id, state="stopped", reason=f"merged into {into.key}", now=now)
    add_timeline(
        s,
        other.id,
        kind="merged",
        at=now,
        actor=actor,
        message=f"Merged into {into.key} {why} ({moved} alert(s) moved)",
        data={"into_id": into.id, "alerts_moved": moved},
    )
    add_timeline(
        s,
        into.id,
        kind="merged",
        at=now,
        actor=actor,
        message=f"{other.key} ({other.title}) merged into this incident {why} ({moved} alert(s) moved)",
        data={"from_id": other.id, "alerts_moved": moved},
    )
    return moved


def merge(s: Session, into_id: int, other_ids: Iterable[int], *, actor: Actor, now: datetime) -> Incident:
    """Move the alerts of ``other_ids`` into ``into_id`` and resolve the others as merged into it."""

    others = list(dict.fromkeys(other_ids))
    if not others:
        raise invalid("incident_ids", "name at least one incident to merge")
    if into_id in others:
        raise invalid("incident_ids", f"{key_of(into_id)} cannot be merged into itself")
    into = _actable(s, into_id)
    if into.status == IncidentStatus.resolved.value:
        raise conflict(f"{into.key} is resolved; reopen it before merging into it")
    for other_id in others:
        other = s.get(Incident, other_id)
        if other is None:
            raise invalid("incident_ids", f"no incident {key_of(other_id)}")
        _actable(s, other_id)
    for other_id in others:
        other = get_incident(s, other_id)
        fold_into(
            s, into, other, now=now, actor=actor.label, why=f"by {actor.label}", resolved_by_id=actor.id
        )
        if other.last_alert_at and (into.last_alert_at is None or other.last_alert_at > into.last_alert_at):
            into.last_alert_at = other.last_alert_at
    into.updated_at = now
    return into


def split(
    s: Session,
    incident_id: int,
    alert_ids: Iterable[int],
    *,
    actor: Actor,
    now: datetime,
    title: str | None = None,
) -> Incident:
    """Open a new incident (same service, priority and team) with some of this one's alerts."""
    from opsdesk.alerts import service as alerts

    wanted = list(dict.fromkeys(alert_ids))
    if not wanted:
        raise invalid("alert_ids", "name at least one alert to split off")
    if title is not None:
        title = title.strip()
        if not title:
            raise invalid("title", "must not be empty")
        if len(title) > 500:
            raise invalid("title", "must be at most 500 characters")
    src = _actable(s, incident_id)
    if src.status == IncidentStatus.resolved.value:
        raise conflict(f"{src.key} is resolved; reopen it before splitting it")
    own = {a.id: a for a in alerts.list_alerts(s, incident_id=src.id, limit=100_000)}
    for alert_id in wanted:
        if alert_id not in own:
            raise invalid("alert_ids", f"alert {alert_id} is not part of {src.key}")
    moving = [own[a] for a in wanted]
    new = Incident(
        title=title or moving[0].summary[:500],
        status=IncidentStatus.triggered.value,
        severity=src.severity,
        service_id=src.service_id,
        ci_id=src.ci_id,
        opened_at=now,
        updated_at=now,
        impact=src.impact,
        urgency=src.urgency,
        priority=src.priority,
        team_id=src.team_id,
        tags=list(src.tags or []),
        group_key=None,
        last_alert_at=max(a.last_seen for a in moving),
    )
    s.add(new)
    s.flush()
    metrics.INCIDENTS_OPENED.inc()
    moved = alerts.move_alerts(s, src.id, new.id, wanted)
    src.updated_at = now
    add_timeline(
        s,
        new.id,
        kind="opened",
        at=now,
        actor=actor.label,
        message=f"Split from {src.key} by {actor.label} with {moved} alert(s)",
        data={"split_from_id": src.id, "alert_ids": wanted},
    )
    add_timeline(
        s,
        src.id,
        kind="split",
        at=now,
        actor=actor.label,
        message=f"{moved} alert(s) split off into {new.key} by {actor.label}",
        data={"split_into_id": new.id, "alert_ids": wanted},
    )
    _notify(s, new, "opened", now)
    return new


# --- postmortems -------------------------------------------------------------------------------


def postmortem_id(s: Session, incident_id: int) -> int | None:
    """The id of the incident's postmortem, if one was drafted."""
    from opsdesk.incidents import postmortems

    pm = postmortems.get_for_incident(s, incident_id)
    return pm.id if pm is not None else None


# --- notifications -----------------------------------------------------------------------------


def _notify(s: Session, inc: Incident, what: str, now: datetime) -> None:
    """Page through the service's escalation policy when it has one; otherwise (and for the
    resolved notice) queue an e-mail to each member of the owner team of the incident's service."""
    from opsdesk.auth import service as auth
    from opsdesk.cmdb import service as cmdb
    from opsdesk.notify import service as notify
    from opsdesk.oncall import escalation

    if what == "resolved":
        escalation.stop(s, inc.id, state="resolved", reason="the incident was resolved", now=now)
    if inc.service_id is not None and what in ("opened", "reopened"):
        policy_id = cmdb.get_service(s, inc.service_id).escalation_policy_id
        if policy_id is not None:
            escalation.start(s, inc.id, policy_id, now=now)
            return
    if what == "resolved" and escalation.escalation_of(s, inc.id) is not None:
        _notify_paged(s, inc, now)
        return
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


def _notify_paged(s: Session, inc: Incident, now: datetime) -> None:
    """Tell the people who were paged for an incident that it is resolved (one e-mail each)."""
    from opsdesk.auth.models import User
    from opsdesk.notify import service as notify
    from opsdesk.oncall.models import Page

    users = list(
        s.scalars(select(User).where(User.id.in_(select(Page.user_id).where(Page.incident_id == inc.id))))
    )
    svc_name = "-"
    if inc.service_id is not None:
        from opsdesk.cmdb import service as cmdb

        svc_name = cmdb.get_service(s, inc.service_id).name
    subject, body = _message(inc, "resolved", svc_name)
    for u in users:
        notify.enqueue(
            s,
            channel="email",
            recipient=u.email,
            subject=subject,
            body=body,
            idempotency_key=f"incident:{inc.id}:resolved:{inc.updated_at.timestamp():.0f}:user:{u.id}",
            incident_id=inc.id,
            now=now,
            user_id=u.id,
        )
    if users:
        add_timeline(
            s,
            inc.id,
            kind="notification",
            at=now,
            message=f"E-mail (resolved) queued for {', '.join(u.email for u in users)} (paged earlier)",
        )


def _message(inc: Incident, what: str, service_name: str) -> tuple[str, str]:
    if what == "opened":
        subject = f"[opsdesk] {inc.key} {inc.severity.upper()}: {inc.title}"
        lead = "A new incident was opened."
    elif what == "reopened":
        subject = f"[opsdesk] {inc.key} REOPENED {inc.severity.upper()}: {inc.title}"
        lead = "The incident was reopened."
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
