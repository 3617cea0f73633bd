"""Heartbeat pings in, missed deadlines out.

``record_pings`` is the hot path: the ping endpoint hands its pings to the batching writer, which
calls it with every ping queued meanwhile, in one transaction; the answer goes out after the
commit, so an acknowledged ping is never lost. ``find_overdue`` runs in the prober's loop and
turns every missed deadline into a failed result.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from opsdesk.monitoring import service
from opsdesk.monitoring.checks.base import CheckOutcome
from opsdesk.monitoring.checks.heartbeat import HeartbeatConfig, next_deadline
from opsdesk.monitoring.models import Monitor, MonitorStatus

KINDS = ("success", "start", "fail")


def new_key() -> str:
    return secrets.token_urlsafe(16)


@dataclass(frozen=True)
class Ping:
    key: str
    kind: str  # success | start | fail
    at: datetime
    exit_status: int | None = None
    body: str = ""  # the first bytes of what the job sent (its log tail), shown on the monitor


def ping_path(key: str) -> str:
    return f"/ping/{key}"


def _config(m: Monitor) -> HeartbeatConfig:
    return HeartbeatConfig.model_validate(m.config)


@dataclass
class _Beat:
    """The columns of a heartbeat monitor that pings read and move (no ORM object: hot path)."""

    id: int
    enabled: bool
    config: HeartbeatConfig
    interval: int
    run_started_at: datetime | None
    next_check_at: datetime | None
    last_ping_at: datetime | None = None


MONITORS = service.MONITORS
_PINGED = (
    MONITORS.update()
    .where(MONITORS.c.id == bindparam("b_id"))
    .values(
        last_ping_at=bindparam("b_ping"),
        run_started_at=bindparam("b_started"),
        next_check_at=bindparam("b_next"),
    )
)


def record_pings(s: Session, pings: list[Ping]) -> list[bool]:
    """Apply pings in order; returns, per ping, whether its key named a heartbeat monitor."""
    keys = {p.key for p in pings}
    beats: dict[str, _Beat] = {}
    for mid, key, enabled, config, interval, started, next_at in s.execute(
        select(
            Monitor.id,
            Monitor.ping_key,
            Monitor.enabled,
            Monitor.config,
            Monitor.interval_seconds,
            Monitor.run_started_at,
            Monitor.next_check_at,
        ).where(Monitor.ping_key.in_(keys), Monitor.type == "heartbeat")
    ):
        beats[key] = _Beat(mid, enabled, HeartbeatConfig.model_validate(config), interval, started, next_at)
    found = []
    results: list[service.Result] = []
    for p in pings:
        b = beats.get(p.key)
        found.append(b is not None)
        if b is None:
            continue
        b.last_ping_at = p.at
        if not b.enabled:
            continue  # a paused heartbeat still shows its last ping, and changes no state
        note = f": {p.body.strip()[:300]}" if p.body.strip() else ""
        if p.kind == "start":
            b.run_started_at = p.at
            # The run must finish within the grace time; the earlier deadline wins.
            deadline = p.at + _grace(b.config)
            if b.next_check_at is None or deadline < b.next_check_at:
                b.next_check_at = deadline
            continue
        duration_ms = None
        if b.run_started_at is not None and b.run_started_at <= p.at:
            duration_ms = (p.at - b.run_started_at).total_seconds() * 1000
        b.run_started_at = None
        took = f" after {_human(duration_ms)}" if duration_ms is not None else ""
        if p.kind == "success":
            outcome = CheckOutcome(True, f"success ping{took}{note}", latency_ms=duration_ms)
        else:
            status = f" (exit status {p.exit_status})" if p.exit_status is not None else ""
            outcome = CheckOutcome(False, f"job reported failure{status}{took}{note}", latency_ms=duration_ms)
        b.next_check_at = next_deadline(b.config, b.interval, p.at)
        results.append(service.Result(b.id, p.at, outcome))
    touched = [b for b in beats.values() if b.last_ping_at is not None]
    if touched:
        s.execute(
            _PINGED,
            [
                {
                    "b_id": b.id,
                    "b_ping": b.last_ping_at,
                    "b_started": b.run_started_at,
                    "b_next": b.next_check_at,
                }
                for b in touched
            ],
        )
    if results:
        service.record_results(s, results)
    return found


def _grace(cfg: HeartbeatConfig) -> timedelta:
    return timedelta(seconds=cfg.grace_seconds)


def _human(ms: float | None) -> str:
    if ms is None:
        return ""
    sec = ms / 1000
    if sec < 60:
        return f"{sec:.1f} s"
    if sec < 3600:
        return f"{int(sec // 60)} min {int(sec % 60)} s"
    return f"{int(sec // 3600)} h {int(sec % 3600 // 60)} min"


def find_overdue(s: Session, now: datetime) -> list[service.Transition]:
    """Every enabled heartbeat whose deadline passed gets a failed result; its deadline is cleared
    until the next ping (a job that stays silent is down once, not again every second)."""
    overdue = list(
        s.scalars(
            select(Monitor).where(
                Monitor.type == "heartbeat",
                Monitor.enabled.is_(True),
                Monitor.next_check_at.is_not(None),
                Monitor.next_check_at <= now,
            )
        )
    )
    results = []
    for m in overdue:
        if m.run_started_at is not None:
            started = m.run_started_at.strftime("%Y-%m-%d %H:%M:%S UTC")
            why = f"run started at {started} did not finish within its grace time"
        elif m.last_ping_at is not None:
            why = f"no success ping in time (last ping {m.last_ping_at.strftime('%Y-%m-%d %H:%M:%S UTC')})"
        else:
            why = "no ping received"
        m.next_check_at = None
        results.append(service.Result(m.id, now, CheckOutcome(False, why)))
    return service.record_results(s, results)


def reschedule(m: Monitor, now: datetime) -> None:
    """After a resume or a change of period or schedule: the deadline counts from the last ping
    (or from now, for a monitor that was paused), never from before the change."""
    if not m.enabled or m.last_ping_at is None:
        m.next_check_at = None
    else:
        m.next_check_at = next_deadline(_config(m), m.interval_seconds, max(m.last_ping_at, now))


def on_create(m: Monitor) -> None:
    """A new heartbeat gets its key and waits for its first ping: it cannot be late before it has
    ever run (Healthchecks.io does the same), so it stays unknown and has no deadline yet."""
    m.ping_key = m.ping_key or new_key()
    m.next_check_at = None
    if m.enabled:
        m.status = MonitorStatus.unknown.value
