from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import BigInteger, Date, ForeignKey, Index, String, false
from sqlalchemy.orm import Mapped, mapped_column

from opsdesk.core.db import Base, JSONType

LOCAL = "local"  # the location of the probes that run inside opsdesk itself


class MonitorStatus(StrEnum):
    unknown = "unknown"
    up = "up"
    degraded = "degraded"
    down = "down"
    unreachable = "unreachable"  # failing while something it depends on is down: not paged
    paused = "paused"


class Monitor(Base):
    __tablename__ = "monitors"
    __table_args__ = (Index("ix_monitors_due", "enabled", "next_check_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    type: Mapped[str] = mapped_column(String(20))
    target: Mapped[str] = mapped_column(String(2000))
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # Credentials of the check (e.g. an HTTP password), each encrypted with core.crypto.
    secrets: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default="{}")
    interval_seconds: Mapped[int] = mapped_column(default=60)
    timeout_seconds: Mapped[float] = mapped_column(default=10.0)
    failures_before_down: Mapped[int] = mapped_column(default=3)
    service_id: Mapped[int | None] = mapped_column(ForeignKey("services.id", ondelete="RESTRICT"), index=True)
    ci_id: Mapped[int | None] = mapped_column(ForeignKey("cis.id", ondelete="RESTRICT"), index=True)
    severity: Mapped[str] = mapped_column(String(20), default="critical")
    enabled: Mapped[bool] = mapped_column(default=True)

    status: Mapped[str] = mapped_column(String(20), default=MonitorStatus.unknown.value)
    consecutive_failures: Mapped[int] = mapped_column(default=0)
    status_changed_at: Mapped[datetime | None]
    last_check_at: Mapped[datetime | None]
    next_check_at: Mapped[datetime | None]
    last_latency_ms: Mapped[float | None]
    last_message: Mapped[str] = mapped_column(String(1000), default="")
    # Whether this monitor's alert is firing (it paged): the state it last told the alert pipeline.
    alert_firing: Mapped[bool] = mapped_column(default=False, server_default=false())
    # The last conclusive results, oldest first, "1" ok and "0" failed: the flap detector's window.
    recent: Mapped[str] = mapped_column(String(32), default="", server_default="")
    flapping: Mapped[bool] = mapped_column(default=False, server_default=false())
    # Per-check state kept between results, e.g. the keys of the threshold rules now firing.
    check_state: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default="{}")
    # Where the checks run ("local" is opsdesk itself; others are remote probes) and how many of
    # those locations must see it failing before it is down.
    locations: Mapped[list[str]] = mapped_column(
        JSONType, default=lambda: [LOCAL], server_default='["local"]'
    )
    quorum: Mapped[int] = mapped_column(default=1, server_default="1")
    # Heartbeat monitors: the secret part of their ping URL, and when the job last called in.
    ping_key: Mapped[str | None] = mapped_column(String(64), unique=True)
    last_ping_at: Mapped[datetime | None]
    run_started_at: Mapped[datetime | None]

    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    @property
    def secrets_set(self) -> list[str]:
        """Names of the secrets that are set, never their values."""
        return sorted(self.secrets)


class CheckResult(Base):
    __tablename__ = "check_results"
    __table_args__ = (Index("ix_check_results_monitor_at", "monitor_id", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    monitor_id: Mapped[int] = mapped_column(ForeignKey("monitors.id", ondelete="CASCADE"))
    at: Mapped[datetime]
    ok: Mapped[bool]
    latency_ms: Mapped[float | None]
    status_code: Mapped[int | None]
    message: Mapped[str] = mapped_column(String(1000), default="")


class StateChange(Base):
    """The state history of a monitor: every change of status, with the result that caused it."""

    __tablename__ = "monitor_state_changes"
    __table_args__ = (Index("ix_monitor_state_changes_monitor_at", "monitor_id", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    monitor_id: Mapped[int] = mapped_column(ForeignKey("monitors.id", ondelete="CASCADE"))
    at: Mapped[datetime]
    old: Mapped[str] = mapped_column(String(20))
    new: Mapped[str] = mapped_column(String(20))
    flapping: Mapped[bool] = mapped_column(default=False)
    message: Mapped[str] = mapped_column(String(1000), default="")


class DailyStats(Base):
    """Results per monitor and UTC day: the 90-day uptime bar and long ranges read these."""

    __tablename__ = "monitor_daily"

    monitor_id: Mapped[int] = mapped_column(ForeignKey("monitors.id", ondelete="CASCADE"), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    checks: Mapped[int] = mapped_column(default=0)
    failures: Mapped[int] = mapped_column(default=0)
    latency_sum_ms: Mapped[float] = mapped_column(default=0.0)
    latency_count: Mapped[int] = mapped_column(default=0)


class LocationState(Base):
    """The state of one monitor as seen from one location, for monitors checked from several."""

    __tablename__ = "monitor_locations"

    monitor_id: Mapped[int] = mapped_column(ForeignKey("monitors.id", ondelete="CASCADE"), primary_key=True)
    location: Mapped[str] = mapped_column(String(100), primary_key=True)
    ok: Mapped[bool | None]
    consecutive_failures: Mapped[int] = mapped_column(default=0)
    last_check_at: Mapped[datetime | None]
    last_message: Mapped[str] = mapped_column(String(1000), default="")


class Probe(Base):
    """A remote probe: runs the monitors of its location from another network."""

    __tablename__ = "probes"

    id: Mapped[int] = mapped_column(primary_key=True)
    location: Mapped[str] = mapped_column(String(100), unique=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    last_seen_at: Mapped[datetime | None]
    last_address: Mapped[str] = mapped_column(String(100), default="")
    version: Mapped[str] = mapped_column(String(50), default="")
    # The highest result sequence number taken from this probe: a replay after a lost answer is
    # recognised and skipped, so every result counts once.
    last_seq: Mapped[int] = mapped_column(BigInteger, default=0)
