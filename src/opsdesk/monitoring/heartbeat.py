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

from sqlalchemy import select
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


def record_pings(s: Session, pings: list[Ping]) -> list[bool]:
    """Apply pings in order; returns, per ping, whether its key named a heartbeat monitor."""
    keys = {p.key for p in pings}
    monitors = {
        m.ping_key: m
        for m in s.scalars(select(Monitor).where(Monitor.ping_key.in_(keys), Monitor.type == "heartbeat"))
    }
    found = []
    results: list[service.Result] = []
    for p in pings:
        m = monitors.get(p.key)
        found.append(m is not None)
        if m is None:
            continue
        m.last_ping_at = p.at
        if not m.enabled:
            continue  # a paused heartbeat still shows its last ping, and changes no state
        cfg = _config(m)
        note = f": {p.body.strip()[:300]}" if p.body.strip() else ""
        if p.kind == "start":
            m.run_started_at = p.at
            # The run must finish within the grace time; the earlier deadline wins.
            deadline = p.at + _grace(cfg)
            if m.next_check_at is None or deadline < m.next_check_at:
                m.next_check_at = deadline
            continue
        duration_ms = None
        if m.run_started_at is not None and m.run_started_at <= p.at:
            duration_ms = (p.at - m.run_started_at).total_seconds() * 1000
        m.run_started_at = None
        took = f" after {_human(duration_ms)}" if duration_ms is not None else ""
        if p.kind == "success":
            outcome = CheckOutcome(True, f"success ping{took}{note}", latency_ms=duration_ms)
            m.next_check_at = next_deadline(cfg, m.interval_seconds, p.at)
        else:
            status = f" (exit status {p.exit_status})" if p.exit_status is not None else ""
            outcome = CheckOutcome(False, f"job reported failure{status}{took}{note}", latency_ms=duration_ms)
            m.next_check_at = next_deadline(cfg, m.interval_seconds, p.at)
        results.append(service.Result(m.id, p.at, outcome))
    if results:
        service.record_results(s, results, {m.id: m for m in monitors.values()})
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
