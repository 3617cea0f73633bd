"""The interface every alert source implements, and the registry that finds them by kind.

A source turns the JSON a tool posts to ``/hooks/<key>`` into :class:`~opsdesk.alerts.schemas.EventIn`
values (the generic events API's shape). Services are named, not resolved, here: the hook resolves
names through :func:`opsdesk.alerts.service.normalize`. A source with ``strict_services`` (the
generic API) makes an unknown service name a 422; the others (Alertmanager, Grafana), whose
``service`` label is free text in someone else's config, fall back to the integration's default
service instead.

Validation errors are 422 problem+json naming the field in the tool's own terms
(``alerts[2].labels``). A new source is one module in this package: subclass :class:`Source`,
decorate it with :func:`register`, import it in ``opsdesk.alerts.sources``.
"""

from __future__ import annotations

import hashlib
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ValidationError

from opsdesk.alerts.models import Severity
from opsdesk.alerts.schemas import EventIn
from opsdesk.core.errors import FieldError, OpsdeskError

M = TypeVar("M", bound=BaseModel)

MAX_ALERTS = 1000
LABEL_KEY_MAX = 200
LABEL_VALUE_MAX = 1000


class Source:
    kind: ClassVar[str]
    strict_services: ClassVar[bool] = False

    def parse(self, payload: Any) -> list[EventIn]:  # pragma: no cover - interface
        raise NotImplementedError


REGISTRY: dict[str, Source] = {}


def register(cls: type[Source]) -> type[Source]:
    REGISTRY[cls.kind] = cls()
    return cls


def get_source(kind: str) -> Source | None:
    return REGISTRY.get(kind)


def validation_error(exc: ValidationError, *, prefix: str = "") -> OpsdeskError:
    """A pydantic error as 422 problem+json; list indexes are written ``alerts[0]``."""
    errors = []
    for e in exc.errors():
        path = prefix
        for part in e["loc"]:
            if isinstance(part, int):
                path += f"[{part}]"
            else:
                path += f".{part}" if path else str(part)
        errors.append(FieldError(path or "body", e["msg"]))
    return OpsdeskError(
        detail="; ".join(f"{x.field}: {x.message}" for x in errors[:5]),
        status=422,
        title="Invalid input",
        errors=errors,
    )


def validate(model: type[M], payload: Any) -> M:
    if not isinstance(payload, dict):
        raise OpsdeskError(
            detail="body: must be a JSON object",
            status=422,
            title="Invalid input",
            errors=[FieldError("body", "must be a JSON object")],
        )
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        raise validation_error(exc) from None


_SEVERITY = {
    Severity.critical: {"critical", "crit", "page", "p1", "emergency", "emerg", "alert", "fatal", "disaster"},
    Severity.error: {"error", "err", "high", "major", "p2"},
    Severity.warning: {"warning", "warn", "average", "medium", "minor", "p3"},
    Severity.info: {"info", "informational", "information", "notice", "low", "none", "ok", "p4", "p5"},
}


def map_severity(value: str | None) -> Severity:
    """A tool's severity word to ours; unknown or missing is a warning."""
    v = (value or "").strip().lower()
    for sev, words in _SEVERITY.items():
        if v in words:
            return sev
    return Severity.warning


def labels_fingerprint(labels: dict[str, str]) -> str:
    """A stable fingerprint of a label set, for alerts that come without one."""
    basis = "\x1f".join(f"{k}={labels[k]}" for k in sorted(labels))
    return hashlib.sha256(basis.encode()).hexdigest()[:16]


def clip_labels(labels: dict[str, str]) -> dict[str, str]:
    return {k[:LABEL_KEY_MAX]: str(v)[:LABEL_VALUE_MAX] for k, v in labels.items()}


def summary_of(annotations: dict[str, str], labels: dict[str, str], fallback: str) -> str:
    for text in (annotations.get("summary"), annotations.get("description"), labels.get("alertname")):
        if text and text.strip():
            return text.strip()[:1000]
    return fallback
