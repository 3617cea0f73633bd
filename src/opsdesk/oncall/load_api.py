"""``/api/v1/oncall/load`` (JSON) and ``/api/v1/oncall/load.csv``: the on-call load per person and
team over a period (:mod:`opsdesk.oncall.load` defines every number). Everyone may read it.

``start`` and ``end`` are ISO 8601 times with their UTC offset (by default the 30 days up to now),
at most 366 days apart; ``tz`` is the IANA zone the hours, nights, weekends and days are counted in
(default UTC). Bad input is a 422 problem naming the field.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel

from opsdesk.oncall import load
from opsdesk.web.deps import Ctx, QueryId, api

router = APIRouter(tags=["on-call"])

Start = Annotated[
    str | None, Query(max_length=64, description="ISO 8601 with offset; default: 30 days before end")
]
End = Annotated[str | None, Query(max_length=64, description="ISO 8601 with offset; default: now")]
Tz = Annotated[str, Query(max_length=64, description="IANA time zone of hours, nights, weekends, days")]


class _Stats(BaseModel):
    pages: int
    incidents: int
    acknowledged: int
    night: int
    weekend: int
    off_hours: int
    mtta_mean_seconds: float | None
    mtta_median_seconds: float | None
    mtta_count: int
    by_hour: list[int]


class PersonLoadOut(_Stats):
    user_id: int
    name: str
    email: str
    oncall_hours: float
    teams: list[str]


class TeamLoadOut(_Stats):
    team_id: int | None
    name: str | None
    people: int
    oncall_hours: float | None


class TotalsOut(_Stats):
    people: int


class DayOut(BaseModel):
    day: date
    pages: int
    off_hours: int


class LoadOut(BaseModel):
    start: datetime
    end: datetime
    time_zone: str
    team_id: int | None
    user_id: int | None
    night: str
    totals: TotalsOut
    people: list[PersonLoadOut]
    teams: list[TeamLoadOut]
    days: list[DayOut]


def report(
    ctx: Ctx, start: str | None, end: str | None, tz: str, team_id: int | None, user_id: int | None
) -> dict[str, Any]:
    zone = load.zone(tz)  # the time zone is checked first: a bad one is named even with bad times
    lo, hi = load.period(start, end, now=ctx.now())
    with ctx.session() as s:
        return load.load_report(
            s, start=lo, end=hi, tz=zone.key, team_id=team_id, user_id=user_id, now=ctx.now()
        )


@router.get("/oncall/load", response_model=LoadOut)
def oncall_load(
    start: Start = None,
    end: End = None,
    tz: Tz = "UTC",
    team_id: QueryId = None,
    user_id: QueryId = None,
    ctx: Ctx = Depends(api()),
) -> object:
    """Pages per person and team: by local hour of day, at night (22:00-07:00) and on weekends,
    incidents paged for and acknowledged, MTTA (mean and median seconds), hours on call; and pages
    per local day."""
    return report(ctx, start, end, tz, team_id, user_id)


@router.get(
    "/oncall/load.csv",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}, "description": "One row per person"}},
)
def oncall_load_csv(
    start: Start = None,
    end: End = None,
    tz: Tz = "UTC",
    team_id: QueryId = None,
    user_id: QueryId = None,
    ctx: Ctx = Depends(api()),
) -> Response:
    """The people of ``/oncall/load`` as CSV: one row per person, the hours as ``h00`` … ``h23``."""
    data = report(ctx, start, end, tz, team_id, user_id)
    name = f"oncall-load-{data['start']:%Y%m%d}-{data['end']:%Y%m%d}.csv"
    return Response(
        load.csv_text(data),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
