"""``/api/v1/schedules``: on-call schedules, who is on call, overrides, iCal feeds and import.

Everyone reads; a manager writes schedules (configuration); a responder adds and removes
overrides (people swap shifts). The iCal feeds at ``/ical/<token>.ics`` need no login: the secret
token in the URL is the credential, as calendar apps cannot log in.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

import orjson
from fastapi import APIRouter, Depends, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from opsdesk.core.actor import Role
from opsdesk.core.errors import OpsdeskError, invalid
from opsdesk.oncall import service
from opsdesk.oncall.schemas import (
    FeedOut,
    ImportOut,
    OverrideIn,
    OverrideOut,
    ScheduleIn,
    ScheduleOut,
    ScheduleUpdate,
    ShiftOut,
    ShiftsOut,
)
from opsdesk.web.deps import Ctx, PathId, api

router = APIRouter(tags=["on-call"])
feeds = APIRouter(tags=["on-call"])
MAX_ICS_BYTES = 2 * 1024 * 1024


def _aware(value: datetime | None, field: str) -> datetime | None:
    if value is not None and value.tzinfo is None:
        raise invalid(field, "give a time with its UTC offset, e.g. 2026-03-29T09:00:00+02:00 or …Z")
    return value


@router.get("/schedules", response_model=list[ScheduleOut])
def list_schedules(ctx: Ctx = Depends(api())) -> object:
    """Every schedule with who is on call now and its next gap in the coming 14 days."""
    now = ctx.now()
    with ctx.session() as s:
        users = service.Users(s)
        return [service.as_dict(s, x, now, users) for x in service.list_schedules(s)]


@router.post("/schedules", response_model=ScheduleOut, status_code=201)
def create_schedule(data: ScheduleIn, ctx: Ctx = Depends(api(Role.manager))) -> object:
    now = ctx.now()
    with ctx.session() as s:
        return service.as_dict(s, service.create(s, data, actor=ctx.actor, now=now), now)


@router.get("/schedules/{schedule_id}", response_model=ScheduleOut)
def get_schedule(schedule_id: PathId, ctx: Ctx = Depends(api())) -> object:
    now = ctx.now()
    with ctx.session() as s:
        return service.as_dict(s, service.get(s, schedule_id), now)


@router.patch("/schedules/{schedule_id}", response_model=ScheduleOut)
def update_schedule(
    schedule_id: PathId, data: ScheduleUpdate, ctx: Ctx = Depends(api(Role.manager))
) -> object:
    """Change fields; ``layers``, when given, replaces every layer."""
    now = ctx.now()
    with ctx.session() as s:
        return service.as_dict(s, service.update(s, schedule_id, data, actor=ctx.actor, now=now), now)


@router.delete("/schedules/{schedule_id}", status_code=204)
def delete_schedule(schedule_id: PathId, ctx: Ctx = Depends(api(Role.manager))) -> Response:
    with ctx.session() as s:
        service.delete(s, schedule_id, actor=ctx.actor, now=ctx.now())
    return Response(status_code=204)


@router.get("/schedules/{schedule_id}/on-call", response_model=ShiftOut)
def on_call(schedule_id: PathId, ctx: Ctx = Depends(api()), at: datetime | None = None) -> object:
    """Who is on call at ``at`` (default now): the final shift running then (user null in a gap)."""
    when = _aware(at, "at") or ctx.now()
    with ctx.session() as s:
        shift = service.on_call(s, service.get(s, schedule_id), when)
        return service.shift_dict(shift, service.Users(s))


@router.get("/schedules/{schedule_id}/shifts", response_model=ShiftsOut)
def shifts(
    schedule_id: PathId,
    ctx: Ctx = Depends(api()),
    start: datetime | None = None,
    end: datetime | None = None,
) -> object:
    """The final schedule, each layer's own shifts, and the gaps, over ``[start, end)`` (default: the
    next 14 days; at most 400 days)."""
    lo = _aware(start, "start") or ctx.now()
    hi = _aware(end, "end") or lo + timedelta(days=14)
    with ctx.session() as s:
        return service.shifts_dict(s, service.get(s, schedule_id), lo, hi)


@router.get("/schedules/{schedule_id}/gaps", response_model=list[ShiftOut])
def gaps(
    schedule_id: PathId,
    ctx: Ctx = Depends(api()),
    days: Annotated[int, Query(ge=1, le=400)] = 14,
) -> object:
    """Times in the next ``days`` days when nobody is on call."""
    now = ctx.now()
    with ctx.session() as s:
        fin = service.final(s, service.get(s, schedule_id), now, now + timedelta(days=days))
        users = service.Users(s)
        return [service.shift_dict(sh, users) for sh in fin if sh.user_id is None]


@router.get("/schedules/{schedule_id}/overrides", response_model=list[OverrideOut])
def list_overrides(schedule_id: PathId, ctx: Ctx = Depends(api()), past: bool = False) -> object:
    """Overrides that have not ended (``past=true``: all of them), oldest first."""
    now = ctx.now()
    with ctx.session() as s:
        service.get(s, schedule_id)
        rows = service.overrides(s, schedule_id, start=None if past else now)
        users = service.Users(s)
        return [service.override_dict(o, users) for o in rows]


@router.post("/schedules/{schedule_id}/overrides", response_model=OverrideOut, status_code=201)
def add_override(schedule_id: PathId, data: OverrideIn, ctx: Ctx = Depends(api(Role.responder))) -> object:
    """Put ``user`` on call over every layer from ``starts_at`` to ``ends_at`` (times without an offset
    are read in the schedule's time zone)."""
    with ctx.session() as s:
        o = service.add_override(s, schedule_id, data, actor=ctx.actor, now=ctx.now())
        return service.override_dict(o, service.Users(s))


@router.delete("/schedules/{schedule_id}/overrides/{override_id}", status_code=204)
def delete_override(
    schedule_id: PathId, override_id: PathId, ctx: Ctx = Depends(api(Role.responder))
) -> Response:
    with ctx.session() as s:
        service.delete_override(s, schedule_id, override_id, actor=ctx.actor, now=ctx.now())
    return Response(status_code=204)


@router.post("/schedules/{schedule_id}/import", response_model=ImportOut)
async def import_ical(schedule_id: PathId, request: Request, ctx: Ctx = Depends(api(Role.manager))) -> object:
    """Import an existing rotation from an iCal file (PagerDuty's or Grafana OnCall's export, a team
    calendar): send the file as the body (``Content-Type: text/calendar``), or JSON ``{"ics": "…"}``.
    People are matched by e-mail address, then by name. A regular rotation becomes a new top layer;
    anything else becomes one override per shift still to come."""
    body = await request.body()
    if request.headers.get("content-type", "").startswith("application/json"):
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise invalid("file", "the JSON body is not valid JSON") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("ics"), str):
            raise invalid(
                "ics", 'send {"ics": "<the iCal file as text>"}, or the file itself as text/calendar'
            )
        body = doc["ics"].encode()
    if not body.strip():
        raise invalid("file", "send the iCal file as the request body")
    if len(body) > MAX_ICS_BYTES:
        raise invalid("file", f"the file is over {MAX_ICS_BYTES // 1024 // 1024} MiB")

    def run() -> object:
        with ctx.session() as s:
            return service.import_ical(s, schedule_id, body, actor=ctx.actor, now=ctx.now())

    return await run_in_threadpool(run)


def _feed(request: Request, token: str) -> dict[str, str]:
    path = f"/ical/{token}.ics"
    base = request.app.state.settings.base_url.rstrip("/")
    return {"url": f"{base}{path}", "path": path}


@router.get("/schedules/{schedule_id}/feed", response_model=FeedOut)
def schedule_feed(schedule_id: PathId, request: Request, ctx: Ctx = Depends(api())) -> object:
    """The schedule's secret iCal URL (made on first use). Anyone with the URL can read the shifts."""
    with ctx.session() as s:
        service.get(s, schedule_id)
        return _feed(request, service.feed_token(s, schedule_id=schedule_id, now=ctx.now()))


@router.post("/schedules/{schedule_id}/feed/reset", response_model=FeedOut)
def reset_schedule_feed(
    schedule_id: PathId, request: Request, ctx: Ctx = Depends(api(Role.manager))
) -> object:
    """A new secret iCal URL for the schedule; the old one stops working."""
    with ctx.session() as s:
        service.get(s, schedule_id)
        return _feed(
            request,
            service.feed_token(s, schedule_id=schedule_id, now=ctx.now(), reset=True, actor=ctx.actor),
        )


def _me(ctx: Ctx) -> int:
    if ctx.actor.id is None:
        raise invalid("user", "this is a person's own feed: call it as a user")
    return ctx.actor.id


@router.get("/me/oncall-feed", response_model=FeedOut)
def my_feed(request: Request, ctx: Ctx = Depends(api())) -> object:
    """Your own secret iCal URL: your shifts on every schedule."""
    with ctx.session() as s:
        return _feed(request, service.feed_token(s, user_id=_me(ctx), now=ctx.now()))


@router.post("/me/oncall-feed/reset", response_model=FeedOut)
def reset_my_feed(request: Request, ctx: Ctx = Depends(api())) -> object:
    with ctx.session() as s:
        return _feed(
            request, service.feed_token(s, user_id=_me(ctx), now=ctx.now(), reset=True, actor=ctx.actor)
        )


@feeds.get(
    "/ical/{token}.ics",
    response_class=Response,
    responses={200: {"content": {"text/calendar": {}}}, 404: {"description": "unknown or reset token"}},
)
def ical_feed(token: str, request: Request) -> Response:
    """A schedule's or a person's shifts from 14 days ago to 90 days ahead (no login: the token is
    the credential)."""
    st = request.app.state
    with st.db.session() as s:
        feed = service.feed_for(s, token)
        if feed is None:
            raise OpsdeskError(
                detail="no calendar feed has this URL: it was reset, or never existed",
                status=404,
                title="Not found",
            )
        name, body = service.feed_ical(
            s, feed, st.clock.now(), url=st.settings.base_url.rstrip("/") + "/oncall"
        )
    safe = "".join(c if c.isalnum() else "-" for c in name).strip("-") or "oncall"
    return Response(
        body,
        media_type="text/calendar; charset=utf-8",
        headers={
            "content-disposition": f'inline; filename="{safe}.ics"',
            "cache-control": "private, max-age=300",
        },
    )
