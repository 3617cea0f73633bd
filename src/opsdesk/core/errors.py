"""Domain errors, rendered by the web layer as RFC 9457 problem+json."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class FieldError:
    field: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "message": self.message}


@dataclass
class OpsdeskError(Exception):
    """A problem a user can act on. ``status`` is the HTTP status the web layer answers with."""

    detail: str
    status: int = 400
    title: str = "Bad request"
    type: str = "about:blank"
    errors: list[FieldError] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        fields = "; ".join(f"{e.field}: {e.message}" for e in self.errors if e.message not in self.detail)
        return f"{self.detail} ({fields})" if fields else self.detail


def invalid(field_name: str, message: str, detail: str | None = None) -> OpsdeskError:
    return OpsdeskError(
        detail=detail or f"{field_name}: {message}",
        status=422,
        title="Invalid input",
        errors=[FieldError(field_name, message)],
    )


def not_found(what: str, ident: object) -> OpsdeskError:
    return OpsdeskError(detail=f"{what} {ident} does not exist", status=404, title="Not found")


def conflict(detail: str, **extra: Any) -> OpsdeskError:
    return OpsdeskError(detail=detail, status=409, title="Conflict", extra=extra)


def forbidden(detail: str = "your role does not allow this") -> OpsdeskError:
    return OpsdeskError(detail=detail, status=403, title="Forbidden")


def unauthorized(detail: str = "authentication required") -> OpsdeskError:
    return OpsdeskError(detail=detail, status=401, title="Unauthorized")
