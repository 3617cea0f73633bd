from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, Query

from opsdesk.alerts import service as alerts
from opsdesk.core.actor import Role
from opsdesk.core.errors import invalid
from opsdesk.core.paging import next_cursor, parse_cursor
from opsdesk.core.schemas import Page
from opsdesk.incidents import service
from opsdesk.incidents.models import IncidentStatus
from opsdesk.incidents.schemas import IncidentAction, IncidentDetail, IncidentOut
from opsdesk.web.deps import Ctx, PathId, QueryId, api

router = APIRouter(tags=["incidents"])


@router.get("/incidents", response_model=Page[IncidentOut])
def list_incidents(
    ctx: Ctx = Depends(api()),
    status: Annotated[
        list[str] | None, Query(description="triggered, acknowledged, resolved, or open")
    ] = None,
    service_id: QueryId = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> object:
    """Incidents, newest first. ``status=open`` means triggered or acknowledged."""
    wanted: list[str] = []
    for st in status or []:
        for part in st.split(","):
            if part == "open":
                wanted += list(service.OPEN)
            elif part in IncidentStatus.__members__:
                wanted.append(part)
            else:
                raise invalid("status", f"{part!r} is not one of triggered, acknowledged, resolved, open")
    with ctx.session() as s:
        rows = service.list_incidents(
            s,
            status=wanted or None,
            service_id=service_id,
            before_id=parse_cursor(cursor) or None,
            limit=limit,
        )
        return {"items": rows, "next_cursor": next_cursor(rows, limit)}


def _detail(ctx: Ctx, incident_id: PathId) -> dict[str, object]:
    with ctx.session() as s:
        inc = service.get_incident(s, incident_id)
        out = IncidentOut.model_validate(inc).model_dump()
        out["timeline"] = service.timeline(s, inc.id)
        out["alert_ids"] = [a.id for a in alerts.list_alerts(s, incident_id=inc.id, limit=500)]
        return out


@router.get("/incidents/{ref}", response_model=IncidentDetail)
def get_incident(ref: str, ctx: Ctx = Depends(api())) -> object:
    """One incident by id or key (``42`` or ``INC-42``), with its timeline."""
    return _detail(ctx, service.parse_key(ref))


@router.post("/incidents/{ref}/ack", response_model=IncidentDetail)
def acknowledge(
    ref: str, ctx: Ctx = Depends(api(Role.responder)), body: Annotated[IncidentAction | None, Body()] = None
) -> object:
    incident_id = service.parse_key(ref)
    with ctx.session() as s:
        service.acknowledge(s, incident_id, actor=ctx.actor, now=ctx.now(), note=body.note if body else "")
    return _detail(ctx, incident_id)


@router.post("/incidents/{ref}/resolve", response_model=IncidentDetail)
def resolve(
    ref: str, ctx: Ctx = Depends(api(Role.responder)), body: Annotated[IncidentAction | None, Body()] = None
) -> object:
    incident_id = service.parse_key(ref)
    with ctx.session() as s:
        service.resolve(s, incident_id, actor=ctx.actor, now=ctx.now(), note=body.note if body else "")
    return _detail(ctx, incident_id)
