"""The config-as-code document: what ``opsdesk apply`` reads and ``opsdesk export`` writes.

Objects refer to each other by name (a service's ``owner_team``, a monitor's ``service``, a
relationship's ``service:shop`` / ``ci:db1`` ends), never by database id, so one file describes
the same setup on any installation.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from opsdesk.alerts.models import Severity
from opsdesk.cmdb.models import CIClass, RelationType
from opsdesk.core.schemas import Email, In, Name, ShortName, Text


class TeamDoc(In):
    name: ShortName
    description: Text = ""
    members: list[Email] = Field(default_factory=list)


class ServiceDoc(In):
    name: ShortName
    description: Text = ""
    owner_team: str | None = None
    attributes: dict[str, Any] = Field(default_factory=dict)


class CIDoc(In):
    name: Name
    ci_class: CIClass = Field(alias="class")
    description: Text = ""
    owner_team: str | None = None
    attributes: dict[str, Any] = Field(default_factory=dict)

    model_config = In.model_config | {"populate_by_name": True}


class RelationshipDoc(In):
    source: str = Field(pattern=r"^(service|ci):.+$", description="service:NAME or ci:NAME")
    type: RelationType
    target: str = Field(pattern=r"^(service|ci):.+$")
    description: str = Field(default="", max_length=500)


class MonitorDoc(In):
    name: Name
    type: str = "http"
    target: str = Field(default="", max_length=2000)
    config: dict[str, Any] = Field(default_factory=dict)
    interval: int = Field(default=60, ge=1, le=86_400, description="seconds")
    timeout: float = Field(default=10.0, gt=0, le=300, description="seconds")
    failures_before_down: int = Field(default=3, ge=1, le=100)
    service: str | None = None
    ci: str | None = None
    severity: Severity = Severity.critical
    enabled: bool = True
    locations: list[str] = Field(default_factory=lambda: ["local"], min_length=1, max_length=20)
    quorum: int = Field(default=1, ge=1, le=20)
    ping_key: str | None = Field(default=None, description="heartbeats: keep this key in the ping URL")


class Document(In):
    teams: list[TeamDoc] = Field(default_factory=list)
    services: list[ServiceDoc] = Field(default_factory=list)
    cis: list[CIDoc] = Field(default_factory=list)
    relationships: list[RelationshipDoc] = Field(default_factory=list)
    monitors: list[MonitorDoc] = Field(default_factory=list)
