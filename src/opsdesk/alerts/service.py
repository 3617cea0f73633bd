"""Events in, deduplicated alerts out.

The pipeline's first stages: :func:`store_events` commits what a source said (the ingestion hot
path, called in batches by the writer); :func:`process_pending` turns stored events into alert
state and hands new and resolved alerts to the incidents stage.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from opsdesk.alerts.models import Alert, Event, EventStatus
from opsdesk.alerts.schemas import EventIn
from opsdesk.core import metrics
from opsdesk.core.errors import invalid, not_found


@dataclass
class NormalizedEvent:
    """What every source is mapped to before it is stored."""

    source: str
    status: str
    severity: str
    summary: str
    fingerprint: str | None = None
    service_id: int | None = None
    labels: dict[str, Any] = field(default_factory=dict)


def compute_fingerprint(source: str, service_id: int | None, labels: dict[str, Any], summary: str) -> str:
    """Same source, service and labels give the same alert; without labels, the summary decides."""
    basis = [source, str(service_id or "")]
    basis += [f"{k}={labels[k]}" for k in sorted(labels)] if labels else [summary]
    return hashlib.sha256("\x1f".join(basis).encode()).hexdigest()[:32]


def normalize(s: Session, events: list[EventIn], *, batch: bool = False) -> list[NormalizedEvent]:
    """Map API events to normalized ones, resolving service names; unknown names are an error."""
    names = {e.service for e in events if e.service}
    from opsdesk.cmdb import service as cmdb

    ids = cmdb.service_ids_by_name(s, names)
    out = []
    for i, e in enumerate(events):
        service_id = None
        if e.service:
            service_id = ids.get(e.service)
            if service_id is None:
                where = f"events[{i}].service" if batch else "service"
                raise invalid(where, f"no service named {e.service!r}")
        out.append(
            NormalizedEvent(
                source=e.source,
                status=e.status.value,
                severity=e.severity.value,
                summary=e.summary,
                fingerprint=e.fingerprint,
                service_id=service_id,
                labels=dict(e.labels),
            )
        )
    return out


def store_events(s: Session, events: list[NormalizedEvent], *, now: datetime) -> list[int]:
    """Insert events as pending; returns their ids. One statement for the whole batch."""
    if not events:
        return []
    rows = [
        {
            "received_at": now,
            "source": e.source,
            "fingerprint": e.fingerprint or compute_fingerprint(e.source, e.service_id, e.labels, e.summary),
            "status": e.status,
            "severity": e.severity,
            "summary": e.summary[:1000],
            "service_id": e.service_id,
            "labels": e.labels,
            "processed_at": None,
            "alert_id": None,
        }
        for e in events
    ]
    ids = list(s.scalars(insert(Event).returning(Event.id, sort_by_parameter_order=True), rows))
    for e in events:
        metrics.EVENTS_INGESTED.labels(e.source).inc()
    return ids


def pending_count(s: Session) -> int:
    return s.scalar(select(func.count()).select_from(Event).where(Event.processed_at.is_(None))) or 0


def process_pending(s: Session, *, now: datetime, limit: int = 500) -> int:
    """Run up to ``limit`` pending events, oldest first, through dedup and into incidents."""
    q = select(Event).where(Event.processed_at.is_(None)).order_by(Event.id).limit(limit)
    if s.get_bind().dialect.name == "postgresql":
        q = q.with_for_update(skip_locked=True)
    events = list(s.scalars(q))
    # One query for the alerts this batch can touch, instead of one per event.
    firing = {
        a.fingerprint: a
        for a in s.scalars(
            select(Alert)
            .where(
                Alert.fingerprint.in_({ev.fingerprint for ev in events}),
                Alert.status == EventStatus.firing.value,
            )
            .order_by(Alert.id)
        )
    }
    for ev in events:
        _process(s, ev, now, firing)
        ev.processed_at = now
    metrics.EVENTS_PROCESSED.inc(len(events))
    return len(events)


def _process(s: Session, ev: Event, now: datetime, firing: dict[str, Alert]) -> None:
    """Apply one event to the alert state; ``firing`` maps fingerprints to open alerts and is kept current."""
    from opsdesk.incidents import correlate as incidents

    alert = firing.get(ev.fingerprint)
    if ev.status == EventStatus.firing.value:
        if alert is not None:
            alert.last_seen = ev.received_at
            alert.event_count += 1
            alert.severity = ev.severity
            alert.summary = ev.summary
            ev.alert_id = alert.id
            return
        alert = Alert(
            fingerprint=ev.fingerprint,
            source=ev.source,
            status=EventStatus.firing.value,
            severity=ev.severity,
            summary=ev.summary,
            service_id=ev.service_id,
            labels=ev.labels,
            first_seen=ev.received_at,
            last_seen=ev.received_at,
            event_count=1,
        )
        s.add(alert)
        s.flush()
        firing[ev.fingerprint] = alert
        ev.alert_id = alert.id
        metrics.ALERTS_OPENED.inc()
        alert.incident_id = incidents.on_alert_fired(
            s,
            alert_id=alert.id,
            summary=alert.summary,
            severity=alert.severity,
            service_id=alert.service_id,
            source=alert.source,
            now=now,
        )
        return
    # resolved
    if alert is None:
        return  # nothing firing under this fingerprint: a late or repeated resolve
    del firing[ev.fingerprint]
    alert.status = EventStatus.resolved.value
    alert.resolved_at = ev.received_at
    alert.last_seen = ev.received_at
    alert.event_count += 1
    ev.alert_id = alert.id
    if alert.incident_id is not None:
        s.flush()
        still_firing = s.scalar(
            select(func.count())
            .select_from(Alert)
            .where(Alert.incident_id == alert.incident_id, Alert.status == EventStatus.firing.value)
        )
        incidents.on_alert_resolved(
            s,
            incident_id=alert.incident_id,
            alert_id=alert.id,
            summary=ev.summary,
            still_firing=still_firing or 0,
            now=now,
        )


def resolve_for_incident(s: Session, incident_id: int, *, now: datetime) -> int:
    """Mark the incident's firing alerts resolved (the incident was resolved by hand)."""
    alerts = list(
        s.scalars(
            select(Alert).where(Alert.incident_id == incident_id, Alert.status == EventStatus.firing.value)
        )
    )
    for a in alerts:
        a.status = EventStatus.resolved.value
        a.resolved_at = now
    return len(alerts)


def get_alert(s: Session, alert_id: int) -> Alert:
    a = s.get(Alert, alert_id)
    if a is None:
        raise not_found("alert", alert_id)
    return a


def list_alerts(
    s: Session,
    *,
    status: str | None = None,
    incident_id: int | None = None,
    before_id: int | None = None,
    limit: int = 100,
) -> list[Alert]:
    q = select(Alert).order_by(Alert.id.desc()).limit(limit)
    if status:
        q = q.where(Alert.status == status)
    if incident_id is not None:
        q = q.where(Alert.incident_id == incident_id)
    if before_id:
        q = q.where(Alert.id < before_id)
    return list(s.scalars(q))
