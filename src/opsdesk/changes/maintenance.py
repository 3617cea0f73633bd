"""Maintenance windows: planned work on a service and/or a CI, during which alerts on it are muted.

A window is one-off (``starts_at``..``ends_at``) or recurring: ``rrule`` is an RFC 5545 rule
(``FREQ=WEEKLY;BYDAY=SU``, ``FREQ=DAILY;COUNT=10``, ``FREQ=MONTHLY;BYMONTHDAY=1;UNTIL=20271231T000000Z``)
whose first occurrence is ``starts_at``..``ends_at``. Occurrences are expanded with dateutil in the
window's ``timezone``, in wall-clock time: a window from 02:00 to 04:00 Europe/Paris stays 02:00 to
04:00 local across daylight-saving changes (so it is one hour shorter in absolute time on the
night the clocks go forward, when 02:00 does not exist and the window starts at 03:00).

Rules checked on every write: the timezone is an IANA name (zoneinfo); the rule parses, names
FREQ (YEARLY, MONTHLY, WEEKLY, DAILY or HOURLY), has no DTSTART (the start is ``starts_at``), gives
UNTIL in UTC (``...Z``) and not together with COUNT, and repeats ``starts_at`` itself as its
first occurrence; ``ends_at`` is after ``starts_at`` and at most 7 days later; a one-off window
must not have ended already; the targets exist.

For the pipeline, once per batch: :func:`in_progress` (one query for the candidate windows, then
the expansion in Python; the parsed rule of each window and its current occurrence are cached, so
a call per batch costs a dictionary lookup per window until an occurrence starts or ends).
For pages: :func:`occurrences` and :func:`next_occurrence`.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

# python-dateutil comes with croniter; it ships no type information (types-python-dateutil would).
from dateutil.rrule import rrule as RRule  # type: ignore[import-untyped]
from dateutil.rrule import rrulestr
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from opsdesk.alerts.admin_schemas import WindowIn, WindowUpdate
from opsdesk.audit import service as audit
from opsdesk.changes.models import MaintenanceWindow
from opsdesk.core.actor import Actor
from opsdesk.core.errors import OpsdeskError, invalid, not_found

log = logging.getLogger("opsdesk.changes")

MAX_OCCURRENCE = timedelta(days=7)
FREQUENCIES = ("YEARLY", "MONTHLY", "WEEKLY", "DAILY", "HOURLY")
FIELDS = ["name", "service_id", "ci_id", "starts_at", "ends_at", "rrule", "timezone", "comment"]
_PARTS = {
    "FREQ", "UNTIL", "COUNT", "INTERVAL", "BYSECOND", "BYMINUTE", "BYHOUR", "BYDAY", "BYMONTHDAY",
    "BYYEARDAY", "BYWEEKNO", "BYMONTH", "BYSETPOS", "WKST",
}  # fmt: skip
_UTC_UNTIL = re.compile(r"^\d{8}T\d{6}Z$")
# A window whose rule ran out is still loaded as a candidate; the DST slack covers an hour's shift.
_DST_SLACK = timedelta(hours=3)
_MAX_LISTED = 1000


@dataclass(frozen=True)
class ActiveWindow:
    """A window in progress: what the pipeline needs to mute alerts on its targets."""

    id: int
    name: str
    service_id: int | None
    ci_id: int | None
    ends_at: datetime  # end of the current occurrence (UTC)


# --- validation ----------------------------------------------------------------------------------


def zone(name: str) -> ZoneInfo:
    """The IANA time zone ``name``, or a 422 naming the field."""
    try:
        if not name or name != name.strip() or name.lower() == "localtime":
            raise ValueError
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise invalid("timezone", f"{name!r} is not an IANA time zone like UTC or Europe/Paris") from None


def normalize_rrule(text: str) -> str:
    """Check the text of a rule (without expanding it); returns it upper-cased without ``RRULE:``."""
    t = text.strip()
    if t.upper().startswith("RRULE:"):
        t = t[6:].strip()
    if "\n" in t or "\r" in t:
        raise invalid("rrule", "give one RRULE line, e.g. FREQ=WEEKLY;BYDAY=SU")
    if "DTSTART" in t.upper():
        raise invalid("rrule", "leave DTSTART out: the first occurrence is starts_at, in timezone")
    seen: dict[str, str] = {}
    for part in t.split(";"):
        key, sep, value = part.partition("=")
        key, value = key.strip().upper(), value.strip().upper()
        if not sep or not key or not value:
            raise invalid("rrule", f"{part!r} is not KEY=VALUE (e.g. FREQ=WEEKLY;BYDAY=SU)")
        if key not in _PARTS:
            raise invalid("rrule", f"{key} is not an RFC 5545 rule part")
        if key in seen:
            raise invalid("rrule", f"{key} is given twice")
        seen[key] = value
    if "FREQ" not in seen:
        raise invalid("rrule", "FREQ is missing (e.g. FREQ=WEEKLY)")
    if seen["FREQ"] not in FREQUENCIES:
        raise invalid("rrule", f"FREQ must be one of {', '.join(FREQUENCIES)}")
    if "UNTIL" in seen and not _UTC_UNTIL.match(seen["UNTIL"]):
        raise invalid(
            "rrule",
            "UNTIL must be a UTC date-time ending in Z, e.g. UNTIL=20261231T235959Z "
            "(RFC 5545 requires UTC when the start has a time zone)",
        )
    for key in ("COUNT", "INTERVAL"):
        if key in seen and not (seen[key].isdigit() and 1 <= int(seen[key]) <= 100_000):
            raise invalid("rrule", f"{key} must be a whole number from 1 to 100000")
    if "UNTIL" in seen and "COUNT" in seen:
        raise invalid("rrule", "give COUNT or UNTIL, not both")
    return ";".join(f"{k}={v}" for k, v in seen.items())


def _parse_rule(text: str, local_start: datetime, *, cache: bool) -> RRule:
    try:
        rule = rrulestr(text, dtstart=local_start, cache=cache)
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        raise invalid("rrule", f"not a valid RFC 5545 rule: {exc}") from None
    if not isinstance(rule, RRule):
        raise invalid("rrule", "give one rule, without EXDATE or RDATE")
    return rule


def _validate(
    *,
    starts_at: datetime,
    ends_at: datetime,
    rrule: str | None,
    timezone: str,
    now: datetime,
) -> str | None:
    tz = zone(timezone)
    if ends_at <= starts_at:
        raise invalid("ends_at", "must be after starts_at")
    if ends_at - starts_at > MAX_OCCURRENCE:
        raise invalid("ends_at", "a window (or each occurrence) lasts at most 7 days")
    if not rrule:
        if ends_at <= now:
            raise invalid("ends_at", "this window would already be over")
        return None
    text = normalize_rrule(rrule)
    local_start = starts_at.astimezone(tz)
    rule = _parse_rule(text, local_start, cache=False)
    first = next(iter(rule), None)
    if first is None:
        raise invalid("rrule", "the rule has no occurrence")
    if first != local_start:
        raise invalid(
            "rrule",
            f"starts_at ({local_start:%a %Y-%m-%d %H:%M} {timezone}) is not an occurrence of the rule, "
            f"whose first would be {first:%a %Y-%m-%d %H:%M}; start the window on an occurrence",
        )
    return text


# --- expansion -----------------------------------------------------------------------------------


class _Expansion:
    """The occurrences of one window, with its rule parsed once and the last answer remembered."""

    def __init__(self, starts_at: datetime, ends_at: datetime, rrule: str | None, timezone: str) -> None:
        self.one_off = (starts_at, ends_at)
        self.rule: RRule | None = None
        self.wall = ends_at - starts_at
        if rrule:
            tz = ZoneInfo(timezone)
            local_start = starts_at.astimezone(tz)
            local_end = ends_at.astimezone(tz)
            self.wall = local_end.replace(tzinfo=None) - local_start.replace(tzinfo=None)
            self.rule = rrulestr(rrule, dtstart=local_start, cache=True)
        # (UTC start, UTC end, local next start) of the occurrence that started last before the
        # last question asked: the answer holds until the next occurrence starts.
        self._memo: tuple[datetime, datetime, datetime | None] | None = None

    def span(self, local_start: datetime) -> tuple[datetime, datetime]:
        # ``local + timedelta`` is wall-clock arithmetic in the window's zone.
        return local_start.astimezone(UTC), (local_start + self.wall).astimezone(UTC)

    def current_or_next(self, now: datetime) -> tuple[datetime, datetime] | None:
        """The occurrence in progress at ``now``, else the next one, else None."""
        if self.rule is None:
            return self.one_off if self.one_off[1] > now else None
        memo = self._memo
        if memo is None or not (memo[0] <= now and (memo[2] is None or now < memo[2])):
            prev = self.rule.before(now, inc=True)
            if prev is None:  # before the first occurrence
                return self.span(self.rule[0])
            start, end = self.span(prev)
            nxt = self.rule.after(prev)
            memo = self._memo = (start, end, nxt)
        start, end, next_start = memo
        if now < end:
            return start, end
        if next_start is None:
            return None
        return self.span(next_start)

    def between(self, start: datetime, end: datetime, limit: int) -> list[tuple[datetime, datetime]]:
        if self.rule is None:
            s0, e0 = self.one_off
            return [(s0, e0)] if s0 < end and e0 > start else []
        out: list[tuple[datetime, datetime]] = []
        for local in self.rule.xafter(start - self.wall - _DST_SLACK, inc=True):
            s0, e0 = self.span(local)
            if s0 >= end or len(out) >= limit:
                break
            if e0 > start:
                out.append((s0, e0))
        return out


_CACHE: dict[tuple[Any, ...], _Expansion] = {}


def _expansion(w: Any) -> _Expansion:
    key = (w.id, w.starts_at, w.ends_at, w.rrule, w.timezone)
    exp = _CACHE.get(key)
    if exp is None:
        if len(_CACHE) > 10_000:
            _CACHE.clear()
        exp = _CACHE[key] = _Expansion(w.starts_at, w.ends_at, w.rrule, w.timezone)
    return exp


def occurrences(window: MaintenanceWindow, start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
    """The occurrences (UTC start, UTC end) that overlap ``start``..``end``, oldest first (at most 1000)."""
    return _expansion(window).between(start, end, _MAX_LISTED)


def next_occurrence(window: MaintenanceWindow, after: datetime) -> tuple[datetime, datetime] | None:
    """The occurrence in progress at ``after``, else the next one; None when none is left."""
    return _expansion(window).current_or_next(after)


def in_progress(s: Session, now: datetime) -> list[ActiveWindow]:
    """The windows in progress at ``now`` (one query; a window that cannot be expanded is logged
    and skipped, never fatal to the pipeline)."""
    W = MaintenanceWindow
    rows = s.execute(
        select(W.id, W.name, W.service_id, W.ci_id, W.starts_at, W.ends_at, W.rrule, W.timezone)
        .where(W.starts_at <= now, or_(W.rrule.is_not(None), W.ends_at > now))
        .order_by(W.id)
    )
    out = []
    for row in rows:
        try:
            occ = _expansion(row).current_or_next(now)
        except (ValueError, TypeError, ZoneInfoNotFoundError) as exc:
            log.warning("maintenance window %s skipped: %s", row.id, exc)
            continue
        if occ is not None and occ[0] <= now < occ[1]:
            out.append(ActiveWindow(row.id, row.name, row.service_id, row.ci_id, occ[1]))
    return out


# --- CRUD ----------------------------------------------------------------------------------------


def get(s: Session, window_id: int) -> MaintenanceWindow:
    w = s.get(MaintenanceWindow, window_id)
    if w is None:
        raise not_found("maintenance window", window_id)
    return w


def list_windows(
    s: Session,
    *,
    after_id: int = 0,
    limit: int = 100,
    service_id: int | None = None,
    ci_id: int | None = None,
) -> list[MaintenanceWindow]:
    q = select(MaintenanceWindow).where(MaintenanceWindow.id > after_id).order_by(MaintenanceWindow.id)
    if service_id is not None:
        q = q.where(MaintenanceWindow.service_id == service_id)
    if ci_id is not None:
        q = q.where(MaintenanceWindow.ci_id == ci_id)
    return list(s.scalars(q.limit(limit)))


def _service_id(s: Session, service_id: int | None, name: str | None) -> int | None:
    from opsdesk.cmdb import service as cmdb

    if service_id is not None and name is not None:
        raise invalid("service", "give service_id or service (a name), not both")
    if name is not None:
        svc = cmdb.get_service_by_name(s, name)
        if svc is None:
            raise invalid("service", f"no service named {name!r}")
        return svc.id
    if service_id is not None:
        try:
            cmdb.get_service(s, service_id)
        except OpsdeskError:
            raise invalid("service_id", f"no service with id {service_id}") from None
    return service_id


def _ci_id(s: Session, ci_id: int | None, name: str | None) -> int | None:
    from opsdesk.cmdb import service as cmdb

    if ci_id is not None and name is not None:
        raise invalid("ci", "give ci_id or ci (a name), not both")
    if name is not None:
        ci = cmdb.get_ci_by_name(s, name)
        if ci is None:
            raise invalid("ci", f"no CI named {name!r}")
        return ci.id
    if ci_id is not None:
        try:
            cmdb.get_ci(s, ci_id)
        except OpsdeskError:
            raise invalid("ci_id", f"no CI with id {ci_id}") from None
    return ci_id


def create(s: Session, data: WindowIn, *, actor: Actor, now: datetime) -> MaintenanceWindow:
    service_id = _service_id(s, data.service_id, data.service)
    ci_id = _ci_id(s, data.ci_id, data.ci)
    if service_id is None and ci_id is None:
        raise invalid("service", "a window needs a service or a CI (or both)")
    # Whole seconds: rules repeat whole seconds, and the first occurrence must be starts_at itself.
    starts_at, ends_at = data.starts_at.replace(microsecond=0), data.ends_at.replace(microsecond=0)
    rrule = _validate(starts_at=starts_at, ends_at=ends_at, rrule=data.rrule, timezone=data.timezone, now=now)
    w = MaintenanceWindow(
        name=data.name,
        service_id=service_id,
        ci_id=ci_id,
        starts_at=starts_at,
        ends_at=ends_at,
        rrule=rrule,
        timezone=data.timezone,
        comment=data.comment,
        created_by=actor.label[:254],
        created_at=now,
        updated_at=now,
    )
    s.add(w)
    s.flush()
    audit.created(s, "maintenance_window", w.id, audit.snapshot(w, FIELDS), actor=actor, at=now)
    return w


def update(
    s: Session, window_id: int, data: WindowUpdate, *, actor: Actor, now: datetime
) -> MaintenanceWindow:
    """Change a window. ``service_id``/``ci_id`` set to null remove that target (one must remain)."""
    w = get(s, window_id)
    changes = data.model_dump(exclude_unset=True)
    for f in ("name", "starts_at", "ends_at", "timezone", "comment"):
        if f in changes and changes[f] is None:
            raise invalid(f, "must not be null")
    before = audit.snapshot(w, FIELDS)
    service_id, ci_id = w.service_id, w.ci_id
    if "service_id" in changes or "service" in changes:
        service_id = _service_id(s, changes.get("service_id"), changes.get("service"))
    if "ci_id" in changes or "ci" in changes:
        ci_id = _ci_id(s, changes.get("ci_id"), changes.get("ci"))
    if service_id is None and ci_id is None:
        raise invalid("service", "a window needs a service or a CI (or both)")
    starts_at = changes.get("starts_at", w.starts_at).replace(microsecond=0)
    ends_at = changes.get("ends_at", w.ends_at).replace(microsecond=0)
    rrule = changes.get("rrule", w.rrule) or None
    timezone = changes.get("timezone", w.timezone)
    timing_changed = (starts_at, ends_at, rrule, timezone) != (w.starts_at, w.ends_at, w.rrule, w.timezone)
    if timing_changed:
        rrule = _validate(starts_at=starts_at, ends_at=ends_at, rrule=rrule, timezone=timezone, now=now)
    w.service_id, w.ci_id = service_id, ci_id
    w.starts_at, w.ends_at, w.rrule, w.timezone = starts_at, ends_at, rrule, timezone
    if "name" in changes:
        w.name = changes["name"]
    if "comment" in changes:
        w.comment = changes["comment"]
    w.updated_at = now
    audit.updated(s, "maintenance_window", w.id, before, audit.snapshot(w, FIELDS), actor=actor, at=now)
    return w


def delete(s: Session, window_id: int, *, actor: Actor, now: datetime) -> None:
    w = get(s, window_id)
    audit.deleted(s, "maintenance_window", w.id, audit.snapshot(w, FIELDS), actor=actor, at=now)
    s.delete(w)


def as_dict(s: Session, w: MaintenanceWindow, now: datetime) -> dict[str, Any]:
    """The API's view of a window (``WindowOut``): target names, in progress, next occurrence."""
    from opsdesk.cmdb import service as cmdb

    occ = next_occurrence(w, now)
    return {
        "id": w.id,
        "name": w.name,
        "service_id": w.service_id,
        "service": cmdb.get_service(s, w.service_id).name if w.service_id else None,
        "ci_id": w.ci_id,
        "ci": cmdb.get_ci(s, w.ci_id).name if w.ci_id else None,
        "starts_at": w.starts_at,
        "ends_at": w.ends_at,
        "rrule": w.rrule,
        "timezone": w.timezone,
        "comment": w.comment,
        "created_by": w.created_by,
        "created_at": w.created_at,
        "updated_at": w.updated_at,
        "in_progress": occ is not None and occ[0] <= now < occ[1],
        "next_occurrence": {"starts_at": occ[0], "ends_at": occ[1]} if occ else None,
    }
