"""Postmortems and their action items.

- A draft is created the moment an incident resolves (:func:`ensure_draft`, called by the incident
  lifecycle and the pipeline's auto-resolve), or earlier by a person who wants to start. It comes
  with the summary, impact and timeline filled from the incident; root cause, what went well and
  what went badly start empty (the form shows :data:`GUIDANCE` as placeholders, never as content).
- While it is a draft, an incident that reopens and resolves again refreshes it: the timeline is
  rebuilt, and the summary and impact too unless someone has edited them since they were drafted.
- Status: ``draft`` → ``in_review`` → ``published`` (and back from review to draft). Publishing needs
  every section filled except "what went well". A published postmortem is read-only until a
  manager reopens it to draft.
- Action items (title, owner, due date) are tracked until done, across postmortems, whatever the
  postmortem's status.
- Incidents whose priority is in ``settings.postmortem_required_priorities`` cannot be closed
  until their postmortem is published (:func:`close_blocker`).

Every change writes the incident's timeline (kinds ``postmortem`` and ``action_item``) and the
audit log (entity types ``postmortem`` and ``action_item``).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from opsdesk.audit import service as audit
from opsdesk.core.actor import SYSTEM, Actor, Role
from opsdesk.core.errors import FieldError, OpsdeskError, conflict, forbidden, invalid, not_found
from opsdesk.core.schemas import DbId, In
from opsdesk.core.settings import Settings
from opsdesk.incidents import service as incidents
from opsdesk.incidents.models import ActionItem, Incident, Postmortem, PostmortemStatus, TimelineEntry

SECTIONS = ("summary", "impact", "timeline", "root_cause", "went_well", "went_badly")
# Publishing needs every section but this one ("nothing went well" is an honest answer).
OPTIONAL_TO_PUBLISH = ("went_well",)
GENERATED = ("summary", "impact", "timeline")
LABELS = {
    "summary": "Summary",
    "impact": "Impact",
    "timeline": "Timeline",
    "root_cause": "Root cause",
    "went_well": "What went well",
    "went_badly": "What went badly",
}
GUIDANCE = {
    "summary": "What happened, in two or three sentences a stakeholder understands.",
    "impact": "Who was affected, how, and for how long.",
    "timeline": "What happened when (UTC): detection, escalation, diagnosis, mitigation, recovery.",
    "root_cause": "Why did it happen? Keep asking why until the answer is something you can change.",
    "went_well": "What helped: alerts that fired early, runbooks that worked, people who jumped in.",
    "went_badly": "What slowed detection, diagnosis or recovery? Where were we lucky?",
}
SECTION_MAX = 50_000
ITEM_OPEN, ITEM_DONE = "open", "done"
PM_FIELDS = ["incident_id", "status", *SECTIONS, "author_id", "published_at"]
ITEM_FIELDS = ["postmortem_id", "title", "owner_id", "due_date", "status", "done_at"]

SectionText = Annotated[str, StringConstraints(max_length=SECTION_MAX)]
Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]
PostmortemState = Literal["draft", "in_review", "published"]
ItemState = Literal["open", "done"]


# --- input schemas (shared by the API, the pages and the CLI) ----------------------------------


class PostmortemUpdate(In):
    summary: SectionText | None = None
    impact: SectionText | None = None
    timeline: SectionText | None = None
    root_cause: SectionText | None = None
    went_well: SectionText | None = None
    went_badly: SectionText | None = None


class StatusChange(In):
    status: PostmortemState


class ActionItemIn(In):
    postmortem_id: DbId
    title: Title
    owner_id: DbId | None = None
    due_date: date | None = None


class ActionItemUpdate(In):
    title: Title | None = None
    owner_id: DbId | None = None
    due_date: date | None = None
    status: ItemState | None = Field(default=None, description="open, or done")


# --- reading -------------------------------------------------------------------------------------


def get_for_incident(s: Session, incident_id: int) -> Postmortem | None:
    return s.scalar(select(Postmortem).where(Postmortem.incident_id == incident_id))


def get_postmortem(s: Session, postmortem_id: int) -> Postmortem:
    pm = s.get(Postmortem, postmortem_id)
    if pm is None:
        raise not_found("postmortem", postmortem_id)
    return pm


def require_for_incident(s: Session, incident_id: int) -> Postmortem:
    pm = get_for_incident(s, incident_id)
    if pm is None:
        incidents.get_incident(s, incident_id)  # 404 for an unknown incident first
        raise not_found("postmortem of", f"INC-{incident_id}")
    return pm


def list_postmortems(s: Session, *, status: str | None = None, limit: int = 200) -> list[Postmortem]:
    q = select(Postmortem).order_by(Postmortem.id.desc()).limit(limit)
    if status:
        q = q.where(Postmortem.status == status)
    return list(s.scalars(q))


def open_item_counts(s: Session, postmortem_ids: Iterable[int]) -> dict[int, int]:
    ids = list(postmortem_ids)
    if not ids:
        return {}
    rows = s.execute(
        select(ActionItem.postmortem_id, func.count())
        .where(ActionItem.postmortem_id.in_(ids), ActionItem.status == ITEM_OPEN)
        .group_by(ActionItem.postmortem_id)
    )
    return {pm_id: int(n) for pm_id, n in rows}


def incidents_for(s: Session, postmortem_ids: Iterable[int]) -> dict[int, Incident]:
    """Postmortem id → its incident, in one query."""
    ids = list(set(postmortem_ids))
    if not ids:
        return {}
    rows = s.execute(
        select(Postmortem.id, Incident)
        .join(Incident, Incident.id == Postmortem.incident_id)
        .where(Postmortem.id.in_(ids))
    )
    return {pm_id: inc for pm_id, inc in rows}


def missing_to_publish(pm: Postmortem) -> list[str]:
    return [f for f in SECTIONS if f not in OPTIONAL_TO_PUBLISH and not getattr(pm, f).strip()]


def close_blocker(s: Session, inc: Incident, settings: Settings) -> str | None:
    """Why ``inc`` cannot be closed yet (its priority needs a published postmortem), or None."""
    if inc.priority not in settings.postmortem_required_priorities:
        return None
    pm = get_for_incident(s, inc.id)
    if pm is not None and pm.status == PostmortemStatus.published.value:
        return None
    where = "there is none yet" if pm is None else f"it is {pm.status.replace('_', ' ')}"
    return f"{inc.key} is {inc.priority}: its postmortem must be published before it is closed ({where})"


# --- the draft -----------------------------------------------------------------------------------


def _utc(at: datetime) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%S UTC")


def _duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{days} d" if days else "", f"{hours} h" if hours else "", f"{minutes} min" if minutes else ""]
    text = " ".join(p for p in parts if p)
    return text or f"{secs} s"


def _service_name(s: Session, inc: Incident) -> str:
    from opsdesk.cmdb import service as cmdb

    if inc.service_id is None:
        return "none"
    try:
        return cmdb.get_service(s, inc.service_id).name
    except OpsdeskError:
        return f"#{inc.service_id} (deleted)"


def draft_summary(s: Session, inc: Incident) -> str:
    return (
        f"{inc.key}: {inc.title}\n"
        f"Service: {_service_name(s, inc)}\n"
        f"Priority: {inc.priority} (impact {inc.impact}, urgency {inc.urgency})\n"
        f"Severity: {inc.severity}"
    )


def draft_impact(s: Session, inc: Incident) -> str:
    from opsdesk.alerts import service as alerts
    from opsdesk.cmdb import service as cmdb

    if inc.resolved_at is not None:
        span = inc.resolved_at - inc.opened_at
        duration = f"{_duration(span.total_seconds())} ({_utc(inc.opened_at)} to {_utc(inc.resolved_at)})"
    else:
        duration = f"ongoing since {_utc(inc.opened_at)}"
    linked = alerts.list_alerts(s, incident_id=inc.id, limit=100_000)
    ci_ids = {a.ci_id for a in linked if a.ci_id is not None}
    if inc.ci_id is not None:
        ci_ids.add(inc.ci_id)
    names = []
    for ci_id in sorted(ci_ids):
        try:
            names.append(cmdb.get_ci(s, ci_id).name)
        except OpsdeskError:
            continue
    return (
        f"Duration: {duration}\n"
        f"Service: {_service_name(s, inc)}\n"
        f"Affected CIs: {', '.join(sorted(names)) or 'none recorded'}\n"
        f"Alerts: {len(linked)}"
    )


def draft_timeline(s: Session, inc: Incident) -> str:
    """One line per timeline entry (entries about the postmortem itself left out)."""
    lines = [
        f"- {_utc(e.at)} · {e.actor} · {e.message}"
        for e in incidents.timeline(s, inc.id)
        if e.kind not in ("postmortem", "action_item")
    ]
    return "\n".join(lines)


def _generated(s: Session, inc: Incident) -> dict[str, str]:
    return {
        "summary": draft_summary(s, inc),
        "impact": draft_impact(s, inc),
        "timeline": draft_timeline(s, inc),
    }


def _last_generated(s: Session, incident_id: int) -> dict[str, str]:
    """The section texts opsdesk last wrote into the draft (kept in the timeline entry's data)."""
    rows = s.scalars(
        select(TimelineEntry)
        .where(TimelineEntry.incident_id == incident_id, TimelineEntry.kind == "postmortem")
        .order_by(TimelineEntry.at.desc(), TimelineEntry.id.desc())
    )
    for e in rows:
        generated = (e.data or {}).get("generated")
        if isinstance(generated, dict):
            return {k: str(v) for k, v in generated.items()}
    return {}


def _log(
    s: Session,
    pm: Postmortem,
    message: str,
    *,
    actor: Actor,
    now: datetime,
    kind: str = "postmortem",
    data: dict[str, Any] | None = None,
) -> None:
    incidents.add_timeline(
        s,
        pm.incident_id,
        kind=kind,
        at=now,
        actor=actor.label,
        message=message,
        data={"postmortem_id": pm.id, **(data or {})},
    )


def _create(s: Session, inc: Incident, *, actor: Actor, now: datetime) -> Postmortem:
    generated = _generated(s, inc)
    pm = Postmortem(
        incident_id=inc.id,
        status=PostmortemStatus.draft.value,
        **generated,
        root_cause="",
        went_well="",
        went_badly="",
        author_id=actor.id,
        created_at=now,
        updated_at=now,
    )
    s.add(pm)
    s.flush()
    how = "Postmortem draft created" if actor is SYSTEM else f"Postmortem started by {actor.label}"
    _log(s, pm, how, actor=actor, now=now, data={"generated": generated})
    audit.created(s, "postmortem", pm.id, audit.snapshot(pm, PM_FIELDS), actor=actor, at=now)
    return pm


def _refresh(s: Session, pm: Postmortem, inc: Incident, *, now: datetime) -> None:
    """Rebuild a draft's timeline; its summary and impact too where nobody edited them."""
    if pm.status != PostmortemStatus.draft.value:
        return
    generated = _generated(s, inc)
    before = _last_generated(s, inc.id)
    changed = []
    for f in GENERATED:
        current = getattr(pm, f)
        if current == generated[f]:
            continue
        if f == "timeline" or current == before.get(f) or not current.strip():
            changed.append(f)
    if not changed:
        return
    snap = audit.snapshot(pm, PM_FIELDS)
    for f in changed:
        setattr(pm, f, generated[f])
    pm.updated_at = now
    names = ", ".join(LABELS[f].lower() for f in changed)
    _log(s, pm, f"Postmortem draft refreshed ({names})", actor=SYSTEM, now=now, data={"generated": generated})
    audit.updated(s, "postmortem", pm.id, snap, audit.snapshot(pm, PM_FIELDS), actor=SYSTEM, at=now)


def ensure_draft(s: Session, inc: Incident, *, now: datetime) -> Postmortem:
    """The incident's postmortem, drafted if it has none. Idempotent; called when an incident
    resolves. A draft that exists already is refreshed (see the module docstring)."""
    pm = get_for_incident(s, inc.id)
    if pm is None:
        return _create(s, inc, actor=SYSTEM, now=now)
    _refresh(s, pm, inc, now=now)
    return pm


def start(s: Session, incident_id: int, *, actor: Actor, now: datetime) -> tuple[Postmortem, bool]:
    """A person starts the postmortem (before resolution if they like). Returns (it, created)."""
    inc = incidents.get_incident(s, incident_id)
    pm = get_for_incident(s, inc.id)
    if pm is not None:
        return pm, False
    return _create(s, inc, actor=actor, now=now), True


# --- editing -------------------------------------------------------------------------------------


def _editable(pm: Postmortem) -> None:
    if pm.status == PostmortemStatus.published.value:
        raise conflict(
            f"the postmortem of INC-{pm.incident_id} is published and read-only; "
            "a manager can reopen it to draft"
        )


def update_sections(
    s: Session, incident_id: int, data: PostmortemUpdate, *, actor: Actor, now: datetime
) -> Postmortem:
    pm = require_for_incident(s, incident_id)
    _editable(pm)
    changes = data.model_dump(exclude_unset=True)
    for f, v in changes.items():
        if v is None:
            raise invalid(f, "must not be null (send an empty string to clear it)")
    changed = [f for f, v in changes.items() if getattr(pm, f) != v]
    if not changed:
        return pm
    snap = audit.snapshot(pm, PM_FIELDS)
    for f in changed:
        setattr(pm, f, changes[f])
    pm.updated_at = now
    names = ", ".join(LABELS[f].lower() for f in changed)
    _log(s, pm, f"Postmortem edited by {actor.label} ({names})", actor=actor, now=now)
    audit.updated(s, "postmortem", pm.id, snap, audit.snapshot(pm, PM_FIELDS), actor=actor, at=now)
    return pm


_MOVES = {
    ("draft", "in_review"): "sent for review",
    ("in_review", "draft"): "sent back to draft",
    ("in_review", "published"): "published",
    ("published", "draft"): "reopened to draft",
}


def set_status(s: Session, incident_id: int, status: str, *, actor: Actor, now: datetime) -> Postmortem:
    pm = require_for_incident(s, incident_id)
    if status not in PostmortemStatus.__members__:
        raise invalid("status", "must be one of draft, in_review, published")
    if pm.status == status:
        return pm
    what = _MOVES.get((pm.status, status))
    if what is None:
        if status == PostmortemStatus.published.value:
            raise conflict("a postmortem is published from review: send it for review first")
        raise conflict(f"a {pm.status.replace('_', ' ')} postmortem cannot go to {status.replace('_', ' ')}")
    if pm.status == PostmortemStatus.published.value and not actor.can(Role.manager):
        raise forbidden("only a manager can reopen a published postmortem")
    if status == PostmortemStatus.published.value:
        missing = missing_to_publish(pm)
        if missing:
            raise OpsdeskError(
                detail="cannot publish: fill in " + ", ".join(LABELS[f].lower() for f in missing),
                status=422,
                title="Invalid input",
                errors=[FieldError(f, "must be filled in before publishing") for f in missing],
            )
    snap = audit.snapshot(pm, PM_FIELDS)
    pm.status = status
    pm.published_at = now if status == PostmortemStatus.published.value else None
    pm.updated_at = now
    _log(s, pm, f"Postmortem {what} by {actor.label}", actor=actor, now=now, data={"status": status})
    audit.updated(s, "postmortem", pm.id, snap, audit.snapshot(pm, PM_FIELDS), actor=actor, at=now)
    return pm


# --- action items --------------------------------------------------------------------------------


def _check_owner(s: Session, owner_id: int | None) -> None:
    if owner_id is None:
        return
    from opsdesk.auth import service as auth

    try:
        user = auth.get_user(s, owner_id)
    except OpsdeskError:
        raise invalid("owner_id", f"no user with id {owner_id}") from None
    if not user.active:
        raise invalid("owner_id", f"user {user.email} is deactivated")


def get_action_item(s: Session, item_id: int) -> ActionItem:
    item = s.get(ActionItem, item_id)
    if item is None:
        raise not_found("action item", item_id)
    return item


def _item_log(s: Session, item: ActionItem, message: str, *, actor: Actor, now: datetime) -> None:
    pm = get_postmortem(s, item.postmortem_id)
    _log(s, pm, message, actor=actor, now=now, kind="action_item", data={"action_item_id": item.id})


def add_action_item(s: Session, data: ActionItemIn, *, actor: Actor, now: datetime) -> ActionItem:
    try:
        get_postmortem(s, data.postmortem_id)
    except OpsdeskError:
        raise invalid("postmortem_id", f"no postmortem with id {data.postmortem_id}") from None
    _check_owner(s, data.owner_id)
    item = ActionItem(
        postmortem_id=data.postmortem_id,
        title=data.title,
        owner_id=data.owner_id,
        due_date=data.due_date,
        status=ITEM_OPEN,
        created_at=now,
        updated_at=now,
    )
    s.add(item)
    s.flush()
    _item_log(s, item, f"Action item #{item.id} added by {actor.label}: {item.title}", actor=actor, now=now)
    audit.created(s, "action_item", item.id, _item_snapshot(item), actor=actor, at=now)
    return item


def _item_snapshot(item: ActionItem) -> dict[str, Any]:
    snap = audit.snapshot(item, ITEM_FIELDS)
    snap["due_date"] = item.due_date.isoformat() if item.due_date else None
    return snap


def update_action_item(
    s: Session, item_id: int, data: ActionItemUpdate, *, actor: Actor, now: datetime
) -> ActionItem:
    item = get_action_item(s, item_id)
    changes = data.model_dump(exclude_unset=True)
    for f in ("title", "status"):
        if f in changes and changes[f] is None:
            raise invalid(f, "must not be null")
    if "owner_id" in changes:
        _check_owner(s, changes["owner_id"])
    changed = [f for f, v in changes.items() if getattr(item, f) != v]
    if not changed:
        return item
    snap = _item_snapshot(item)
    for f in changed:
        setattr(item, f, changes[f])
    if "status" in changed:
        item.done_at = now if item.status == ITEM_DONE else None
    item.updated_at = now
    if changed == ["status"]:
        verb = "done" if item.status == ITEM_DONE else "reopened"
        msg = f"Action item #{item.id} {verb} by {actor.label}: {item.title}"
    else:
        msg = f"Action item #{item.id} changed by {actor.label} ({', '.join(changed)}): {item.title}"
    _item_log(s, item, msg, actor=actor, now=now)
    audit.updated(s, "action_item", item.id, snap, _item_snapshot(item), actor=actor, at=now)
    return item


def mark_done(s: Session, item_id: int, *, actor: Actor, now: datetime) -> ActionItem:
    return update_action_item(s, item_id, ActionItemUpdate(status="done"), actor=actor, now=now)


def reopen_item(s: Session, item_id: int, *, actor: Actor, now: datetime) -> ActionItem:
    return update_action_item(s, item_id, ActionItemUpdate(status="open"), actor=actor, now=now)


def delete_action_item(s: Session, item_id: int, *, actor: Actor, now: datetime) -> None:
    item = get_action_item(s, item_id)
    _item_log(s, item, f"Action item #{item.id} deleted by {actor.label}: {item.title}", actor=actor, now=now)
    audit.deleted(s, "action_item", item.id, _item_snapshot(item), actor=actor, at=now)
    s.delete(item)


def list_action_items(
    s: Session,
    *,
    status: str | None = None,
    owner_id: int | None = None,
    overdue: bool = False,
    now: datetime,
    postmortem_id: int | None = None,
    limit: int = 1000,
) -> list[ActionItem]:
    """Action items across every postmortem: the soonest due first (undated last), then oldest.
    ``overdue`` means open and due before today (UTC)."""
    q = select(ActionItem)
    if status:
        q = q.where(ActionItem.status == status)
    if owner_id is not None:
        q = q.where(ActionItem.owner_id == owner_id)
    if postmortem_id is not None:
        q = q.where(ActionItem.postmortem_id == postmortem_id)
    if overdue:
        q = q.where(ActionItem.status == ITEM_OPEN, ActionItem.due_date < now.date())
    q = q.order_by(ActionItem.due_date.is_(None), ActionItem.due_date, ActionItem.id).limit(limit)
    return list(s.scalars(q))


def is_overdue(item: ActionItem, now: datetime) -> bool:
    return item.status == ITEM_OPEN and item.due_date is not None and item.due_date < now.date()


# --- export --------------------------------------------------------------------------------------


def user_names(s: Session, user_ids: Iterable[int | None], *, email: bool = True) -> dict[int, str]:
    """User id → "Name <e-mail>" (or just the name)."""
    from opsdesk.auth import service as auth

    out: dict[int, str] = {}
    for uid in {u for u in user_ids if u is not None}:
        try:
            user = auth.get_user(s, uid)
        except OpsdeskError:
            continue
        out[uid] = f"{user.name} <{user.email}>" if email else user.name
    return out


def to_markdown(s: Session, pm: Postmortem, *, now: datetime) -> str:
    inc = incidents.get_incident(s, pm.incident_id)
    items = list_action_items(s, postmortem_id=pm.id, now=now)
    owners = user_names(s, [i.owner_id for i in items])
    out = [f"# Postmortem: {inc.key} {inc.title}", ""]
    status = pm.status.replace("_", " ")
    if pm.published_at:
        status += f" {_utc(pm.published_at)}"
    out += [f"Status: {status} · last edited {_utc(pm.updated_at)}", ""]
    for f in SECTIONS:
        text = getattr(pm, f).strip()
        out += [f"## {LABELS[f]}", "", text or "_(empty)_", ""]
    out += ["## Action items", ""]
    if items:
        out += ["| # | Action | Owner | Due | Status |", "|---|---|---|---|---|"]
        for i in items:
            title = i.title.replace("|", "\\|")
            owner = owners.get(i.owner_id or 0, "—").replace("|", "\\|")
            due = i.due_date.isoformat() if i.due_date else "—"
            state = i.status + (" (overdue)" if is_overdue(i, now) else "")
            out.append(f"| {i.id} | {title} | {owner} | {due} | {state} |")
    else:
        out.append("_(none)_")
    return "\n".join(out) + "\n"
