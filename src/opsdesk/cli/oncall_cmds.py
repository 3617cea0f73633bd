"""``opsdesk schedule``: on-call schedules, who is on call, overrides, gaps, iCal feeds and import.

Times are ISO 8601. ``--at`` needs its UTC offset (``2026-03-30T09:00+02:00``, ``…T07:00Z``) so
that a script never asks about the wrong hour; the other times (``--start``, ``--from``, ``--to``)
may leave it out and are then read in the schedule's time zone. Times are printed in the
schedule's time zone.

``schedule oncall`` exits 3 when nobody is on call and ``schedule gaps`` exits 3 when there is a
gap, so scripts and cron jobs can test them; bad input exits 1 with one line on stderr.
"""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from zoneinfo import ZoneInfo

import typer
from rich.markup import escape
from sqlalchemy.orm import Session

from opsdesk.cli.common import actor_as, console, handle_errors, now, session, settings, table
from opsdesk.core.errors import OpsdeskError
from opsdesk.oncall.rotation import WEEKDAYS

if TYPE_CHECKING:
    from opsdesk.oncall.models import Schedule, ScheduleLayer
    from opsdesk.oncall.rotation import Shift
    from opsdesk.oncall.schemas import LayerIn, WindowIn
    from opsdesk.oncall.service import Users

schedule_app = typer.Typer(help="On-call schedules: rotations, overrides, gaps, iCal.", no_args_is_help=True)

AsUser = Annotated[str | None, typer.Option("--as", help="Act as this user (e-mail).")]
Json = Annotated[bool, typer.Option("--json", help="Print JSON (the API's shape) instead of text.")]
Ref = Annotated[str, typer.Argument(help="Schedule name or id.")]

EXIT_NOBODY = 3  # `oncall` in a gap, `gaps` when there is one
LOOK = timedelta(days=100)  # how far either side of a moment its shift's real start and end are looked for
MAX_ICS_BYTES = 2 * 1024 * 1024
_TURN = re.compile(r"^\s*(\d+)\s*(h|hours?|d|days?|w|weeks?)\s*$", re.IGNORECASE)
_UNITS = {"h": "hours", "d": "days", "w": "weeks"}
_RESTRICT = re.compile(r"^\s*(?P<days>.*?)\s*(?P<start>\d{1,2}:\d{2})\s*-\s*(?P<end>\d{1,2}:\d{2})\s*$")
_RESTRICT_HELP = (
    'give "<days> HH:MM-HH:MM", e.g. "mon-fri 09:00-17:00", "sat,sun 00:00-24:00", "daily 20:00-08:00"'
)
_DAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_DAY_SETS = {
    "daily": WEEKDAYS,
    "every day": WEEKDAYS,
    "everyday": WEEKDAYS,
    "weekdays": WEEKDAYS[:5],
    "weekends": WEEKDAYS[5:],
    "weekend": WEEKDAYS[5:],
}


def register(app: typer.Typer) -> None:
    app.add_typer(schedule_app, name="schedule")


# --- parsing -------------------------------------------------------------------------------------


def _bad(option: str, message: str) -> OpsdeskError:
    """Bad command-line input: one line naming the option."""
    return OpsdeskError(detail=f"{option}: {message}", status=422, title="Invalid input")


def parse_turn(text: str) -> tuple[int, str]:
    """``1w``, ``3d``, ``12h`` (or ``2 weeks``) → ``(2, "weeks")``."""
    m = _TURN.match(text)
    if m is None:
        raise _bad("--turn", f"{text!r} is not a turn length: give <number><h|d|w>, e.g. 1w, 3d or 12h")
    n = int(m.group(1))
    if not 1 <= n <= 1000:
        raise _bad("--turn", f"{text!r}: the number must be from 1 to 1000")
    return n, _UNITS[m.group(2)[0].lower()]


def _day(token: str, text: str) -> int:
    t = token.strip().lower()
    for i, full in enumerate(_DAY_NAMES):
        if len(t) >= 3 and full.startswith(t):
            return i
    raise _bad("--restrict", f"{text!r}: {token.strip()!r} is not a weekday (mon … sun); {_RESTRICT_HELP}")


def parse_days(spec: str, text: str) -> list[str]:
    """``mon-fri``, ``sat,sun``, ``fri-mon``, ``mon,wed-fri``, ``daily``, ``weekdays``, ``weekends``."""
    spec = re.sub(r"\s*-\s*", "-", spec.strip().lower())
    if not spec or spec in _DAY_SETS:
        return list(_DAY_SETS.get(spec, ()))  # empty: every day
    picked: set[int] = set()
    for part in spec.replace(" ", ",").split(","):
        if not part:
            continue
        if "-" in part:
            a, _, b = part.partition("-")
            lo, hi = _day(a, text), _day(b, text)
            picked.update((lo + i) % 7 for i in range((hi - lo) % 7 + 1))
        else:
            picked.add(_day(part, text))
    return [WEEKDAYS[d] for d in sorted(picked)]


def parse_restriction(text: str) -> WindowIn:
    """``"mon-fri 09:00-17:00"`` → a restriction window; an end at or before the start is the next day."""
    from opsdesk.oncall.rotation import Window
    from opsdesk.oncall.schemas import WindowIn

    m = _RESTRICT.match(text)
    if m is None:
        raise _bad("--restrict", f"{text!r}: {_RESTRICT_HELP}")
    days = parse_days(m.group("days"), text)
    try:
        Window.parse(days, m.group("start"), m.group("end"))
    except ValueError as exc:
        raise _bad("--restrict", f"{text!r}: {exc}") from None
    return WindowIn(days=days, start=m.group("start"), end=m.group("end"))


def parse_time(text: str, option: str, tz: ZoneInfo | None = None) -> datetime:
    """An ISO 8601 time; without an offset it is read in ``tz``, or refused when ``tz`` is None."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise _bad(option, f"{text!r} is not an ISO 8601 time like 2026-03-30T09:00+02:00") from None
    if value.tzinfo is None:
        if tz is None:
            raise _bad(
                option,
                f"{text!r} has no UTC offset: give one, e.g. 2026-03-30T09:00+02:00 or 2026-03-30T07:00Z",
            )
        value = value.replace(tzinfo=tz)
    return value


# --- output --------------------------------------------------------------------------------------


def _zone(sched: Schedule) -> ZoneInfo:
    return ZoneInfo(sched.time_zone)


def _when(t: datetime, tz: ZoneInfo) -> str:
    return f"{t.astimezone(tz):%a %Y-%m-%d %H:%M %Z}"


def _who(users: Users, user_id: int | None) -> str:
    if user_id is None:
        return "nobody"
    b = users.brief(user_id)
    return f"{b['name']} <{b['email']}>" if b else f"user {user_id} (deleted)"


def _duration(d: timedelta) -> str:
    minutes = int(d.total_seconds() // 60)
    days, rest = divmod(minutes, 1440)
    hours, mins = divmod(rest, 60)
    return " ".join(f"{v}{u}" for v, u in ((days, "d"), (hours, "h"), (mins, "m")) if v) or "0m"


def _turn_text(length: int, unit: str) -> str:
    return f"{length} {unit if length != 1 else unit[:-1]}"


def _days_text(days: list[str]) -> str:
    """The inverse of :func:`parse_days`: ``mon-fri``, ``sat,sun``, ``daily``."""
    idx = sorted(WEEKDAYS.index(d) for d in days)
    if not idx or len(idx) == 7:
        return "daily"
    runs: list[list[int]] = []
    for i in idx:
        if runs and i == runs[-1][-1] + 1:
            runs[-1].append(i)
        else:
            runs.append([i])
    parts = [
        f"{WEEKDAYS[r[0]]}-{WEEKDAYS[r[-1]]}" if len(r) > 2 else ",".join(WEEKDAYS[i] for i in r)
        for r in runs
    ]
    return ",".join(parts)


def _restriction_text(w: dict[str, Any]) -> str:
    return f"{_days_text(w['days'])} {w['start']}-{w['end']}"


def _echo_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2))


def _dump(model: Any, data: Any) -> Any:
    """``data`` in the API's JSON shape (ISO 8601 times)."""
    return model.model_validate(data).model_dump(mode="json")


def _resolve(s: Session, ref: str) -> Schedule:
    from opsdesk.oncall import service

    return service.resolve(s, ref.strip())


def _current(s: Session, sched: Schedule, at: datetime) -> tuple[Shift, bool, bool]:
    """The final shift running at ``at`` with its real start and end (``service.on_call`` clips them
    to 8 days around ``at``), looked for up to :data:`LOOK` either side; the flags say the start or
    the end is further away than that."""
    from opsdesk.oncall import service

    lo, hi = at - LOOK, at + LOOK
    for sh in service.final(s, sched, lo, hi):
        if sh.start <= at < sh.end:
            return sh, sh.start <= lo, sh.end >= hi
    raise AssertionError("unreachable: final() covers its whole range")


def _until(sh: Shift, open_end: bool, tz: ZoneInfo) -> str:
    return ("after " if open_end else "") + _when(sh.end, tz)


def _since(sh: Shift, open_start: bool, tz: ZoneInfo) -> str:
    return ("before " if open_start else "") + _when(sh.start, tz)


def _schedule_json(s: Session, sched: Schedule, at: datetime, users: Users) -> Any:
    from opsdesk.oncall import service
    from opsdesk.oncall.schemas import ScheduleOut

    d = service.as_dict(s, sched, at, users)
    d["on_call_now"] = service.shift_dict(_current(s, sched, at)[0], users)  # not clipped to 8 days
    return _dump(ScheduleOut, d)


# --- schedules -----------------------------------------------------------------------------------


@schedule_app.command("list")
@handle_errors
def schedule_list(as_json: Json = False) -> None:
    """Every schedule with who is on call now, until when, and the next gap in 14 days."""
    from opsdesk.oncall import service

    t = now()
    with session() as s:
        users = service.Users(s)
        scheds = service.list_schedules(s)
        if as_json:
            _echo_json([_schedule_json(s, x, t, users) for x in scheds])
            return
        rows = []
        for x in scheds:
            tz = _zone(x)
            sh, _, open_end = _current(s, x, t)
            gap = service.next_gap(s, x, t)
            rows.append(
                {
                    "id": x.id,
                    "name": escape(x.name),
                    "time zone": x.time_zone,
                    "on call now": escape(_who(users, sh.user_id)),
                    "until": _until(sh, open_end, tz),
                    "next gap (14 days)": f"{_when(gap.start, tz)} to {_when(gap.end, tz)}"
                    if gap
                    else "none",
                }
            )
    table(rows, ["id", "name", "time zone", "on call now", "until", "next gap (14 days)"], False)


@schedule_app.command("show")
@handle_errors
def schedule_show(ref: Ref, as_json: Json = False) -> None:
    """A schedule's layers (participants in order, turn, restrictions), who is on call and the next gap."""
    from opsdesk.oncall import service

    t = now()
    with session() as s:
        sched = _resolve(s, ref)
        users = service.Users(s)
        if as_json:
            _echo_json(_schedule_json(s, sched, t, users))
            return
        tz = _zone(sched)
        sh, open_start, open_end = _current(s, sched, t)
        gap = service.next_gap(s, sched, t)
        upcoming = len(service.overrides(s, sched.id, start=t))
        console.print(f"[bold]{escape(sched.name)}[/bold] (schedule {sched.id}), time zone {sched.time_zone}")
        if sched.description:
            console.print(escape(sched.description))
        if sched.team_id is not None:
            console.print(f"team: {sched.team_id}")
        console.print(
            f"on call now: {escape(_who(users, sh.user_id))}"
            f" since {_since(sh, open_start, tz)} until {_until(sh, open_end, tz)}"
        )
        console.print(
            f"next gap: {f'{_when(gap.start, tz)} to {_when(gap.end, tz)}' if gap else 'none in 14 days'}"
        )
        console.print(f"overrides to come: {upcoming}")
        if not sched.layers:
            console.print("no layers yet: add one with `opsdesk schedule add-layer`")
            return
        console.print("layers (a later one wins where it has someone on call):")
        for layer in sched.layers:
            turns = f"{_turn_text(layer.turn_length, layer.turn_unit)} turns"
            ends = f", ends {_when(layer.ends_at, tz)}" if layer.ends_at else ""
            console.print(
                f"  {layer.position + 1}. [bold]{escape(layer.name)}[/bold]: {turns},"
                f" first handoff {_when(layer.rotation_start, tz)}{ends}"
            )
            for i, u in enumerate(layer.participants, 1):
                console.print(f"       {i}. {escape(_who(users, u))}")
            limits = "; ".join(_restriction_text(w) for w in layer.restrictions)
            console.print(f"       on call only: {limits}" if limits else "       on call at any time")


@schedule_app.command("create")
@handle_errors
def schedule_create(
    name: Annotated[str, typer.Argument(help="A unique name, e.g. 'DBA primary'.")],
    tz: Annotated[str, typer.Option("--tz", help="IANA time zone of handoffs and restrictions.")] = "UTC",
    team_id: Annotated[int | None, typer.Option(help="Id of the owning team.")] = None,
    description: Annotated[str, typer.Option()] = "",
    as_user: AsUser = None,
) -> None:
    """Create an empty schedule; add rotations with `schedule add-layer`."""
    from opsdesk.oncall import service
    from opsdesk.oncall.schemas import ScheduleIn

    data = ScheduleIn(name=name, time_zone=tz, team_id=team_id, description=description)
    with session() as s:
        sched = service.create(s, data, actor=actor_as(as_user), now=now())
        console.print(f"created schedule {sched.id} {escape(sched.name)} ({sched.time_zone})")


def _layer_in(layer: ScheduleLayer) -> LayerIn:
    """A stored layer as the input that makes it again."""
    from opsdesk.oncall.schemas import LayerIn, WindowIn

    return LayerIn(
        name=layer.name,
        participants=list(layer.participants),
        rotation_start=layer.rotation_start,
        turn_length=layer.turn_length,
        turn_unit=layer.turn_unit,
        restrictions=[WindowIn(days=w["days"], start=w["start"], end=w["end"]) for w in layer.restrictions],
        ends_at=layer.ends_at,
    )


def _participants(s: Session, refs: list[str]) -> list[int | str]:
    """E-mail addresses (checked here, for a clear message) or user ids."""
    from opsdesk.auth import service as auth

    out: list[int | str] = []
    for ref in refs:
        ref = ref.strip()
        if ref.isdigit():
            out.append(int(ref))
        elif auth.get_user_by_email(s, ref) is None:
            raise _bad("--participant", f"no user with e-mail {ref!r}")
        else:
            out.append(ref)
    return out


@schedule_app.command("add-layer")
@handle_errors
def schedule_add_layer(
    ref: Ref,
    participant: Annotated[
        list[str], typer.Option("--participant", "-p", help="E-mail (or id), in rotation order; repeat.")
    ],
    start: Annotated[
        str, typer.Option(help="The first handoff, ISO 8601; without an offset in the schedule's zone.")
    ],
    turn: Annotated[str, typer.Option(help="Turn length: <number><h|d|w>, e.g. 1w, 3d, 12h.")] = "1w",
    restrict: Annotated[
        list[str] | None,
        typer.Option(help='Only on call in "<days> HH:MM-HH:MM", e.g. "mon-fri 09:00-17:00"; repeat.'),
    ] = None,
    name: Annotated[str | None, typer.Option(help="Layer name (default: Layer N).")] = None,
    as_user: AsUser = None,
) -> None:
    """Add a rotation on top of the schedule's layers (it wins where it has someone on call)."""
    from opsdesk.oncall import service
    from opsdesk.oncall.schemas import LayerIn, ScheduleUpdate

    length, unit = parse_turn(turn)
    windows = [parse_restriction(r) for r in restrict or []]
    with session() as s:
        sched = _resolve(s, ref)
        tz = _zone(sched)
        begin = parse_time(start, "--start", tz)
        layers = [_layer_in(layer) for layer in sched.layers]
        layers.append(
            LayerIn(
                name=name or f"Layer {len(layers) + 1}",
                participants=_participants(s, participant),
                rotation_start=begin,
                turn_length=length,
                turn_unit=unit,
                restrictions=windows,
            )
        )
        sched = service.update(s, sched.id, ScheduleUpdate(layers=layers), actor=actor_as(as_user), now=now())
        users = service.Users(s)
        new = sched.layers[-1]
        who = ", ".join(_who(users, u) for u in new.participants)
        limits = "; ".join(_restriction_text(w) for w in new.restrictions) or "no restrictions"
        turns = f"{_turn_text(new.turn_length, new.turn_unit)} turns from {_when(new.rotation_start, tz)}"
        console.print(
            f"added layer {len(sched.layers)} {escape(new.name)} to {escape(sched.name)}: {escape(who)},"
            f" {turns}, {limits}"
        )


@schedule_app.command("delete")
@handle_errors
def schedule_delete(ref: Ref, as_user: AsUser = None) -> None:
    """Delete a schedule, its layers, overrides and iCal feed."""
    from opsdesk.oncall import service

    with session() as s:
        sched = _resolve(s, ref)
        name = sched.name
        service.delete(s, sched.id, actor=actor_as(as_user), now=now())
    console.print(f"deleted schedule {escape(name)}")


# --- who is on call ------------------------------------------------------------------------------


@schedule_app.command("oncall")
@handle_errors
def schedule_oncall(
    ref: Ref,
    at: Annotated[str | None, typer.Option(help="When, ISO 8601 with its UTC offset (default now).")] = None,
    as_json: Json = False,
) -> None:
    """Who is on call now or --at a time; exit code 3 when nobody is (a gap)."""
    from opsdesk.oncall import service
    from opsdesk.oncall.schemas import ShiftOut

    when = parse_time(at, "--at") if at is not None else now()
    with session() as s:
        sched = _resolve(s, ref)
        tz = _zone(sched)
        sh, open_start, open_end = _current(s, sched, when)
        users = service.Users(s)
        if as_json:
            _echo_json(_dump(ShiftOut, service.shift_dict(sh, users)))
        else:
            span = f"from {_since(sh, open_start, tz)} until {_until(sh, open_end, tz)}"
            if sh.user_id is None:
                console.print(f"nobody is on call for {escape(sched.name)} {span}")
            else:
                via = "an override" if sh.source == "override" else f"layer {sh.source}"
                console.print(
                    f"{escape(_who(users, sh.user_id))} is on call for {escape(sched.name)} {span}"
                    f" ({escape(via)})"
                )
    if sh.user_id is None:
        raise typer.Exit(EXIT_NOBODY)


def _range(sched: Schedule, start: str | None, end: str | None) -> tuple[datetime, datetime]:
    tz = _zone(sched)
    lo = parse_time(start, "--from", tz) if start else now()
    hi = parse_time(end, "--to", tz) if end else lo + timedelta(days=14)
    return lo.astimezone(UTC), hi.astimezone(UTC)


def _shift_row(sh: dict[str, Any], tz: ZoneInfo) -> dict[str, str]:
    user = sh["user"]
    return {
        "start": sh["start"].astimezone(tz).isoformat(),
        "end": sh["end"].astimezone(tz).isoformat(),
        "name": user["name"] if user else "",
        "email": user["email"] if user else "",
        "source": sh["source"] or "gap",
    }


@schedule_app.command("shifts")
@handle_errors
def schedule_shifts(
    ref: Ref,
    start: Annotated[
        str | None, typer.Option("--from", help="ISO 8601 (default now); no offset: the schedule's zone.")
    ] = None,
    end: Annotated[
        str | None, typer.Option("--to", help="ISO 8601 (default 14 days after --from); at most 400 days.")
    ] = None,
    as_json: Json = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="Print CSV: start,end,name,email,source.")] = False,
) -> None:
    """The final shifts (who is on call, layer or override) in the schedule's zone; gaps marked."""
    from opsdesk.oncall import service
    from opsdesk.oncall.schemas import ShiftsOut

    if as_json and as_csv:
        raise _bad("--csv", "give --json or --csv, not both")
    with session() as s:
        sched = _resolve(s, ref)
        tz = _zone(sched)
        lo, hi = _range(sched, start, end)
        d = service.shifts_dict(s, sched, lo, hi)
    if as_json:
        _echo_json(_dump(ShiftsOut, d))
        return
    rows = [_shift_row(sh, tz) for sh in d["final"]]
    if as_csv:
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=["start", "end", "name", "email", "source"], lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
        typer.echo(buf.getvalue(), nl=False)
        return
    shown = [
        {
            "start": _when(sh["start"], tz),
            "end": _when(sh["end"], tz),
            "on call": escape(f"{sh['user']['name']} <{sh['user']['email']}>")
            if sh["user"]
            else "[bold red]nobody: GAP[/bold red]",
            "source": escape(sh["source"]),
        }
        for sh in d["final"]
    ]
    title = f"{escape(sched.name)}: {_when(lo, tz)} to {_when(hi, tz)}"
    table(shown, ["start", "end", "on call", "source"], False, title=title)
    if d["gaps"]:
        console.print(f"{len(d['gaps'])} gap(s): nobody is on call then")


@schedule_app.command("gaps")
@handle_errors
def schedule_gaps(
    ref: Ref,
    days: Annotated[int, typer.Option(help="Look this many days ahead.", min=1, max=400)] = 14,
    as_json: Json = False,
) -> None:
    """Times in the next --days days when nobody is on call; exit code 3 when there is any."""
    from opsdesk.oncall import service
    from opsdesk.oncall.schemas import ShiftOut

    t = now()
    with session() as s:
        sched = _resolve(s, ref)
        tz = _zone(sched)
        users = service.Users(s)
        gaps = [
            service.shift_dict(sh, users)
            for sh in service.final(s, sched, t, t + timedelta(days=days))
            if sh.user_id is None
        ]
    if as_json:
        _echo_json([_dump(ShiftOut, g) for g in gaps])
    elif not gaps:
        console.print(f"no gaps in {escape(sched.name)} in the next {days} days")
    else:
        rows = [
            {
                "start": _when(g["start"], tz),
                "end": _when(g["end"], tz),
                "length": _duration(g["end"] - g["start"]),
            }
            for g in gaps
        ]
        table(
            rows, ["start", "end", "length"], False, title=f"Gaps in {escape(sched.name)}, next {days} days"
        )
        console.print(f"{len(gaps)} gap(s): nobody is on call then")
    if gaps:
        raise typer.Exit(EXIT_NOBODY)


# --- overrides -----------------------------------------------------------------------------------


@schedule_app.command("override")
@handle_errors
def schedule_override(
    ref: Ref,
    user: Annotated[str, typer.Option(help="Who is on call instead: e-mail (or id).")],
    start: Annotated[str, typer.Option("--from", help="ISO 8601; without an offset in the schedule's zone.")],
    end: Annotated[str, typer.Option("--to", help="ISO 8601; without an offset in the schedule's zone.")],
    note: Annotated[str, typer.Option(help="Why, e.g. 'swap with Ann'.")] = "",
    as_user: AsUser = None,
) -> None:
    """Put someone on call over every layer from --from to --to."""
    from opsdesk.oncall import service
    from opsdesk.oncall.schemas import OverrideIn

    with session() as s:
        sched = _resolve(s, ref)
        tz = _zone(sched)
        data = OverrideIn(
            user=int(user) if user.strip().isdigit() else user,
            starts_at=parse_time(start, "--from", tz),
            ends_at=parse_time(end, "--to", tz),
            note=note,
        )
        o = service.add_override(s, sched.id, data, actor=actor_as(as_user), now=now())
        who = _who(service.Users(s), o.user_id)
        console.print(
            f"override {o.id} on {escape(sched.name)}: {escape(who)}"
            f" from {_when(o.starts_at, tz)} until {_when(o.ends_at, tz)}"
        )


@schedule_app.command("overrides")
@handle_errors
def schedule_overrides(
    ref: Ref,
    all_: Annotated[bool, typer.Option("--all", help="Include the ones that have ended.")] = False,
    as_json: Json = False,
) -> None:
    """Overrides that have not ended (--all: every one), oldest first."""
    from opsdesk.oncall import service
    from opsdesk.oncall.schemas import OverrideOut

    t = now()
    with session() as s:
        sched = _resolve(s, ref)
        tz = _zone(sched)
        users = service.Users(s)
        found = [
            service.override_dict(o, users) for o in service.overrides(s, sched.id, start=None if all_ else t)
        ]
    if as_json:
        _echo_json([_dump(OverrideOut, o) for o in found])
        return
    rows = [
        {
            "id": o["id"],
            "user": escape(f"{o['user']['name']} <{o['user']['email']}>") if o["user"] else "",
            "from": _when(o["starts_at"], tz),
            "until": _when(o["ends_at"], tz),
            "note": escape(o["note"]),
            "created_by": escape(o["created_by"]),
        }
        for o in found
    ]
    table(rows, ["id", "user", "from", "until", "note", "created_by"], False)


@schedule_app.command("remove-override")
@handle_errors
def schedule_remove_override(
    ref: Ref,
    override_id: Annotated[int, typer.Argument(help="Override id.", min=1, max=2**31 - 1)],
    as_user: AsUser = None,
) -> None:
    """Remove an override."""
    from opsdesk.oncall import service

    with session() as s:
        sched = _resolve(s, ref)
        service.delete_override(s, sched.id, override_id, actor=actor_as(as_user), now=now())
        console.print(f"removed override {override_id} from {escape(sched.name)}")


# --- iCal ----------------------------------------------------------------------------------------


@schedule_app.command("import")
@handle_errors
def schedule_import(
    ref: Ref,
    file: Annotated[
        Path, typer.Argument(help="An iCal file (.ics), e.g. a PagerDuty or Grafana OnCall export.")
    ],
    as_json: Json = False,
    as_user: AsUser = None,
) -> None:
    """Import shifts from an iCal file: a rotation becomes a new top layer, else overrides.

    People are matched by e-mail address, then by name; overrides only for shifts still to come."""
    from opsdesk.oncall import service
    from opsdesk.oncall.schemas import ImportOut

    try:
        if file.stat().st_size > MAX_ICS_BYTES:
            raise _bad("file", f"{file} is over {MAX_ICS_BYTES // 1024 // 1024} MiB")
        data = file.read_bytes()
    except OSError as exc:
        raise _bad("file", f"cannot read {file}: {exc.strerror or exc}") from None
    if not data.strip():
        raise _bad("file", f"{file} is empty")
    with session() as s:
        sched = _resolve(s, ref)
        tz = _zone(sched)
        result = service.import_ical(s, sched.id, data, actor=actor_as(as_user), now=now())
        name = sched.name
    if as_json:
        _echo_json(_dump(ImportOut, result))
        return
    console.print(f"read {result['events']} event(s) from {escape(str(file))} into {escape(name)}")
    layer = result.get("layer")
    if result["mode"] == "layer" and layer is not None:
        who = ", ".join(f"{p['name']} <{p['email']}>" for p in layer["participants"])
        console.print(
            f"a rotation: new top layer {escape(layer['name'])}: {escape(who)},"
            f" {_turn_text(layer['turn_length'], layer['turn_unit'])} turns"
            f" from {_when(layer['rotation_start'], tz)}"
        )
    else:
        console.print(
            f"not a regular rotation: {result['overrides']} override(s) added (shifts still to come)"
        )
    if result["unmatched"]:
        console.print(f"not imported, no user found for: {escape('; '.join(result['unmatched']))}")


@schedule_app.command("feed")
@handle_errors
def schedule_feed(
    ref: Ref,
    reset: Annotated[
        bool, typer.Option("--reset", help="Make a new URL; the old one stops working.")
    ] = False,
) -> None:
    """The schedule's secret iCal URL (made on first use), alone on the last line."""
    from opsdesk.oncall import service

    with session() as s:
        sched = _resolve(s, ref)
        token = service.feed_token(s, schedule_id=sched.id, now=now(), reset=reset, actor=actor_as(None))
        name = sched.name
    console.print(
        f"{'new ' if reset else ''}iCal feed of {escape(name)}; anyone with this URL can read the shifts:"
    )
    typer.echo(f"{settings().base_url}/ical/{token}.ics")
