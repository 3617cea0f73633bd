"""Who is acting: a user through the web or API, the CLI, or opsdesk itself."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    viewer = "viewer"
    responder = "responder"
    manager = "manager"
    admin = "admin"

    @property
    def rank(self) -> int:
        return _RANK[self]

    def at_least(self, other: Role | str) -> bool:
        return self.rank >= Role(other).rank


_RANK = {Role.viewer: 0, Role.responder: 1, Role.manager: 2, Role.admin: 3}


@dataclass(frozen=True)
class Actor:
    id: int | None
    label: str
    role: Role

    def can(self, role: Role | str) -> bool:
        return self.role.at_least(role)


SYSTEM = Actor(id=None, label="opsdesk", role=Role.admin)
CLI = Actor(id=None, label="cli", role=Role.admin)
