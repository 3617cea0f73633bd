from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from opsdesk.core.actor import Role
from opsdesk.core.paging import next_cursor, parse_cursor
from opsdesk.core.schemas import Page
from opsdesk.monitoring import service
from opsdesk.monitoring.models import MonitorStatus
from opsdesk.monitoring.schemas import CheckResultOut, MonitorIn, MonitorOut, MonitorUpdate
from opsdesk.web.deps import Ctx, PathId, QueryId, api

router = APIRouter(tags=["monitors"])
Limit = Annotated[int, Query(ge=1, le=500)]


@router.get("/monitors", response_model=Page[MonitorOut])
def list_monitors(
    ctx: Ctx = Depends(api()),
    status: MonitorStatus | None = None,
    service_id: QueryId = None,
    cursor: str | None = None,
    limit: Limit = 100,
) -> object:
    with ctx.session() as s:
        rows = service.list_monitors(
            s,
            after_id=parse_cursor(cursor),
            limit=limit,
            status=status.value if status else None,
            service_id=service_id,
        )
        return {"items": rows, "next_cursor": next_cursor(rows, limit)}


@router.post("/monitors", response_model=MonitorOut, status_code=201)
def create_monitor(data: MonitorIn, ctx: Ctx = Depends(api(Role.manager))) -> object:
    with ctx.session() as s:
        return service.create_monitor(s, data, actor=ctx.actor, now=ctx.now())


@router.get("/monitors/{monitor_id}", response_model=MonitorOut)
def get_monitor(monitor_id: PathId, ctx: Ctx = Depends(api())) -> object:
    with ctx.session() as s:
        return service.get_monitor(s, monitor_id)


@router.patch("/monitors/{monitor_id}", response_model=MonitorOut)
def update_monitor(monitor_id: PathId, data: MonitorUpdate, ctx: Ctx = Depends(api(Role.manager))) -> object:
    with ctx.session() as s:
        return service.update_monitor(s, monitor_id, data, actor=ctx.actor, now=ctx.now())


@router.delete("/monitors/{monitor_id}", status_code=204)
def delete_monitor(monitor_id: PathId, ctx: Ctx = Depends(api(Role.manager))) -> Response:
    with ctx.session() as s:
        service.delete_monitor(s, monitor_id, actor=ctx.actor, now=ctx.now())
    return Response(status_code=204)


@router.get("/monitors/{monitor_id}/results", response_model=list[CheckResultOut])
def monitor_results(monitor_id: PathId, ctx: Ctx = Depends(api()), limit: Limit = 50) -> object:
    """The latest check results, newest first."""
    with ctx.session() as s:
        service.get_monitor(s, monitor_id)
        return service.recent_results(s, monitor_id, limit)
