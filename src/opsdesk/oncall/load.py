"""On-call load: how often each person (and each team) was paged, when, and how fast pages were
answered, over a period, in one time zone.

The unit is the :class:`~opsdesk.oncall.models.Page`: one person paged at one escalation step (a
person paged again at the next round counts again; a person is never counted twice for one step).
A page belongs to the report when ``start <= page.at < end``; ``team_id`` keeps the pages of
incidents that belonged to that team when they were paged (``Page.team_id``), ``user_id`` the pages
of one person. Definitions, all in the report's time zone (``tz``, an IANA name):

- ``by_hour``: 24 counts, the local hour of day the page was made (index 0 is 00:00-00:59).
- ``night``: pages made from 22:00 to 06:59 local time.
- ``weekend``: pages made on a local Saturday or Sunday (any hour).
- ``off_hours``: pages made at night *or* on a weekend (each page counted once; a Sunday 23:00
  page is in ``night``, in ``weekend`` and once in ``off_hours``).
- ``incidents``: distinct incidents paged for.
- ``acknowledged``: for a person, the incidents they were paged for that they acknowledged
  (``Incident.acknowledged_by_id``); for a team and the totals, those incidents acknowledged by
  anyone.
- MTTA (``mtta_mean_seconds``, ``mtta_median_seconds`` over ``mtta_count`` incidents): for a
  person, per incident they were paged for, the seconds from their *first* page for it to the
  incident's ``acknowledged_at`` (by whoever acknowledged it); only incidents acknowledged at or
  after that page count, so a page sent after the acknowledgement (or an incident never
  acknowledged) adds nothing. A reopened incident escalates again (a new ``run``) and its
  ``acknowledged_at`` is the latest acknowledgement: the first page is taken from the latest run in
  which the person was paged before it. For a team and for the totals the same is measured once
  per incident, from its first page to anyone in the report. ``None`` when nothing was measured.
- ``oncall_hours``: hours on the final shifts (layers and overrides) of the schedules, from
  ``start`` to ``min(end, now)`` (time still to come is not load); a person on two schedules at
  once counts that time once. With ``team_id``, only that team's schedules.
- ``days``: pages per local calendar day over the period (and how many of them were off hours).

People are listed by pages (most first), then name; people with on-call hours but no page are
listed too (on call, never paged: load zero). Teams are those of the pages (``team_id`` ``None``:
incidents of no team). Everything comes from one query over the pages (joined with their incidents,
people and teams) and one computation of the final shifts per schedule.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select
from sqlalchemy.orm import Session

from opsdesk.auth.models import Team, User
from opsdesk.core.errors import invalid
from opsdesk.incidents.models import Incident
from opsdesk.oncall import service as schedules
from opsdesk.oncall.models import Page, Schedule

MAX_DAYS = 366
DEFAULT_DAYS = 30
NIGHT_START = 22  # local hour: 22:00 ...
NIGHT_END = 7  # ... to 06:59
HOURS = [f"h{h:02d}" for h in range(24)]
CSV_COLUMNS = [
    "user_id",
    "name",
    "email",
    "pages",
    "incidents",
    "acknowledged",
    "night",
    "weekend",
    "off_hours",
    "mtta_mean_seconds",
    "mtta_median_seconds",
    "mtta_count",
    "oncall_hours",
    *HOURS,
]


# --- input ---------------------------------------------------------------------------------------


def zone(name: str | None) -> ZoneInfo:
    """The IANA zone ``name`` (``UTC`` when empty); a 422 naming ``tz`` when there is none."""
    name = (name or "UTC").strip()
    try:
        if len(name) > 64:
            raise ValueError
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise invalid(
            "tz", f"{name[:64]!r} is not an IANA time zone (e.g. Europe/Berlin, America/New_York, UTC)"
        ) from None


def parse_time(text: str, field_name: str) -> datetime:
    """An ISO 8601 time with its UTC offset (``2026-03-01T00:00Z``, ``…+02:00``), as UTC."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise invalid(field_name, f"{text[:64]!r} is not an ISO 8601 time (e.g. 2026-03-01T00:00Z)") from None
    if value.tzinfo is None or value.utcoffset() is None:
        raise invalid(field_name, "give the time with its UTC offset, e.g. 2026-03-01T00:00Z or …+02:00")
    return value.astimezone(UTC)


def check_range(start: datetime, end: datetime) -> None:
    if start.tzinfo is None:
        raise invalid("start", "must have a UTC offset")
    if end.tzinfo is None:
        raise invalid("end", "must have a UTC offset")
    if end <= start:
        raise invalid("end", "must be after start")
    if end - start > timedelta(days=MAX_DAYS):
        raise invalid("end", f"the period is at most {MAX_DAYS} days")


def period(
    start: str | None, end: str | None, *, now: datetime, days: int = DEFAULT_DAYS
) -> tuple[datetime, datetime]:
    """``start`` and ``end`` as given (ISO 8601 with offsets), by default the ``days`` up to now
    (``end`` given alone: the ``days`` before it; ``start`` alone: from it up to now)."""
    hi = parse_time(end, "end") if end else None
    lo = parse_time(start, "start") if start else None
    if hi is None:
        hi = now if lo is None or lo < now else lo + timedelta(days=days)
    if lo is None:
        lo = hi - timedelta(days=days)
    check_range(lo, hi)
    return lo, hi


def duration(seconds: float | None) -> str:
    """``45s``, ``4m 05s``, ``2h 03m``, ``1d 4h``; an en dash for no value."""
    if seconds is None:
        return "\u2013"
    sec = round(seconds)
    if sec < 60:
        return f"{sec}s"
    if sec < 3600:
        return f"{sec // 60}m {sec % 60:02d}s"
    if sec < 86400:
        return f"{sec // 3600}h {sec % 3600 // 60:02d}m"
    return f"{sec // 86400}d {sec % 86400 // 3600}h"


# --- the report ----------------------------------------------------------------------------------


@dataclass
class _Tally:
    """Counts for one person, one team, or everyone."""

    pages: int = 0
    by_hour: list[int] = field(default_factory=lambda: [0] * 24)
    night: int = 0
    weekend: int = 0
    off_hours: int = 0
    # incident id -> [(page time, run)] of the pages counted here
    incidents: dict[int, list[tuple[datetime, int]]] = field(default_factory=dict)
    people: set[int] = field(default_factory=set)

    def add(self, user_id: int, incident_id: int, at: datetime, run: int, hour: int, wd: int) -> None:
        self.pages += 1
        self.by_hour[hour] += 1
        night = hour >= NIGHT_START or hour < NIGHT_END
        weekend = wd >= 5
        self.night += night
        self.weekend += weekend
        self.off_hours += night or weekend
        self.incidents.setdefault(incident_id, []).append((at, run))
        self.people.add(user_id)


def ack_delay(pages: Iterable[tuple[datetime, int]], acknowledged_at: datetime | None) -> float | None:
    """Seconds from the first of ``pages`` (``(at, run)``) to ``acknowledged_at``, taking the pages
    of the latest run with a page at or before it; None when unacknowledged or paged only after."""
    if acknowledged_at is None:
        return None
    before = [(at, run) for at, run in pages if at <= acknowledged_at]
    if not before:
        return None
    run = max(r for _, r in before)
    first = min(at for at, r in before if r == run)
    return (acknowledged_at - first).total_seconds()


def _mtta(delays: list[float]) -> dict[str, Any]:
    return {
        "mtta_mean_seconds": round(statistics.fmean(delays), 1) if delays else None,
        "mtta_median_seconds": round(float(statistics.median(delays)), 1) if delays else None,
        "mtta_count": len(delays),
    }


def _stats(t: _Tally, acks: dict[int, tuple[datetime | None, int | None]], who: int | None) -> dict[str, Any]:
    delays = [d for i, pg in t.incidents.items() if (d := ack_delay(pg, acks[i][0])) is not None]
    if who is None:
        acknowledged = sum(1 for i in t.incidents if acks[i][0] is not None)
    else:
        acknowledged = sum(1 for i in t.incidents if acks[i][1] == who)
    return {
        "pages": t.pages,
        "incidents": len(t.incidents),
        "acknowledged": acknowledged,
        "night": t.night,
        "weekend": t.weekend,
        "off_hours": t.off_hours,
        **_mtta(delays),
        "by_hour": list(t.by_hour),
    }


def _merged_hours(spans: list[tuple[datetime, datetime]]) -> float:
    total = timedelta()
    cur_start: datetime | None = None
    cur_end: datetime | None = None
    for a, b in sorted(spans):
        if cur_end is None or a > cur_end:
            if cur_start is not None and cur_end is not None:
                total += cur_end - cur_start
            cur_start, cur_end = a, b
        elif b > cur_end:
            cur_end = b
    if cur_start is not None and cur_end is not None:
        total += cur_end - cur_start
    return round(total.total_seconds() / 3600, 1)


def oncall_hours(
    s: Session, start: datetime, end: datetime, *, team_id: int | None = None
) -> tuple[dict[int, float], dict[int | None, dict[int, float]]]:
    """Hours on call per person (overlaps counted once), and per schedule team per person."""
    q = select(Schedule).order_by(Schedule.id)
    if team_id is not None:
        q = q.where(Schedule.team_id == team_id)
    spans: dict[int, list[tuple[datetime, datetime]]] = defaultdict(list)
    team_spans: dict[int | None, dict[int, list[tuple[datetime, datetime]]]] = defaultdict(
        lambda: defaultdict(list)
    )
    if end > start:
        for sched in s.scalars(q):
            for sh in schedules.final(s, sched, start, end):
                if sh.user_id is None:
                    continue
                span = (max(sh.start, start), min(sh.end, end))
                if span[1] > span[0]:
                    spans[sh.user_id].append(span)
                    team_spans[sched.team_id][sh.user_id].append(span)
    per_user = {u: _merged_hours(v) for u, v in spans.items()}
    per_team = {t: {u: _merged_hours(v) for u, v in users.items()} for t, users in team_spans.items()}
    return per_user, per_team


def _days(start: datetime, end: datetime, tz: ZoneInfo) -> list[date]:
    first = start.astimezone(tz).date()
    last = (end - timedelta(microseconds=1)).astimezone(tz).date()
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def load_report(
    s: Session,
    *,
    start: datetime,
    end: datetime,
    tz: str,
    team_id: int | None = None,
    user_id: int | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The on-call load from ``start`` to ``end`` (see the module docstring for every number)."""
    check_range(start, end)
    zi = zone(tz)
    if team_id is not None and s.get(Team, team_id) is None:
        raise invalid("team_id", f"no team with id {team_id}")
    if user_id is not None and s.get(User, user_id) is None:
        raise invalid("user_id", f"no user with id {user_id}")
    q = (
        select(
            Page.user_id,
            Page.incident_id,
            Page.at,
            Page.run,
            Page.team_id,
            Incident.acknowledged_at,
            Incident.acknowledged_by_id,
            User.name,
            User.email,
            Team.name,
        )
        .join(Incident, Incident.id == Page.incident_id)
        .join(User, User.id == Page.user_id)
        .outerjoin(Team, Team.id == Page.team_id)
        .where(Page.at >= start, Page.at < end)
        .order_by(Page.at, Page.id)
    )
    if team_id is not None:
        q = q.where(Page.team_id == team_id)
    if user_id is not None:
        q = q.where(Page.user_id == user_id)

    total = _Tally()
    people: dict[int, _Tally] = defaultdict(_Tally)
    teams: dict[int | None, _Tally] = defaultdict(_Tally)
    acks: dict[int, tuple[datetime | None, int | None]] = {}
    names: dict[int, tuple[str, str]] = {}
    team_names: dict[int | None, str | None] = {None: None}
    person_teams: dict[int, set[int | None]] = defaultdict(set)
    days = _days(start, end, zi)
    day_index = {d: i for i, d in enumerate(days)}
    per_day = [[0, 0] for _ in days]
    for uid, iid, at, run, tid, ack_at, ack_by, name, email, team_name in s.execute(q):
        local = at.astimezone(zi)
        hour, wd = local.hour, local.weekday()
        for tally in (total, people[uid], teams[tid]):
            tally.add(uid, iid, at, run, hour, wd)
        acks[iid] = (ack_at, ack_by)
        names[uid] = (name, email)
        team_names[tid] = team_name
        person_teams[uid].add(tid)
        slot = per_day[day_index[local.date()]]
        slot[0] += 1
        slot[1] += hour >= NIGHT_START or hour < NIGHT_END or wd >= 5

    until = min(end, now) if now is not None else end
    hours, team_hours = oncall_hours(s, start, until, team_id=team_id)
    if user_id is not None:
        hours = {u: h for u, h in hours.items() if u == user_id}
    missing = [u for u in hours if u not in names]
    if missing:
        for u in s.execute(select(User.id, User.name, User.email).where(User.id.in_(missing))):
            names[u.id] = (u.name, u.email)

    rows = []
    for uid, (name, email) in names.items():
        row = {"user_id": uid, "name": name, "email": email, **_stats(people[uid], acks, uid)}
        row["oncall_hours"] = hours.get(uid, 0.0)
        row["teams"] = sorted((team_names[t] or "") for t in person_teams[uid])
        rows.append(row)
    rows.sort(key=lambda r: (-r["pages"], -r["oncall_hours"], r["name"].lower(), r["user_id"]))

    team_rows = []
    for tid, tally in teams.items():
        row = {"team_id": tid, "name": team_names[tid], **_stats(tally, acks, None)}
        row["people"] = len(tally.people)
        row["oncall_hours"] = round(sum(team_hours.get(tid, {}).values()), 1) if tid is not None else None
        team_rows.append(row)
    team_rows.sort(key=lambda r: (-r["pages"], r["name"] is None, (r["name"] or "").lower()))

    totals = {**_stats(total, acks, None), "people": len(total.people)}
    return {
        "start": start,
        "end": end,
        "time_zone": zi.key,
        "team_id": team_id,
        "user_id": user_id,
        "night": f"{NIGHT_START:02d}:00-{NIGHT_END:02d}:00",
        "totals": totals,
        "people": rows,
        "teams": team_rows,
        "days": [{"day": d, "pages": n, "off_hours": off} for d, (n, off) in zip(days, per_day, strict=True)],
    }


def csv_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per person: :data:`CSV_COLUMNS` (the hours as ``h00`` … ``h23``)."""
    out = []
    for p in report["people"]:
        row = {c: p.get(c) for c in CSV_COLUMNS if c not in HOURS}
        row.update({h: n for h, n in zip(HOURS, p["by_hour"], strict=True)})
        out.append({c: "" if row.get(c) is None else row[c] for c in CSV_COLUMNS})
    return out


def csv_text(report: dict[str, Any]) -> str:
    import csv
    import io

    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\r\n")
    w.writeheader()
    for row in csv_rows(report):
        w.writerow({k: _cell(v) for k, v in row.items()})
    return buf.getvalue()


def _cell(value: Any) -> Any:
    """Text a spreadsheet would run as a formula (``=``, ``+``, ``-``, ``@`` first) is quoted with ``'``."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value
