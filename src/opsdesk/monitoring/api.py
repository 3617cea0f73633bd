from __future__ import annotations

from dataclasses import asdict
from datetime import date, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel, Field

from opsdesk.core.actor import Role
from opsdesk.core.errors import invalid
from opsdesk.core.paging import next_cursor, parse_cursor
from opsdesk.core.schemas import Out, Page
from opsdesk.monitoring import service, stats
from opsdesk.monitoring.models import Monitor, MonitorStatus
from opsdesk.monitoring.schemas import CheckResultOut, MonitorIn, MonitorOut, MonitorUpdate
from opsdesk.web.deps import Ctx, PathId, QueryId, api

router = APIRouter(tags=["monitors"])


def _out(ctx: Ctx, m: Monitor) -> MonitorOut:
    out = MonitorOut.model_validate(m)
    if m.ping_key:
        out.ping_url = f"{ctx.settings.base_url}/ping/{m.ping_key}"
    return out


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
        return {"items": [_out(ctx, m) for m in rows], "next_cursor": next_cursor(rows, limit)}


@router.post("/monitors", response_model=MonitorOut, status_code=201)
def create_monitor(data: MonitorIn, ctx: Ctx = Depends(api(Role.manager))) -> object:
    with ctx.session() as s:
        return _out(ctx, service.create_monitor(s, data, actor=ctx.actor, now=ctx.now()))


@router.get("/monitors/{monitor_id}", response_model=MonitorOut)
def get_monitor(monitor_id: PathId, ctx: Ctx = Depends(api())) -> object:
    with ctx.session() as s:
        return _out(ctx, service.get_monitor(s, monitor_id))


@router.patch("/monitors/{monitor_id}", response_model=MonitorOut)
def update_monitor(monitor_id: PathId, data: MonitorUpdate, ctx: Ctx = Depends(api(Role.manager))) -> object:
    with ctx.session() as s:
        return _out(ctx, service.update_monitor(s, monitor_id, data, actor=ctx.actor, now=ctx.now()))


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


class AvailabilityOut(BaseModel):
    percent: float | None = Field(description="Share of the known time the monitor was not down.")
    known_seconds: float
    down_seconds: float
    outages: int


class LatencyOut(BaseModel):
    count: int
    p50: float | None
    p95: float | None
    p99: float | None
    mean: float | None


class UptimeOut(BaseModel):
    start: datetime
    end: datetime
    availability: AvailabilityOut
    latency: LatencyOut


class StateChangeOut(Out):
    at: datetime
    old: str
    new: str
    flapping: bool
    message: str


class DayOut(BaseModel):
    day: date
    checks: int
    failures: int
    percent: float | None


def _window(
    ctx: Ctx, range_: str | None, start: datetime | None, end: datetime | None
) -> tuple[datetime, datetime]:
    if start is not None or end is not None:
        if start is None or end is None:
            raise invalid("start" if start is None else "end", "give both start and end, or a range")
        if start.tzinfo is None or end.tzinfo is None:
            raise invalid("start", "give times with a time zone, e.g. 2026-03-01T00:00:00Z")
        if end <= start:
            raise invalid("end", "end must be after start")
        if end - start > timedelta(days=400):
            raise invalid("start", "a range is at most 400 days")
        return start, end
    try:
        return stats.parse_range(range_, ctx.now())
    except ValueError as exc:
        raise invalid("range", str(exc)) from None


RangeQ = Annotated[str | None, Query(alias="range", description="24h, 7d, 30d or 90d (default 24h).")]


@router.get("/monitors/{monitor_id}/uptime", response_model=UptimeOut)
def monitor_uptime(
    monitor_id: PathId,
    ctx: Ctx = Depends(api()),
    range_: RangeQ = None,
    start: datetime | None = None,
    end: datetime | None = None,
) -> object:
    """Availability (time-weighted, from the state history) and response-time percentiles."""
    t0, t1 = _window(ctx, range_, start, end)
    with ctx.session() as s:
        service.get_monitor(s, monitor_id)
        a = stats.availability(s, [monitor_id], t0, t1)[monitor_id]
        lat = stats.latency(s, [monitor_id], t0, t1)
    return {"start": t0, "end": t1, "availability": asdict(a), "latency": asdict(lat)}


@router.get("/services/{service_id}/uptime", response_model=UptimeOut, tags=["services"])
def service_uptime(
    service_id: PathId,
    ctx: Ctx = Depends(api()),
    range_: RangeQ = None,
    start: datetime | None = None,
    end: datetime | None = None,
) -> object:
    """A service is down while any of its monitors is down."""
    from opsdesk.cmdb import service as cmdb

    t0, t1 = _window(ctx, range_, start, end)
    with ctx.session() as s:
        cmdb.get_service(s, service_id)
        a = stats.service_availability(s, service_id, t0, t1)
        ids = [m.id for m in service.list_monitors(s, service_id=service_id, limit=10_000)]
        lat = stats.latency(s, ids, t0, t1) if ids else stats.Percentiles(0, None, None, None, None)
    return {"start": t0, "end": t1, "availability": asdict(a), "latency": asdict(lat)}


@router.get("/monitors/{monitor_id}/history", response_model=list[StateChangeOut])
def monitor_history(monitor_id: PathId, ctx: Ctx = Depends(api()), limit: Limit = 100) -> object:
    """State changes, newest first."""
    with ctx.session() as s:
        service.get_monitor(s, monitor_id)
        return stats.history(s, monitor_id, limit)


@router.get("/monitors/{monitor_id}/daily", response_model=list[DayOut])
def monitor_daily(
    monitor_id: PathId, ctx: Ctx = Depends(api()), days: Annotated[int, Query(ge=1, le=400)] = 90
) -> object:
    """Checks and failures per UTC day, oldest first (the uptime bar)."""
    with ctx.session() as s:
        service.get_monitor(s, monitor_id)
        bar = stats.daily_bars(s, [monitor_id], ctx.now().date(), days)[monitor_id]
    return [{"day": d.day, "checks": d.checks, "failures": d.failures, "percent": d.percent} for d in bar]
