from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from opsdesk.cmdb.models import CIClass, RelationType
from opsdesk.core.schemas import Attributes, In, Name, Out, Text

NodeKind = Literal["service", "ci"]


class ServiceIn(In):
    name: Name
    description: Text = ""
    owner_team_id: int | None = None
    attributes: Attributes


class ServiceUpdate(In):
    name: Name | None = None
    description: Text | None = None
    owner_team_id: int | None = None
    attributes: dict[str, Any] | None = None


class ServiceOut(Out):
    id: int
    name: str
    description: str
    owner_team_id: int | None
    attributes: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class CIIn(In):
    name: Name
    ci_class: CIClass = Field(alias="class")
    description: Text = ""
    owner_team_id: int | None = None
    attributes: Attributes

    model_config = In.model_config | {"populate_by_name": True}


class CIUpdate(In):
    name: Name | None = None
    ci_class: CIClass | None = Field(default=None, alias="class")
    description: Text | None = None
    owner_team_id: int | None = None
    attributes: dict[str, Any] | None = None

    model_config = In.model_config | {"populate_by_name": True}


class CIOut(Out):
    id: int
    name: str
    ci_class: str = Field(serialization_alias="class")
    description: str
    owner_team_id: int | None
    attributes: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class RelationshipIn(In):
    type: RelationType
    source_type: NodeKind
    source_id: int
    target_type: NodeKind
    target_id: int
    description: Text = ""


class RelationshipOut(Out):
    id: int
    type: str
    source_type: NodeKind
    source_id: int
    source_name: str
    target_type: NodeKind
    target_id: int
    target_name: str
    description: str
    created_at: datetime
