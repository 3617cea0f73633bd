"""Events in, deduplicated alerts out.

The pipeline's first stages: :func:`store_events` commits what a source said (the ingestion hot
path, called in batches by the writer); :func:`process_pending` turns stored events into alert
state and hands new and resolved alerts to the incidents stage.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import select
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session

from opsdesk.alerts import processing
from opsdesk.alerts.models import Alert, Event, EventStatus
from opsdesk.alerts.schemas import EventIn
from opsdesk.core import metrics
from opsdesk.core.db import driver_value, execute_rows
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
    ci_id: int | None = None
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
    ci_names = {e.ci for e in events if e.ci}
    ci_ids = cmdb.ci_ids_by_name(s, ci_names) if ci_names else {}
    out = []
    for i, e in enumerate(events):
        service_id = None
        if e.service:
            service_id = ids.get(e.service)
            if service_id is None:
                where = f"events[{i}].service" if batch else "service"
                raise invalid(where, f"no service named {e.service!r}")
        labels = dict(e.labels)
        ci_id = None
        if e.ci:
            # A host the CMDB does not know is common (monitoring sees more than is recorded):
            # the name is kept as the ``ci`` label rather than refusing the event.
            ci_id = ci_ids.get(e.ci)
            if ci_id is None:
                labels.setdefault("ci", e.ci)
        out.append(
            NormalizedEvent(
                source=e.source,
                status=e.status.value,
                severity=e.severity.value,
                summary=e.summary,
                fingerprint=e.fingerprint,
                service_id=service_id,
                ci_id=ci_id,
                labels=labels,
            )
        )
    return out


_INSERT_COLUMNS = "received_at, source, fingerprint, status, severity, summary, service_id, ci_id, labels"
_SQLITE_INSERT = f"INSERT INTO events ({_INSERT_COLUMNS}) {{values}}"


def store_events(s: Session, events: list[NormalizedEvent], *, now: datetime) -> list[int]:
    """Insert events as pending in the session's transaction; returns their ids, in the order given.
    A service or CI deleted since its id was resolved is dropped from the event and named in a
    label (the group-commit writer calls :func:`insert_events` first, without that check)."""
    if not events:
        return []
    _drop_stale_ids(s, events)
    conn = s.connection()
    return insert_events(conn.connection.driver_connection, conn.dialect, events, now=now)


def insert_events(dbapi: Any, dialect: Dialect, events: list[NormalizedEvent], *, now: datetime) -> list[int]:
    """Insert events as pending on the driver's connection, in its open transaction; returns their
    ids, in the order given.

    The ingestion hot path (the group-commit writer calls it with every request's events): the
    rows go to the driver as plain tuples in one statement, with the timestamp and the JSON labels
    converted once here rather than per value by the ORM's type machinery, which cost more than
    the insert itself (decision 0014). The service and CI ids are not checked: the writer first
    tries without the check (a foreign key then fails the batch, and the writer retries each
    request through :func:`store_events` with the check), as services are seldom deleted.
    """
    if not events:
        return []
    fps = [e.fingerprint or compute_fingerprint(e.source, e.service_id, e.labels, e.summary) for e in events]
    cur = dbapi.cursor()
    try:
        if dialect.name == "postgresql":
            # The batch as one JSON document, read by the server into rows of the table's own type
            # (psycopg's array adaptation, per element in Python, cost more than the rest together),
            # in one round trip: the id column's default is taken row by row as the sorted rows
            # reach the insert, so the ids ascend in the order given (other writers' ids may fall
            # between them, never out of order), and sorting what RETURNING gives maps them back.
            doc = [
                {
                    "received_at": now,
                    "source": e.source,
                    "fingerprint": fp,
                    "status": e.status,
                    "severity": e.severity,
                    "summary": e.summary[:1000],
                    "service_id": e.service_id,
                    "ci_id": e.ci_id,
                    "labels": e.labels,
                }
                for fp, e in zip(fps, events, strict=True)
            ]
            cur.execute(
                f"INSERT INTO events ({_INSERT_COLUMNS}) SELECT {_INSERT_COLUMNS} "
                "FROM json_populate_recordset(NULL::events, %(doc)s::json) WITH ORDINALITY AS v "
                "ORDER BY v.ordinality RETURNING id",
                {"doc": orjson.dumps(doc, default=str).decode()},
            )
            ids = sorted(row[0] for row in cur.fetchall())
        else:
            received = driver_value(dialect, Event.__table__.c.received_at.type, now)
            rows = [
                (
                    received,
                    e.source,
                    fp,
                    e.status,
                    e.severity,
                    e.summary[:1000],
                    e.service_id,
                    e.ci_id,
                    orjson.dumps(e.labels, default=str).decode(),
                )
                for fp, e in zip(fps, events, strict=True)
            ]
            # One writer holds SQLite's write lock for the whole transaction, so the rowids of the
            # batch are consecutive and end at the last row's.
            execute_rows(cur.execute, _SQLITE_INSERT, rows, per_statement=500)
            last = cur.lastrowid  # the last row's rowid (no statement more to ask for it)
            ids = list(range(last - len(rows) + 1, last + 1))
    finally:
        cur.close()
    for source, n in Counter(e.source for e in events).items():
        metrics.EVENTS_INGESTED.labels(source).inc(n)
    return ids


def _drop_stale_ids(s: Session, events: list[NormalizedEvent]) -> None:
    """A service or CI deleted since its name was resolved (the fast path caches names for a few
    seconds) must not fail the whole group commit: the event is kept without it, named in a label."""
    from opsdesk.cmdb.models import ConfigItem, Service

    svc = {e.service_id for e in events if e.service_id is not None}
    cis = {e.ci_id for e in events if e.ci_id is not None}
    live_s = set(s.scalars(select(Service.id).where(Service.id.in_(svc)))) if svc else set()
    live_c = set(s.scalars(select(ConfigItem.id).where(ConfigItem.id.in_(cis)))) if cis else set()
    for e in events:
        if e.service_id is not None and e.service_id not in live_s:
            e.labels = {**e.labels, "deleted_service_id": str(e.service_id)}
            e.service_id = None
        if e.ci_id is not None and e.ci_id not in live_c:
            e.labels = {**e.labels, "deleted_ci_id": str(e.ci_id)}
            e.ci_id = None


def pending_count(s: Session) -> int:
    return processing.pending_count(s)


def process_pending(
    s: Session, *, now: datetime, limit: int = 500, config: processing.PipelineConfig | None = None
) -> int:
    """Run up to ``limit`` pending events through rules, dedup, mute and correlation
    (:mod:`opsdesk.alerts.processing`)."""
    return processing.process_pending(s, now=now, limit=limit, config=config)


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


def move_alerts(
    s: Session, from_incident_id: int, to_incident_id: int, alert_ids: list[int] | None = None
) -> int:
    """Attach alerts of one incident to another (people merging or splitting incidents): all of
    them, or only ``alert_ids`` among them. Returns how many moved."""
    from sqlalchemy import update

    if alert_ids is not None and not alert_ids:
        return 0
    stmt = update(Alert).where(Alert.incident_id == from_incident_id)
    if alert_ids is not None:
        stmt = stmt.where(Alert.id.in_(alert_ids))
    moved = s.scalars(stmt.values(incident_id=to_incident_id).returning(Alert.id)).all()
    return len(moved)
