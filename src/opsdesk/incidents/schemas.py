from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints

from opsdesk.alerts.models import Severity
from opsdesk.core.schemas import DbId, In, Out
from opsdesk.incidents.models import UpdateStatus

Level = Literal["high", "medium", "low"]
Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]
LongText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=10_000)]


class IncidentOut(Out):
    id: int
    key: str
    title: str
    status: str
    severity: str
    priority: str
    impact: str
    urgency: str
    service_id: int | None
    ci_id: int | None
    team_id: int | None
    assignee_id: int | None
    commander_id: int | None
    comms_lead_id: int | None
    tags: list[str]
    opened_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by_id: int | None
    resolved_at: datetime | None
    resolved_by_id: int | None
    closed_at: datetime | None
    reopened_count: int
    merged_into_id: int | None
    updated_at: datetime


class TimelineOut(Out):
    id: int
    at: datetime
    kind: str
    actor: str
    message: str
    data: dict[str, Any]


class StatusUpdateOut(Out):
    id: int
    at: datetime
    status: str
    message: str
    public: bool
    author: str


class IncidentRef(Out):
    id: int
    key: str
    title: str
    status: str
    priority: str


class IncidentDetail(IncidentOut):
    timeline: list[TimelineOut]
    alert_ids: list[int]
    updates: list[StatusUpdateOut]
    related: list[IncidentRef]
    merged_into: IncidentRef | None
    merged_from: list[IncidentRef]
    postmortem_id: int | None


class IncidentAction(In):
    note: str = Field(default="", max_length=2000)


class IncidentCreate(In):
    """Declare an incident by hand. ``service`` is a service name (or give ``service_id``)."""

    title: Title
    service: str | None = Field(default=None, max_length=100, description="Name of an existing service.")
    service_id: DbId | None = None
    severity: Severity = Severity.error
    impact: Level | None = Field(default=None, description="Default: from the severity.")
    urgency: Level | None = Field(default=None, description="Default: from the severity.")
    description: str = Field(default="", max_length=10_000, description="Becomes the first comment.")


class IncidentPatch(In):
    """Only the fields sent change; ``null`` clears a team or a person."""

    title: Title | None = None
    severity: Severity | None = None
    impact: Level | None = None
    urgency: Level | None = None
    team_id: DbId | None = None
    assignee_id: DbId | None = None
    commander_id: DbId | None = None
    comms_lead_id: DbId | None = None
    tags: list[Annotated[str, StringConstraints(max_length=100)]] | None = Field(default=None, max_length=100)


class CommentIn(In):
    text: LongText


class StatusUpdateIn(In):
    status: UpdateStatus
    message: LongText
    public: bool = True


class MergeIn(In):
    incident_ids: list[DbId] = Field(
        min_length=1, max_length=100, description="Incidents merged into this one."
    )


class SplitIn(In):
    alert_ids: list[DbId] = Field(
        min_length=1, max_length=1000, description="Alerts of this incident to move."
    )
    title: Title | None = None
