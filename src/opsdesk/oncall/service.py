"""On-call schedules: storing them, and asking who is on call (now, at any time, over a range).

The computation itself is :mod:`opsdesk.oncall.rotation`; this module turns rows into its inputs
and its shifts into API dictionaries. Changes are written to the audit log in the same transaction.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from opsdesk.audit import service as audit
from opsdesk.auth.models import User
from opsdesk.core import crypto
from opsdesk.core.actor import Actor
from opsdesk.core.errors import conflict, invalid, not_found
from opsdesk.oncall import ical, rotation
from opsdesk.oncall.models import CalendarFeed, Schedule, ScheduleLayer, ScheduleOverride
from opsdesk.oncall.schemas import LayerIn, OverrideIn, ScheduleIn, ScheduleUpdate

GAP_LOOKAHEAD = timedelta(days=14)
FIELDS = ["name", "description", "time_zone", "team_id"]


# --- reading -------------------------------------------------------------------------------------


def get(s: Session, schedule_id: int) -> Schedule:
    sched = s.get(Schedule, schedule_id)
    if sched is None:
        raise not_found("schedule", schedule_id)
    return sched


def get_by_name(s: Session, name: str) -> Schedule | None:
    return s.scalar(select(Schedule).where(Schedule.name == name))


def resolve(s: Session, ref: str) -> Schedule:
    """A schedule by id or by name (for the CLI)."""
    sched = get_by_name(s, ref)
    if sched is None and ref.isdigit():
        sched = s.get(Schedule, int(ref))
    if sched is None:
        raise not_found("schedule", ref)
    return sched


def list_schedules(s: Session) -> list[Schedule]:
    return list(s.scalars(select(Schedule).order_by(Schedule.name)))


def overrides(
    s: Session, schedule_id: int, *, start: datetime | None = None, end: datetime | None = None
) -> list[ScheduleOverride]:
    """Overrides of a schedule touching ``[start, end)``, oldest first (later ones win)."""
    q = select(ScheduleOverride).where(ScheduleOverride.schedule_id == schedule_id)
    if start is not None:
        q = q.where(ScheduleOverride.ends_at > start)
    if end is not None:
        q = q.where(ScheduleOverride.starts_at < end)
    return list(s.scalars(q.order_by(ScheduleOverride.id)))


def engine(s: Session, sched: Schedule, start: datetime, end: datetime) -> rotation.Schedule:
    """The computation's view of ``sched`` with the overrides that touch ``[start, end)``.

    A participant who was deleted or deactivated keeps their place in the rotation, but their turns
    are nobody's: gaps, flagged as such, until a manager edits the layer."""
    wanted = {u for layer in sched.layers for u in layer.participants}
    active = (
        set(s.scalars(select(User.id).where(User.id.in_(wanted), User.active.is_(True)))) if wanted else set()
    )
    layers = [
        rotation.Layer(
            participants=tuple(u if u in active else None for u in layer.participants),
            start=layer.rotation_start,
            turn_length=layer.turn_length,
            turn_unit=layer.turn_unit,
            restrictions=tuple(
                rotation.Window.parse(w["days"], w["start"], w["end"]) for w in layer.restrictions
            ),
            end=layer.ends_at,
            name=layer.name,
        )
        for layer in sched.layers
    ]
    ovs = [
        rotation.Override(o.user_id, o.starts_at, o.ends_at, o.id)
        for o in overrides(s, sched.id, start=start, end=end)
        if o.user_id in active or _active(s, o.user_id)
    ]
    return rotation.Schedule(sched.time_zone, layers, ovs)


def _active(s: Session, user_id: int) -> bool:
    u = s.get(User, user_id)
    return u is not None and u.active


def final(s: Session, sched: Schedule, start: datetime, end: datetime) -> list[rotation.Shift]:
    _check_range(start, end)
    return engine(s, sched, start, end).final(start, end)


def on_call(s: Session, sched: Schedule, at: datetime) -> rotation.Shift:
    span = timedelta(days=180)
    return engine(s, sched, at - span, at + span).on_call(at)


def on_call_users(s: Session, schedule_id: int, at: datetime) -> list[User]:
    """The people on call on a schedule at ``at`` (empty in a gap): what escalation pages."""
    shift = on_call(s, get(s, schedule_id), at)
    if shift.user_id is None:
        return []
    user = s.get(User, shift.user_id)
    return [user] if user is not None and user.active else []


def next_gap(s: Session, sched: Schedule, now: datetime) -> rotation.Shift | None:
    gaps = engine(s, sched, now, now + GAP_LOOKAHEAD).gaps(now, now + GAP_LOOKAHEAD)
    return gaps[0] if gaps else None


def _check_range(start: datetime, end: datetime) -> None:
    if end <= start:
        raise invalid("end", "must be after start")
    if end - start > rotation.MAX_SPAN:
        raise invalid("end", f"a range of at most {rotation.MAX_SPAN.days} days is computed at once")


# --- writing -------------------------------------------------------------------------------------


def _users(s: Session, refs: list[int | str], field: str) -> list[User]:
    out = []
    for i, ref in enumerate(refs):
        if isinstance(ref, int):
            user = s.get(User, ref)
        else:
            user = s.scalar(select(User).where(User.email == ref.strip().lower()))
        if user is None:
            raise invalid(f"{field}.{i}" if field.endswith("participants") else field, f"no user {ref!r}")
        out.append(user)
    return out


def _aware(value: datetime, tz: ZoneInfo) -> datetime:
    return (value if value.tzinfo is not None else value.replace(tzinfo=tz)).astimezone(UTC)


def _layers(s: Session, sched: Schedule, data: list[LayerIn]) -> list[ScheduleLayer]:
    tz = ZoneInfo(sched.time_zone)
    out = []
    for i, layer in enumerate(data):
        users = _users(s, layer.participants, f"layers.{i}.participants")
        start = _aware(layer.rotation_start, tz)
        ends = _aware(layer.ends_at, tz) if layer.ends_at is not None else None
        if ends is not None and ends <= start:
            raise invalid(f"layers.{i}.ends_at", "must be after rotation_start")
        out.append(
            ScheduleLayer(
                position=i,
                name=layer.name,
                rotation_start=start,
                turn_length=layer.turn_length,
                turn_unit=layer.turn_unit,
                participants=[u.id for u in users],
                restrictions=[w.window().to_json() for w in layer.restrictions],
                ends_at=ends,
            )
        )
    return out


def _rezone(at: datetime, old: ZoneInfo, new: ZoneInfo) -> datetime:
    return at.astimezone(old).replace(tzinfo=new).astimezone(UTC)


def _check_team(s: Session, team_id: int | None) -> None:
    from opsdesk.auth.models import Team

    if team_id is not None and s.get(Team, team_id) is None:
        raise invalid("team_id", f"no team {team_id}")


def snapshot(sched: Schedule) -> dict[str, Any]:
    out = audit.snapshot(sched, FIELDS)
    out["layers"] = [
        {
            "name": layer.name,
            "participants": list(layer.participants),
            "rotation_start": layer.rotation_start.isoformat(),
            "turn": f"{layer.turn_length} {layer.turn_unit}",
            "restrictions": list(layer.restrictions),
            "ends_at": layer.ends_at.isoformat() if layer.ends_at else None,
        }
        for layer in sched.layers
    ]
    return out


def create(s: Session, data: ScheduleIn, *, actor: Actor, now: datetime) -> Schedule:
    if get_by_name(s, data.name) is not None:
        raise conflict(f"a schedule named {data.name!r} exists")
    _check_team(s, data.team_id)
    sched = Schedule(
        name=data.name,
        description=data.description,
        time_zone=data.time_zone,
        team_id=data.team_id,
        created_at=now,
        updated_at=now,
    )
    sched.layers = _layers(s, sched, data.layers)
    s.add(sched)
    s.flush()
    audit.created(s, "schedule", sched.id, snapshot(sched), actor=actor, at=now)
    return sched


def update(s: Session, schedule_id: int, data: ScheduleUpdate, *, actor: Actor, now: datetime) -> Schedule:
    sched = get(s, schedule_id)
    before = snapshot(sched)
    fields = data.model_fields_set
    if "name" in fields and data.name is not None and data.name != sched.name:
        if get_by_name(s, data.name) is not None:
            raise conflict(f"a schedule named {data.name!r} exists")
        sched.name = data.name
    if "description" in fields and data.description is not None:
        sched.description = data.description
    if "team_id" in fields:
        _check_team(s, data.team_id)
        sched.team_id = data.team_id
    if "time_zone" in fields and data.time_zone is not None and data.time_zone != sched.time_zone:
        # Handoffs stay at the same local wall time (Monday 09:00 stays Monday 09:00, now in the
        # new zone); layers sent in the same request are read in the new zone anyway.
        old_tz, new_tz = ZoneInfo(sched.time_zone), ZoneInfo(data.time_zone)
        for layer in sched.layers:
            layer.rotation_start = _rezone(layer.rotation_start, old_tz, new_tz)
            if layer.ends_at is not None:
                layer.ends_at = _rezone(layer.ends_at, old_tz, new_tz)
        sched.time_zone = data.time_zone
    if "layers" in fields and data.layers is not None:
        new = _layers(s, sched, data.layers)
        sched.layers.clear()
        s.flush()
        sched.layers.extend(new)
    sched.updated_at = now
    s.flush()
    audit.updated(s, "schedule", sched.id, before, snapshot(sched), actor=actor, at=now)
    return sched


def delete(s: Session, schedule_id: int, *, actor: Actor, now: datetime) -> None:
    sched = get(s, schedule_id)
    before = snapshot(sched)
    s.delete(sched)
    try:
        s.flush()
    except IntegrityError:
        raise conflict(f"schedule {sched.name!r} is still used by an escalation policy") from None
    audit.deleted(s, "schedule", schedule_id, before, actor=actor, at=now)


def add_override(
    s: Session, schedule_id: int, data: OverrideIn, *, actor: Actor, now: datetime
) -> ScheduleOverride:
    sched = get(s, schedule_id)
    tz = ZoneInfo(sched.time_zone)
    (user,) = _users(s, [data.user], "user")
    start, end = _aware(data.starts_at, tz), _aware(data.ends_at, tz)
    if end <= start:
        raise invalid("ends_at", "must be after starts_at")
    if end <= now:
        raise invalid("ends_at", "must be in the future")
    if end - start > rotation.MAX_SPAN:
        raise invalid("ends_at", f"an override lasts at most {rotation.MAX_SPAN.days} days")
    o = ScheduleOverride(
        schedule_id=sched.id,
        user_id=user.id,
        starts_at=start,
        ends_at=end,
        note=data.note,
        created_by=actor.label,
        created_at=now,
    )
    s.add(o)
    s.flush()
    audit.created(
        s,
        "schedule_override",
        o.id,
        {
            "schedule": sched.name,
            "user": user.email,
            "starts_at": start.isoformat(),
            "ends_at": end.isoformat(),
        },
        actor=actor,
        at=now,
    )
    return o


def delete_override(s: Session, schedule_id: int, override_id: int, *, actor: Actor, now: datetime) -> None:
    o = s.get(ScheduleOverride, override_id)
    if o is None or o.schedule_id != schedule_id:
        raise not_found("override", override_id)
    before = {"schedule_id": o.schedule_id, "user_id": o.user_id, "starts_at": o.starts_at.isoformat()}
    s.delete(o)
    audit.deleted(s, "schedule_override", override_id, before, actor=actor, at=now)


# --- calendar feeds ------------------------------------------------------------------------------


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def feed_token(
    s: Session,
    *,
    schedule_id: int | None = None,
    user_id: int | None = None,
    now: datetime,
    reset: bool = False,
    actor: Actor | None = None,
) -> str:
    """The secret token of a schedule's or a person's iCal feed; made on first use, new on ``reset``
    (the old URL stops working)."""
    col = CalendarFeed.schedule_id if schedule_id is not None else CalendarFeed.user_id
    feed = s.scalar(select(CalendarFeed).where(col == (schedule_id if schedule_id is not None else user_id)))
    if feed is not None and not reset:
        return crypto.decrypt(feed.token_secret)
    token = secrets.token_urlsafe(32)
    if feed is None:
        feed = CalendarFeed(schedule_id=schedule_id, user_id=user_id, created_at=now)
        s.add(feed)
    feed.token_digest = _digest(token)
    feed.token_secret = crypto.encrypt(token)
    feed.created_at = now
    s.flush()
    if reset and actor is not None:
        audit.record(
            s,
            actor=actor,
            action="reset",
            entity_type="calendar_feed",
            entity_id=feed.id,
            before=None,
            after={"schedule_id": schedule_id, "user_id": user_id},
            at=now,
        )
    return token


def feed_for(s: Session, token: str) -> CalendarFeed | None:
    if not token or len(token) > 100:
        return None
    return s.scalar(select(CalendarFeed).where(CalendarFeed.token_digest == _digest(token)))


def user_shifts(
    s: Session, user_id: int, start: datetime, end: datetime
) -> list[tuple[Schedule, rotation.Shift]]:
    """One person's final shifts on every schedule in ``[start, end)``."""
    out = []
    for sched in list_schedules(s):
        for sh in final(s, sched, start, end):
            if sh.user_id == user_id:
                out.append((sched, sh))
    out.sort(key=lambda pair: pair[1].start)
    return out


# --- API views -----------------------------------------------------------------------------------


class Users:
    """Looks users up once per request for the shifts and layers being shown."""

    def __init__(self, s: Session) -> None:
        self.s = s
        self.cache: dict[int, dict[str, Any] | None] = {}

    def brief(self, user_id: int | None) -> dict[str, Any] | None:
        if user_id is None:
            return None
        if user_id not in self.cache:
            u = self.s.get(User, user_id)
            self.cache[user_id] = {"id": u.id, "name": u.name, "email": u.email} if u else None
        return self.cache[user_id]


def shift_dict(sh: rotation.Shift, users: Users) -> dict[str, Any]:
    return {"start": sh.start, "end": sh.end, "user": users.brief(sh.user_id), "source": sh.source}


def layer_dict(layer: ScheduleLayer, users: Users) -> dict[str, Any]:
    return {
        "id": layer.id,
        "position": layer.position,
        "name": layer.name,
        "participants": [
            users.brief(u) or {"id": u, "name": f"(deleted user {u})", "email": ""}
            for u in layer.participants
        ],
        "rotation_start": layer.rotation_start,
        "turn_length": layer.turn_length,
        "turn_unit": layer.turn_unit,
        "restrictions": list(layer.restrictions),
        "ends_at": layer.ends_at,
    }


def as_dict(s: Session, sched: Schedule, now: datetime, users: Users | None = None) -> dict[str, Any]:
    users = users or Users(s)
    gap = next_gap(s, sched, now)
    return {
        "id": sched.id,
        "name": sched.name,
        "description": sched.description,
        "time_zone": sched.time_zone,
        "team_id": sched.team_id,
        "layers": [layer_dict(layer, users) for layer in sched.layers],
        "on_call_now": shift_dict(on_call(s, sched, now), users),
        "next_gap": shift_dict(gap, users) if gap else None,
        "created_at": sched.created_at,
        "updated_at": sched.updated_at,
    }


def override_dict(o: ScheduleOverride, users: Users) -> dict[str, Any]:
    return {
        "id": o.id,
        "schedule_id": o.schedule_id,
        "user": users.brief(o.user_id),
        "starts_at": o.starts_at,
        "ends_at": o.ends_at,
        "note": o.note,
        "created_by": o.created_by,
        "created_at": o.created_at,
    }


def shifts_dict(s: Session, sched: Schedule, start: datetime, end: datetime) -> dict[str, Any]:
    _check_range(start, end)
    eng = engine(s, sched, start, end)
    users = Users(s)
    fin = eng.final(start, end)
    return {
        "start": start,
        "end": end,
        "time_zone": sched.time_zone,
        "final": [shift_dict(sh, users) for sh in fin],
        "layers": [
            {"name": layer.name, "shifts": [shift_dict(sh, users) for sh in layer.shifts(eng.tz, start, end)]}
            for layer in eng.layers
        ],
        "gaps": [shift_dict(sh, users) for sh in fin if sh.user_id is None],
    }


# --- iCal ----------------------------------------------------------------------------------------


def people(s: Session) -> list[ical.Person]:
    return [ical.Person(u.id, u.name, u.email) for u in s.scalars(select(User).where(User.active.is_(True)))]


def import_ical(s: Session, schedule_id: int, data: bytes, *, actor: Actor, now: datetime) -> dict[str, Any]:
    """Read an iCal export into ``schedule_id``: a new top layer when the shifts are a rotation,
    else one override per shift (those still to come)."""
    sched = get(s, schedule_id)
    try:
        parsed = ical.parse(data, people(s))
    except ValueError as exc:
        raise invalid("file", str(exc)) from None
    if not parsed.shifts:
        raise invalid("file", "no event could be matched to a user by e-mail address or name", detail=None)
    users = Users(s)
    rot = ical.as_rotation(parsed.shifts, ZoneInfo(sched.time_zone))
    result: dict[str, Any] = {"events": parsed.events, "unmatched": parsed.unmatched, "overrides": 0}
    before = snapshot(sched)
    if rot is not None:
        layer = ScheduleLayer(
            position=len(sched.layers),
            name=f"Imported {now.date().isoformat()}",
            rotation_start=rot.start,
            turn_length=rot.turn_length,
            turn_unit=rot.turn_unit,
            participants=rot.participants,
            restrictions=[],
            ends_at=None,
        )
        sched.layers.append(layer)
        sched.updated_at = now
        s.flush()
        audit.updated(s, "schedule", sched.id, before, snapshot(sched), actor=actor, at=now)
        result.update(mode="layer", layer=layer_dict(layer, users))
        return result
    count = 0
    for sh in parsed.shifts:
        if sh.end <= now:
            continue
        s.add(
            ScheduleOverride(
                schedule_id=sched.id,
                user_id=sh.user_id,
                starts_at=sh.start,
                ends_at=sh.end,
                note="imported from iCal",
                created_by=actor.label,
                created_at=now,
            )
        )
        count += 1
    s.flush()
    audit.record(
        s,
        actor=actor,
        action="import",
        entity_type="schedule",
        entity_id=sched.id,
        before=None,
        after={"overrides": count, "unmatched": parsed.unmatched},
        at=now,
    )
    result.update(mode="overrides", layer=None, overrides=count)
    return result


def feed_ical(s: Session, feed: CalendarFeed, now: datetime, *, url: str = "") -> tuple[str, bytes]:
    """A feed's calendar: from 14 days ago to 90 days ahead. Returns (file name stem, body)."""
    start, end = now - timedelta(days=14), now + timedelta(days=90)
    everyone = {p.id: p for p in people(s)}
    if feed.schedule_id is not None:
        sched = get(s, feed.schedule_id)
        pairs = [(sched.name, sh) for sh in final(s, sched, start, end)]
        return sched.name, ical.render(f"On call: {sched.name}", pairs, everyone, now=now, url=url)
    assert feed.user_id is not None
    user = s.get(User, feed.user_id)
    if user is None:
        raise not_found("user", feed.user_id)
    pairs = [(sc.name, sh) for sc, sh in user_shifts(s, user.id, start, end)]
    return user.name, ical.render(f"On call: {user.name}", pairs, everyone, now=now, url=url)
