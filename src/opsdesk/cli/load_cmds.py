"""``opsdesk oncall-load``: the on-call load per person over the last days (pages, night and weekend
pages, incidents, acknowledgements, MTTA, hours on call), as a table, JSON or CSV.

The numbers are those of ``/api/v1/oncall/load`` (:mod:`opsdesk.oncall.load` defines them); hours,
nights (22:00-07:00), weekends and days are counted in ``--tz`` (default UTC). Bad input exits 1
with one line on stderr.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Annotated, Any

import typer
from rich.markup import escape
from sqlalchemy import select

from opsdesk.cli.common import console, handle_errors, now, session, table
from opsdesk.core.errors import OpsdeskError

BLOCKS = " \u2581\u2582\u2583\u2584\u2585\u2586\u2587\u2588"


def register(app: typer.Typer) -> None:
    app.command("oncall-load")(oncall_load)


def _bad(option: str, message: str) -> OpsdeskError:
    return OpsdeskError(detail=f"{option}: {message}", status=422, title="Invalid input")


def sparkline(counts: list[int]) -> str:
    """24 hourly counts as one block character each (blank for none), scaled to the largest."""
    top = max(counts) if counts else 0
    if not top:
        return " " * len(counts)
    return "".join(BLOCKS[0 if not n else max(1, round(n / top * 8))] for n in counts)


def _duration(seconds: float | None) -> str:
    from opsdesk.oncall.load import duration

    return duration(seconds)


@handle_errors
def oncall_load(
    days: Annotated[int, typer.Option(help="The days up to now (1 to 366).")] = 30,
    team: Annotated[
        str | None, typer.Option(help="Only the pages of this team's incidents (name or id).")
    ] = None,
    tz: Annotated[str, typer.Option(help="IANA time zone of hours, nights and weekends.")] = "UTC",
    as_csv: Annotated[bool, typer.Option("--csv", help="Print CSV: one row per person, h00..h23.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (the API's shape).")] = False,
) -> None:
    """Who was paged how often, when (night, weekend, hour of day), and how fast it was answered."""
    from opsdesk.auth.models import Team
    from opsdesk.oncall import load

    if as_json and as_csv:
        raise _bad("--csv", "give --json or --csv, not both")
    if not 1 <= days <= load.MAX_DAYS:
        raise _bad("--days", f"give 1 to {load.MAX_DAYS}")
    try:
        zone = load.zone(tz)
    except OpsdeskError as exc:
        raise _bad("--tz", exc.errors[0].message) from None
    end = now()
    start = end - timedelta(days=days)
    with session() as s:
        team_id: int | None = None
        if team:
            team_id = s.scalar(select(Team.id).where(Team.name == team.strip()))
            if team_id is None and team.strip().isdigit():
                team_id = s.scalar(select(Team.id).where(Team.id == int(team)))
            if team_id is None:
                raise _bad("--team", f"no team {team!r}")
        report = load.load_report(s, start=start, end=end, tz=zone.key, team_id=team_id, now=end)
    if as_csv:
        typer.echo(load.csv_text(report).replace("\r\n", "\n"), nl=False)
        return
    if as_json:
        typer.echo(json.dumps(report, default=str, indent=2))
        return
    _print(report, days, team)


def _print(report: dict[str, Any], days: int, team: str | None) -> None:
    t = report["totals"]
    rows = [
        {
            "person": escape(p["name"]),
            "pages": p["pages"],
            "night": p["night"],
            "weekend": p["weekend"],
            "off hours": p["off_hours"],
            "acked": f"{p['acknowledged']}/{p['incidents']}",
            "MTTA": _duration(p["mtta_median_seconds"]),
            "on call": f"{p['oncall_hours']:.0f} h" if p["oncall_hours"] else "",
        }
        for p in report["people"]
    ]
    title = f"On-call load, last {days} days ({report['time_zone']})" + (
        f", team {escape(team)}" if team else ""
    )
    columns = ["person", "pages", "night", "weekend", "off hours", "acked", "MTTA", "on call"]
    if not rows:
        console.print(f"{title}: nobody was paged or on call")
        return
    table(rows, columns, False, title=title)
    console.print(f"pages by hour of day, 00 to 23: [{sparkline(t['by_hour'])}]")
    console.print("acked: incidents acknowledged / paged for; MTTA: the median (mean, JSON and CSV have it)")
    console.print(
        f"{t['pages']} page(s) to {t['people']} person(s) for {t['incidents']} incident(s); "
        f"{t['off_hours']} at night or on a weekend; median MTTA {_duration(t['mtta_median_seconds'])}"
    )
