"""Events in, deduplicated alerts out.

The pipeline's first stages: :func:`store_events` commits what a source said (the ingestion hot
path, called in batches by the writer); :func:`process_pending` turns stored events into alert
state and hands new and resolved alerts to the incidents stage.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

import orjson
from sqlalchemy import Table, delete, func, select, update
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session

from opsdesk.alerts import processing
from opsdesk.alerts.models import Alert, Event, EventBatch, EventStatus, Severity
from opsdesk.alerts.schemas import EventIn
from opsdesk.core import metrics
from opsdesk.core.db import driver_converter, driver_value, execute_rows
from opsdesk.core.errors import invalid, not_found

log = logging.getLogger("opsdesk.alerts")


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


@dataclass(slots=True)
class RawEvents:
    """A request's events as received: validated and their names resolved (the events lane and the
    fast path), to be stored whole as one :class:`~opsdesk.alerts.models.EventBatch` by
    :func:`write_events` and turned into events rows by the pipeline (:func:`expand_batches`)."""

    body: bytes
    count: int
    services: dict[str, int | None]
    cis: dict[str, int | None]
    sources: dict[str, int]  # events per source, for the ingestion counter


def normalized_events(
    events: list[EventIn], svc_ids: dict[Any, Any], ci_ids: dict[Any, Any]
) -> list[NormalizedEvent]:
    """API events with their service and CI names given as ids. A CI the CMDB does not know (None
    or absent) is common, as monitoring sees more than is recorded: its name is kept as the ``ci``
    label rather than refusing the event. Every service name must have its id."""
    out = []
    for e in events:
        labels = e.labels
        ci_id = None
        if e.ci:
            ci_id = ci_ids.get(e.ci)
            if ci_id is None and "ci" not in labels:
                labels = {**labels, "ci": e.ci}
        out.append(
            NormalizedEvent(
                source=e.source,
                status=_VALUE[e.status],
                severity=_VALUE[e.severity],
                summary=e.summary,
                fingerprint=e.fingerprint,
                service_id=svc_ids[e.service] if e.service else None,
                ci_id=ci_id,
                labels=labels,
            )
        )
    return out


_VALUE: dict[Any, str] = {m: m.value for enum in (EventStatus, Severity) for m in enum}  # not per event


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
    for i, e in enumerate(events):
        if e.service and e.service not in ids:
            where = f"events[{i}].service" if batch else "service"
            raise invalid(where, f"no service named {e.service!r}")
    return normalized_events(events, ids, ci_ids)


_INSERT_COLUMNS = "received_at, source, fingerprint, status, severity, summary, service_id, ci_id, labels"
_SQLITE_INSERT = f"INSERT INTO events (id, {_INSERT_COLUMNS}) {{values}}"
# SQLite hands out the ids of events rows itself (``id_blocks``), as batches take theirs before their
# rows exist (a rowid chosen by SQLite, the largest plus one, could be one of them). Never below
# the largest id in the table, so rows written any other way are never collided with either.
_SQLITE_RESERVE = (
    "INSERT INTO id_blocks (name, last) VALUES ('events', (SELECT coalesce(max(id), 0) FROM events) + ?) "
    "ON CONFLICT (name) DO UPDATE "
    "SET last = max(id_blocks.last, (SELECT coalesce(max(id), 0) FROM events)) + ? "
    "RETURNING last"
)
_PG_RESERVE = (
    "SELECT min(v), max(v), "
    "CASE WHEN max(v) - min(v) + 1 = count(*) THEN NULL ELSE array_agg(v ORDER BY v) END "
    "FROM (SELECT nextval(pg_get_serial_sequence('events', 'id')) AS v FROM generate_series(1, %s)) AS x"
)
_BATCH_COLUMNS = "id, received_at, count, ids, names, body"


def store_events(s: Session, events: list[Any], *, now: datetime) -> list[Any]:
    """Store events in the session's transaction: :class:`NormalizedEvent` items as pending rows
    (each gives its id), :class:`RawEvents` items as one batch each (each gives its events' ids).
    A service or CI deleted since its id was resolved is dropped from the event and named in a
    label (the group-commit writer calls :func:`write_events` first, without that check)."""
    if not events:
        return []
    _drop_stale_ids(s, [e for e in events if isinstance(e, NormalizedEvent)])
    conn = s.connection()
    return write_events(conn.connection.driver_connection, conn.dialect, events, now=now)


def write_events(dbapi: Any, dialect: Dialect, items: list[Any], *, now: datetime) -> list[Any]:
    """:func:`insert_events` for the :class:`NormalizedEvent` items and :func:`store_batches` for
    the :class:`RawEvents` ones, on the driver's connection in its open transaction; one result
    per item, in the order given."""
    raw = [i for i, item in enumerate(items) if isinstance(item, RawEvents)]
    if not raw:
        return insert_events(dbapi, dialect, items, now=now)
    rows = [i for i, item in enumerate(items) if not isinstance(item, RawEvents)]
    out: list[Any] = [None] * len(items)
    for i, ident in zip(rows, insert_events(dbapi, dialect, [items[i] for i in rows], now=now), strict=True):
        out[i] = ident
    for i, ids in zip(raw, store_batches(dbapi, dialect, [items[i] for i in raw], now=now), strict=True):
        out[i] = ids
    return out


def reserve_event_ids(cur: Any, dialect: Dialect, n: int) -> list[int] | range:
    """``n`` new events ids, ascending, in the cursor's transaction (see ``_SQLITE_RESERVE``)."""
    if dialect.name == "postgresql":
        cur.execute(_PG_RESERVE, (n,))
        first, last, ids = cur.fetchone()
        return range(first, last + 1) if ids is None else list(ids)
    cur.execute(_SQLITE_RESERVE, (n, n))
    last = cur.fetchone()[0]
    return range(last - n + 1, last + 1)


def store_batches(
    dbapi: Any, dialect: Dialect, batches: list[RawEvents], *, now: datetime
) -> list[list[int]]:
    """Each request's events as one ``event_batches`` row, with their ids taken now; returns each
    one's ids. A few microseconds a request, whatever its size: the pipeline reads the events out
    of the body again when it processes them (:func:`expand_batches`; decision 0017)."""
    pg = dialect.name == "postgresql"
    received = now if pg else driver_value(dialect, EventBatch.__table__.c.received_at.type, now)
    cur = dbapi.cursor()
    try:
        ids = reserve_event_ids(cur, dialect, sum(b.count for b in batches))
        out: list[list[int]] = []
        rows = []
        pos = 0
        for b in batches:
            mine = ids[pos : pos + b.count]
            pos += b.count
            out.append(list(mine))
            names = orjson.dumps({"services": b.services, "cis": b.cis}).decode()
            listed = None if isinstance(mine, range) else orjson.dumps(mine).decode()  # (contiguous)
            rows.append((mine[0], received, b.count, listed, names, b.body))
            for source, n in b.sources.items():
                metrics.EVENTS_INGESTED.labels(source).inc(n)
        if pg:
            cur.executemany(
                f"INSERT INTO event_batches ({_BATCH_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s)", rows
            )
        else:
            sql = f"INSERT INTO event_batches ({_BATCH_COLUMNS}) {{values}}"
            execute_rows(cur.execute, sql, rows, per_statement=500)
    finally:
        cur.close()
    return out


def insert_events(
    dbapi: Any,
    dialect: Dialect,
    events: list[NormalizedEvent],
    *,
    now: datetime | list[datetime],
    ids: list[int] | range | None = None,
    count: bool = True,
) -> list[int]:
    """Insert events as pending on the driver's connection, in its open transaction; returns their
    ids, in the order given (``ids``: the ids they were given beforehand, see :func:`store_batches`).
    ``now`` is when they were received: one time for all, or one per event.

    The rows go to the driver as plain tuples in one statement, with the timestamp and the JSON
    labels converted once here rather than per value by the ORM's type machinery, which cost more
    than the insert itself (decision 0014). The service and CI ids are not checked: the writer
    first tries without the check (a foreign key then fails the batch, and the writer retries each
    request through :func:`store_events` with the check), as services are seldom deleted.
    ``count=False``: not counted as ingested (they were when their batch was stored).
    """
    if not events:
        return []
    fps = [e.fingerprint or compute_fingerprint(e.source, e.service_id, e.labels, e.summary) for e in events]
    times = now if isinstance(now, list) else None
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
                    "received_at": now if times is None else times[i],
                    "source": e.source,
                    "fingerprint": fp,
                    "status": e.status,
                    "severity": e.severity,
                    "summary": e.summary[:1000],
                    "service_id": e.service_id,
                    "ci_id": e.ci_id,
                    "labels": e.labels,
                }
                for i, (fp, e) in enumerate(zip(fps, events, strict=True))
            ]
            columns = _INSERT_COLUMNS
            if ids is not None:
                for row, ident in zip(doc, ids, strict=True):
                    row["id"] = ident
                columns = f"id, {_INSERT_COLUMNS}"
            cur.execute(
                f"INSERT INTO events ({columns}) SELECT {columns} "
                "FROM json_populate_recordset(NULL::events, %(doc)s::json) WITH ORDINALITY AS v "
                "ORDER BY v.ordinality RETURNING id",
                {"doc": orjson.dumps(doc, default=str).decode()},
            )
            out = sorted(row[0] for row in cur.fetchall())
        else:
            out = list(ids if ids is not None else reserve_event_ids(cur, dialect, len(events)))
            convert = driver_converter(dialect, Event.__table__.c.received_at.type)
            received = convert(now) if times is None else None
            converted: dict[datetime, Any] = {}  # events of one batch share their time: converted once
            if times is not None:
                for t in times:
                    if t not in converted:
                        converted[t] = convert(t)
            rows = [
                (
                    ident,
                    received if times is None else converted[times[i]],
                    e.source,
                    fp,
                    e.status,
                    e.severity,
                    e.summary[:1000],
                    e.service_id,
                    e.ci_id,
                    orjson.dumps(e.labels, default=str).decode(),
                )
                for i, (ident, fp, e) in enumerate(zip(out, fps, events, strict=True))
            ]
            execute_rows(cur.execute, _SQLITE_INSERT, rows, per_statement=500)
    finally:
        cur.close()
    if count:
        for source, n in Counter(e.source for e in events).items():
            metrics.EVENTS_INGESTED.labels(source).inc(n)
    return out


def expand_batches(s: Session, limit: int) -> int | None:
    """Turn the oldest stored batches (see :func:`store_batches`) into pending events rows, until
    about ``limit`` events, in the session's transaction. Returns the first id of the batches still
    waiting (the pipeline leaves events from that id on for later, so that every source's events
    are processed in the order they were taken), or None when none is.

    A batch the pipeline cannot read (a later release validating differently, say) is kept with
    its ``error`` set and skipped, so it never holds up the rest; it is logged and counted."""
    from opsdesk.alerts.api import parse_events

    table = cast(Table, EventBatch.__table__)
    c = table.c
    waiting = s.execute(select(c.id, c.count).where(c.error.is_(None)).order_by(c.id).limit(limit)).all()
    chosen: list[int] = []
    n = 0
    for ident, size in waiting:
        if n >= limit:
            break
        chosen.append(ident)
        n += size
    if not chosen:
        return None
    q = select(c.id, c.count, c.ids, c.received_at, c.names, c.body).where(c.id.in_(chosen)).order_by(c.id)
    if s.get_bind().dialect.name == "postgresql":
        q = q.with_for_update(skip_locked=True)  # (another pipeline process may have taken some)
    taken: list[int] = []
    events: list[NormalizedEvent] = []
    ids: list[int] = []
    times: list[datetime] = []
    for ident, count, listed, received_at, names, body in s.execute(q):
        try:
            parsed, _batch = parse_events(body, count_rejects=False)
            known = orjson.loads(names)
            batch = normalized_events(parsed, known["services"], known["cis"])
            mine = orjson.loads(listed) if listed else range(ident, ident + count)
            if len(batch) != count or len(mine) != count:
                raise ValueError(f"{len(batch)} events read, {count} stored")
        except Exception as exc:
            log.exception("stored batch %s could not be read; it is kept and skipped", ident)
            metrics.EVENT_BATCHES_UNREADABLE.inc()
            why = f"{type(exc).__name__}: {exc}"[:2000]
            s.execute(update(table).where(c.id == ident).values(error=why))
            continue
        taken.append(ident)
        events += batch
        ids += mine
        times += [received_at] * count
    if taken:
        _drop_stale_ids(s, events)
        conn = s.connection()
        insert_events(
            conn.connection.driver_connection, conn.dialect, events, now=times, ids=ids, count=False
        )
        s.execute(delete(table).where(c.id.in_(taken)))
    return first_waiting_batch(s)


def first_waiting_batch(s: Session) -> int | None:
    """The id of the oldest stored batch still to be read (events from it on wait for it)."""
    return s.scalar(select(func.min(EventBatch.id)).where(EventBatch.error.is_(None)))


def pending_events(s: Session) -> tuple[int, datetime | None]:
    """Events stored and not yet processed (pending rows and the events of batches not yet
    expanded), and when the oldest of them was received. One statement, so one snapshot: counted
    in two, on PostgreSQL a batch expanded between them was in neither count."""
    pending = Event.processed_at.is_(None)
    waiting = EventBatch.error.is_(None)
    n_rows, oldest_row, n_batched, oldest_batch = s.execute(
        select(
            select(func.count(Event.id)).where(pending).scalar_subquery(),
            select(func.min(Event.received_at)).where(pending).scalar_subquery(),
            select(func.coalesce(func.sum(EventBatch.count), 0)).where(waiting).scalar_subquery(),
            select(func.min(EventBatch.received_at)).where(waiting).scalar_subquery(),
        )
    ).one()
    oldests = [t for t in (oldest_row, oldest_batch) if t is not None]
    return int(n_rows) + int(n_batched), min(oldests) if oldests else None


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
    """Events stored and not yet processed: pending rows and events of batches not yet expanded."""
    return pending_events(s)[0]


def process_pending(
    s: Session,
    *,
    now: datetime,
    limit: int = 500,
    config: processing.PipelineConfig | None = None,
    expand: bool = True,
) -> int:
    """Run up to ``limit`` pending events through rules, dedup, mute and correlation
    (:mod:`opsdesk.alerts.processing`), stored batches first turned into events rows
    (:func:`expand_batches`) unless ``expand`` is false: the pipeline does that in a transaction
    of its own first, so that on SQLite the ingestion writer does not wait for the write lock
    while a step runs (the step takes it only for its writes at the end)."""
    before = expand_batches(s, limit) if expand else first_waiting_batch(s)
    return processing.process_pending(s, now=now, limit=limit, config=config, before=before)


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
