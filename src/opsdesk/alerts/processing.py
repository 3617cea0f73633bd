"""The pipeline stage between stored events and incidents: rules, dedup, reopen, mute, correlate.

For each batch of pending events (oldest first), loaded once per batch: the enabled dedup and
grouping rules, the active silences, the maintenance windows in progress and the names of the
services and CIs involved. Then, per event:

1. **Match labels**: the event's labels plus ``source``, ``severity``, ``service`` and ``ci`` (the
   names), unless the event set them itself. Rules and silences match on these.
2. **Rule**: the first enabled rule (by position) whose matchers match; ``default`` when none does.
   Its ``fingerprint_labels`` replace the source's fingerprint, its ``group_by`` the default
   grouping, its windows the settings' ones. The alert records the rule's name.
3. **Dedup**: a firing alert with the same fingerprint takes the event (count, last seen, severity
   and summary follow the newest event). A resolved one that fires again within the reopen window
   reopens, and so does its incident unless it was closed or merged. Otherwise a new alert.
4. **Mute**: a new alert matched by an active silence, or on a service or CI under maintenance
   (or on a CI that needs one under maintenance), is kept and counted but opens no incident and
   pages nobody; ``muted_by`` names the silences and windows. When they end while the alert still
   fires, :func:`unmute_expired` runs it through correlation then.
5. **Correlate** (:mod:`opsdesk.incidents.correlate`): by group key, then by CMDB topology.

Resolved events close their alert; the last alert of an incident to resolve resolves it.
Per day and source, the events, alerts opened, incidents opened and alerts muted are counted in
``alert_noise_daily`` (the noise-reduction report).
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

import orjson
from sqlalchemy import Table, select
from sqlalchemy.orm import Session

from opsdesk.alerts.models import Alert, Event, EventStatus, NoiseDaily
from opsdesk.core import metrics
from opsdesk.core.db import driver_converter, driver_value, execute_rows

if TYPE_CHECKING:
    from opsdesk.alerts.rules import CompiledRule
    from opsdesk.core.settings import Settings

DEFAULT_RULE = "default"
_EVENTS = cast(Table, Event.__table__)
_ALERTS = cast(Table, Alert.__table__)


@dataclass(frozen=True)
class PipelineConfig:
    reopen_window: timedelta = timedelta(seconds=900)
    group_window: timedelta = timedelta(seconds=600)
    group_by: tuple[str, ...] = ()

    @classmethod
    def from_settings(cls, settings: Settings) -> PipelineConfig:
        return cls(
            reopen_window=timedelta(seconds=settings.alert_reopen_window_seconds),
            group_window=timedelta(seconds=settings.alert_group_window_seconds),
            group_by=tuple(x.strip() for x in settings.alert_group_by.split(",") if x.strip()),
        )


@dataclass
class BatchContext:
    """What every event of one batch is checked against, loaded once."""

    now: datetime
    config: PipelineConfig
    rules: list[CompiledRule]
    silences: list[tuple[int, list[Any]]]
    windows: list[Any]
    names: dict[tuple[str, int], str] = field(default_factory=dict)
    _graph: Any = None

    def graph(self, s: Session) -> Any:
        if self._graph is None:
            from opsdesk.cmdb import service as cmdb

            self._graph = cmdb.dependency_graph(s)
        return self._graph


@dataclass
class Decision:
    """What the rules say about one event."""

    fingerprint: str
    rule: str
    group_key: str
    reopen_window: timedelta
    group_window: timedelta | None  # a rule's window for same-key grouping; None: while open
    labels: dict[str, str]


def load_context(s: Session, now: datetime, config: PipelineConfig) -> BatchContext:
    from opsdesk.alerts import rules, silences
    from opsdesk.changes import maintenance

    return BatchContext(
        now=now,
        config=config,
        rules=rules.load(s),
        silences=silences.active(s, now),
        windows=maintenance.in_progress(s, now),
    )


# Labels that name a host, device or pod, in the order they are trusted; ``instance`` is
# Prometheus's ``host:port``, and a URL target names its host.
CI_LABELS = (
    "ci",
    "host",
    "hostname",
    "instance",
    "node",
    "nodename",
    "kubernetes_node",
    "pod",
    "deployment",
    "statefulset",
    "daemonset",
    "device",
)


def ci_candidates(labels: Mapping[str, Any]) -> list[str]:
    """The names an event's labels give for its CI, most specific first: ``web-01:9100`` gives
    ``web-01:9100`` and ``web-01``; ``db1.example.com`` also ``db1``."""
    out: list[str] = []
    for key in CI_LABELS:
        value = labels.get(key)
        if not value or not isinstance(value, str):
            continue
        v = value.strip()
        if "://" in v:
            v = v.split("://", 1)[1].split("/", 1)[0]
        host = v.rsplit(":", 1)[0] if v.count(":") == 1 else v
        for name in (v, host, host.split(".", 1)[0]):
            if name and name not in out:
                out.append(name[:200])
    return out


@dataclass
class _EventRow:
    """An event row whose CI may have been found from its labels."""

    id: int
    received_at: datetime
    source: str
    fingerprint: str
    status: str
    severity: str
    summary: str
    service_id: int | None
    ci_id: int | None
    labels: dict[str, Any]


def _with_cis_from_labels(s: Session, events: list[Any]) -> list[Any]:
    """Events without a CI get the one their labels name, when the CMDB has it (one query per
    batch): Prometheus knows ``instance`` and ``pod``, not CMDB names, and topology needs the CI."""
    wanted = {e.id: ci_candidates(e.labels or {}) for e in events if e.ci_id is None}
    names = {n for c in wanted.values() for n in c}
    if not names:
        return events
    from opsdesk.cmdb import service as cmdb

    found = cmdb.ci_ids_by_name(s, names)
    if not found:
        return events
    out: list[Any] = []
    for e in events:
        match = next((found[n] for n in wanted.get(e.id, ()) if n in found), None)
        if match is None:
            out.append(e)
        else:
            out.append(
                _EventRow(
                    e.id,
                    e.received_at,
                    e.source,
                    e.fingerprint,
                    e.status,
                    e.severity,
                    e.summary,
                    e.service_id,
                    match,
                    e.labels or {},
                )
            )
    return out


def _with_service_of_ci(ctx: BatchContext, s: Session, events: list[Any]) -> list[Any]:
    """Events on a CI that name no service get the CI's service when exactly one service needs it
    in the CMDB: alerts are grouped by service, and the incident gets the service's team."""
    if not any(e.service_id is None and e.ci_id is not None for e in events):
        return events
    graph = ctx.graph(s)
    out: list[Any] = []
    for e in events:
        owner = graph.owning_service(e.ci_id) if e.service_id is None and e.ci_id is not None else None
        if owner is None:
            out.append(e)
            continue
        out.append(
            _EventRow(
                e.id,
                e.received_at,
                e.source,
                e.fingerprint,
                e.status,
                e.severity,
                e.summary,
                owner,
                e.ci_id,
                e.labels or {},
            )
        )
    return out


def _load_names(s: Session, ctx: BatchContext, service_ids: set[int], ci_ids: set[int]) -> None:
    from opsdesk.cmdb.models import ConfigItem, Service

    want_s = {i for i in service_ids if ("service", i) not in ctx.names}
    want_c = {i for i in ci_ids if ("ci", i) not in ctx.names}
    if want_s:
        for sid, name in s.execute(select(Service.id, Service.name).where(Service.id.in_(want_s))):
            ctx.names[("service", sid)] = name
    if want_c:
        for cid, name in s.execute(select(ConfigItem.id, ConfigItem.name).where(ConfigItem.id.in_(want_c))):
            ctx.names[("ci", cid)] = name


def match_labels(
    labels: Mapping[str, Any],
    *,
    source: str,
    severity: str,
    service_id: int | None,
    ci_id: int | None,
    names: Mapping[tuple[str, int], str],
) -> dict[str, str]:
    out = {str(k): str(v) for k, v in labels.items()}
    out.setdefault("source", source)
    out.setdefault("severity", severity)
    if service_id is not None and ("service", service_id) in names:
        out.setdefault("service", names[("service", service_id)])
    if ci_id is not None and ("ci", ci_id) in names:
        out.setdefault("ci", names[("ci", ci_id)])
    return out


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]


def default_group_key(
    service_id: int | None, ci_id: int | None, labels: Mapping[str, str], source: str, fingerprint: str
) -> str:
    """By service; else by CI; else by alert name within the source; else the alert alone."""
    if service_id is not None:
        return f"service:{service_id}"
    if ci_id is not None:
        return f"ci:{ci_id}"
    if labels.get("alertname"):
        return f"alertname:{source}:{labels['alertname']}"[:500]
    return f"alert:{fingerprint}"


def labels_of(ctx: BatchContext, x: Any) -> dict[str, str]:
    """The labels that rules, silences and windows match for an event row or an alert (both have
    ``labels``, ``source``, ``severity``, ``service_id`` and ``ci_id``)."""
    return match_labels(
        x.labels or {},
        source=x.source,
        severity=x.severity,
        service_id=x.service_id,
        ci_id=x.ci_id,
        names=ctx.names,
    )


def decide(ctx: BatchContext, ev: Any) -> Decision:
    """Apply the rules to one event row (``source``, ``severity``, ``fingerprint``, ``labels``,
    ``service_id``, ``ci_id``)."""
    from opsdesk.alerts import rules

    labels = labels_of(ctx, ev)
    rule = rules.first_match(ctx.rules, labels) if ctx.rules else None
    fingerprint = ev.fingerprint
    group_by = ctx.config.group_by
    reopen = ctx.config.reopen_window
    window: timedelta | None = None
    name = DEFAULT_RULE
    if rule is not None:
        name = rule.name
        if rule.fingerprint_labels:
            fingerprint = "rule:" + _digest(
                rule.name, *(f"{k}={labels.get(k, '')}" for k in rule.fingerprint_labels)
            )
        if rule.group_by:
            group_by = tuple(rule.group_by)
        if rule.reopen_window_seconds is not None:
            reopen = timedelta(seconds=rule.reopen_window_seconds)
        if rule.group_window_seconds is not None:
            window = timedelta(seconds=rule.group_window_seconds)
    if group_by:
        key = f"{name}|" + ",".join(f"{k}={labels.get(k, '')}" for k in group_by)
        if len(key) > 500:
            key = f"{name}|#" + _digest(key)
    else:
        key = default_group_key(ev.service_id, ev.ci_id, labels, ev.source, fingerprint)
    return Decision(fingerprint, name, key, reopen, window, labels)


def muted_by(
    ctx: BatchContext, s: Session, d: Decision, service_id: int | None, ci_id: int | None
) -> dict[str, list[int]]:
    """The silences and maintenance windows that mute an alert with these labels and targets."""
    from opsdesk.alerts import silences

    out: dict[str, list[int]] = {}
    sil = silences.silencing(ctx.silences, d.labels) if ctx.silences else []
    if sil:
        out["silences"] = sil
    if ctx.windows:
        upstream: set[tuple[str, int]] = set()
        if ci_id is not None and any(w.ci_id is not None for w in ctx.windows):
            upstream = ctx.graph(s).upstream(("ci", ci_id))
        hit = [
            w.id
            for w in ctx.windows
            if (w.service_id is not None and w.service_id == service_id)
            or (w.ci_id is not None and (w.ci_id == ci_id or ("ci", w.ci_id) in upstream))
        ]
        if hit:
            out["maintenance"] = sorted(set(hit))
    return out


class _Noise:
    def __init__(self) -> None:
        self.rows: dict[tuple[Any, str], Counter[str]] = {}

    def add(self, at: datetime, source: str, what: str, n: int = 1) -> None:
        self.rows.setdefault((at.date(), source[:100]), Counter())[what] += n

    def flush(self, s: Session) -> None:
        if not self.rows:
            return
        dialect = s.get_bind().dialect.name
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as upsert
        else:
            from sqlalchemy.dialects.sqlite import insert as upsert  # type: ignore[assignment]
        table = cast(Table, NoiseDaily.__table__)
        for (day, source), c in sorted(self.rows.items()):
            values = {k: c.get(k, 0) for k in ("events", "alerts", "incidents", "muted")}
            stmt = upsert(table).values(day=day, source=source, **values)
            stmt = stmt.on_conflict_do_update(
                index_elements=["day", "source"],
                set_={k: getattr(table.c, k) + getattr(stmt.excluded, k) for k in values},
            )
            s.execute(stmt)
        self.rows.clear()


def process_pending(
    s: Session,
    *,
    now: datetime,
    limit: int = 500,
    config: PipelineConfig | None = None,
    before: int | None = None,
) -> int:
    """Run up to ``limit`` pending events, oldest first, through rules, dedup, mute and correlation;
    with ``before``, only those whose id is lower (events of stored batches wait for their turn)."""
    from opsdesk.incidents import correlate

    q = select(_EVENTS).where(_EVENTS.c.processed_at.is_(None))
    if before is not None:
        q = q.where(_EVENTS.c.id < before)
    q = q.order_by(_EVENTS.c.id).limit(limit)
    if s.get_bind().dialect.name == "postgresql":
        q = q.with_for_update(skip_locked=True)
    events = list(s.execute(q).all())
    if not events:
        return 0
    ctx = load_context(s, now, config or PipelineConfig())
    events = _with_service_of_ci(ctx, s, _with_cis_from_labels(s, events))
    _load_names(
        s,
        ctx,
        {e.service_id for e in events if e.service_id is not None},
        {e.ci_id for e in events if e.ci_id is not None},
    )
    decisions = [decide(ctx, ev) for ev in events]
    fps = {d.fingerprint for d in decisions}
    # One query each for the alerts this batch can touch: those firing, and the latest resolved
    # one per fingerprint that may still reopen. A firing alert that only gets repeats in this
    # batch (the bulk of a storm) is not loaded as an object: its repeats are added up and written
    # in one statement (_Repeats); the others are loaded whole, as they may change state.
    firing_ids: dict[str, int] = dict(
        s.execute(
            select(Alert.fingerprint, Alert.id)
            .where(Alert.fingerprint.in_(fps), Alert.status == EventStatus.firing.value)
            .order_by(Alert.id)
        ).all()
    )
    changing = {d.fingerprint for ev, d in zip(events, decisions, strict=True) if ev.status != _FIRING}
    repeats = _Repeats({fp: i for fp, i in firing_ids.items() if fp not in changing})
    firing: dict[str, Alert] = {}
    whole = [firing_ids[fp] for fp in changing if fp in firing_ids]
    if whole:
        firing = {a.fingerprint: a for a in s.scalars(select(Alert).where(Alert.id.in_(whole)))}
    longest = max((d.reopen_window for d in decisions), default=timedelta(0))
    recent: dict[str, Alert] = {}
    if longest > timedelta(0):
        for a in s.scalars(
            select(Alert)
            .where(
                Alert.fingerprint.in_(fps - set(firing_ids)),
                Alert.status == EventStatus.resolved.value,
                Alert.resolved_at >= now - longest,
            )
            .order_by(Alert.id)
        ):
            recent[a.fingerprint] = a  # the newest wins
    noise = _Noise()
    corr = correlate.Correlator(s, group_window=ctx.config.group_window, graph=ctx.graph, now=now)
    touched: list[Alert | int | None] = []
    for ev, d in zip(events, decisions, strict=True):
        noise.add(ev.received_at, ev.source, "events")
        repeated = repeats.add(d.fingerprint, ev) if ev.status == _FIRING else None
        touched.append(
            repeated if repeated is not None else _apply(s, ctx, ev, d, firing, recent, noise, corr)
        )
    corr.finish()
    s.flush()
    repeats.write(s)
    _mark_processed(
        s,
        [ev.id for ev in events],
        [a if isinstance(a, int) or a is None else a.id for a in touched],
        now,
    )
    noise.flush(s)
    metrics.EVENTS_PROCESSED.inc(len(events))
    return len(events)


_FIRING = EventStatus.firing.value


class _Repeats:
    """Repeats of alerts that stay firing through a batch, added up per alert: one UPDATE each at
    the end instead of an object loaded, changed and flushed per alert."""

    def __init__(self, alert_ids: dict[str, int]) -> None:
        self.alert_ids = alert_ids
        self.seen: dict[int, list[Any]] = {}  # alert id -> [count, last seen, severity, summary]

    def add(self, fingerprint: str, ev: Any) -> int | None:
        """The alert's id if ``ev`` is a repeat of one (counted), else None."""
        alert_id = self.alert_ids.get(fingerprint)
        if alert_id is None:
            return None
        row = self.seen.get(alert_id)
        if row is None:
            self.seen[alert_id] = [1, ev.received_at, ev.severity, ev.summary]
        else:
            row[0] += 1
            row[1], row[2], row[3] = ev.received_at, ev.severity, ev.summary
        return alert_id

    def write(self, s: Session) -> None:
        if not self.seen:
            return
        conn = s.connection()
        if conn.dialect.name == "postgresql":
            doc = [
                {"i": alert_id, "n": n, "l": last, "v": sev, "s": summary}
                for alert_id, (n, last, sev, summary) in self.seen.items()
            ]
            conn.exec_driver_sql(
                "UPDATE alerts SET event_count = event_count + v.n, last_seen = v.l, severity = v.v, "
                "summary = v.s FROM json_to_recordset(%(doc)s::json) "
                "AS v(i bigint, n int, l timestamptz, v text, s text) WHERE alerts.id = v.i",
                {"doc": orjson.dumps(doc).decode()},
            )
            return
        at = driver_converter(conn.dialect, _ALERTS.c.last_seen.type)
        _sqlite_update_from_values(
            s,
            "UPDATE alerts SET event_count = event_count + v.column2, last_seen = v.column3, "
            "severity = v.column4, summary = v.column5 FROM ({values}) AS v WHERE alerts.id = v.column1",
            [
                (alert_id, n, at(last), sev, summary)
                for alert_id, (n, last, sev, summary) in self.seen.items()
            ],
            "UPDATE alerts SET event_count = event_count + ?, last_seen = ?, severity = ?, summary = ? "
            "WHERE id = ?",
        )


def _mark_processed(s: Session, event_ids: list[int], alert_ids: list[int | None], now: datetime) -> None:
    """Events done, each with its alert: one statement to the driver, the time converted once
    (per-row type processing through the ORM cost more than the update)."""
    conn = s.connection()
    processed = driver_value(conn.dialect, _EVENTS.c.processed_at.type, now)
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(
            "UPDATE events SET processed_at = %(at)s, alert_id = v.a "
            "FROM json_to_recordset(%(doc)s::json) AS v(e bigint, a bigint) WHERE events.id = v.e",
            {
                "at": processed,
                "doc": orjson.dumps(
                    [{"e": e, "a": a} for e, a in zip(event_ids, alert_ids, strict=True)]
                ).decode(),
            },
        )
    else:
        _sqlite_update_from_values(
            s,
            "UPDATE events SET processed_at = v.column2, alert_id = v.column3 FROM ({values}) AS v "
            "WHERE events.id = v.column1",
            [(eid, processed, aid) for eid, aid in zip(event_ids, alert_ids, strict=True)],
            "UPDATE events SET processed_at = ?, alert_id = ? WHERE id = ?",
        )


_UPDATE_ROWS = 400  # rows per statement: at most 2,000 parameters here
SQLITE_VERSION = sqlite3.sqlite_version_info


def _sqlite_update_from_values(s: Session, sql: str, rows: list[tuple[Any, ...]], one_row_sql: str) -> None:
    """``sql`` (an ``UPDATE … FROM ({values}) AS v`` joined on ``v.column1``, the row's id) run with
    ``rows`` a few hundred at a time (:func:`~opsdesk.core.db.execute_rows`). Before SQLite 3.33
    (no ``UPDATE … FROM``) it is ``one_row_sql`` per row, given the row's values after its id, then
    the id."""
    conn = s.connection()
    if SQLITE_VERSION < (3, 33, 0):
        conn.exec_driver_sql(one_row_sql, [(*row[1:], row[0]) for row in rows])
        return
    execute_rows(
        lambda text, params: conn.exec_driver_sql(text, tuple(params)), sql, rows, per_statement=_UPDATE_ROWS
    )


def _apply(
    s: Session,
    ctx: BatchContext,
    ev: Any,
    d: Decision,
    firing: dict[str, Alert],
    recent: dict[str, Alert],
    noise: _Noise,
    corr: Any,
) -> Alert | None:
    alert = firing.get(d.fingerprint)
    if ev.status == EventStatus.firing.value:
        if alert is not None:  # a repeat
            alert.last_seen = ev.received_at
            alert.event_count += 1
            alert.severity = ev.severity
            alert.summary = ev.summary
            return alert
        old = recent.get(d.fingerprint)
        if (
            old is not None
            and old.resolved_at is not None
            and ev.received_at - old.resolved_at <= d.reopen_window
        ):
            del recent[d.fingerprint]
            firing[d.fingerprint] = old
            old.status = EventStatus.firing.value
            old.resolved_at = None
            old.last_seen = ev.received_at
            old.event_count += 1
            old.reopened_count += 1
            old.severity = ev.severity
            old.summary = ev.summary
            if not old.muted:
                corr.refired(old)
            return old
        mutes = muted_by(ctx, s, d, ev.service_id, ev.ci_id)
        alert = Alert(
            fingerprint=d.fingerprint,
            source=ev.source,
            status=EventStatus.firing.value,
            severity=ev.severity,
            summary=ev.summary,
            service_id=ev.service_id,
            ci_id=ev.ci_id,
            labels=ev.labels or {},
            first_seen=ev.received_at,
            last_seen=ev.received_at,
            event_count=1,
            reopened_count=0,
            rule=d.rule,
            group_key=d.group_key,
            muted=bool(mutes),
            muted_by=mutes,
        )
        s.add(alert)
        firing[d.fingerprint] = alert
        metrics.ALERTS_OPENED.inc()
        noise.add(ev.received_at, ev.source, "alerts")
        if mutes:
            noise.add(ev.received_at, ev.source, "muted")
            return alert
        opened = corr.attach(alert, same_key_window=d.group_window)
        if opened:
            noise.add(ev.received_at, ev.source, "incidents")
        return alert
    # resolved
    if alert is None:
        return None  # nothing firing under this fingerprint: a late or repeated resolve
    del firing[d.fingerprint]
    alert.status = EventStatus.resolved.value
    alert.resolved_at = ev.received_at
    alert.last_seen = ev.received_at
    alert.event_count += 1
    recent[d.fingerprint] = alert
    if alert.incident_id is not None:
        corr.alert_resolved(alert, ev.summary)
    return alert


def mute_state(s: Session, now: datetime) -> frozenset[tuple[Any, ...]]:
    """What mutes alerts at ``now``: each active silence (with its last edit) and each maintenance
    window in progress (with its scope and the end of its occurrence). While every entry of an
    earlier state is still in the current one, no muted alert can have lost its mute."""
    from opsdesk.alerts.models import Silence
    from opsdesk.changes import maintenance

    silences = s.execute(
        select(Silence.id, Silence.updated_at).where(Silence.starts_at <= now, Silence.ends_at > now)
    ).all()
    windows = maintenance.in_progress(s, now)
    return frozenset(
        [("silence", sid, edited) for sid, edited in silences]
        + [("window", w.id, w.service_id, w.ci_id, w.ends_at) for w in windows]
    )


def unmute_expired(
    s: Session, *, now: datetime, config: PipelineConfig | None = None, page: int = 1000
) -> int:
    """Firing alerts whose silences and maintenance windows have all ended go through correlation
    now (they page as if they had just fired). Reads the muted firing alerts ``page`` at a time,
    all of them. Returns how many were unmuted."""
    from opsdesk.incidents import correlate

    ctx: BatchContext | None = None
    corr: Any = None
    n = 0
    after = 0
    while True:
        muted = list(
            s.scalars(
                select(Alert)
                .where(Alert.status == EventStatus.firing.value, Alert.muted.is_(True), Alert.id > after)
                .order_by(Alert.id)
                .limit(page)
            )
        )
        if not muted:
            break
        after = muted[-1].id
        if ctx is None:
            ctx = load_context(s, now, config or PipelineConfig())
            corr = correlate.Correlator(s, group_window=ctx.config.group_window, graph=ctx.graph, now=now)
        _load_names(
            s,
            ctx,
            {a.service_id for a in muted if a.service_id is not None},
            {a.ci_id for a in muted if a.ci_id is not None},
        )
        for a in muted:
            labels = labels_of(ctx, a)
            d = Decision(a.fingerprint, a.rule, a.group_key or "", ctx.config.reopen_window, None, labels)
            if muted_by(ctx, s, d, a.service_id, a.ci_id):
                continue
            a.muted = False
            n += 1
            corr.attach(
                a, same_key_window=None, why="its silence or maintenance window ended while it still fired"
            )
        if len(muted) < page:
            break
    if corr is not None:
        corr.finish()
    return n
