"""``GET /oncall/load``: the on-call load page (everyone may read it).

Filters: the last 7, 30 or 90 days (``?days=``, up to 366), a team, a person and the time zone the
hours are counted in (default UTC). Two uPlot charts drawn from JSON in the page: pages by local
hour of day (stacked by person, the busiest :data:`STACKED` and "others"; one person when one is
picked), and pages per local day with the off-hours ones. Then the numbers per person and per team
(:mod:`opsdesk.oncall.load` defines them) and a link to the same report as CSV.

It is mounted ahead of the schedule pages, whose ``/oncall/{schedule_id}`` would otherwise be asked
about "load" (and refuse it as not an id).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import select

from opsdesk.auth.models import Team, User
from opsdesk.core.errors import OpsdeskError
from opsdesk.oncall import load
from opsdesk.oncall.views import PALETTE, ZONES
from opsdesk.web.deps import Ctx, QueryId, page
from opsdesk.web.render import render

router = APIRouter()

PRESETS = (7, 30, 90)
STACKED = 8  # people drawn separately in the hour chart; the rest are "others"
OTHERS_COLOUR = "#adb5bd"


def _epoch(day: date) -> int:
    """A local calendar day as UTC midnight: the chart labels it in UTC, so it shows that date."""
    return int(datetime.combine(day, time.min, tzinfo=UTC).timestamp())


def hour_chart(report: dict[str, Any]) -> dict[str, Any]:
    people = [p for p in report["people"] if p["pages"]]
    shown, rest = people[: STACKED - 1], people[STACKED - 1 :]
    if len(rest) == 1:
        shown, rest = people, []
    series = [
        {"label": p["name"], "color": PALETTE[i % len(PALETTE)], "y": list(p["by_hour"])}
        for i, p in enumerate(shown)
    ]
    if rest:
        others = [sum(p["by_hour"][h] for p in rest) for h in range(24)]
        series.append({"label": f"{len(rest)} others", "color": OTHERS_COLOUR, "y": others})
    return {"x": list(range(24)), "series": series}


def day_chart(report: dict[str, Any]) -> dict[str, Any]:
    """Pages per day, stacked: the night or weekend ones at the bottom, the others on top."""
    days = report["days"]
    return {
        "x": [_epoch(d["day"]) for d in days],
        "series": [
            {"label": "night or weekend", "color": "#862e9c", "y": [d["off_hours"] for d in days]},
            {"label": "other hours", "color": "#0172ad", "y": [d["pages"] - d["off_hours"] for d in days]},
        ],
    }


@router.get("/oncall/load", response_class=HTMLResponse)
def oncall_load_page(
    request: Request,
    ctx: Ctx = Depends(page()),
    days: Annotated[int, Query(ge=1, le=load.MAX_DAYS)] = 30,
    team_id: QueryId = None,
    user_id: QueryId = None,
    tz: Annotated[str, Query(max_length=64)] = "UTC",
) -> HTMLResponse:
    error = None
    try:
        zone = load.zone(tz).key
    except OpsdeskError as exc:
        error, zone = exc.errors[0].message if exc.errors else exc.detail, "UTC"
    end = ctx.now()
    start = end - timedelta(days=days)
    with ctx.session() as s:
        teams = list(s.execute(select(Team.id, Team.name).order_by(Team.name)))
        users = list(s.execute(select(User.id, User.name).where(User.active.is_(True)).order_by(User.name)))
        if team_id is not None and team_id not in {t.id for t in teams}:
            error, team_id = f"no team with id {team_id}: showing every team", None
        if user_id is not None and s.get(User, user_id) is None:
            error, user_id = f"no user with id {user_id}: showing everyone", None
        report = load.load_report(s, start=start, end=end, tz=zone, team_id=team_id, user_id=user_id, now=end)
    params = {"start": start.isoformat(), "end": end.isoformat(), "tz": zone}
    if team_id:
        params["team_id"] = str(team_id)
    if user_id:
        params["user_id"] = str(user_id)
    zones = ZONES if zone in ZONES else [zone, *ZONES]
    return render(
        request,
        ctx,
        "oncall/load.html",
        nav="oncall",
        report=report,
        days=days,
        presets=PRESETS,
        team_id=team_id,
        user_id=user_id,
        tz=zone,
        zones=zones,
        teams=teams,
        users=users,
        error=error,
        hours_chart=hour_chart(report),
        days_chart=day_chart(report),
        csv_url="/api/v1/oncall/load.csv?" + urlencode(params),
        json_url="/api/v1/oncall/load?" + urlencode(params),
        duration=load.duration,
        local_start=start.astimezone(load.zone(zone)),
        local_end=end.astimezone(load.zone(zone)),
    )
