from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from opsdesk.alerts.models import Severity
from opsdesk.core.schemas import DbId, In, Name, Out


class MonitorIn(In):
    name: Name
    type: str = "http"
    target: str = Field(min_length=1, max_length=2000, description="For http: the URL to request.")
    config: dict[str, Any] = Field(
        default_factory=dict, description="Type-specific settings, e.g. expected_status."
    )
    interval_seconds: int = Field(default=60, ge=1, le=86_400)
    timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    failures_before_down: int = Field(default=3, ge=1, le=100)
    service_id: DbId | None = None
    ci_id: DbId | None = None
    severity: Severity = Severity.critical
    enabled: bool = True


class MonitorUpdate(In):
    name: Name | None = None
    target: str | None = Field(default=None, min_length=1, max_length=2000)
    config: dict[str, Any] | None = None
    interval_seconds: int | None = Field(default=None, ge=1, le=86_400)
    timeout_seconds: float | None = Field(default=None, gt=0, le=300)
    failures_before_down: int | None = Field(default=None, ge=1, le=100)
    service_id: DbId | None = None
    ci_id: DbId | None = None
    severity: Severity | None = None
    enabled: bool | None = None


class MonitorOut(Out):
    id: int
    name: str
    type: str
    target: str
    config: dict[str, Any]
    secrets_set: list[str] = Field(
        description="Secret config fields that are set; their values are never returned."
    )
    interval_seconds: int
    timeout_seconds: float
    failures_before_down: int
    service_id: int | None
    ci_id: int | None
    severity: str
    enabled: bool
    status: str
    consecutive_failures: int
    status_changed_at: datetime | None
    last_check_at: datetime | None
    next_check_at: datetime | None
    last_latency_ms: float | None
    last_message: str
    created_at: datetime
    updated_at: datetime


class CheckResultOut(Out):
    id: int
    monitor_id: int
    at: datetime
    ok: bool
    latency_ms: float | None
    status_code: int | None
    message: str
