from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import Field, StringConstraints

from opsdesk.alerts.models import EventStatus, Severity
from opsdesk.core.schemas import In, Out

LabelValue = Annotated[str, StringConstraints(max_length=1000)]


class EventIn(In):
    """One event from any source: the generic events API."""

    source: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)] = "api"
    fingerprint: (
        Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)] | None
    ) = None
    status: EventStatus = EventStatus.firing
    severity: Severity = Severity.error
    summary: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=1000)]
    service: str | None = Field(default=None, max_length=100, description="Name of an existing service.")
    ci: str | None = Field(
        default=None, max_length=200, description="Name of the configuration item (host, device) affected."
    )
    labels: dict[Annotated[str, StringConstraints(max_length=200)], LabelValue] = Field(default_factory=dict)


class EventBatchIn(In):
    events: list[EventIn] = Field(min_length=1, max_length=1000)


class EventAccepted(Out):
    accepted: int
    ids: list[int]


class AlertOut(Out):
    id: int
    fingerprint: str
    source: str
    status: str
    severity: str
    summary: str
    service_id: int | None
    labels: dict[str, Any]
    incident_id: int | None
    first_seen: datetime
    last_seen: datetime
    resolved_at: datetime | None
    event_count: int
    ci_id: int | None = None
    rule: str = "default"
    group_key: str | None = None
    reopened_count: int = 0
    muted: bool = False
    muted_by: dict[str, Any] = Field(default_factory=dict)
