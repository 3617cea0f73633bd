"""HTML pages for on-call schedules.

- ``/oncall``: every schedule with who is on call now (until when, in the schedule's time zone) and
  its next gap in the coming 14 days; managers create a schedule there.
- ``/oncall/{id}``: the calendar. A timeline drawn on the server (no JavaScript needed) over
  ``?start=YYYY-MM-DD&days=7|14|28`` local days: one row per layer, the overrides, and the final
  schedule with its gaps hatched red; each block is placed and sized by its share of the range, so
  a day with a daylight-saving change is an hour narrower or wider. Under it: who is on call now,
  the gaps of the coming 14 days, the overrides (responders add and remove them), the layers
  (managers add and delete them), the secret iCal URLs, and the iCal import (managers).

Every time shown is in the schedule's time zone, and ``datetime-local`` fields are read in it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError
from sqlalchemy.orm import Session

from opsdesk.core.actor import Role
from opsdesk.core.errors import OpsdeskError, invalid, not_found
from opsdesk.oncall import rotation, service
from opsdesk.oncall.api import MAX_ICS_BYTES
from opsdesk.oncall.models import Schedule, ScheduleLayer
from opsdesk.oncall.schemas import LayerIn, OverrideIn, ScheduleIn, ScheduleUpdate, WindowIn
from opsdesk.web.deps import Ctx, PathId, page
from opsdesk.web.render import back, render

router = APIRouter()

Errors = dict[str, str]
FormText = Annotated[str, Form(max_length=5000)]
FormLine = Annotated[str, Form(max_length=200)]
ViewerCtx = Annotated[Ctx, Depends(page())]
ResponderCtx = Annotated[Ctx, Depends(page(Role.responder))]
ManagerCtx = Annotated[Ctx, Depends(page(Role.manager))]

ZONES = [
    "UTC", "Europe/London", "Europe/Dublin", "Europe/Lisbon", "Europe/Paris", "Europe/Berlin",
    "Europe/Amsterdam", "Europe/Brussels", "Europe/Zurich", "Europe/Vienna", "Europe/Madrid",
    "Europe/Rome", "Europe/Stockholm", "Europe/Oslo", "Europe/Copenhagen", "Europe/Warsaw",
    "Europe/Prague", "Europe/Helsinki", "Europe/Athens", "Europe/Istanbul", "Europe/Kyiv",
    "Europe/Moscow", "America/New_York", "America/Toronto", "America/Chicago", "America/Denver",
    "America/Phoenix", "America/Los_Angeles", "America/Anchorage", "America/Mexico_City",
    "America/Bogota", "America/Sao_Paulo", "America/Argentina/Buenos_Aires", "Pacific/Honolulu",
    "Africa/Johannesburg", "Africa/Lagos", "Africa/Cairo", "Africa/Nairobi", "Asia/Dubai",
    "Asia/Kolkata", "Asia/Singapore", "Asia/Shanghai", "Asia/Hong_Kong", "Asia/Tokyo", "Asia/Seoul",
    "Asia/Jakarta", "Australia/Perth", "Australia/Sydney", "Pacific/Auckland",
]  # fmt: skip
RANGES = (7, 14, 28)
DEFAULT_DAYS = 14
# One colour per person (by user id), none of them red: red is for gaps. White text reads on each;
# neighbours differ in hue, so people with ids next to each other do not look alike.
PALETTE = [
    "#0172ad", "#b35c00", "#2b8a3e", "#862e9c", "#0c8599", "#495057", "#6741d9", "#5c7f0d",
    "#9c36b5", "#364fc7", "#087f5b",
]  # fmt: skip
TRACK_PX = 900  # the timeline's width on a desktop: which labels fit in their block
CHAR_PX = 7  # one character of a block's label
DAYS_RE = re.compile(r"[,\s]+")
DASH = "\u2013"  # an en dash, between the ends of a range


def colour(user_id: int) -> str:
    return PALETTE[user_id % len(PALETTE)]


# --- formatting ----------------------------------------------------------------------------------


def local(value: datetime, tz: ZoneInfo, fmt: str = "%a %d %b %H:%M") -> str:
    return value.astimezone(tz).strftime(fmt)


def when(value: datetime, tz: ZoneInfo) -> str:
    """``Mon 02 Mar 09:00 CET``: a time in the schedule's zone, with the zone's abbreviation."""
    return local(value, tz, "%a %d %b %H:%M %Z")


def span_text(start: datetime, end: datetime, tz: ZoneInfo) -> str:
    """``Mon 02 Mar 18:00 - 20:00 CET`` (an en dash), or both days in full when it ends on another day."""
    a, b = start.astimezone(tz), end.astimezone(tz)
    if a.date() == b.date():
        return f"{a:%a %d %b %H:%M} {DASH} {b:%H:%M %Z}"
    return f"{a:%a %d %b %H:%M} {DASH} {b:%a %d %b %H:%M %Z}"


def duration(delta: timedelta) -> str:
    """``7 d``, ``1 d 4 h``, ``2 h 30 min``, ``45 min``."""
    minutes = int(delta.total_seconds() // 60)
    d, rest = divmod(minutes, 1440)
    h, m = divmod(rest, 60)
    parts = [f"{d} d"] if d else []
    if h:
        parts.append(f"{h} h")
    if m and not d:
        parts.append(f"{m} min")
    return " ".join(parts) or "0 min"


def _input(value: datetime, tz: ZoneInfo) -> str:
    """A time as a ``datetime-local`` value in ``tz``."""
    return value.astimezone(tz).strftime("%Y-%m-%dT%H:%M")


def turn_text(length: int, unit: str) -> str:
    return f"{length} {unit[:-1] if length == 1 else unit}"


def days_text(days: list[str]) -> str:
    """``mon-fri``, ``sat, sun``, ``every day``: a restriction's weekdays, runs collapsed."""
    idx = sorted(rotation.WEEKDAYS.index(d) for d in days)
    if not idx or len(idx) == 7:
        return "every day"
    runs: list[list[int]] = []
    for i in idx:
        if runs and i == runs[-1][-1] + 1:
            runs[-1].append(i)
        else:
            runs.append([i])
    names = rotation.WEEKDAYS
    return ", ".join(
        f"{names[r[0]]}{DASH}{names[r[-1]]}" if len(r) > 2 else ", ".join(names[i] for i in r) for r in runs
    )


def restriction_text(w: dict[str, Any]) -> str:
    return f"{days_text(list(w.get('days', [])))} {w['start']}{DASH}{w['end']}"


# --- form parsing --------------------------------------------------------------------------------


def _weekdays(text: str) -> list[str]:
    """``mon-fri``, ``sat,sun``, ``fri-mon``, ``mon wed``; ``every day``/``daily`` is every day."""
    text = text.strip().lower()
    if text in ("", "every day", "everyday", "daily", "all"):
        return []
    out: list[str] = []
    names = rotation.WEEKDAYS
    for token in DAYS_RE.split(text.replace(DASH, "-")):
        if not token:
            continue
        first, sep, last = token.partition("-")
        try:
            a = names.index(first.strip()[:3])
            b = names.index(last.strip()[:3]) if sep else a
        except ValueError:
            raise ValueError(f"{token!r} is not a weekday (mon … sun) or a range of them (mon-fri)") from None
        i = a
        while True:
            if names[i] not in out:
                out.append(names[i])
            if i == b:
                break
            i = (i + 1) % 7
    return out


def parse_restrictions(text: str) -> list[dict[str, Any]]:
    """Restriction windows one per line, ``[days] HH:MM-HH:MM``: ``mon-fri 08:00-18:00``,
    ``sat,sun 00:00-24:00``, ``20:00-08:00`` (every day, into the next morning)."""
    out: list[dict[str, Any]] = []
    for n, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        head, _, times = line.rpartition(" ")
        start, sep, end = times.replace(DASH, "-").partition("-")
        if not sep:
            raise ValueError(f"line {n}: write a window as [days] HH:MM-HH:MM, e.g. mon-fri 08:00-18:00")
        try:
            days = _weekdays(head)
            rotation.Window.parse(days, start, end)
        except ValueError as exc:
            raise ValueError(f"line {n}: {exc}") from None
        out.append({"days": days, "start": start.strip(), "end": end.strip()})
    return out


def _participants(text: str) -> list[int | str]:
    """E-mail addresses (or user ids) in rotation order, separated by commas, spaces or lines."""
    return [int(x) if x.isdigit() else x for x in DAYS_RE.split(text.strip()) if x]


def _datetime(text: str, name: str, errors: Errors, *, required: bool = True) -> datetime | None:
    """A ``datetime-local`` value (no offset: the service reads it in the schedule's zone)."""
    if not text.strip():
        if required:
            errors.setdefault(name, "required")
        return None
    try:
        return datetime.fromisoformat(text.strip())
    except ValueError:
        errors.setdefault(name, "not a date and time (YYYY-MM-DDTHH:MM)")
        return None


LAYER_FIELD = re.compile(r"^layers\.(\d+)\.([a-z_]+)")


def _collect(
    exc: ValidationError | OpsdeskError, errors: Errors, fields: set[str], layer: int | None = None
) -> int:
    """Put the messages of ``exc`` under the form's field names (else under ``form``); the status
    to answer with. Other errors (a 404) are raised again. ``layer``: the index of the layer the
    form adds, whose ``layers.N.field`` errors are the form's own."""

    def put(name: str, msg: str) -> None:
        m = LAYER_FIELD.match(name)
        if m and int(m.group(1)) == layer:
            name = m.group(2)
        elif m:
            name = f"layer {int(m.group(1)) + 1} {m.group(2)}"
        if name == "form":
            errors["form"] = msg
        elif name in fields:
            errors.setdefault(name, msg)
        else:
            errors["form"] = f"{errors['form']}; {name}: {msg}" if "form" in errors else f"{name}: {msg}"

    if isinstance(exc, ValidationError):
        for e in exc.errors():
            loc = [str(x) for x in e["loc"]]
            if len(loc) >= 3 and loc[0] == "layers":
                name = f"layers.{loc[1]}.{loc[2]}"
            else:
                name = loc[0] if loc else "form"
            put(name, str(e["msg"]).removeprefix("Value error, "))
        return 422
    if exc.status not in (409, 422):
        raise exc
    if exc.errors:
        for fe in exc.errors:
            put(fe.field, fe.message)
    else:
        errors["form"] = exc.detail
    return exc.status


# --- the calendar --------------------------------------------------------------------------------


@dataclass
class Block:
    left: str  # percent of the range
    width: str
    css: str  # "shift", "shift ov" (an override), "gap"
    colour: str
    label: str
    title: str


@dataclass
class Row:
    name: str
    kind: str  # layer, overrides, final
    blocks: list[Block] = field(default_factory=list)
    note: str = ""


@dataclass
class Day:
    left: str
    width: str
    weekday: str
    date: str
    iso: str
    today: bool
    weekend: bool
    note: str  # a day with a daylight-saving change: "23 h"
    title: str


class Timeline:
    """Places times of ``[lo, hi)`` on a 0-100 % scale."""

    def __init__(self, lo: datetime, hi: datetime) -> None:
        self.lo, self.hi = lo, hi
        self.total = (hi - lo).total_seconds()

    def pct(self, t: datetime) -> float:
        t = min(max(t, self.lo), self.hi)
        return (t - self.lo).total_seconds() / self.total * 100

    def place(self, start: datetime, end: datetime) -> tuple[str, str, float]:
        a, b = self.pct(start), self.pct(end)
        return f"{a:.4f}", f"{b - a:.4f}", b - a


def _fits(text: str, width_pct: float) -> bool:
    return width_pct / 100 * TRACK_PX >= CHAR_PX * len(text) + 8


def _initials(name: str) -> str:
    return "".join(w[0] for w in name.split()[:3]).upper()


class People:
    """Names and colours of the people shown, looked up once."""

    def __init__(self, s: Session) -> None:
        self.users = service.Users(s)
        self.seen: dict[int, str] = {}

    def name(self, user_id: int) -> str:
        brief = self.users.brief(user_id)
        name = brief["name"] if brief else f"deleted user #{user_id}"
        self.seen[user_id] = name
        return name


def _block(
    tl: Timeline, start: datetime, end: datetime, user_id: int | None, people: People, tz: ZoneInfo, what: str
) -> Block:
    left, width, w = tl.place(start, end)
    when_ = f"{span_text(start, end, tz)} ({duration(end - start)})"
    if user_id is None:
        label = "gap" if _fits("gap", w) else ""
        return Block(left, width, "gap", "", label, f"Nobody on call · {when_}")
    name = people.name(user_id)
    label = name if _fits(name, w) else _initials(name) if _fits(_initials(name), w) else ""
    css = "shift ov" if what == "override" else "shift"
    source = "override" if what == "override" else f"layer {what}" if what else ""
    return Block(left, width, css, colour(user_id), label, " · ".join(x for x in (name, when_, source) if x))


def calendar(s: Session, sched: Schedule, first: date, days: int, now: datetime) -> dict[str, Any]:
    tz = ZoneInfo(sched.time_zone)
    lo = rotation.local_to_utc(first, 0, tz)
    hi = rotation.local_to_utc(first + timedelta(days=days), 0, tz)
    tl = Timeline(lo, hi)
    today = now.astimezone(tz).date()
    out_days = []
    for i in range(days):
        d = first + timedelta(days=i)
        a, b = rotation.local_to_utc(d, 0, tz), rotation.local_to_utc(d + timedelta(days=1), 0, tz)
        left, width, _ = tl.place(a, b)
        hours = round((b - a).total_seconds() / 3600)
        note = f"{hours} h" if hours != 24 else ""
        title = f"{d:%A %d %B %Y}"
        if note:
            before, after = a.astimezone(tz).strftime("%Z %z"), (b - timedelta(seconds=1)).astimezone(tz)
            title += f": a {hours}-hour day, the clocks change ({before} → {after:%Z %z})"
        month = days <= 14 or d.day == 1  # 28 narrow columns: the month where it starts
        out_days.append(
            Day(
                left,
                width,
                f"{d:%a}",
                f"{d.day} {d:%b}" if month else str(d.day),
                d.isoformat(),
                d == today,
                d.weekday() >= 5,
                note,
                title,
            )
        )
    eng = service.engine(s, sched, lo, hi)
    people = People(s)
    rows = []
    for layer, model in zip(eng.layers, sched.layers, strict=True):
        blocks = [
            _block(tl, sh.start, sh.end, sh.user_id, people, tz, layer.name)
            for sh in layer.shifts(eng.tz, lo, hi)
        ]
        rows.append(Row(layer.name, "layer", blocks, note=turn_text(model.turn_length, model.turn_unit)))
    ovs = service.overrides(s, sched.id, start=lo, end=hi)
    if ovs:
        rows.append(
            Row(
                "Overrides",
                "overrides",
                [_block(tl, o.starts_at, o.ends_at, o.user_id, people, tz, "override") for o in ovs],
            )
        )
    final = eng.final(lo, hi)
    rows.append(
        Row(
            "Final",
            "final",
            [_block(tl, sh.start, sh.end, sh.user_id, people, tz, sh.source) for sh in final],
            note="who is paged",
        )
    )
    return {
        "start": first,
        "days": days,
        "lo": lo,
        "hi": hi,
        "day_list": out_days,
        "rows": rows,
        "now_pct": f"{tl.pct(now):.4f}" if lo <= now < hi else None,
        "legend": sorted(((name, colour(uid)) for uid, name in people.seen.items()), key=lambda x: x[0]),
        "gaps": sum(1 for sh in final if sh.user_id is None),
        "prev": (first - timedelta(days=days)).isoformat(),
        "next": (first + timedelta(days=days)).isoformat(),
        "today": today.isoformat(),
        "title": f"{first:%a %d %b %Y} {DASH} {first + timedelta(days=days - 1):%a %d %b %Y}",
    }


# --- the schedule list ---------------------------------------------------------------------------


def _row(s: Session, sched: Schedule, now: datetime, users: service.Users) -> dict[str, Any]:
    tz = ZoneInfo(sched.time_zone)
    shift = service.on_call(s, sched, now)
    gap = service.next_gap(s, sched, now)
    user = users.brief(shift.user_id)
    return {
        "id": sched.id,
        "name": sched.name,
        "description": sched.description,
        "time_zone": sched.time_zone,
        "layers": len(sched.layers),
        "user": user,
        "deleted": shift.user_id is not None and user is None,
        "source": shift.source,
        "until": when(shift.end, tz),
        # on_call() looks 8 days either side: a shift reaching that far may well last longer.
        "open_ended": shift.end >= now + timedelta(days=8),
        "gap": (
            {
                "text": span_text(gap.start, gap.end, tz),
                "length": duration(gap.end - gap.start),
                "now": gap.start <= now,
                "open_ended": gap.end >= now + service.GAP_LOOKAHEAD,
                "start": gap.start,
            }
            if gap
            else None
        ),
    }


def _list_page(
    request: Request,
    ctx: Ctx,
    *,
    form: dict[str, str] | None = None,
    errors: Errors | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    now = ctx.now()
    with ctx.session() as s:
        users = service.Users(s)
        rows = [_row(s, x, now, users) for x in service.list_schedules(s)]
    return render(
        request,
        ctx,
        "oncall/list.html",
        status_code=status_code,
        nav="oncall",
        rows=rows,
        form=form or {"time_zone": "UTC"},
        errors=errors or {},
        zones=ZONES,
    )


@router.get("/oncall", response_class=HTMLResponse)
def schedule_list(request: Request, ctx: ViewerCtx) -> HTMLResponse:
    return _list_page(request, ctx)


@router.post("/oncall", response_model=None)
def schedule_create(
    request: Request,
    ctx: ManagerCtx,
    name: FormLine = "",
    time_zone: FormLine = "UTC",
    description: FormText = "",
) -> Response:
    form = {"name": name, "time_zone": time_zone, "description": description}
    errors: Errors = {}
    try:
        data = ScheduleIn(name=name, time_zone=time_zone.strip() or "UTC", description=description)
        with ctx.session() as s:
            sched = service.create(s, data, actor=ctx.actor, now=ctx.now())
            sid, label = sched.id, sched.name
        return back(f"/oncall/{sid}", f"Schedule {label} created: add a layer to put people on call")
    except (ValidationError, OpsdeskError) as exc:
        status = _collect(exc, errors, {"name", "time_zone", "description"})
    return _list_page(request, ctx, form=form, errors=errors, status_code=status)


# --- one schedule --------------------------------------------------------------------------------


def _feed_url(request: Request, token: str) -> str:
    return f"{request.app.state.settings.base_url.rstrip('/')}/ical/{token}.ics"


def _layer_view(layer: ScheduleLayer, users: service.Users, tz: ZoneInfo) -> dict[str, Any]:
    people = []
    for uid in layer.participants:
        brief = users.brief(uid)
        people.append(
            {
                "name": brief["name"] if brief else f"deleted user #{uid}",
                "email": brief["email"] if brief else "",
            }
            | {"colour": colour(uid)}
        )
    return {
        "id": layer.id,
        "position": layer.position,
        "name": layer.name,
        "participants": people,
        "turn": turn_text(layer.turn_length, layer.turn_unit),
        "rotation_start": when(layer.rotation_start, tz),
        "restrictions": [restriction_text(w) for w in layer.restrictions],
        "ends_at": when(layer.ends_at, tz) if layer.ends_at else None,
    }


def _range(start: str, days: str, today: date) -> tuple[date, int, str | None]:
    """The calendar's first local day and length from the query, with a notice when they were bad."""
    notices = []
    n = DEFAULT_DAYS
    if days:
        if days.isdigit() and int(days) in RANGES:
            n = int(days)
        else:
            notices.append(f"days: show 7, 14 or 28 days (not {days!r}); showing {n}")
    first = today
    if start:
        try:
            first = date.fromisoformat(start)
            if not date(1971, 1, 1) <= first <= date(9000, 1, 1):
                raise ValueError
        except ValueError:
            first = today
            notices.append(f"start: {start!r} is not a date (YYYY-MM-DD); showing today")
    return first, n, "; ".join(notices) or None


def _defaults(sched: Schedule, ctx: Ctx, now: datetime) -> dict[str, dict[str, str]]:
    tz = ZoneInfo(sched.time_zone)
    hour = now.astimezone(tz).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    start = now.astimezone(tz).replace(hour=9, minute=0, second=0, microsecond=0)
    return {
        "override": {
            "user": str(ctx.actor.id or ""),
            "starts_at": _input(hour, tz),
            "ends_at": _input(hour + timedelta(hours=8), tz),
            "note": "",
        },
        "layer": {
            "name": f"Layer {len(sched.layers) + 1}",
            "participants": "",
            "rotation_start": _input(start, tz),
            "turn_length": "1",
            "turn_unit": "weeks",
            "restrictions": "",
            "ends_at": "",
        },
    }


def _detail_page(
    request: Request,
    ctx: Ctx,
    schedule_id: int,
    *,
    start: str = "",
    days: str = "",
    failed: str = "",
    form: dict[str, str] | None = None,
    errors: Errors | None = None,
    status_code: int = 200,
    imported: dict[str, Any] | None = None,
) -> HTMLResponse:
    now = ctx.now()
    with ctx.session() as s:
        sched = service.get(s, schedule_id)
        tz = ZoneInfo(sched.time_zone)
        first, n, notice = _range(start, days, now.astimezone(tz).date())
        cal = calendar(s, sched, first, n, now)
        users = service.Users(s)
        current = service.on_call(s, sched, now)
        ahead = service.final(s, sched, now, now + service.GAP_LOOKAHEAD)
        following = next((sh for sh in ahead if sh.user_id not in (None, current.user_id)), None)
        gaps = [sh for sh in ahead if sh.user_id is None]
        overrides = [
            {
                "id": o.id,
                "user": users.brief(o.user_id) or {"name": f"deleted user #{o.user_id}", "email": ""},
                "colour": colour(o.user_id),
                "when": span_text(o.starts_at, o.ends_at, tz),
                "length": duration(o.ends_at - o.starts_at),
                "running": o.starts_at <= now,
                "note": o.note,
                "created_by": o.created_by,
            }
            for o in service.overrides(s, schedule_id, start=now)
        ]
        layers = [_layer_view(layer, users, tz) for layer in sched.layers]
        people = sorted(service.people(s), key=lambda p: p.name.lower())
        schedule_feed = _feed_url(request, service.feed_token(s, schedule_id=schedule_id, now=now))
        my_feed = (
            _feed_url(request, service.feed_token(s, user_id=ctx.actor.id, now=now))
            if ctx.actor.id is not None
            else None
        )
        info = {"id": sched.id, "name": sched.name, "description": sched.description, "time_zone": tz.key}
        forms = _defaults(sched, ctx, now)

        def shift_view(sh: rotation.Shift | None) -> dict[str, Any] | None:
            if sh is None:
                return None
            brief = users.brief(sh.user_id)
            return {
                "user": brief,
                "user_id": sh.user_id,
                "colour": colour(sh.user_id) if sh.user_id is not None else "",
                "source": sh.source,
                "since": when(sh.start, tz),
                "until": when(sh.end, tz),
                "open_ended": sh.end >= now + timedelta(days=8),
            }

        now_view, next_view = shift_view(current), shift_view(following)
    if failed and form is not None:
        forms[failed] = form
    return render(
        request,
        ctx,
        "oncall/schedule.html",
        status_code=status_code,
        nav="oncall",
        sched=info,
        cal=cal,
        notice=notice,
        current=now_view,
        following=next_view,
        gaps=[
            {
                "when": span_text(g.start, g.end, tz),
                "length": duration(g.end - g.start),
                "now": g.start <= now,
                "open_ended": g.end >= now + service.GAP_LOOKAHEAD,
            }
            for g in gaps
        ],
        overrides=overrides,
        layers=layers,
        people=people,
        schedule_feed=schedule_feed,
        my_feed=my_feed,
        forms=forms,
        failed=failed,
        errors=errors or {},
        imported=imported,
        units=rotation.UNITS,
    )


@router.get("/oncall/{schedule_id}", response_class=HTMLResponse)
def schedule_detail(
    request: Request, schedule_id: PathId, ctx: ViewerCtx, start: str = "", days: str = ""
) -> HTMLResponse:
    return _detail_page(request, ctx, schedule_id, start=start[:20], days=days[:4])


def _exists(ctx: Ctx, schedule_id: int) -> None:
    """A missing schedule is a 404, not a form error."""
    with ctx.session() as s:
        service.get(s, schedule_id)


@router.post("/oncall/{schedule_id}/overrides", response_model=None)
def override_add(
    request: Request,
    schedule_id: PathId,
    ctx: ResponderCtx,
    user: FormLine = "",
    starts_at: FormLine = "",
    ends_at: FormLine = "",
    note: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    _exists(ctx, schedule_id)
    form = {"user": user, "starts_at": starts_at, "ends_at": ends_at, "note": note}
    errors: Errors = {}
    if not user.strip():
        errors["user"] = "choose who is on call"
    start = _datetime(starts_at, "starts_at", errors)
    end = _datetime(ends_at, "ends_at", errors)
    status = 422
    if not errors:
        try:
            ref: int | str = int(user) if user.strip().isdigit() else user.strip()
            data = OverrideIn(user=ref, starts_at=start, ends_at=end, note=note)
            with ctx.session() as s:
                o = service.add_override(s, schedule_id, data, actor=ctx.actor, now=ctx.now())
                brief = service.Users(s).brief(o.user_id)
            who = brief["name"] if brief else "them"
            return back(f"/oncall/{schedule_id}", f"Override added: {who} is on call over every layer")
        except (ValidationError, OpsdeskError) as exc:
            status = _collect(exc, errors, set(form))
    return _detail_page(
        request, ctx, schedule_id, failed="override", form=form, errors=errors, status_code=status
    )


@router.post("/oncall/{schedule_id}/overrides/{override_id}/delete")
def override_delete(schedule_id: PathId, override_id: PathId, ctx: ResponderCtx) -> Response:
    with ctx.session() as s:
        service.delete_override(s, schedule_id, override_id, actor=ctx.actor, now=ctx.now())
    return back(f"/oncall/{schedule_id}", "Override removed")


def _layer_in(layer: ScheduleLayer, existing: set[int]) -> LayerIn:
    """A stored layer as the input that recreates it (people deleted since are left out)."""
    return LayerIn(
        name=layer.name,
        participants=[u for u in layer.participants if u in existing],
        rotation_start=layer.rotation_start,
        turn_length=layer.turn_length,
        turn_unit=layer.turn_unit,
        restrictions=[WindowIn(**w) for w in layer.restrictions],
        ends_at=layer.ends_at,
    )


def _kept_layers(s: Session, sched: Schedule, drop: int | None = None) -> list[LayerIn]:
    users = service.Users(s)
    existing = {u for layer in sched.layers for u in layer.participants if users.brief(u) is not None}
    out = []
    for layer in sched.layers:
        if layer.id == drop:
            continue
        if not any(u in existing for u in layer.participants):
            raise invalid("form", f"layer {layer.name!r} has nobody left to rotate (its people were deleted)")
        out.append(_layer_in(layer, existing))
    return out


LAYER_FIELDS = {
    "name",
    "participants",
    "rotation_start",
    "turn_length",
    "turn_unit",
    "restrictions",
    "ends_at",
}


@router.post("/oncall/{schedule_id}/layers", response_model=None)
def layer_add(
    request: Request,
    schedule_id: PathId,
    ctx: ManagerCtx,
    name: FormLine = "",
    participants: FormText = "",
    rotation_start: FormLine = "",
    turn_length: FormLine = "1",
    turn_unit: FormLine = "weeks",
    restrictions: FormText = "",
    ends_at: FormLine = "",
) -> Response:
    _exists(ctx, schedule_id)
    form = {
        "name": name,
        "participants": participants,
        "rotation_start": rotation_start,
        "turn_length": turn_length,
        "turn_unit": turn_unit,
        "restrictions": restrictions,
        "ends_at": ends_at,
    }
    errors: Errors = {}
    people = _participants(participants)
    if not people:
        errors["participants"] = "give at least one person: e-mail addresses in rotation order"
    start = _datetime(rotation_start, "rotation_start", errors)
    end = _datetime(ends_at, "ends_at", errors, required=False)
    windows: list[dict[str, Any]] = []
    try:
        windows = parse_restrictions(restrictions)
    except ValueError as exc:
        errors["restrictions"] = str(exc)
    status, index = 422, None
    if not errors:
        try:
            layer = LayerIn.model_validate(
                {
                    "name": name.strip() or "Layer",
                    "participants": people,
                    "rotation_start": start,
                    "turn_length": turn_length.strip(),
                    "turn_unit": turn_unit,
                    "restrictions": windows,
                    "ends_at": end,
                }
            )
            with ctx.session() as s:
                sched = service.get(s, schedule_id)
                kept = _kept_layers(s, sched)
                index = len(kept)
                update = ScheduleUpdate(layers=[*kept, layer])
                service.update(s, schedule_id, update, actor=ctx.actor, now=ctx.now())
            return back(f"/oncall/{schedule_id}", f"Layer {layer.name} added")
        except (ValidationError, OpsdeskError) as exc:
            status = _collect(exc, errors, LAYER_FIELDS, index)
    return _detail_page(
        request, ctx, schedule_id, failed="layer", form=form, errors=errors, status_code=status
    )


@router.post("/oncall/{schedule_id}/layers/{layer_id}/delete", response_model=None)
def layer_delete(request: Request, schedule_id: PathId, layer_id: PathId, ctx: ManagerCtx) -> Response:
    errors: Errors = {}
    try:
        with ctx.session() as s:
            sched = service.get(s, schedule_id)
            gone = next((layer for layer in sched.layers if layer.id == layer_id), None)
            if gone is None:
                raise not_found("layer", layer_id)
            label = gone.name
            layers = _kept_layers(s, sched, drop=layer_id)
            service.update(s, schedule_id, ScheduleUpdate(layers=layers), actor=ctx.actor, now=ctx.now())
        return back(f"/oncall/{schedule_id}", f"Layer {label} deleted")
    except (ValidationError, OpsdeskError) as exc:
        status = _collect(exc, errors, set())
    return _detail_page(request, ctx, schedule_id, failed="layers", errors=errors, status_code=status)


@router.post("/oncall/{schedule_id}/delete", response_model=None)
def schedule_delete(
    request: Request, schedule_id: PathId, ctx: ManagerCtx, confirm: FormLine = ""
) -> Response:
    errors: Errors = {}
    if confirm != "yes":
        _exists(ctx, schedule_id)
        errors["confirm"] = "tick the box to confirm"
        status = 422
    else:
        try:
            with ctx.session() as s:
                label = service.get(s, schedule_id).name
                service.delete(s, schedule_id, actor=ctx.actor, now=ctx.now())
            return back("/oncall", f"Schedule {label} deleted")
        except OpsdeskError as exc:
            status = _collect(exc, errors, set())
    return _detail_page(request, ctx, schedule_id, failed="delete", errors=errors, status_code=status)


@router.post("/oncall/{schedule_id}/feed/reset")
def schedule_feed_reset(schedule_id: PathId, ctx: ManagerCtx) -> Response:
    with ctx.session() as s:
        service.get(s, schedule_id)
        service.feed_token(s, schedule_id=schedule_id, now=ctx.now(), reset=True, actor=ctx.actor)
    return back(f"/oncall/{schedule_id}#ical", "The schedule has a new iCal URL; the old one no longer works")


@router.post("/oncall/my-feed/reset")
def my_feed_reset(ctx: ViewerCtx, schedule_id: FormLine = "") -> Response:
    if ctx.actor.id is None:
        return back("/oncall", "Only a person has a personal calendar", kind="bad")
    with ctx.session() as s:
        service.feed_token(s, user_id=ctx.actor.id, now=ctx.now(), reset=True, actor=ctx.actor)
    target = f"/oncall/{schedule_id}#ical" if schedule_id.isdigit() else "/oncall"
    return back(target, "You have a new personal iCal URL; the old one no longer works")


@router.post("/oncall/{schedule_id}/import", response_model=None)
def schedule_import(
    request: Request, schedule_id: PathId, ctx: ManagerCtx, file: Annotated[UploadFile | None, File()] = None
) -> Response:
    _exists(ctx, schedule_id)
    errors: Errors = {}
    body = file.file.read(MAX_ICS_BYTES + 1) if file is not None else b""
    if not body.strip():
        errors["file"] = "choose an iCal (.ics) file"
    elif len(body) > MAX_ICS_BYTES:
        errors["file"] = f"the file is over {MAX_ICS_BYTES // 1024 // 1024} MiB"
    status = 422
    if not errors:
        try:
            with ctx.session() as s:
                result = service.import_ical(s, schedule_id, body, actor=ctx.actor, now=ctx.now())
                tz = ZoneInfo(service.get(s, schedule_id).time_zone)
            layer = result.get("layer")
            shown = {
                "file": file.filename if file is not None else "",
                "events": result["events"],
                "mode": result["mode"],
                "overrides": result["overrides"],
                "unmatched": result["unmatched"],
                "layer": (
                    {
                        "name": layer["name"],
                        "participants": [p["name"] for p in layer["participants"]],
                        "turn": turn_text(layer["turn_length"], layer["turn_unit"]),
                        "rotation_start": when(layer["rotation_start"], tz),
                    }
                    if layer
                    else None
                ),
            }
            return _detail_page(request, ctx, schedule_id, imported=shown)
        except OpsdeskError as exc:
            status = _collect(exc, errors, {"file"})
    return _detail_page(request, ctx, schedule_id, failed="import", errors=errors, status_code=status)
