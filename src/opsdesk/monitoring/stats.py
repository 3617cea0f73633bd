"""Uptime and response time, computed in the database's terms, never by loading every result.

- **Availability** is time-weighted, from the state history: the share of the known time in a range
  during which the monitor was not down. ``down`` and ``unreachable`` count as down (the thing was
  not reachable, whoever's fault that was); ``unknown`` and ``paused`` time is left out of both
  sides, so a paused month neither helps nor hurts. A service is down while any of its monitors is.
- **Response time** percentiles (p50/p95/p99) come from the raw results kept for
  ``results_retention_days``; of a longer range, only that part can be measured.
- **The 90-day bar** reads one row per monitor and day (``monitor_daily``), so a page of monitors
  costs one query however many checks they ran.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from opsdesk.monitoring.models import CheckResult, DailyStats, Monitor, MonitorStatus, StateChange

DOWN = {MonitorStatus.down.value, MonitorStatus.unreachable.value}
UNKNOWN = {MonitorStatus.unknown.value, MonitorStatus.paused.value}
RANGES = {
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
    "90d": timedelta(days=90),
}


@dataclass
class Availability:
    percent: float | None  # None when nothing was known in the range
    known_seconds: float
    down_seconds: float
    outages: int  # how many times it went down in the range


@dataclass
class Percentiles:
    count: int
    p50: float | None
    p95: float | None
    p99: float | None
    mean: float | None


def parse_range(text: str | None, now: datetime) -> tuple[datetime, datetime]:
    """``24h``, ``7d``, ``30d``, ``90d`` (ending now); ValueError otherwise."""
    span = RANGES.get(text or "24h")
    if span is None:
        raise ValueError(f"range must be one of {', '.join(RANGES)}, or give start and end")
    return now - span, now


def _timelines(
    s: Session, monitor_ids: list[int], start: datetime, end: datetime
) -> dict[int, list[tuple[datetime, str]]]:
    """Per monitor: its state at ``start`` and every change up to ``end``, in order."""
    if not monitor_ids:
        return {}
    out: dict[int, list[tuple[datetime, str]]] = {mid: [] for mid in monitor_ids}
    created = dict(s.execute(select(Monitor.id, Monitor.created_at).where(Monitor.id.in_(monitor_ids))).all())
    # The state at the start: the newest change before it (one indexed lookup per monitor).
    for mid in monitor_ids:
        before = s.execute(
            select(StateChange.new)
            .where(StateChange.monitor_id == mid, StateChange.at <= start)
            .order_by(StateChange.at.desc(), StateChange.id.desc())
            .limit(1)
        ).scalar()
        out[mid].append((start, before or MonitorStatus.unknown.value))
    rows = s.execute(
        select(StateChange.monitor_id, StateChange.at, StateChange.new)
        .where(StateChange.monitor_id.in_(monitor_ids), StateChange.at > start, StateChange.at < end)
        .order_by(StateChange.monitor_id, StateChange.at, StateChange.id)
    )
    for mid, at, new in rows:
        out[mid].append((at, new))
    for mid in monitor_ids:
        c = created.get(mid)
        if c is not None and c > start:  # nothing to know before the monitor existed
            out[mid][0] = (start, MonitorStatus.unknown.value)
    return out


def _measure(timeline: list[tuple[datetime, str]], end: datetime) -> Availability:
    known = down = 0.0
    outages = 0
    for i, (at, state) in enumerate(timeline):
        until = timeline[i + 1][0] if i + 1 < len(timeline) else end
        span = max(0.0, (until - at).total_seconds())
        if state in UNKNOWN:
            continue
        known += span
        if state in DOWN:
            down += span
            if i > 0 and timeline[i - 1][1] not in DOWN:
                outages += 1
    pct = None if known == 0 else round(100.0 * (known - down) / known, 4)
    return Availability(pct, known, down, outages)


def availability(
    s: Session, monitor_ids: list[int], start: datetime, end: datetime
) -> dict[int, Availability]:
    return {mid: _measure(tl, end) for mid, tl in _timelines(s, monitor_ids, start, end).items()}


def service_availability(s: Session, service_id: int, start: datetime, end: datetime) -> Availability:
    """Down while any of the service's enabled monitors is down; known while any is known."""
    ids = list(s.scalars(select(Monitor.id).where(Monitor.service_id == service_id)))
    timelines = _timelines(s, ids, start, end)
    points = sorted({at for tl in timelines.values() for at, _ in tl} | {start})
    merged: list[tuple[datetime, str]] = []
    cursor = {mid: 0 for mid in ids}
    for at in points:
        states = []
        for mid, tl in timelines.items():
            while cursor[mid] + 1 < len(tl) and tl[cursor[mid] + 1][0] <= at:
                cursor[mid] += 1
            states.append(tl[cursor[mid]][1])
        if any(st in DOWN for st in states):
            merged.append((at, MonitorStatus.down.value))
        elif all(st in UNKNOWN for st in states):
            merged.append((at, MonitorStatus.unknown.value))
        else:
            merged.append((at, MonitorStatus.up.value))
    return _measure(merged or [(start, MonitorStatus.unknown.value)], end)


def _pct(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile with linear interpolation (as numpy's default)."""
    if len(sorted_values) == 1:
        return sorted_values[0]
    pos = (len(sorted_values) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def latency(s: Session, monitor_ids: list[int], start: datetime, end: datetime) -> Percentiles:
    """Response-time percentiles of the successful checks of these monitors in the range."""
    values = sorted(
        v or 0.0  # never None: latency_ms IS NOT NULL
        for v in s.scalars(
            select(CheckResult.latency_ms).where(
                CheckResult.monitor_id.in_(monitor_ids),
                CheckResult.at >= start,
                CheckResult.at <= end,
                CheckResult.ok.is_(True),
                CheckResult.latency_ms.is_not(None),
            )
        )
    )
    if not values:
        return Percentiles(0, None, None, None, None)
    return Percentiles(
        len(values),
        round(_pct(values, 0.50), 2),
        round(_pct(values, 0.95), 2),
        round(_pct(values, 0.99), 2),
        round(sum(values) / len(values), 2),
    )


@dataclass
class Day:
    day: date
    checks: int
    failures: int

    @property
    def percent(self) -> float | None:
        return None if self.checks == 0 else round(100.0 * (self.checks - self.failures) / self.checks, 2)


def daily_bars(s: Session, monitor_ids: list[int], today: date, days: int = 90) -> dict[int, list[Day]]:
    """Per monitor, one entry per day, oldest first, for the last ``days`` days (today included)."""
    first = today - timedelta(days=days - 1)
    found: dict[int, dict[date, Day]] = defaultdict(dict)
    if monitor_ids:
        rows = s.execute(
            select(DailyStats.monitor_id, DailyStats.day, DailyStats.checks, DailyStats.failures).where(
                DailyStats.monitor_id.in_(monitor_ids), DailyStats.day >= first
            )
        )
        for mid, day, checks, failures in rows:
            found[mid][day] = Day(day, checks, failures)
    span = [first + timedelta(days=i) for i in range(days)]
    return {mid: [found[mid].get(d) or Day(d, 0, 0) for d in span] for mid in monitor_ids}


def range_uptime(bar: list[Day]) -> float | None:
    checks = sum(d.checks for d in bar)
    if not checks:
        return None
    return round(100.0 * (checks - sum(d.failures for d in bar)) / checks, 2)


def history(s: Session, monitor_id: int, limit: int = 100) -> list[StateChange]:
    return list(
        s.scalars(
            select(StateChange)
            .where(StateChange.monitor_id == monitor_id)
            .order_by(StateChange.at.desc(), StateChange.id.desc())
            .limit(limit)
        )
    )
