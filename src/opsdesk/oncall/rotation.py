"""Who is on call: rotations, layers, restrictions and overrides, computed (no database here).

The model is PagerDuty's and Grafana OnCall's:

* A **layer** is a rotation: participants in order, each on call for one *turn*, handing off to
  the next at the rotation's start time plus whole turns. A turn is ``turn_length`` hours, days or
  weeks. Days and weeks are *wall-clock* days in the schedule's time zone: a weekly rotation that
  hands off Monday 09:00 in Europe/Berlin hands off Monday 09:00 local time in summer and in winter,
  so the turn that spans a daylight-saving change is an hour shorter or longer. Hours are elapsed
  time: a 12-hour rotation is 12 real hours whatever the clock on the wall says.
* **Restrictions** keep a layer to some times of the week (business hours, weekends, nights): a
  list of windows, each on some weekdays from a local start time to a local end time (an end at or
  before the start runs into the next day; ``24:00`` is midnight at the end of the day). The
  rotation keeps turning outside its windows; it is only masked (PagerDuty's rule), so who is on in
  a window is whoever the rotation has at that moment.
* **Layers stack**: at every moment the highest layer with someone on call wins; lower layers fill
  the times higher layers leave uncovered.
* **Overrides** put a person on call for a period over every layer; of two overlapping overrides
  the later one (by position in the list, which callers order by creation) wins.
* A **gap** is a time where the final schedule has nobody.

Everything is half-open ``[start, end)`` and UTC-aware; the time zone is used only to place
handoffs and restriction windows on the local wall clock.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

UNITS = ("hours", "days", "weeks")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MAX_SPAN = timedelta(days=400)  # the longest range computed at once


@dataclass(frozen=True)
class Window:
    """A restriction window: starts on each of ``days`` (0 = Monday) at ``start`` minutes after local
    midnight and ends at ``end`` minutes (1 to 1440); an end at or before the start is on the next day
    (so ``09:00`` to ``09:00`` is 24 hours)."""

    days: frozenset[int]
    start: int
    end: int

    @classmethod
    def parse(cls, days: Iterable[str], start: str, end: str) -> Window:
        """From ``["mon", ...]`` (empty: every day), ``"09:00"`` and ``"17:00"``; ValueError if bad."""
        idx = set()
        for d in days:
            key = d.strip().lower()[:3]
            if key not in WEEKDAYS:
                raise ValueError(f"{d!r} is not a weekday (mon … sun)")
            idx.add(WEEKDAYS.index(key))
        s, e = _minutes(start, allow_24=False), _minutes(end, allow_24=True)
        return cls(frozenset(idx) if idx else frozenset(range(7)), s, e)

    def to_json(self) -> dict[str, object]:
        return {
            "days": [WEEKDAYS[d] for d in sorted(self.days)],
            "start": _hhmm(self.start),
            "end": _hhmm(self.end),
        }

    def intervals(self, tz: ZoneInfo, start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
        """The window's occurrences that touch ``[start, end)``, in UTC (not clipped)."""
        out = []
        first = start.astimezone(tz).date() - timedelta(days=1)
        last = end.astimezone(tz).date()
        d = first
        while d <= last:
            if d.weekday() in self.days:
                ws = local_to_utc(d, self.start, tz)
                stop = self.end if self.end > self.start else self.end + 1440
                we = local_to_utc(d, stop, tz)
                if we > start and ws < end:
                    out.append((ws, we))
            d += timedelta(days=1)
        return out


def _minutes(text: str, *, allow_24: bool) -> int:
    try:
        hh, mm = text.strip().split(":")
        h, m = int(hh), int(mm)
    except ValueError:
        raise ValueError(f"{text!r} is not a time of day (HH:MM)") from None
    if allow_24 and h == 24 and m == 0:
        return 1440
    if not (0 <= h < 24 and 0 <= m < 60):
        raise ValueError(f"{text!r} is not a time of day (00:00 … 23:59{', or 24:00' if allow_24 else ''})")
    return h * 60 + m


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def local_to_utc(day: date, minutes: int, tz: ZoneInfo) -> datetime:
    """The instant of ``minutes`` after local midnight of ``day`` (minutes may reach past a day).

    A wall time that does not exist (skipped by a spring-forward change) is read with the offset from
    before the change, so it lands after the change (02:30 → 03:30 local); an ambiguous one (repeated
    by a fall-back change) is its first occurrence.
    """
    extra, m = divmod(minutes, 1440)
    wall = datetime.combine(day + timedelta(days=extra), time(m // 60, m % 60), tzinfo=tz)
    return wall.astimezone(UTC)


@dataclass(frozen=True)
class Layer:
    participants: tuple[int | None, ...]  # None: a turn nobody takes (a removed participant)
    start: datetime
    turn_length: int = 1
    turn_unit: str = "weeks"
    restrictions: tuple[Window, ...] = ()
    end: datetime | None = None
    name: str = ""

    def __post_init__(self) -> None:
        if self.turn_unit not in UNITS:
            raise ValueError(f"turn_unit must be one of {', '.join(UNITS)}")
        if self.turn_length < 1:
            raise ValueError("turn_length must be at least 1")
        if self.start.tzinfo is None:
            raise ValueError("start must be timezone-aware")

    def turn_start(self, k: int, tz: ZoneInfo) -> datetime:
        """When turn ``k`` (0 = the first) begins."""
        if self.turn_unit == "hours":
            return self.start + timedelta(hours=k * self.turn_length)
        days = k * self.turn_length * (7 if self.turn_unit == "weeks" else 1)
        local = self.start.astimezone(tz)
        wall = local.replace(tzinfo=None) + timedelta(days=days)
        return wall.replace(tzinfo=tz).astimezone(UTC)

    def turn_at(self, t: datetime, tz: ZoneInfo) -> int:
        """The turn running at ``t`` (negative before the rotation starts)."""
        nominal = timedelta(
            hours=self.turn_length * {"hours": 1, "days": 24, "weeks": 168}[self.turn_unit]
        ).total_seconds()
        k = int((t - self.start).total_seconds() // nominal)
        # Wall-clock turns drift from the nominal length by at most a few hours: step to the turn.
        while self.turn_start(k, tz) > t:
            k -= 1
        while self.turn_start(k + 1, tz) <= t:
            k += 1
        return k

    def shifts(self, tz: ZoneInfo, start: datetime, end: datetime) -> list[Shift]:
        """This layer's turns in ``[start, end)``, clipped and masked by its restrictions."""
        lo = max(start, self.start)
        hi = min(end, self.end) if self.end is not None else end
        if not self.participants or lo >= hi:
            return []
        turns: list[Shift] = []
        k = self.turn_at(lo, tz)
        while True:
            ts, te = self.turn_start(k, tz), self.turn_start(k + 1, tz)
            if ts >= hi:
                break
            user = self.participants[k % len(self.participants)]
            turns.append(Shift(max(ts, lo), min(te, hi), user, self.name))
            k += 1
        if not self.restrictions:
            return turns
        windows = _union(iv for w in self.restrictions for iv in w.intervals(tz, lo, hi))
        out = []
        for sh in turns:
            for ws, we in windows:
                a, b = max(sh.start, ws), min(sh.end, we)
                if a < b:
                    out.append(Shift(a, b, sh.user_id, sh.source))
        return out


@dataclass(frozen=True)
class Override:
    user_id: int
    start: datetime
    end: datetime
    id: int | None = None


@dataclass(frozen=True)
class Shift:
    start: datetime
    end: datetime
    user_id: int | None
    source: str = ""  # a layer's name, "override", or "" for a gap


@dataclass
class Schedule:
    time_zone: str
    layers: Sequence[Layer] = ()  # lowest first: later layers win
    overrides: Sequence[Override] = ()  # oldest first: later overrides win
    tz: ZoneInfo = field(init=False)

    def __post_init__(self) -> None:
        self.tz = ZoneInfo(self.time_zone)

    def final(self, start: datetime, end: datetime) -> list[Shift]:
        """Who is on call through ``[start, end)``: contiguous shifts, gaps included (user None)."""
        if end - start > MAX_SPAN:
            raise ValueError(f"a range of at most {MAX_SPAN.days} days is computed at once")
        if start >= end:
            return []
        per_layer = [layer.shifts(self.tz, start, end) for layer in self.layers]
        overrides = [o for o in self.overrides if o.end > start and o.start < end]
        points = {start, end}
        for shifts in per_layer:
            for sh in shifts:
                points.update((sh.start, sh.end))
        for o in overrides:
            points.update((max(o.start, start), min(o.end, end)))
        cuts = sorted(points)
        starts = [[sh.start for sh in shifts] for shifts in per_layer]
        out: list[Shift] = []
        for a, b in itertools.pairwise(cuts):
            user, source = None, ""
            for o in reversed(overrides):
                if o.start <= a < o.end:
                    user, source = o.user_id, "override"
                    break
            else:
                for shifts, st in zip(reversed(per_layer), reversed(starts), strict=True):
                    i = bisect.bisect_right(st, a) - 1
                    # A turn of nobody (a participant who was deleted or deactivated) covers nothing.
                    if i >= 0 and shifts[i].end > a and shifts[i].user_id is not None:
                        user, source = shifts[i].user_id, shifts[i].source
                        break
            if out and out[-1].user_id == user and out[-1].source == source and out[-1].end == a:
                out[-1] = Shift(out[-1].start, b, user, source)
            else:
                out.append(Shift(a, b, user, source))
        return out

    def on_call(self, at: datetime) -> Shift:
        """The final shift running at ``at`` (its user is None in a gap), with its true start and end
        when they are within 180 days of ``at`` (else clipped there)."""
        for days in (8, 32, 128, 180):
            lo, hi = at - timedelta(days=days), at + timedelta(days=days)
            shift = next(sh for sh in self.final(lo, hi) if sh.start <= at < sh.end)
            if shift.start > lo and shift.end < hi:
                break
        return shift

    def gaps(self, start: datetime, end: datetime) -> list[Shift]:
        return [sh for sh in self.final(start, end) if sh.user_id is None]


def _union(intervals: Iterable[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    out: list[tuple[datetime, datetime]] = []
    for a, b in sorted(intervals):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out
