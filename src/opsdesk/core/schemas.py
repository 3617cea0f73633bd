"""Pydantic pieces shared by every domain's schemas."""

from __future__ import annotations

import re
from typing import Annotated, Any, Generic, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

T = TypeVar("T")

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")


def _check_email(v: str) -> str:
    v = v.strip()
    if not _EMAIL.match(v):
        raise ValueError("not an e-mail address")
    return v.lower()


Email = Annotated[str, StringConstraints(max_length=254), AfterValidator(_check_email)]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
ShortName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
Text = Annotated[str, StringConstraints(max_length=2000)]
# Ids are 32-bit integers in the database: anything larger is refused as input, not a 500.
ID_MAX = 2**31 - 1
DbId = Annotated[int, Field(ge=1, le=ID_MAX)]
Attributes = Annotated[dict[str, Any], Field(default_factory=dict)]


class In(BaseModel):
    """Base for request bodies: unknown fields are an error, not silently dropped."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class Page(BaseModel, Generic[T]):
    """One page of a list; pass ``next_cursor`` back as ``cursor`` for the next one."""

    items: list[T]
    next_cursor: str | None = None
