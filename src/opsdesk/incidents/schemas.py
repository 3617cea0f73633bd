from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from opsdesk.core.schemas import In, Out


class IncidentOut(Out):
    id: int
    key: str
    title: str
    status: str
    severity: str
    service_id: int | None
    opened_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by_id: int | None
    resolved_at: datetime | None
    resolved_by_id: int | None
    updated_at: datetime


class TimelineOut(Out):
    id: int
    at: datetime
    kind: str
    actor: str
    message: str
    data: dict[str, Any]


class IncidentDetail(IncidentOut):
    timeline: list[TimelineOut]
    alert_ids: list[int]


class IncidentAction(In):
    note: str = Field(default="", max_length=2000)
