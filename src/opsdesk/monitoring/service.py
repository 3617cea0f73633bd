"""Monitors: their configuration, the schedule of their checks, and the state their results give."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError
from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from opsdesk.audit import service as audit
from opsdesk.core import crypto
from opsdesk.core.actor import Actor
from opsdesk.core.errors import FieldError, OpsdeskError, conflict, invalid, not_found
from opsdesk.monitoring.checks import CheckOutcome, get_check_type
from opsdesk.monitoring.models import CheckResult, Monitor, MonitorStatus
from opsdesk.monitoring.schemas import MonitorIn, MonitorUpdate

FIELDS = [
    "name",
    "type",
    "target",
    "config",
    "interval_seconds",
    "timeout_seconds",
    "failures_before_down",
    "service_id",
    "ci_id",
    "severity",
    "enabled",
    "secrets_set",
]


def get_monitor(s: Session, monitor_id: int) -> Monitor:
    m = s.get(Monitor, monitor_id)
    if m is None:
        raise not_found("monitor", monitor_id)
    return m


def get_monitor_by_name(s: Session, name: str) -> Monitor | None:
    return s.scalar(select(Monitor).where(Monitor.name == name))


def list_monitors(
    s: Session,
    *,
    after_id: int = 0,
    limit: int = 100,
    status: str | None = None,
    service_id: int | None = None,
    ci_id: int | None = None,
) -> list[Monitor]:
    q = select(Monitor).where(Monitor.id > after_id).order_by(Monitor.id).limit(limit)
    if status:
        q = q.where(Monitor.status == status)
    if service_id is not None:
        q = q.where(Monitor.service_id == service_id)
    if ci_id is not None:
        q = q.where(Monitor.ci_id == ci_id)
    return list(s.scalars(q))


def count_by_node(s: Session, kind: str) -> dict[int, int]:
    """How many monitors each service (``kind="service"``) or CI (``"ci"``) has."""
    col = Monitor.service_id if kind == "service" else Monitor.ci_id
    rows = s.execute(select(col, func.count()).where(col.is_not(None)).group_by(col))
    return {k: n for k, n in rows if k is not None}


def monitors_referencing(s: Session, kind: str, node_id: int) -> list[str]:
    col = Monitor.service_id if kind == "service" else Monitor.ci_id
    return list(s.scalars(select(Monitor.name).where(col == node_id)))


def validate_definition(
    type_name: str, target: str, config: dict[str, Any], stored_secrets: dict[str, str] | None = None
) -> tuple[str, dict[str, Any], dict[str, str]]:
    """Validate target and config; returns the target, the plain config and the encrypted secrets.

    A secret field left out of ``config`` keeps its stored value; an explicit null clears it.
    """
    check = get_check_type(type_name)
    if check is None:
        raise invalid("type", f"unknown monitor type {type_name!r}")
    config = dict(config)
    for name in check.secret_fields:
        if name not in config and stored_secrets and name in stored_secrets:
            config[name] = crypto.decrypt(stored_secrets[name])
    try:
        target = check.validate_target(target)
    except ValueError as exc:
        raise invalid("target", str(exc)) from None
    try:
        cfg = check.config_model.model_validate(config)
    except ValidationError as exc:
        errors = [FieldError("config." + ".".join(str(p) for p in e["loc"]), e["msg"]) for e in exc.errors()]
        raise OpsdeskError(
            detail="invalid monitor config: " + "; ".join(f"{e.field}: {e.message}" for e in errors),
            status=422,
            title="Invalid input",
            errors=errors,
        ) from None
    values = cfg.model_dump()
    secrets = {n: crypto.encrypt(str(values[n])) for n in check.secret_fields if values.get(n)}
    plain = {k: v for k, v in values.items() if k not in check.secret_fields}
    return target, plain, secrets


def _check_refs(s: Session, service_id: int | None, ci_id: int | None) -> None:
    from opsdesk.cmdb import service as cmdb

    if service_id is not None:
        try:
            cmdb.get_service(s, service_id)
        except OpsdeskError:
            raise invalid("service_id", f"no service with id {service_id}") from None
    if ci_id is not None:
        try:
            cmdb.get_ci(s, ci_id)
        except OpsdeskError:
            raise invalid("ci_id", f"no CI with id {ci_id}") from None


def create_monitor(s: Session, data: MonitorIn, *, actor: Actor, now: datetime) -> Monitor:
    if get_monitor_by_name(s, data.name) is not None:
        raise conflict(f"a monitor named {data.name!r} already exists")
    target, config, secrets = validate_definition(data.type, data.target, data.config)
    _check_refs(s, data.service_id, data.ci_id)
    values = data.model_dump()
    values.update(target=target, config=config, secrets=secrets, severity=data.severity.value)
    m = Monitor(
        **values,
        status=MonitorStatus.unknown.value if data.enabled else MonitorStatus.paused.value,
        consecutive_failures=0,
        last_message="",
        created_at=now,
        updated_at=now,
    )
    s.add(m)
    s.flush()
    m.next_check_at = now if data.enabled else None
    audit.created(s, "monitor", m.id, audit.snapshot(m, FIELDS), actor=actor, at=now)
    return m


def update_monitor(
    s: Session, monitor_id: int, data: MonitorUpdate, *, actor: Actor, now: datetime
) -> Monitor:
    m = get_monitor(s, monitor_id)
    before = audit.snapshot(m, FIELDS)
    changes = data.model_dump(exclude_unset=True)
    for required in (
        "name",
        "target",
        "config",
        "interval_seconds",
        "timeout_seconds",
        "failures_before_down",
        "severity",
        "enabled",
    ):
        if required in changes and changes[required] is None:
            raise invalid(required, "must not be null")
    if "name" in changes and changes["name"] != m.name and get_monitor_by_name(s, changes["name"]):
        raise conflict(f"a monitor named {changes['name']!r} already exists")
    if "target" in changes or "config" in changes:
        changes["target"], changes["config"], changes["secrets"] = validate_definition(
            m.type, changes.get("target", m.target), changes.get("config", m.config), m.secrets
        )
    _check_refs(s, changes.get("service_id"), changes.get("ci_id"))
    if "severity" in changes:
        changes["severity"] = changes["severity"].value
    was_enabled = m.enabled
    for k, v in changes.items():
        setattr(m, k, v)
    if was_enabled and not m.enabled:
        m.status = MonitorStatus.paused.value
        m.next_check_at = None
        m.status_changed_at = now
    elif not was_enabled and m.enabled:
        m.status = MonitorStatus.unknown.value
        m.consecutive_failures = 0
        m.next_check_at = now
        m.status_changed_at = now
    elif m.enabled and ("interval_seconds" in changes or "target" in changes):
        m.next_check_at = now
    m.updated_at = now
    audit.updated(s, "monitor", m.id, before, audit.snapshot(m, FIELDS), actor=actor, at=now)
    return m


def delete_monitor(s: Session, monitor_id: int, *, actor: Actor, now: datetime) -> None:
    m = get_monitor(s, monitor_id)
    if m.status == MonitorStatus.down.value:
        # Its alert would otherwise fire forever with nothing left to resolve it.
        _emit(s, m, firing=False, now=now, summary=f"{m.name}: monitor deleted")
    audit.deleted(s, "monitor", m.id, audit.snapshot(m, FIELDS), actor=actor, at=now)
    s.delete(m)


def recent_results(s: Session, monitor_id: int, limit: int = 50) -> list[CheckResult]:
    return list(
        s.scalars(
            select(CheckResult)
            .where(CheckResult.monitor_id == monitor_id)
            .order_by(CheckResult.at.desc(), CheckResult.id.desc())
            .limit(limit)
        )
    )


# --- scheduling and results --------------------------------------------------------------------


@dataclass(frozen=True)
class DueCheck:
    monitor_id: int
    type: str
    target: str
    config: dict[str, Any]
    timeout_seconds: float
    due_at: datetime | None = None
    error: str | None = None  # set when the check cannot run as configured (e.g. unreadable secrets)


def claim_due(s: Session, now: datetime, limit: int = 1000) -> list[DueCheck]:
    """Take the monitors whose next check is due and move their next check one interval on.

    On PostgreSQL the rows are locked with SKIP LOCKED, so several probers share the work.
    """
    q = (
        select(Monitor)
        .where(Monitor.enabled.is_(True), Monitor.next_check_at <= now)
        .order_by(Monitor.next_check_at)
        .limit(limit)
    )
    if s.get_bind().dialect.name == "postgresql":
        q = q.with_for_update(skip_locked=True)
    due = []
    for m in s.scalars(q):
        due_at = m.next_check_at
        m.next_check_at = now + timedelta(seconds=m.interval_seconds)
        config, error = dict(m.config), None
        try:
            config.update({k: crypto.decrypt(v) for k, v in m.secrets.items()})
        except crypto.SecretUnreadable as exc:
            error = str(exc)
        due.append(DueCheck(m.id, m.type, m.target, config, m.timeout_seconds, due_at, error))
    return due


def next_due_at(s: Session) -> datetime | None:
    return s.scalar(
        select(Monitor.next_check_at)
        .where(Monitor.enabled.is_(True), Monitor.next_check_at.is_not(None))
        .order_by(Monitor.next_check_at)
        .limit(1)
    )


@dataclass(frozen=True)
class Transition:
    monitor_id: int
    name: str
    old: str
    new: str


def record_results(s: Session, results: list[tuple[int, datetime, CheckOutcome]]) -> list[Transition]:
    """Store a batch of check results, move monitor states, and emit events for up/down changes."""
    if not results:
        return []
    ids = {r[0] for r in results}
    monitors = {m.id: m for m in s.scalars(select(Monitor).where(Monitor.id.in_(ids)))}
    rows = []
    transitions = []
    for monitor_id, at, outcome in sorted(results, key=lambda r: (r[1], _depth(s, monitors.get(r[0]), r[2]))):
        m = monitors.get(monitor_id)
        if m is None:  # deleted while its check ran
            continue
        rows.append(
            {
                "monitor_id": monitor_id,
                "at": at,
                "ok": outcome.ok,
                "latency_ms": outcome.latency_ms,
                "status_code": outcome.status_code,
                "message": outcome.message[:1000],
            }
        )
        if not m.enabled:
            continue
        t = _apply(s, m, at, outcome)
        if t is not None:
            transitions.append(t)
    if rows:
        s.execute(insert(CheckResult), rows)
    return transitions


def _apply(s: Session, m: Monitor, at: datetime, outcome: CheckOutcome) -> Transition | None:
    m.last_check_at = at
    m.last_latency_ms = outcome.latency_ms
    m.last_message = outcome.message[:1000]
    old = m.status
    if outcome.ok:
        m.consecutive_failures = 0
        new = MonitorStatus.degraded.value if outcome.degraded else MonitorStatus.up.value
    else:
        m.consecutive_failures += 1
        new = old
        if m.consecutive_failures >= m.failures_before_down:
            # One outage, one page: a monitor whose upstream CI is down is unreachable, not down.
            # Once paged it stays down; once the upstream recovers, the next failure pages.
            blocker = None if old == MonitorStatus.down.value else _down_upstream(s, m)
            new = MonitorStatus.unreachable.value if blocker else MonitorStatus.down.value
            if blocker:
                m.last_message = f"{outcome.message[:800]} (unreachable: {blocker} is down)"
    if new == old:
        return None
    m.status = new
    m.status_changed_at = at
    if new == MonitorStatus.down.value:
        _emit(s, m, firing=True, now=at, summary=f"{m.name} is down: {outcome.message}")
    elif old == MonitorStatus.down.value:
        _emit(s, m, firing=False, now=at, summary=f"{m.name} is up again: {outcome.message}")
    # unknown -> up (a start or a restart) changes nothing anyone needs to hear about.
    return Transition(m.id, m.name, old, new)


def _depth(s: Session, m: Monitor | None, outcome: CheckOutcome) -> int:
    """How many CIs a failing monitor's CI depends on: in a batch, upstream failures go first, so
    that a database and the application on it failing together page for the database only."""
    if outcome.ok or m is None or m.ci_id is None:
        return 0
    from opsdesk.cmdb import service as cmdb

    return len(cmdb.upstream_cis(s, m.ci_id))


def _down_upstream(s: Session, m: Monitor) -> str | None:
    """The name of a down monitor on a CI that this monitor's CI depends on, if there is one."""
    if m.ci_id is None:
        return None
    from opsdesk.cmdb import service as cmdb

    upstream = cmdb.upstream_cis(s, m.ci_id)
    if not upstream:
        return None
    return s.scalar(
        select(Monitor.name)
        .where(Monitor.ci_id.in_(upstream), Monitor.status == MonitorStatus.down.value, Monitor.id != m.id)
        .order_by(Monitor.id)
        .limit(1)
    )


def _emit(s: Session, m: Monitor, *, firing: bool, now: datetime, summary: str) -> None:
    from opsdesk.alerts import service as alerts

    alerts.store_events(
        s,
        [
            alerts.NormalizedEvent(
                source="monitor",
                fingerprint=f"monitor:{m.id}",
                status="firing" if firing else "resolved",
                severity=m.severity,
                summary=summary,
                service_id=m.service_id,
                labels={"monitor": m.name, "monitor_id": str(m.id), "type": m.type, "target": m.target},
            )
        ],
        now=now,
    )


# --- the watchdog: no silent monitors ------------------------------------------------------------

WATCHDOG_FINGERPRINT = "watchdog:stale-monitors"


def stale_after(m: Monitor) -> timedelta:
    """How long a monitor may go without a result: two intervals plus its timeout."""
    return timedelta(seconds=2 * m.interval_seconds + m.timeout_seconds)


def is_stale(m: Monitor, now: datetime) -> bool:
    since = m.last_check_at or m.status_changed_at or m.updated_at
    return m.enabled and now - since > stale_after(m)


def find_stale(s: Session, now: datetime) -> list[Monitor]:
    """Enabled monitors with no result for longer than ``stale_after``."""
    candidates = s.scalars(select(Monitor).where(Monitor.enabled.is_(True)).order_by(Monitor.id))
    return [m for m in candidates if is_stale(m, now)]


def watch(s: Session, now: datetime, *, probe: str = "local") -> list[str]:
    """Raise one alert naming every stale monitor, and resolve it when none is left.

    A prober that dies or falls behind stops producing results; without this, its monitors would
    simply keep their last state and nobody would know.
    """
    from opsdesk.alerts import service as alerts

    stale = [m.name for m in find_stale(s, now)]
    firing = any(
        a.fingerprint == WATCHDOG_FINGERPRINT for a in alerts.list_alerts(s, status="firing", limit=500)
    )
    if stale:
        shown = ", ".join(stale[:10]) + (f" and {len(stale) - 10} more" if len(stale) > 10 else "")
        summary = f"{len(stale)} monitor(s) have not reported in time (probe {probe}): {shown}"
    if stale and not firing:
        event = alerts.NormalizedEvent(
            source="watchdog",
            status="firing",
            severity="critical",
            summary=summary,
            fingerprint=WATCHDOG_FINGERPRINT,
            labels={"probe": probe},
        )
        alerts.store_events(s, [event], now=now)
    elif not stale and firing:
        event = alerts.NormalizedEvent(
            source="watchdog",
            status="resolved",
            severity="critical",
            summary=f"every monitor reports again (probe {probe})",
            fingerprint=WATCHDOG_FINGERPRINT,
            labels={"probe": probe},
        )
        alerts.store_events(s, [event], now=now)
    return stale


def set_enabled(
    s: Session, monitor_ids: list[int], enabled: bool, *, actor: Actor, now: datetime
) -> list[Monitor]:
    """Pause or resume several monitors at once; unknown ids are an error and change nothing."""
    found = {m.id: m for m in s.scalars(select(Monitor).where(Monitor.id.in_(monitor_ids)))}
    missing = [i for i in monitor_ids if i not in found]
    if missing:
        raise invalid("ids", f"no monitor with id {missing[0]}")
    return [
        update_monitor(s, i, MonitorUpdate(enabled=enabled), actor=actor, now=now)
        for i in dict.fromkeys(monitor_ids)
        if found[i].enabled != enabled
    ]
