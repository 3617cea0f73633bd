from __future__ import annotations

from datetime import datetime

from pydantic import Field

from opsdesk.core.actor import Role
from opsdesk.core.schemas import DbId, Email, In, Name, Out, ShortName, Text


class UserIn(In):
    email: Email
    name: Name
    role: Role = Role.viewer
    password: str | None = Field(default=None, min_length=8, max_length=1000)


class UserUpdate(In):
    name: Name | None = None
    role: Role | None = None
    active: bool | None = None
    password: str | None = Field(default=None, min_length=8, max_length=1000)
    current_password: str | None = Field(
        default=None, max_length=1000, description="Needed when you change your own password."
    )


class UserOut(Out):
    id: int
    email: str
    name: str
    role: Role
    active: bool
    created_at: datetime


class TeamIn(In):
    name: ShortName
    description: Text = ""
    member_ids: list[DbId] = Field(default_factory=list)


class TeamUpdate(In):
    name: ShortName | None = None
    description: Text | None = None
    member_ids: list[DbId] | None = None


class TeamOut(Out):
    id: int
    name: str
    description: str
    member_ids: list[int]
    created_at: datetime


class TokenIn(In):
    name: ShortName
    user_id: DbId | None = None


class TokenOut(Out):
    id: int
    user_id: int
    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class TokenCreated(TokenOut):
    token: str = Field(description="The bearer token. Shown once; only its hash is stored.")
