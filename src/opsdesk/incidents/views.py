from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, Response

from opsdesk.alerts import service as alerts
from opsdesk.cmdb import service as cmdb
from opsdesk.core.actor import Role
from opsdesk.incidents import service
from opsdesk.web.deps import Ctx, PathId, page
from opsdesk.web.render import back, render

router = APIRouter()


@router.get("/incidents", response_class=HTMLResponse)
def incident_list(request: Request, ctx: Ctx = Depends(page()), show: str = "open") -> HTMLResponse:
    with ctx.session() as s:
        status = list(service.OPEN) if show == "open" else None
        rows = service.list_incidents(s, status=status, limit=200)
        services = {svc.id: svc.name for svc in cmdb.list_services(s, limit=500)}
    return render(
        request, ctx, "incidents/list.html", nav="incidents", incidents=rows, services=services, show=show
    )


@router.get("/incidents/{incident_id}", response_class=HTMLResponse)
def incident_detail(request: Request, incident_id: PathId, ctx: Ctx = Depends(page())) -> HTMLResponse:
    with ctx.session() as s:
        inc = service.get_incident(s, incident_id)
        svc = cmdb.get_service(s, inc.service_id) if inc.service_id else None
        return render(
            request,
            ctx,
            "incidents/detail.html",
            nav="incidents",
            inc=inc,
            service=svc,
            timeline=service.timeline(s, inc.id),
            alerts=alerts.list_alerts(s, incident_id=inc.id, limit=100),
        )


@router.get("/incidents/{incident_id}/timeline", response_class=HTMLResponse)
def incident_timeline(request: Request, incident_id: PathId, ctx: Ctx = Depends(page())) -> HTMLResponse:
    with ctx.session() as s:
        service.get_incident(s, incident_id)
        return render(request, ctx, "incidents/timeline.html", timeline=service.timeline(s, incident_id))


def _next(next: str, incident_id: PathId) -> str:
    return next if next.startswith("/") and not next.startswith("//") else f"/incidents/{incident_id}"


@router.post("/incidents/{incident_id}/ack")
def incident_ack(
    incident_id: PathId,
    ctx: Ctx = Depends(page(Role.responder)),
    next: Annotated[str, Form()] = "",
    note: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    with ctx.session() as s:
        inc = service.acknowledge(s, incident_id, actor=ctx.actor, now=ctx.now(), note=note)
        key = inc.key
    return back(_next(next, incident_id), f"{key} acknowledged")


@router.post("/incidents/{incident_id}/resolve")
def incident_resolve(
    incident_id: PathId,
    ctx: Ctx = Depends(page(Role.responder)),
    next: Annotated[str, Form()] = "",
    note: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    with ctx.session() as s:
        inc = service.resolve(s, incident_id, actor=ctx.actor, now=ctx.now(), note=note)
        key = inc.key
    return back(_next(next, incident_id), f"{key} resolved")
