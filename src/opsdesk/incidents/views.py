"""HTML pages for incidents.

- ``GET /incidents``: open (or all) incidents with priority, assignee and tags, filtered by
  priority, assignee, team, tag and title text; responders declare an incident from it.
- ``GET /incidents/{id}``: everything about one incident, with a form for each action. The page
  is made of "live" sections (elements with ``data-live`` and an id); ``/incidents/{id}/live``
  renders them all again, and ``static/incident.js`` swaps in the ones that changed whenever the
  event stream says so (sections the person is typing in are left alone).
- ``GET /incidents/{id}/stream``: Server-Sent Events. Every second the stream reads the incident's
  ``updated_at`` and last timeline id (a short session per poll, none held in between, so it
  works with any number of web processes on PostgreSQL) and sends ``event: changed`` with the new
  timeline entries when either moved; a ``: keepalive`` comment every 15 s; it ends when the
  client goes away or after an hour (EventSource reconnects, resuming from ``Last-Event-ID``).
- Form posts act through the incident service and redirect back with a message; a refused action
  (409, 422) comes back as a red message, and changes nothing.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from opsdesk.alerts import service as alerts
from opsdesk.auth import service as auth
from opsdesk.cmdb import service as cmdb
from opsdesk.core.actor import Role
from opsdesk.core.db import Database
from opsdesk.core.errors import OpsdeskError, invalid, not_found
from opsdesk.core.schemas import ID_MAX
from opsdesk.incidents import service
from opsdesk.incidents.models import Incident, IncidentStatus, UpdateStatus
from opsdesk.incidents.priority import LEVELS, PRIORITIES
from opsdesk.web.deps import Ctx, PathId, page
from opsdesk.web.render import back, render

router = APIRouter()

# The live stream (module attributes so a deployment or a test can tune them).
STREAM_POLL_SECONDS = 1.0
STREAM_KEEPALIVE_SECONDS = 15.0
STREAM_LIFETIME_SECONDS = 3600.0
STREAM_RETRY_MS = 3000
_open_streams = 0


def open_streams() -> int:
    """Event streams being served by this process right now."""
    return _open_streams


# --- helpers -----------------------------------------------------------------------------------


def _url(incident_id: int) -> str:
    return f"/incidents/{incident_id}"


def _next(next: str, incident_id: int) -> str:
    return next if next.startswith("/") and not next.startswith("//") else _url(incident_id)


def _optional_id(value: str, field: str) -> int | None:
    value = value.strip()
    if not value:
        return None
    if not (value.isascii() and value.isdigit()) or not 0 < int(value) <= ID_MAX:
        raise invalid(field, f"{value!r} is not an id")
    return int(value)


def _act(target: str, fn: Callable[[Session], str], ctx: Ctx) -> Response:
    """Run ``fn`` in one transaction; redirect to ``target`` with its message, or with the error
    (the transaction rolled back, nothing changed)."""
    try:
        with ctx.session() as s:
            msg = fn(s)
    except OpsdeskError as exc:
        return back(target, exc.detail, kind="bad")
    return back(target, msg)


def _people(s: Session) -> list[Any]:
    return [u for u in auth.list_users(s, limit=1000) if u.active]


def _names(s: Session, user_ids: set[int | None]) -> dict[int, str]:
    from opsdesk.auth.models import User

    out = {}
    for uid in user_ids:
        if uid is not None:
            user = s.get(User, uid)
            if user is not None:
                out[uid] = user.name or user.email
    return out


# --- the list ----------------------------------------------------------------------------------


@router.get("/incidents", response_class=HTMLResponse)
def incident_list(
    request: Request,
    ctx: Ctx = Depends(page()),
    show: str = "open",
    priority: Annotated[str, Query(max_length=10)] = "",
    assignee: Annotated[str, Query(max_length=20)] = "",
    team: Annotated[str, Query(max_length=20)] = "",
    tag: Annotated[str, Query(max_length=100)] = "",
    q: Annotated[str, Query(max_length=200)] = "",
) -> HTMLResponse:
    flash = None
    with ctx.session() as s:
        filters: dict[str, Any] = {
            "status": list(service.OPEN) if show == "open" else None,
            "priority": [priority] if priority in PRIORITIES else None,
            "q": q or None,
        }
        try:
            filters["assignee_id"] = ctx.actor.id if assignee == "me" else _optional_id(assignee, "assignee")
            filters["team_id"] = _optional_id(team, "team")
            if tag.strip():
                filters["tag"] = service.normalize_tags([tag], field="tag")[0]
        except OpsdeskError as exc:
            flash = exc.detail
            filters.update(assignee_id=None, team_id=None, tag=None)
        rows = service.list_incidents(s, limit=200, **filters)
        services = {svc.id: svc.name for svc in cmdb.list_services(s, limit=500)}
        people = _people(s)
        names = _names(s, {i.assignee_id for i in rows})
        teams = auth.list_teams(s, limit=500)
    context: dict[str, Any] = {}
    if flash:
        context.update(flash=flash, flash_kind="bad")
    return render(
        request,
        ctx,
        "incidents/list.html",
        nav="incidents",
        incidents=rows,
        services=services,
        show=show,
        people=people,
        names=names,
        teams=teams,
        priorities=PRIORITIES,
        levels=LEVELS,
        severities=service.SEVERITIES,
        f={"priority": priority, "assignee": assignee, "team": team, "tag": tag, "q": q},
        **context,
    )


@router.post("/incidents")
def incident_declare(
    ctx: Ctx = Depends(page(Role.responder)),
    title: Annotated[str, Form(max_length=500)] = "",
    service_id: Annotated[str, Form(max_length=20)] = "",
    severity: Annotated[str, Form(max_length=20)] = "error",
    impact: Annotated[str, Form(max_length=10)] = "",
    urgency: Annotated[str, Form(max_length=10)] = "",
    description: Annotated[str, Form(max_length=10_000)] = "",
) -> Response:
    created: list[int] = []

    def run(s: Session) -> str:
        inc = service.declare(
            s,
            title=title,
            service_id=_optional_id(service_id, "service_id"),
            severity=severity,
            impact=impact or None,
            urgency=urgency or None,
            description=description,
            actor=ctx.actor,
            now=ctx.now(),
        )
        created.append(inc.id)
        return f"{inc.key} declared"

    try:
        with ctx.session() as s:
            msg = run(s)
    except OpsdeskError as exc:
        return back("/incidents", exc.detail, kind="bad")
    return back(_url(created[0]), msg)


# --- one incident ------------------------------------------------------------------------------


def _escalation(s: Session, incident_id: int) -> dict[str, Any] | None:
    """Where the incident is in its service's escalation policy (None: it was never escalated)."""
    from opsdesk.oncall import escalation

    esc = escalation.escalation_of(s, incident_id)
    return escalation.escalation_dict(s, esc) if esc is not None else None


def _detail_context(s: Session, ctx: Ctx, inc: Incident) -> dict[str, Any]:
    entries = service.timeline(s, inc.id)
    incident_alerts = alerts.list_alerts(s, incident_id=inc.id, limit=500)
    merged_into = s.get(Incident, inc.merged_into_id) if inc.merged_into_id else None
    can_act = ctx.actor.can(Role.responder) and merged_into is None
    mergeable: list[Incident] = []
    if can_act and inc.status != IncidentStatus.resolved.value:
        mergeable = [
            i
            for i in service.list_incidents(s, status=list(service.OPEN), limit=100)
            if i.id != inc.id and i.merged_into_id is None
        ]
    people_ids = {inc.assignee_id, inc.commander_id, inc.comms_lead_id, inc.acknowledged_by_id}
    return {
        "inc": inc,
        "service": cmdb.get_service(s, inc.service_id) if inc.service_id else None,
        "ci": cmdb.get_ci(s, inc.ci_id) if inc.ci_id else None,
        "team": auth.get_team(s, inc.team_id) if inc.team_id else None,
        "names": _names(s, people_ids),
        "people": _people(s) if can_act else [],
        "teams": auth.list_teams(s, limit=500) if can_act else [],
        "timeline": entries,
        "last_entry_id": max((e.id for e in entries), default=0),
        "alerts": incident_alerts,
        "updates": service.list_updates(s, inc.id),
        "related": service.related(s, inc.id),
        "merged_into": merged_into,
        "merged_from": service.merged_into_this(s, inc.id),
        "mergeable": mergeable,
        "postmortem_id": service.postmortem_id(s, inc.id),
        "escalation": _escalation(s, inc.id),
        "can_act": can_act,
        "levels": LEVELS,
        "severities": service.SEVERITIES,
        "update_statuses": [u.value for u in UpdateStatus],
    }


@router.get("/incidents/{incident_id}", response_class=HTMLResponse)
def incident_detail(request: Request, incident_id: PathId, ctx: Ctx = Depends(page())) -> HTMLResponse:
    with ctx.session() as s:
        inc = service.get_incident(s, incident_id)
        return render(request, ctx, "incidents/detail.html", nav="incidents", **_detail_context(s, ctx, inc))


@router.get("/incidents/{incident_id}/live", response_class=HTMLResponse)
def incident_live(request: Request, incident_id: PathId, ctx: Ctx = Depends(page())) -> HTMLResponse:
    """Every live section of the incident page, for the page's script to swap in."""
    with ctx.session() as s:
        inc = service.get_incident(s, incident_id)
        return render(request, ctx, "incidents/live.html", **_detail_context(s, ctx, inc))


@router.get("/incidents/{incident_id}/timeline", response_class=HTMLResponse)
def incident_timeline(request: Request, incident_id: PathId, ctx: Ctx = Depends(page())) -> HTMLResponse:
    with ctx.session() as s:
        service.get_incident(s, incident_id)
        return render(request, ctx, "incidents/timeline.html", timeline=service.timeline(s, incident_id))


# --- the live stream ---------------------------------------------------------------------------


def _poll(
    db: Database, incident_id: int, after_id: int
) -> tuple[tuple[Any, int] | None, list[dict[str, Any]]]:
    """One short session: the incident's marker, and the timeline entries after ``after_id``."""
    with db.session() as s:
        marker = service.live_marker(s, incident_id)
        if marker is None or marker[1] <= after_id:
            return marker, []
        entries = [
            {
                "id": e.id,
                "at": e.at.isoformat(),
                "kind": e.kind,
                "actor": e.actor,
                "message": e.message,
            }
            for e in service.timeline_after(s, incident_id, after_id, limit=50)
        ]
        return marker, entries


def _event(name: str, data: dict[str, Any], event_id: int | None = None) -> bytes:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {name}\ndata: ".encode() + orjson.dumps(data) + b"\n\n"


async def _changes(db: Database, incident_id: int, after_id: int, updated_at: Any) -> AsyncIterator[bytes]:
    global _open_streams
    _open_streams += 1
    try:
        yield f"retry: {STREAM_RETRY_MS}\n\n".encode()
        started = last_sent = time.monotonic()
        first = True
        while True:
            if not first:
                await asyncio.sleep(STREAM_POLL_SECONDS)
            first = False
            now = time.monotonic()
            if now - started >= STREAM_LIFETIME_SECONDS:
                return
            marker, entries = await run_in_threadpool(_poll, db, incident_id, after_id)
            if marker is None:
                yield _event("gone", {"incident_id": incident_id})
                return
            if marker[1] > after_id or marker[0] != updated_at:
                updated_at, after_id = marker[0], max(after_id, marker[1])
                data = {
                    "incident_id": incident_id,
                    "updated_at": updated_at.isoformat(),
                    "last_id": after_id,
                    "entries": entries,
                }
                yield _event("changed", data, after_id)
                last_sent = now
            elif now - last_sent >= STREAM_KEEPALIVE_SECONDS:
                yield b": keepalive\n\n"
                last_sent = now
    finally:
        _open_streams -= 1


@router.get("/incidents/{incident_id}/stream")
async def incident_stream(
    request: Request,
    incident_id: PathId,
    ctx: Ctx = Depends(page()),
    after: Annotated[int | None, Query(ge=0, le=ID_MAX, description="Last timeline id seen")] = None,
) -> StreamingResponse:
    """Server-Sent Events: ``changed`` whenever the incident or its timeline changes."""
    marker, _ = await run_in_threadpool(_poll, ctx.db, incident_id, ID_MAX)
    if marker is None:
        raise not_found("incident", incident_id)
    last_event = request.headers.get("last-event-id", "").strip()
    if last_event.isascii() and last_event.isdigit() and int(last_event) <= ID_MAX:
        after = int(last_event)
    start_after = marker[1] if after is None else min(after, marker[1])
    return StreamingResponse(
        _changes(ctx.db, incident_id, start_after, marker[0]),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


# --- actions -----------------------------------------------------------------------------------

Note = Annotated[str, Form(max_length=2000)]
Next = Annotated[str, Form()]


@router.post("/incidents/{incident_id}/ack")
def incident_ack(
    incident_id: PathId, ctx: Ctx = Depends(page(Role.responder)), next: Next = "", note: Note = ""
) -> Response:
    def run(s: Session) -> str:
        inc = service.acknowledge(s, incident_id, actor=ctx.actor, now=ctx.now(), note=note)
        return f"{inc.key} acknowledged"

    return _act(_next(next, incident_id), run, ctx)


@router.post("/incidents/{incident_id}/resolve")
def incident_resolve(
    incident_id: PathId, ctx: Ctx = Depends(page(Role.responder)), next: Next = "", note: Note = ""
) -> Response:
    def run(s: Session) -> str:
        return f"{service.resolve(s, incident_id, actor=ctx.actor, now=ctx.now(), note=note).key} resolved"

    return _act(_next(next, incident_id), run, ctx)


@router.post("/incidents/{incident_id}/reopen")
def incident_reopen(
    incident_id: PathId, ctx: Ctx = Depends(page(Role.responder)), note: Note = ""
) -> Response:
    def run(s: Session) -> str:
        return f"{service.reopen(s, incident_id, actor=ctx.actor, now=ctx.now(), note=note).key} reopened"

    return _act(_url(incident_id), run, ctx)


@router.post("/incidents/{incident_id}/close")
def incident_close(
    incident_id: PathId, ctx: Ctx = Depends(page(Role.responder)), note: Note = ""
) -> Response:
    def run(s: Session) -> str:
        inc = service.close(s, incident_id, actor=ctx.actor, now=ctx.now(), settings=ctx.settings, note=note)
        return f"{inc.key} closed"

    return _act(_url(incident_id), run, ctx)


@router.post("/incidents/{incident_id}/comment")
def incident_comment(
    incident_id: PathId,
    ctx: Ctx = Depends(page(Role.responder)),
    text: Annotated[str, Form(max_length=10_000)] = "",
) -> Response:
    def run(s: Session) -> str:
        service.comment(s, incident_id, text=text, actor=ctx.actor, now=ctx.now())
        return "Comment added"

    return _act(_url(incident_id), run, ctx)


@router.post("/incidents/{incident_id}/updates")
def incident_post_update(
    incident_id: PathId,
    ctx: Ctx = Depends(page(Role.responder)),
    status: Annotated[str, Form(max_length=20)] = "",
    message: Annotated[str, Form(max_length=10_000)] = "",
    public: Annotated[str, Form(max_length=10)] = "",
) -> Response:
    def run(s: Session) -> str:
        service.post_update(
            s,
            incident_id,
            status=status,
            message=message,
            public=bool(public),
            actor=ctx.actor,
            now=ctx.now(),
        )
        return f"{'Public' if public else 'Internal'} update posted"

    return _act(_url(incident_id), run, ctx)


_TAG_SPLIT = re.compile(r"[\s,]+")


@router.post("/incidents/{incident_id}/edit")
def incident_edit(
    incident_id: PathId,
    ctx: Ctx = Depends(page(Role.responder)),
    severity: Annotated[str, Form(max_length=20)] = "",
    impact: Annotated[str, Form(max_length=10)] = "",
    urgency: Annotated[str, Form(max_length=10)] = "",
    team_id: Annotated[str, Form(max_length=20)] = "",
    assignee_id: Annotated[str, Form(max_length=20)] = "",
    commander_id: Annotated[str, Form(max_length=20)] = "",
    comms_lead_id: Annotated[str, Form(max_length=20)] = "",
    tags: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    """The details form: every field is posted; what did not change records nothing."""

    def run(s: Session) -> str:
        changes: dict[str, Any] = {
            "team_id": _optional_id(team_id, "team_id"),
            "assignee_id": _optional_id(assignee_id, "assignee_id"),
            "commander_id": _optional_id(commander_id, "commander_id"),
            "comms_lead_id": _optional_id(comms_lead_id, "comms_lead_id"),
            "tags": [t for t in _TAG_SPLIT.split(tags) if t],
        }
        for f, v in (("severity", severity), ("impact", impact), ("urgency", urgency)):
            if v:
                changes[f] = v
        before = service.live_marker(s, incident_id)
        inc = service.update(s, incident_id, changes, actor=ctx.actor, now=ctx.now())
        s.flush()
        return f"{inc.key} saved" if service.live_marker(s, incident_id) != before else "Nothing changed"

    return _act(_url(incident_id), run, ctx)


@router.post("/incidents/{incident_id}/related")
def incident_link(
    incident_id: PathId,
    ctx: Ctx = Depends(page(Role.responder)),
    other: Annotated[str, Form(max_length=30)] = "",
) -> Response:
    def run(s: Session) -> str:
        other_id = service.parse_key(other) if other.strip() else None
        if other_id is None:
            raise invalid("other", "name an incident, e.g. INC-12")
        service.link(s, incident_id, other_id, actor=ctx.actor, now=ctx.now())
        return f"Related to {service.key_of(other_id)}"

    return _act(_url(incident_id), run, ctx)


@router.post("/incidents/{incident_id}/unrelate")
def incident_unlink(
    incident_id: PathId,
    ctx: Ctx = Depends(page(Role.responder)),
    other_id: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    def run(s: Session) -> str:
        other = _optional_id(other_id, "other_id")
        if other is None:
            raise invalid("other_id", "name the related incident")
        service.unlink(s, incident_id, other, actor=ctx.actor, now=ctx.now())
        return f"No longer related to {service.key_of(other)}"

    return _act(_url(incident_id), run, ctx)


@router.post("/incidents/{incident_id}/merge")
def incident_merge(
    incident_id: PathId,
    ctx: Ctx = Depends(page(Role.responder)),
    incident_ids: Annotated[list[str] | None, Form()] = None,
) -> Response:
    def run(s: Session) -> str:
        others = [service.parse_key(r) for r in incident_ids or [] if r.strip()]
        if not others:
            raise invalid("incident_ids", "tick at least one incident to merge into this one")
        service.merge(s, incident_id, others, actor=ctx.actor, now=ctx.now())
        return f"Merged {', '.join(service.key_of(o) for o in others)} into {service.key_of(incident_id)}"

    return _act(_url(incident_id), run, ctx)


@router.post("/incidents/{incident_id}/split")
def incident_split(
    incident_id: PathId,
    ctx: Ctx = Depends(page(Role.responder)),
    alert_ids: Annotated[list[str] | None, Form()] = None,
    title: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    created: list[int] = []

    def run(s: Session) -> str:
        ids = [_optional_id(a, "alert_ids") for a in alert_ids or []]
        wanted = [a for a in ids if a is not None]
        if not wanted:
            raise invalid("alert_ids", "tick the alerts to split off")
        new = service.split(s, incident_id, wanted, actor=ctx.actor, now=ctx.now(), title=title or None)
        created.append(new.id)
        return f"{new.key} opened with {len(wanted)} alert(s) from {service.key_of(incident_id)}"

    try:
        with ctx.session() as s:
            msg = run(s)
    except OpsdeskError as exc:
        return back(_url(incident_id), exc.detail, kind="bad")
    return back(_url(created[0]), msg)
