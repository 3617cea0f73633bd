from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Self

from pydantic import AfterValidator, Field, model_validator

from opsdesk.alerts.models import Severity
from opsdesk.core.schemas import DbId, In, Name, Out
from opsdesk.monitoring.models import LOCAL

_LOCATION = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")


def _locations(v: list[str]) -> list[str]:
    for loc in v:
        if not _LOCATION.match(loc):
            raise ValueError(f"{loc!r}: a location is 1-63 lowercase letters, digits, '.', '_' or '-'")
    if len(set(v)) != len(v):
        raise ValueError("a location is listed twice")
    return v


PingKey = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{16,64}$")]
Locations = Annotated[list[str], Field(min_length=1, max_length=20), AfterValidator(_locations)]


class MonitorIn(In):
    name: Name
    type: str = "http"
    target: str = Field(
        default="",
        max_length=2000,
        description="What is checked: a URL (http, prometheus), host:port (tcp, tls, snmp), a host "
        "(ping), a name (dns). A heartbeat's target only describes the job.",
    )
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
    locations: Locations = Field(
        default_factory=lambda: [LOCAL],
        description='Where the checks run: "local" (opsdesk itself) and/or remote probe locations.',
    )
    quorum: int = Field(
        default=1, ge=1, le=20, description="How many locations must see it failing before it is down."
    )
    ping_key: PingKey | None = Field(
        default=None, description="Heartbeats: the key of the ping URL (default: a new random one)."
    )

    @model_validator(mode="after")
    def _quorum(self) -> Self:
        if self.quorum > len(self.locations):
            raise ValueError(f"quorum {self.quorum} is more than the {len(self.locations)} location(s)")
        return self


class MonitorUpdate(In):
    name: Name | None = None
    target: str | None = Field(default=None, max_length=2000)
    config: dict[str, Any] | None = None
    interval_seconds: int | None = Field(default=None, ge=1, le=86_400)
    timeout_seconds: float | None = Field(default=None, gt=0, le=300)
    failures_before_down: int | None = Field(default=None, ge=1, le=100)
    service_id: DbId | None = None
    ci_id: DbId | None = None
    severity: Severity | None = None
    enabled: bool | None = None
    locations: Locations | None = None
    quorum: int | None = Field(default=None, ge=1, le=20)
    ping_key: PingKey | None = None


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
    flapping: bool
    locations: list[str]
    quorum: int
    ping_key: str | None = Field(description="Heartbeats: the key in the ping URL.")
    ping_url: str | None = Field(
        default=None, description="Heartbeats: the URL the job calls (add /start, /fail or /<exit status>)."
    )
    last_ping_at: datetime | None
    run_started_at: datetime | None
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
