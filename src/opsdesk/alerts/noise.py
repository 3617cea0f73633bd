"""Read-side queries of the alerts domain: the noise-reduction report, the filtered alert list of
the Alerts page, and an alert's recent events.

**Noise reduction** is read from ``alert_noise_daily`` (:class:`~opsdesk.alerts.models.NoiseDaily`),
which the pipeline increments per processed batch: per UTC day and source, the events received,
the alerts they opened, the incidents those opened and the alerts muted (silences, maintenance).
Two ratios say how much quieter opsdesk made the sources:

* ``events_per_incident``: events received for each incident opened (``None`` without incidents);
* ``noise_reduction_percent``: the share of events that did not become an incident,
  ``100 * (events - incidents) / events`` (``None`` without events).

:func:`daily` gives one row per day of the range (days without data are zeros, so a chart has no
holes); :func:`by_source` the totals per source over the range; :func:`total` sums rows.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date, timedelta
from typing import Any

from pydantic import Field
from sqlalchemy import String, cast, func, or_, select
from sqlalchemy.orm import Session

from opsdesk.alerts.models import Alert, Event, NoiseDaily
from opsdesk.core.errors import invalid
from opsdesk.core.schemas import Out

MAX_DAYS = 366
MAX_EVENTS = 500


@dataclass(frozen=True)
class Row:
    """Counts of a day (``day`` set), of a source (``source`` set), or of everything (neither)."""

    day: date | None
    source: str | None
    events: int = 0
    alerts: int = 0
    incidents: int = 0
    muted: int = 0

    @property
    def events_per_incident(self) -> float | None:
        return round(self.events / self.incidents, 2) if self.incidents else None

    @property
    def noise_reduction_percent(self) -> float | None:
        if not self.events:
            return None
        return round(100.0 * max(self.events - self.incidents, 0) / self.events, 2)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["events_per_incident"] = self.events_per_incident
        out["noise_reduction_percent"] = self.noise_reduction_percent
        return out


def _sums() -> tuple[Any, ...]:
    return (
        func.coalesce(func.sum(NoiseDaily.events), 0),
        func.coalesce(func.sum(NoiseDaily.alerts), 0),
        func.coalesce(func.sum(NoiseDaily.incidents), 0),
        func.coalesce(func.sum(NoiseDaily.muted), 0),
    )


def _check_range(start: date, end: date) -> None:
    if end < start:
        raise invalid("end", "the end is before the start")
    if (end - start).days + 1 > MAX_DAYS:
        raise invalid("end", f"at most {MAX_DAYS} days")


def daily(s: Session, *, start: date, end: date, source: str | None = None) -> list[Row]:
    """One row per day from ``start`` to ``end`` (both included), summed over every source or
    over ``source`` only; days without data are zeros."""
    _check_range(start, end)
    q = (
        select(NoiseDaily.day, *_sums())
        .where(NoiseDaily.day >= start, NoiseDaily.day <= end)
        .group_by(NoiseDaily.day)
    )
    if source:
        q = q.where(NoiseDaily.source == source)
    found = {d: (int(e), int(a), int(i), int(m)) for d, e, a, i, m in s.execute(q)}
    rows = []
    for n in range((end - start).days + 1):
        d = start + timedelta(days=n)
        e, a, i, m = found.get(d, (0, 0, 0, 0))
        rows.append(Row(d, source or None, e, a, i, m))
    return rows


def by_source(s: Session, *, start: date, end: date, source: str | None = None) -> list[Row]:
    """Totals per source over the range, the noisiest (most events) first."""
    _check_range(start, end)
    q = (
        select(NoiseDaily.source, *_sums())
        .where(NoiseDaily.day >= start, NoiseDaily.day <= end)
        .group_by(NoiseDaily.source)
    )
    if source:
        q = q.where(NoiseDaily.source == source)
    rows = [Row(None, src, int(e), int(a), int(i), int(m)) for src, e, a, i, m in s.execute(q)]
    return sorted(rows, key=lambda r: (-r.events, r.source or ""))


def total(rows: list[Row]) -> Row:
    return Row(
        None,
        None,
        sum(r.events for r in rows),
        sum(r.alerts for r in rows),
        sum(r.incidents for r in rows),
        sum(r.muted for r in rows),
    )


class NoiseRowOut(Out):
    events: int
    alerts: int
    incidents: int
    muted: int
    events_per_incident: float | None = Field(description="Events received per incident opened.")
    noise_reduction_percent: float | None = Field(
        description="Percent of the events that did not become an incident."
    )


class NoiseDayOut(NoiseRowOut):
    day: date


class NoiseSourceOut(NoiseRowOut):
    source: str


class NoiseReportOut(Out):
    start: date
    end: date
    source: str | None
    days: list[NoiseDayOut]
    sources: list[NoiseSourceOut]
    total: NoiseRowOut


def report(s: Session, *, days: int, source: str | None, today: date) -> dict[str, Any]:
    """The last ``days`` UTC days up to ``today`` (included): per day, per source and in total."""
    if not 1 <= days <= MAX_DAYS:
        raise invalid("days", f"from 1 to {MAX_DAYS}")
    source = (source or "").strip() or None
    start = today - timedelta(days=days - 1)
    per_day = daily(s, start=start, end=today, source=source)
    return {
        "start": start,
        "end": today,
        "source": source,
        "days": [r.as_dict() for r in per_day],
        "sources": [r.as_dict() for r in by_source(s, start=start, end=today, source=source)],
        "total": total(per_day).as_dict(),
    }


def sources(s: Session) -> list[str]:
    """Every source that has sent anything (from the daily counts and the alerts)."""
    names = set(s.scalars(select(NoiseDaily.source).distinct()))
    names |= set(s.scalars(select(Alert.source).distinct().limit(500)))
    return sorted(names)


# --- the Alerts page ------------------------------------------------------------------------------


def _like(q: str) -> str:
    """A LIKE pattern that matches ``q`` literally anywhere (``%`` and ``_`` are not wildcards)."""
    return "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def find_alerts(
    s: Session,
    *,
    status: str | None = None,
    source: str | None = None,
    service_id: int | None = None,
    severity: str | None = None,
    muted: bool | None = None,
    q: str | None = None,
    before_id: int | None = None,
    after_id: int | None = None,
    limit: int = 50,
) -> list[Alert]:
    """Alerts matching every filter given, newest (highest id) first.

    ``q`` is searched, case-insensitively, in the summary and in the labels (keys and values, as
    their JSON text). Cursor pagination: ``before_id`` gives the page after (older than) that id,
    ``after_id`` the page before it (newer), still newest first.
    """
    query = select(Alert)
    if status:
        query = query.where(Alert.status == status)
    if source:
        query = query.where(Alert.source == source)
    if service_id is not None:
        query = query.where(Alert.service_id == service_id)
    if severity:
        query = query.where(Alert.severity == severity)
    if muted is not None:
        query = query.where(Alert.muted.is_(muted))
    if q:
        pattern = _like(q.lower())
        query = query.where(
            or_(
                func.lower(Alert.summary).like(pattern, escape="\\"),
                func.lower(cast(Alert.labels, String)).like(pattern, escape="\\"),
            )
        )
    if after_id:
        rows = list(s.scalars(query.where(Alert.id > after_id).order_by(Alert.id).limit(limit)))
        return rows[::-1]
    if before_id:
        query = query.where(Alert.id < before_id)
    return list(s.scalars(query.order_by(Alert.id.desc()).limit(limit)))


def list_events(s: Session, alert_id: int, limit: int = 50) -> list[Event]:
    """The latest ``limit`` events deduplicated into an alert, newest first."""
    limit = max(1, min(limit, MAX_EVENTS))
    return list(
        s.scalars(select(Event).where(Event.alert_id == alert_id).order_by(Event.id.desc()).limit(limit))
    )
