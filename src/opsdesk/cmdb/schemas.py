from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints

from opsdesk.cmdb.models import CIClass, RelationType
from opsdesk.core.schemas import Attributes, DbId, In, Name, Out, ShortName, Text

NodeKind = Literal["service", "ci"]


class ServiceIn(In):
    name: ShortName
    description: Text = ""
    owner_team_id: DbId | None = None
    escalation_policy_id: DbId | None = None  # who is paged; none: the owner team is e-mailed
    attributes: Attributes
    public_status: bool = False  # shown on the public status page (/status)


class ServiceUpdate(In):
    name: ShortName | None = None
    description: Text | None = None
    owner_team_id: DbId | None = None
    escalation_policy_id: DbId | None = None
    attributes: dict[str, Any] | None = None
    public_status: bool | None = None


class ServiceOut(Out):
    id: int
    name: str
    description: str
    owner_team_id: int | None
    escalation_policy_id: int | None = None
    attributes: dict[str, Any]
    public_status: bool
    created_at: datetime
    updated_at: datetime


class CIIn(In):
    name: Name
    ci_class: CIClass = Field(alias="class")
    description: Text = ""
    owner_team_id: DbId | None = None
    attributes: Attributes

    model_config = In.model_config | {"populate_by_name": True}


class CIUpdate(In):
    name: Name | None = None
    ci_class: CIClass | None = Field(default=None, alias="class")
    description: Text | None = None
    owner_team_id: DbId | None = None
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
    source_id: DbId
    target_type: NodeKind
    target_id: DbId
    description: Annotated[str, StringConstraints(max_length=500)] = ""


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
