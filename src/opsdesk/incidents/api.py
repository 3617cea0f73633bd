from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query
from sqlalchemy.orm import Session

from opsdesk.alerts import service as alerts
from opsdesk.core.actor import Role
from opsdesk.core.errors import invalid
from opsdesk.core.paging import next_cursor, parse_cursor
from opsdesk.core.schemas import Page
from opsdesk.incidents import service
from opsdesk.incidents.models import Incident, IncidentStatus
from opsdesk.incidents.priority import PRIORITIES
from opsdesk.incidents.schemas import (
    CommentIn,
    IncidentAction,
    IncidentCreate,
    IncidentDetail,
    IncidentOut,
    IncidentPatch,
    IncidentRef,
    MergeIn,
    SplitIn,
    StatusUpdateIn,
)
from opsdesk.web.deps import Ctx, QueryId, api

router = APIRouter(tags=["incidents"])

Note = Annotated[IncidentAction | None, Body()]


def _split_values(values: list[str] | None) -> list[str]:
    return [part.strip() for v in values or [] for part in v.split(",") if part.strip()]


@router.get("/incidents", response_model=Page[IncidentOut])
def list_incidents(
    ctx: Ctx = Depends(api()),
    status: Annotated[
        list[str] | None, Query(description="triggered, acknowledged, resolved, or open")
    ] = None,
    service_id: QueryId = None,
    priority: Annotated[list[str] | None, Query(description="P1 … P5 (repeat or comma-separate)")] = None,
    assignee_id: QueryId = None,
    team_id: QueryId = None,
    tag: Annotated[str | None, Query(max_length=100)] = None,
    q: Annotated[str | None, Query(max_length=200, description="Text in the title")] = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> object:
    """Incidents, newest first. ``status=open`` means triggered or acknowledged."""
    wanted: list[str] = []
    for part in _split_values(status):
        if part == "open":
            wanted += list(service.OPEN)
        elif part in IncidentStatus.__members__:
            wanted.append(part)
        else:
            raise invalid("status", f"{part!r} is not one of triggered, acknowledged, resolved, open")
    priorities = [p.upper() for p in _split_values(priority)]
    for p in priorities:
        if p not in PRIORITIES:
            raise invalid("priority", f"{p!r} is not one of {', '.join(PRIORITIES)}")
    with ctx.session() as s:
        rows = service.list_incidents(
            s,
            status=wanted or None,
            service_id=service_id,
            priority=priorities or None,
            assignee_id=assignee_id,
            team_id=team_id,
            tag=tag,
            q=q,
            before_id=parse_cursor(cursor) or None,
            limit=limit,
        )
        return {"items": rows, "next_cursor": next_cursor(rows, limit)}


def _ref(inc: Incident) -> dict[str, Any]:
    return IncidentRef.model_validate(inc).model_dump()


def detail(s: Session, incident_id: int) -> dict[str, Any]:
    """Everything about one incident, as the API shows it (the CLI's ``show --json`` too)."""
    inc = service.get_incident(s, incident_id)
    out = IncidentOut.model_validate(inc).model_dump()
    out["timeline"] = service.timeline(s, inc.id)
    out["alert_ids"] = [a.id for a in alerts.list_alerts(s, incident_id=inc.id, limit=10_000)]
    out["updates"] = service.list_updates(s, inc.id)
    out["related"] = [_ref(r) for r in service.related(s, inc.id)]
    merged_into = s.get(Incident, inc.merged_into_id) if inc.merged_into_id else None
    out["merged_into"] = _ref(merged_into) if merged_into else None
    out["merged_from"] = [_ref(m) for m in service.merged_into_this(s, inc.id)]
    out["postmortem_id"] = service.postmortem_id(s, inc.id)
    return out


def _detail(ctx: Ctx, incident_id: int) -> dict[str, Any]:
    with ctx.session() as s:
        return detail(s, incident_id)


@router.post("/incidents", response_model=IncidentDetail, status_code=201)
def declare(body: IncidentCreate, ctx: Ctx = Depends(api(Role.responder))) -> object:
    """Declare an incident by hand; ``description`` becomes the first comment."""
    from opsdesk.cmdb import service as cmdb

    with ctx.session() as s:
        service_id = body.service_id
        if body.service:
            svc = cmdb.get_service_by_name(s, body.service)
            if svc is None:
                raise invalid("service", f"no service named {body.service!r}")
            if service_id is not None and service_id != svc.id:
                raise invalid("service_id", f"does not match service {body.service!r}")
            service_id = svc.id
        inc = service.declare(
            s,
            title=body.title,
            service_id=service_id,
            severity=body.severity.value,
            impact=body.impact,
            urgency=body.urgency,
            description=body.description,
            actor=ctx.actor,
            now=ctx.now(),
        )
        return detail(s, inc.id)


@router.get("/incidents/{ref}", response_model=IncidentDetail)
def get_incident(ref: str, ctx: Ctx = Depends(api())) -> object:
    """One incident by id or key (``42`` or ``INC-42``), with its timeline, updates and links."""
    return _detail(ctx, service.parse_key(ref))


@router.patch("/incidents/{ref}", response_model=IncidentDetail)
def update_incident(ref: str, body: IncidentPatch, ctx: Ctx = Depends(api(Role.responder))) -> object:
    """Change title, severity, impact/urgency (→ priority), team, assignee, commander, comms lead
    or tags. Only the fields sent change; ``null`` clears a team or a person."""
    incident_id = service.parse_key(ref)
    changes = body.model_dump(mode="json", exclude_unset=True)
    with ctx.session() as s:
        service.update(s, incident_id, changes, actor=ctx.actor, now=ctx.now())
        return detail(s, incident_id)


@router.post("/incidents/{ref}/ack", response_model=IncidentDetail)
def acknowledge(ref: str, ctx: Ctx = Depends(api(Role.responder)), body: Note = None) -> object:
    incident_id = service.parse_key(ref)
    with ctx.session() as s:
        service.acknowledge(s, incident_id, actor=ctx.actor, now=ctx.now(), note=body.note if body else "")
        return detail(s, incident_id)


@router.post("/incidents/{ref}/resolve", response_model=IncidentDetail)
def resolve(ref: str, ctx: Ctx = Depends(api(Role.responder)), body: Note = None) -> object:
    incident_id = service.parse_key(ref)
    with ctx.session() as s:
        service.resolve(s, incident_id, actor=ctx.actor, now=ctx.now(), note=body.note if body else "")
        return detail(s, incident_id)


@router.post("/incidents/{ref}/reopen", response_model=IncidentDetail)
def reopen(ref: str, ctx: Ctx = Depends(api(Role.responder)), body: Note = None) -> object:
    """Back to triggered; refused unless resolved, and once closed."""
    incident_id = service.parse_key(ref)
    with ctx.session() as s:
        service.reopen(s, incident_id, actor=ctx.actor, now=ctx.now(), note=body.note if body else "")
        return detail(s, incident_id)


@router.post("/incidents/{ref}/close", response_model=IncidentDetail)
def close(ref: str, ctx: Ctx = Depends(api(Role.responder)), body: Note = None) -> object:
    """Close a resolved incident; 409 with the reason when its postmortem must be published first."""
    incident_id = service.parse_key(ref)
    with ctx.session() as s:
        service.close(
            s,
            incident_id,
            actor=ctx.actor,
            now=ctx.now(),
            settings=ctx.settings,
            note=body.note if body else "",
        )
        return detail(s, incident_id)


@router.post("/incidents/{ref}/comment", response_model=IncidentDetail)
def comment(ref: str, body: CommentIn, ctx: Ctx = Depends(api(Role.responder))) -> object:
    incident_id = service.parse_key(ref)
    with ctx.session() as s:
        service.comment(s, incident_id, text=body.text, actor=ctx.actor, now=ctx.now())
        return detail(s, incident_id)


@router.post("/incidents/{ref}/updates", response_model=IncidentDetail)
def post_update(ref: str, body: StatusUpdateIn, ctx: Ctx = Depends(api(Role.responder))) -> object:
    """A status update for stakeholders; ``public`` ones show on the status page."""
    incident_id = service.parse_key(ref)
    with ctx.session() as s:
        service.post_update(
            s,
            incident_id,
            status=body.status,
            message=body.message,
            public=body.public,
            actor=ctx.actor,
            now=ctx.now(),
        )
        return detail(s, incident_id)


@router.post("/incidents/{ref}/merge", response_model=IncidentDetail)
def merge(ref: str, body: MergeIn, ctx: Ctx = Depends(api(Role.responder))) -> object:
    """Merge other incidents into this one: their alerts move here, they resolve as merged."""
    incident_id = service.parse_key(ref)
    with ctx.session() as s:
        service.merge(s, incident_id, body.incident_ids, actor=ctx.actor, now=ctx.now())
        return detail(s, incident_id)


@router.post("/incidents/{ref}/split", response_model=IncidentDetail, status_code=201)
def split(ref: str, body: SplitIn, ctx: Ctx = Depends(api(Role.responder))) -> object:
    """Move some of this incident's alerts into a new incident; answers with the new one."""
    incident_id = service.parse_key(ref)
    with ctx.session() as s:
        new = service.split(s, incident_id, body.alert_ids, actor=ctx.actor, now=ctx.now(), title=body.title)
        return detail(s, new.id)


@router.post("/incidents/{ref}/related/{other}", response_model=IncidentDetail)
def link(ref: str, other: str, ctx: Ctx = Depends(api(Role.responder))) -> object:
    """Mark two incidents as related (shown on both)."""
    incident_id, other_id = service.parse_key(ref), service.parse_key(other)
    with ctx.session() as s:
        service.link(s, incident_id, other_id, actor=ctx.actor, now=ctx.now())
        return detail(s, incident_id)


@router.delete("/incidents/{ref}/related/{other}", response_model=IncidentDetail)
def unlink(ref: str, other: str, ctx: Ctx = Depends(api(Role.responder))) -> object:
    incident_id, other_id = service.parse_key(ref), service.parse_key(other)
    with ctx.session() as s:
        service.unlink(s, incident_id, other_id, actor=ctx.actor, now=ctx.now())
        return detail(s, incident_id)
