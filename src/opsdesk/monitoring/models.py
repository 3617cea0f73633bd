from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from opsdesk.core.db import Base


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
