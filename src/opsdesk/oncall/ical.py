"""iCalendar (RFC 5545): feeds of on-call shifts out, and an existing rotation in.

**Out**: one VEVENT per final shift, in UTC, with the person as ATTENDEE, so calendar apps show
it in the reader's own zone, and so a feed exported here imports back.

**In** (what PagerDuty's and Grafana OnCall's exports and a shared team calendar look like): each
event is one shift. The person is found by an e-mail address (ATTENDEE, ORGANIZER, then anywhere in
SUMMARY or DESCRIPTION), else by a user's full name in SUMMARY ("On Call - Jane Doe - Primary"),
else the event is reported as unmatched. Recurring events (RRULE) are expanded over a year.
The shifts are then read as a rotation when they are one: back to back, the same length (whole
days or weeks handing off at the same local time, or the same number of hours), the people
repeating in a fixed order. That becomes one layer. Anything else (irregular shifts, swaps, gaps)
is imported shift by shift as overrides, which reproduce it exactly.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import icalendar
import recurring_ical_events

from opsdesk.oncall.rotation import Shift

MAX_EVENTS = 2000
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")


@dataclass(frozen=True)
class Person:
    id: int
    name: str
    email: str


def render(
    name: str,
    shifts: list[tuple[str, Shift]],
    people: dict[int, Person],
    *,
    now: datetime,
    url: str = "",
) -> bytes:
    """A VCALENDAR of ``(schedule name, shift)`` pairs; gaps are left out."""
    cal = icalendar.Calendar()
    cal.add("prodid", "-//opsdesk//on-call//EN")
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("method", "PUBLISH")
    cal.add("x-wr-calname", name)
    cal.add("x-published-ttl", "PT1H")
    cal.add("refresh-interval", timedelta(hours=1), parameters={"VALUE": "DURATION"})
    for schedule, sh in shifts:
        if sh.user_id is None:
            continue
        person = people.get(sh.user_id)
        who = person.name if person else f"user {sh.user_id}"
        ev = icalendar.Event()
        ev.add("uid", f"{_slug(schedule)}-{sh.user_id}-{int(sh.start.timestamp())}@opsdesk")
        ev.add("dtstamp", now.astimezone(UTC))
        ev.add("dtstart", sh.start.astimezone(UTC))
        ev.add("dtend", sh.end.astimezone(UTC))
        ev.add("summary", f"On call: {who} ({schedule})")
        detail = f"{who} is on call for {schedule}"
        if sh.source and sh.source != "override":
            detail += f" (layer {sh.source})"
        elif sh.source == "override":
            detail += " (override)"
        ev.add("description", detail + ".")
        if person is not None:
            att = icalendar.vCalAddress(f"mailto:{person.email}")
            att.params["cn"] = icalendar.vText(person.name)
            ev.add("attendee", att, encode=False)
        if url:
            ev.add("url", url)
        ev.add("transp", "TRANSPARENT")
        cal.add_component(ev)
    return cal.to_ical()


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "schedule"


@dataclass(frozen=True)
class ImportedShift:
    start: datetime
    end: datetime
    user_id: int


@dataclass
class Parsed:
    shifts: list[ImportedShift]
    unmatched: list[str]
    events: int


def parse(data: bytes | str, people: list[Person]) -> Parsed:
    """The shifts of an iCal file, each with its person; ValueError when it is not iCalendar."""
    try:
        cal = icalendar.Calendar.from_ical(data)
    except (ValueError, IndexError, KeyError) as exc:
        raise ValueError(f"not an iCalendar file: {exc}") from None
    if not isinstance(cal, icalendar.Calendar) or cal.name != "VCALENDAR":
        raise ValueError("not an iCalendar file: no VCALENDAR")
    starts = [_utc(ev.get("dtstart").dt) for ev in cal.walk("VEVENT") if ev.get("dtstart") is not None]
    if not starts:
        raise ValueError("the calendar has no events")
    first = min(starts)
    try:
        events = recurring_ical_events.of(cal).between(first, first + timedelta(days=366))
    except Exception as exc:  # the library's errors for broken rules are of many kinds
        raise ValueError(f"the calendar's events cannot be read: {exc}") from None
    if len(events) > MAX_EVENTS:
        raise ValueError(f"the calendar has more than {MAX_EVENTS} shifts in a year; import a shorter export")
    by_email = {p.email.lower(): p for p in people}
    names = sorted(people, key=lambda p: -len(p.name))
    shifts, unmatched = [], []
    for ev in events:
        start = _utc(ev.get("dtstart").dt)
        end_prop = ev.get("dtend")
        if end_prop is not None:
            end = _utc(end_prop.dt)
        elif ev.get("duration") is not None:
            end = start + ev.get("duration").dt
        else:
            end = start + timedelta(days=1)
        summary = str(ev.get("summary", ""))
        person = _match(ev, summary, by_email, names)
        if person is None:
            unmatched.append(summary or "(an event without a summary)")
            continue
        if end > start:
            shifts.append(ImportedShift(start, end, person.id))
    shifts.sort(key=lambda sh: sh.start)
    return Parsed(shifts, sorted(set(unmatched)), len(events))


def _utc(value: datetime | date) -> datetime:
    if not isinstance(value, datetime):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _match(
    ev: icalendar.Event, summary: str, by_email: dict[str, Person], names: list[Person]
) -> Person | None:
    candidates: list[str] = []
    for key in ("attendee", "organizer"):
        val = ev.get(key)
        for v in val if isinstance(val, list) else [val] if val is not None else []:
            candidates.append(str(v).removeprefix("mailto:").removeprefix("MAILTO:"))
    candidates += _EMAIL.findall(summary) + _EMAIL.findall(str(ev.get("description", "")))
    for c in candidates:
        hit = by_email.get(c.strip().lower())
        if hit is not None:
            return hit
    low = summary.lower()
    for p in names:
        if p.name and re.search(rf"(?<!\w){re.escape(p.name.lower())}(?!\w)", low):
            return p
    return None


@dataclass(frozen=True)
class Rotation:
    participants: list[int]
    start: datetime
    turn_length: int
    turn_unit: str


def as_rotation(shifts: list[ImportedShift], tz: ZoneInfo) -> Rotation | None:
    """The rotation these shifts are, or None when they are not one."""
    if len(shifts) < 2:
        return None
    if any(a.end != b.start for a, b in itertools.pairwise(shifts)):
        return None
    unit_length = _wall_turn(shifts, tz) or _hour_turn(shifts)
    if unit_length is None:
        return None
    users = [sh.user_id for sh in shifts]
    period = next(
        p for p in range(1, len(users) + 1) if all(users[i] == users[i - p] for i in range(p, len(users)))
    )
    participants = users[:period]
    if period > 1 and any(a == b for a, b in itertools.pairwise(users)):
        return None  # one person twice in a row is a swap, not a rotation turn
    length, unit = unit_length
    return Rotation(participants, shifts[0].start, length, unit)


def _wall_turn(shifts: list[ImportedShift], tz: ZoneInfo) -> tuple[int, str] | None:
    locs = [sh.start.astimezone(tz) for sh in shifts] + [shifts[-1].end.astimezone(tz)]
    if len({(d.hour, d.minute, d.second) for d in locs}) != 1:
        return None
    days = {(b.date() - a.date()).days for a, b in itertools.pairwise(locs)}
    if len(days) != 1:
        return None
    (n,) = days
    if n < 1:
        return None
    return (n // 7, "weeks") if n % 7 == 0 else (n, "days")


def _hour_turn(shifts: list[ImportedShift]) -> tuple[int, str] | None:
    lengths = {sh.end - sh.start for sh in shifts}
    if len(lengths) != 1:
        return None
    (d,) = lengths
    hours, rest = divmod(d.total_seconds(), 3600)
    if rest or hours < 1:
        return None
    return int(hours), "hours"
