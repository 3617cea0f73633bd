"""Monitors: their configuration, the schedule of their checks, and the state their results give."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, NamedTuple, cast

from pydantic import ValidationError
from sqlalchemy import Table, bindparam, delete, func, insert, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from opsdesk.audit import service as audit
from opsdesk.core import crypto
from opsdesk.core.actor import Actor
from opsdesk.core.errors import FieldError, OpsdeskError, conflict, invalid, not_found
from opsdesk.monitoring.checks import CheckOutcome, CheckType, get_check_type
from opsdesk.monitoring.checks.base import Finding
from opsdesk.monitoring.models import (
    LOCAL,
    CheckResult,
    DailyStats,
    LocationState,
    Monitor,
    MonitorStatus,
    StateChange,
)
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
    "locations",
    "quorum",
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


@dataclass
class MonitorPage:
    items: list[Monitor]
    total: int  # matching the filters
    counts: dict[str, int]  # per status, over all monitors matching the filters but the status


SORTS = {
    "name": (Monitor.name,),
    "status": (Monitor.status, Monitor.name),
    "last_check": (Monitor.last_check_at.desc(), Monitor.name),
    "latency": (Monitor.last_latency_ms.desc(), Monitor.name),
}


def list_page(
    s: Session,
    *,
    status: str | None = None,
    q: str | None = None,
    type_name: str | None = None,
    service_id: int | None = None,
    sort: str = "name",
    offset: int = 0,
    limit: int = 50,
) -> MonitorPage:
    """One page of monitors for the list page, filtered and sorted in the database, with the
    count per status for the tabs: three queries, whatever the number of monitors."""
    base = select(Monitor)
    if q:
        like = f"%{q.strip().lower()}%"
        base = base.where(func.lower(Monitor.name).like(like) | func.lower(Monitor.target).like(like))
    if type_name:
        base = base.where(Monitor.type == type_name)
    if service_id is not None:
        base = base.where(Monitor.service_id == service_id)
    counted = base.with_only_columns(Monitor.status, func.count()).group_by(Monitor.status)
    counts: dict[str, int] = {st: n for st, n in s.execute(counted).all()}
    if status:
        base = base.where(Monitor.status == status)
    total = counts.get(status, 0) if status else sum(counts.values())
    items = list(
        s.scalars(base.order_by(*SORTS.get(sort, SORTS["name"]), Monitor.id).offset(offset).limit(limit))
    )
    return MonitorPage(items, total, counts)


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
    if not check.passive and not target.strip():
        raise invalid("target", f"a {type_name} monitor needs a target")
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


def _check_ping_key(s: Session, type_name: str, key: str | None, monitor_id: int | None) -> None:
    if key is None:
        return
    if not check_type(type_name).passive:
        raise invalid("ping_key", "only heartbeat monitors have a ping key")
    other = s.scalar(select(Monitor.id).where(Monitor.ping_key == key))
    if other is not None and other != monitor_id:
        raise conflict("another monitor already uses this ping key")


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
    _check_ping_key(s, data.type, data.ping_key, None)
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
    if check_type(data.type).passive:
        from opsdesk.monitoring import heartbeat

        heartbeat.on_create(m)
    s.add(m)
    s.flush()
    if not check_type(m.type).passive:
        m.next_check_at = now if data.enabled and LOCAL in m.locations else None
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
        "locations",
        "quorum",
    ):
        if required in changes and changes[required] is None:
            raise invalid(required, "must not be null")
    if changes.get("ping_key") is not None:
        _check_ping_key(s, m.type, changes["ping_key"], m.id)
    elif "ping_key" in changes:
        del changes["ping_key"]  # null: keep the key
    if "name" in changes and changes["name"] != m.name and get_monitor_by_name(s, changes["name"]):
        raise conflict(f"a monitor named {changes['name']!r} already exists")
    if "target" in changes or "config" in changes:
        changes["target"], changes["config"], changes["secrets"] = validate_definition(
            m.type, changes.get("target", m.target), changes.get("config", m.config), m.secrets
        )
    _check_refs(s, changes.get("service_id"), changes.get("ci_id"))
    quorum, locations = changes.get("quorum", m.quorum), changes.get("locations", m.locations)
    if quorum > len(locations):
        raise invalid("quorum", f"quorum {quorum} is more than the {len(locations)} location(s)")
    if "severity" in changes:
        changes["severity"] = changes["severity"].value
    was_enabled = m.enabled
    for k, v in changes.items():
        setattr(m, k, v)
    if was_enabled and not m.enabled:
        s.add(StateChange(monitor_id=m.id, at=now, old=m.status, new=MonitorStatus.paused.value, message=""))
        m.status = MonitorStatus.paused.value
        m.next_check_at = None
        m.status_changed_at = now
        m.flapping = False
        _sync_alert(s, m, now)  # paused: suppress paging, and resolve what was firing
        resolve_findings(s, m, now)
    elif not was_enabled and m.enabled:
        s.add(StateChange(monitor_id=m.id, at=now, old=m.status, new=MonitorStatus.unknown.value, message=""))
        m.status = MonitorStatus.unknown.value
        m.recent = ""
        m.consecutive_failures = 0
        m.next_check_at = now
        m.status_changed_at = now
    elif m.enabled and {"interval_seconds", "target", "config", "locations"} & changes.keys():
        m.next_check_at = now
    if m.next_check_at is not None and LOCAL not in m.locations:
        m.next_check_at = None  # only remote probes run it
    if check_type(m.type).passive:
        from opsdesk.monitoring import heartbeat

        if not was_enabled or {"interval_seconds", "config"} & changes.keys():
            heartbeat.reschedule(m, now)
    # Strictly later than before, even within one clock tick: probers cache a monitor's definition
    # until its updated_at changes.
    m.updated_at = max(now, m.updated_at + timedelta(microseconds=1))
    audit.updated(s, "monitor", m.id, before, audit.snapshot(m, FIELDS), actor=actor, at=now)
    return m


def delete_monitor(s: Session, monitor_id: int, *, actor: Actor, now: datetime) -> None:
    m = get_monitor(s, monitor_id)
    if m.alert_firing:
        # Its alert would otherwise fire forever with nothing left to resolve it.
        _emit(s, m, firing=False, now=now, summary=f"{m.name}: monitor deleted")
    resolve_findings(s, m, now)
    audit.deleted(s, "monitor", m.id, audit.snapshot(m, FIELDS), actor=actor, at=now)
    s.delete(m)


def delete_results_before(s: Session, cutoff: datetime, batch: int = 20_000) -> int:
    """Delete raw results older than ``cutoff``, at most ``batch`` rows (the next round takes the
    rest), so that a first cleanup of a large table never holds a long lock."""
    ids = select(CheckResult.id).where(CheckResult.at < cutoff).order_by(CheckResult.id).limit(batch)
    result = s.execute(delete(CheckResult).where(CheckResult.id.in_(ids.scalar_subquery())))
    return int(getattr(result, "rowcount", 0) or 0)


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
    name: str
    type: str
    target: str
    config: dict[str, Any]
    timeout_seconds: float
    due_at: datetime | None = None
    error: str | None = None  # set when the check cannot run as configured (e.g. unreadable secrets)


@dataclass(frozen=True)
class _Definition:
    name: str
    type: str
    target: str
    config: dict[str, Any]
    timeout_seconds: float
    error: str | None


# A prober's cache of decrypted monitor definitions, keyed by id and valid while updated_at holds.
DefinitionCache = dict[int, tuple[datetime, _Definition]]

MONITORS = cast(Table, Monitor.__table__)
_NEXT = MONITORS.update().where(MONITORS.c.id == bindparam("b_id")).values(next_check_at=bindparam("b_next"))


def spread(monitor_id: int, interval: int) -> float:
    """A stable offset in [0, interval) seconds for a monitor: its phase within the interval."""
    return ((monitor_id * 2654435761) % 2**32) / 2**32 * interval


def next_run(
    monitor_id: int, interval: int, due_at: datetime | None, now: datetime, *, first: bool = False
) -> datetime:
    """When the check after this one runs. It keeps its phase (due + interval) while the prober
    keeps up; after a first run, a restart or an outage of the prober, it takes its own spread
    phase, so ten thousand monitors never fall due in the same second again."""
    step = timedelta(seconds=interval)
    if due_at is not None and due_at + step > now and not first:
        return due_at + step
    return now + timedelta(seconds=max(1.0, spread(monitor_id, interval)))


def claim_due(
    s: Session, now: datetime, limit: int = 1000, cache: DefinitionCache | None = None
) -> list[DueCheck]:
    """Take the monitors whose next check is due and move their next check one interval on.

    On PostgreSQL the rows are locked with SKIP LOCKED, so several probers share the work. Plain
    column reads and one executemany UPDATE: no ORM objects on the prober's hottest query; the
    definitions (with decrypted secrets) are cached per monitor until the monitor changes.
    """
    cache = {} if cache is None else cache
    q = (
        select(
            Monitor.id,
            Monitor.updated_at,
            Monitor.next_check_at,
            Monitor.interval_seconds,
            Monitor.last_check_at.is_(None),
        )
        .where(Monitor.enabled.is_(True), Monitor.next_check_at <= now, Monitor.type.not_in(passive_types()))
        .order_by(Monitor.next_check_at)
        .limit(limit)
    )
    if s.get_bind().dialect.name == "postgresql":
        q = q.with_for_update(skip_locked=True)
    rows = s.execute(q).all()
    if not rows:
        return []
    stale = [mid for mid, updated, *_ in rows if (hit := cache.get(mid)) is None or hit[0] != updated]
    for chunk_start in range(0, len(stale), 500):
        chunk = stale[chunk_start : chunk_start + 500]
        for mid, updated, name, type_, target, config, secrets, timeout in s.execute(
            select(
                Monitor.id,
                Monitor.updated_at,
                Monitor.name,
                Monitor.type,
                Monitor.target,
                Monitor.config,
                Monitor.secrets,
                Monitor.timeout_seconds,
            ).where(Monitor.id.in_(chunk))
        ):
            full, error = dict(config), None
            try:
                full.update({k: crypto.decrypt(v) for k, v in secrets.items()})
            except crypto.SecretUnreadable as exc:
                error = str(exc)
            cache[mid] = (updated, _Definition(name, type_, target, full, timeout, error))
    due = []
    moves = []
    for mid, _, due_at, interval, first in rows:
        d = cache[mid][1]
        moves.append({"b_id": mid, "b_next": next_run(mid, interval, due_at, now, first=first)})
        due.append(DueCheck(mid, d.name, d.type, d.target, d.config, d.timeout_seconds, due_at, d.error))
    s.execute(_NEXT, moves)
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


class Result(NamedTuple):
    monitor_id: int
    at: datetime
    outcome: CheckOutcome
    location: str = LOCAL


# Flap detection (as Nagios does it): the share of state changes among the last FLAP_WINDOW
# conclusive results, newer changes weighing more. Flapping starts at FLAP_START % and, for
# hysteresis, ends only below FLAP_STOP %.
FLAP_WINDOW = 21
FLAP_START = 50.0
FLAP_STOP = 25.0


FLAP_MIN_RESULTS = 7  # fewer results than this never count as flapping


def flap_percent(recent: str) -> float:
    """Weighted percentage of state changes in a window of results ("1" ok, "0" failed).

    Each change weighs from 0.8 (the oldest) to 1.2 (the newest), so a monitor that settles down
    leaves the flapping state sooner than one that has just started to change.
    """
    n = len(recent)
    if n < 2:
        return 0.0
    total = weights = 0.0
    for i in range(1, n):
        w = 0.8 + 0.4 * (i - 1) / max(1, n - 2)
        weights += w
        if recent[i] != recent[i - 1]:
            total += w
    return 100.0 * total / weights


def record_results(
    s: Session,
    results: list[Result] | list[tuple[int, datetime, CheckOutcome]],
    loaded: dict[int, Monitor] | None = None,
) -> list[Transition]:
    """Store a batch of check results, move monitor states, and emit events for what must page.

    One batch costs one multi-row INSERT of the results and one upsert of the daily statistics.
    Results that change nothing but the last-check columns (a monitor that was up and is up:
    nearly all of them) are applied with one executemany UPDATE from a plain column read; only
    the others load ORM objects and go through the state machine.
    """
    if not results:
        return []
    batch = [r if isinstance(r, Result) else Result(*r) for r in results]
    rows = []
    daily: dict[tuple[int, date], list[float]] = {}
    for r in batch:
        outcome = r.outcome
        rows.append(
            {
                "monitor_id": r.monitor_id,
                "at": r.at,
                "ok": outcome.ok,
                "latency_ms": outcome.latency_ms,
                "status_code": outcome.status_code,
                "message": outcome.message[:1000],
            }
        )
        if outcome.conclusive:
            d = daily.setdefault((r.monitor_id, r.at.date()), [0, 0, 0.0, 0])
            d[0] += 1
            d[1] += 0 if outcome.ok else 1
            if outcome.latency_ms is not None:
                d[2] += outcome.latency_ms
                d[3] += 1
    ids = {r.monitor_id for r in batch}
    if loaded is not None and ids <= loaded.keys():
        slow, existing = batch, set(loaded)
    else:
        slow, existing = _apply_steady(s, batch)
        loaded = None
    rows = [row for row in rows if row["monitor_id"] in existing]  # deleted while their check ran
    transitions = []
    if slow:
        if loaded is None:
            with s.no_autoflush:
                slow_ids = {r.monitor_id for r in slow}
                loaded = {m.id: m for m in s.scalars(select(Monitor).where(Monitor.id.in_(slow_ids)))}
        monitors = loaded
        for r in sorted(slow, key=lambda r: (r.at, _depth(s, monitors.get(r.monitor_id), r.outcome))):
            m = monitors.get(r.monitor_id)
            if m is None or not m.enabled:
                continue
            t = _apply(s, m, r)
            if t is not None:
                transitions.append(t)
            if r.outcome.findings is not None:
                _apply_findings(s, m, r.outcome.findings, r.at, set(r.outcome.unevaluated))
    if rows:
        s.execute(insert(RESULTS), rows)  # core: no ORM bulk machinery per row
    daily = {k: v for k, v in daily.items() if k[0] in existing}
    if daily:
        _upsert_daily(s, daily)
    return transitions


_STEADY = (
    MONITORS.update()
    .where(MONITORS.c.id == bindparam("b_id"))
    .values(
        last_check_at=bindparam("b_at"),
        last_latency_ms=bindparam("b_latency"),
        last_message=bindparam("b_message"),
        recent=bindparam("b_recent"),
    )
)


def _apply_steady(s: Session, batch: list[Result]) -> tuple[list[Result], set[int]]:
    """Apply the results that leave a monitor's state as it is; return the others, and the ids of
    the monitors that exist."""
    ids = {r.monitor_id for r in batch}
    state = {
        row[0]: row
        for row in s.execute(
            select(
                Monitor.id,
                Monitor.enabled,
                Monitor.status,
                Monitor.consecutive_failures,
                Monitor.flapping,
                Monitor.alert_firing,
                Monitor.recent,
                Monitor.locations,
            ).where(Monitor.id.in_(ids))
        )
    }
    once = Counter(r.monitor_id for r in batch)
    slow: list[Result] = []
    updates = []
    for r in batch:
        row = state.get(r.monitor_id)
        if row is None:
            continue
        _, enabled, status, failures, flapping, firing, recent, locations = row
        o = r.outcome
        expected = MonitorStatus.degraded.value if o.degraded else MonitorStatus.up.value
        steady = (
            once[r.monitor_id] == 1
            and enabled
            and o.ok
            and o.conclusive
            and o.findings is None
            and r.location == LOCAL
            and locations == [LOCAL]
            and status == expected
            and failures == 0
            and not flapping
            and not firing
            and recent.endswith("1")  # another success cannot start flapping
        )
        if not steady:
            slow.append(r)
            continue
        updates.append(
            {
                "b_id": r.monitor_id,
                "b_at": r.at,
                "b_latency": o.latency_ms,
                "b_message": o.message[:1000],
                "b_recent": (recent + "1")[-FLAP_WINDOW:],
            }
        )
    if updates:
        s.execute(_STEADY, updates)
    return slow, set(state)


RESULTS = cast(Table, CheckResult.__table__)
DAILY = cast(Table, DailyStats.__table__)


def _upsert_daily(s: Session, daily: dict[tuple[int, date], list[float]]) -> None:
    dialect = s.get_bind().dialect.name
    table = DAILY
    ins = pg_insert(table) if dialect == "postgresql" else sqlite_insert(table)
    stmt = ins.on_conflict_do_update(
        index_elements=[table.c.monitor_id, table.c.day],
        set_={
            "checks": table.c.checks + ins.excluded.checks,
            "failures": table.c.failures + ins.excluded.failures,
            "latency_sum_ms": table.c.latency_sum_ms + ins.excluded.latency_sum_ms,
            "latency_count": table.c.latency_count + ins.excluded.latency_count,
        },
    )
    s.execute(
        stmt,
        [
            {
                "monitor_id": mid,
                "day": day,
                "checks": int(v[0]),
                "failures": int(v[1]),
                "latency_sum_ms": v[2],
                "latency_count": int(v[3]),
            }
            for (mid, day), v in sorted(daily.items())
        ],
    )


def check_type(name: str) -> CheckType:
    check = get_check_type(name)
    if check is None:
        raise invalid("type", f"unknown monitor type {name!r}")
    return check


def _threshold(m: Monitor) -> int:
    """Failures in a row before down; a heartbeat's failure (a missed deadline, a failed run) is
    already a hard fact."""
    check = get_check_type(m.type)
    return 1 if check is not None and check.passive else m.failures_before_down


def _location_verdict(s: Session, m: Monitor, r: Result) -> tuple[bool | None, str]:
    """For a monitor checked from several locations: record this location's result and decide.

    Returns (failing, message): failing is None while no location can judge, True when at least
    ``quorum`` locations have each failed ``failures_before_down`` times in a row.
    """
    states = {
        ls.location: ls for ls in s.scalars(select(LocationState).where(LocationState.monitor_id == m.id))
    }
    ls = states.get(r.location)
    if ls is None:
        ls = LocationState(monitor_id=m.id, location=r.location, consecutive_failures=0, last_message="")
        s.add(ls)
        states[r.location] = ls
    ls.last_check_at = r.at
    ls.last_message = r.outcome.message[:1000]
    if not r.outcome.conclusive:
        ls.ok = None
    elif r.outcome.ok:
        ls.ok = True
        ls.consecutive_failures = 0
    else:
        ls.ok = False
        ls.consecutive_failures += 1
    judged = [x for loc, x in states.items() if loc in m.locations and x.ok is not None]
    if not judged:
        return None, r.outcome.message
    down = sorted(x.location for x in judged if x.consecutive_failures >= _threshold(m))
    failing = sorted(x.location for x in judged if x.ok is False)
    m.consecutive_failures = max((x.consecutive_failures for x in judged), default=0)
    quorum = min(m.quorum, len(m.locations))
    if len(down) >= quorum:
        return True, f"down from {len(down)} of {len(m.locations)} locations ({', '.join(down)}): " + (
            r.outcome.message
        )
    if failing:
        return False, f"failing from {', '.join(failing)} only (quorum {quorum}): {r.outcome.message}"
    return False, r.outcome.message


def _apply(s: Session, m: Monitor, r: Result) -> Transition | None:
    outcome, at = r.outcome, r.at
    if r.location not in m.locations:
        return None  # a probe that still runs a monitor moved away from its location
    m.last_check_at = at
    m.last_latency_ms = outcome.latency_ms
    m.last_message = outcome.message[:1000]
    old = m.status
    multi = len(m.locations) > 1 or m.locations != [LOCAL]
    if multi:
        verdict, message = _location_verdict(s, m, r)
        m.last_message = message[:1000]
        if verdict is None:
            new = MonitorStatus.unknown.value
        elif verdict:
            new = MonitorStatus.down.value
        else:
            partial = message.startswith("failing from")
            new = MonitorStatus.degraded.value if outcome.degraded or partial else MonitorStatus.up.value
        failed_now = verdict
    elif not outcome.conclusive:
        new = MonitorStatus.unknown.value
        failed_now = None
    elif outcome.ok:
        m.consecutive_failures = 0
        new = MonitorStatus.degraded.value if outcome.degraded else MonitorStatus.up.value
        failed_now = False
    else:
        m.consecutive_failures += 1
        failed_now = True
        # Retries before a hard down: until then the monitor keeps its state.
        new = MonitorStatus.down.value if m.consecutive_failures >= _threshold(m) else old
    if new == MonitorStatus.down.value:
        # One outage, one page: a monitor whose upstream CI is down is unreachable, not down.
        # Once paged it stays down; once the upstream recovers, the next failure pages.
        blocker = None if m.alert_firing or old == MonitorStatus.down.value else _down_upstream(s, m)
        if blocker:
            new = MonitorStatus.unreachable.value
            m.last_message = f"{m.last_message[:800]} (unreachable: {blocker} is down)"
    if failed_now is not None:
        m.recent = (m.recent + ("0" if failed_now else "1"))[-FLAP_WINDOW:]
        pct = flap_percent(m.recent)
        if not m.flapping and len(m.recent) >= FLAP_MIN_RESULTS and pct >= FLAP_START:
            m.flapping = True
        elif m.flapping and pct < FLAP_STOP:
            m.flapping = False
    transition = None
    if new != old:
        m.status = new
        m.status_changed_at = at
        s.add(
            StateChange(monitor_id=m.id, at=at, old=old, new=new, flapping=m.flapping, message=m.last_message)
        )
        transition = Transition(m.id, m.name, old, new)
    _sync_alert(s, m, at)
    return transition


def _wants_alert(m: Monitor) -> bool:
    """Whether the monitor's alert should be firing: down or flapping pages; unknown and
    unreachable keep whatever was already said (they neither page nor resolve)."""
    if not m.enabled or m.status == MonitorStatus.paused.value:
        return False
    if m.flapping:
        return True
    if m.status == MonitorStatus.down.value:
        return True
    if m.status in (MonitorStatus.up.value, MonitorStatus.degraded.value):
        return False
    return m.alert_firing


def _sync_alert(s: Session, m: Monitor, at: datetime) -> None:
    want = _wants_alert(m)
    if want == m.alert_firing:
        return
    m.alert_firing = want
    if want and m.flapping:
        pct = flap_percent(m.recent)
        summary = f"{m.name} is flapping: {pct:.0f}% state changes in its last {len(m.recent)} checks"
    elif want:
        summary = f"{m.name} is down: {m.last_message}"
    elif m.status == MonitorStatus.paused.value:
        summary = f"{m.name}: monitor paused"
    else:
        summary = f"{m.name} is up again: {m.last_message}"
    _emit(s, m, firing=want, now=at, summary=summary)


def _apply_findings(
    s: Session, m: Monitor, findings: list[Finding], at: datetime, unevaluated: set[str] | None = None
) -> None:
    """Raise an alert for each rule that starts holding and resolve those that stopped; the
    findings of rules that could not be evaluated stay as they were."""
    firing: dict[str, str] = dict((m.check_state or {}).get("firing", {}))
    now_keys = {f.key: f for f in findings}
    for key in firing:
        if unevaluated and key.split("{", 1)[0] in unevaluated:
            now_keys.setdefault(key, Finding(key, "", firing[key]))
    events = []
    for key, f in now_keys.items():
        if key not in firing:
            events.append(_finding_event(m, key, "firing", f.severity, f.summary, f.labels))
            firing[key] = f.severity
    for key in [k for k in firing if k not in now_keys]:
        summary = f"{m.name}: {key} no longer holds"
        events.append(_finding_event(m, key, "resolved", firing.pop(key), summary, {}))
    if events:
        from opsdesk.alerts import service as alerts

        alerts.store_events(s, events, now=at)
        m.check_state = {**(m.check_state or {}), "firing": firing}


def _finding_event(
    m: Monitor, key: str, status: str, severity: str, summary: str, labels: dict[str, str]
) -> Any:
    from opsdesk.alerts import service as alerts

    return alerts.NormalizedEvent(
        source="monitor",
        fingerprint=f"monitor:{m.id}:rule:{key}",
        status=status,
        severity=severity,
        summary=summary,
        service_id=m.service_id,
        labels={**labels, "monitor": m.name, "monitor_id": str(m.id), "rule": key},
    )


def resolve_findings(s: Session, m: Monitor, at: datetime) -> None:
    """Resolve every rule alert of a monitor (it was paused or deleted)."""
    if (m.check_state or {}).get("firing"):
        _apply_findings(s, m, [], at)


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


def passive_types() -> list[str]:
    from opsdesk.monitoring.checks import REGISTRY

    return sorted(name for name, c in REGISTRY.items() if c.passive)


def find_stale(s: Session, now: datetime) -> list[Monitor]:
    """Enabled active monitors with no result from their local prober for longer than
    ``stale_after``. Passive monitors (heartbeats) are not probed: their deadline is their watchdog."""
    return [m for m, loc in find_stale_by_location(s, now) if loc == LOCAL]


def find_stale_by_location(s: Session, now: datetime) -> list[tuple[Monitor, str]]:
    """(monitor, location) pairs whose last result from that location is too old."""
    candidates = list(
        s.scalars(
            select(Monitor)
            .where(Monitor.enabled.is_(True), Monitor.type.not_in(passive_types()))
            .order_by(Monitor.id)
        )
    )
    multi = [m.id for m in candidates if m.locations != [LOCAL]]
    seen: dict[tuple[int, str], datetime | None] = {}
    if multi:
        for ls in s.scalars(select(LocationState).where(LocationState.monitor_id.in_(multi))):
            seen[(ls.monitor_id, ls.location)] = ls.last_check_at
    out = []
    for m in candidates:
        if m.locations == [LOCAL]:
            if is_stale(m, now):
                out.append((m, LOCAL))
            continue
        for loc in m.locations:
            since = seen.get((m.id, loc)) or m.status_changed_at or m.updated_at
            if now - since > stale_after(m):
                out.append((m, loc))
    return out


def watch(s: Session, now: datetime) -> list[str]:
    """Per location, raise one alert naming every monitor that location stopped reporting, and
    resolve it when none is left. Returns the stale monitors' names.

    A prober that dies, falls behind or loses its way to the server stops producing results;
    without this, its monitors would simply keep their last state and nobody would know.
    """
    from opsdesk.alerts import service as alerts

    by_location: dict[str, list[str]] = {}
    for m, loc in find_stale_by_location(s, now):
        by_location.setdefault(loc, []).append(m.name)
    firing = {
        a.fingerprint
        for a in alerts.list_alerts(s, status="firing", limit=1000)
        if a.fingerprint.startswith(WATCHDOG_FINGERPRINT)
    }
    locations = set(by_location) | {_watchdog_location(f) for f in firing}
    events = []
    for loc in sorted(locations):
        fingerprint = WATCHDOG_FINGERPRINT if loc == LOCAL else f"{WATCHDOG_FINGERPRINT}:{loc}"
        stale = by_location.get(loc, [])
        where = "the local prober" if loc == LOCAL else f"probe {loc}"
        if stale and fingerprint not in firing:
            shown = ", ".join(stale[:10]) + (f" and {len(stale) - 10} more" if len(stale) > 10 else "")
            summary = f"{len(stale)} monitor(s) have not reported in time from {where}: {shown}"
            status = "firing"
        elif not stale and fingerprint in firing:
            summary, status = f"every monitor reports again from {where}", "resolved"
        else:
            continue
        events.append(
            alerts.NormalizedEvent(
                source="watchdog",
                status=status,
                severity="critical",
                summary=summary,
                fingerprint=fingerprint,
                labels={"probe": loc},
            )
        )
    if events:
        alerts.store_events(s, events, now=now)
    return sorted({name for names in by_location.values() for name in names})


def _watchdog_location(fingerprint: str) -> str:
    return fingerprint.removeprefix(WATCHDOG_FINGERPRINT).removeprefix(":") or LOCAL


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
