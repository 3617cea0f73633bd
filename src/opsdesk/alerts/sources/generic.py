"""The generic JSON events API behind an integration key: the body of ``POST /api/v1/events``
(one event, a JSON array, or ``{"events": [...]}``). Service names must exist (``strict_services``),
as on the API; an event naming none gets the integration's default service."""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter, ValidationError

from opsdesk.alerts.schemas import EventIn
from opsdesk.alerts.sources.base import MAX_ALERTS, Source, register, validation_error
from opsdesk.core.errors import invalid

_event = TypeAdapter(EventIn)
_events = TypeAdapter(list[EventIn])


@register
class Generic(Source):
    kind = "generic"
    strict_services = True

    def parse(self, payload: Any) -> list[EventIn]:
        if isinstance(payload, dict) and set(payload) == {"events"}:
            payload = payload["events"]
            if not isinstance(payload, list):
                raise invalid("events", "must be a list of events")
        if not isinstance(payload, list):
            try:
                return [_event.validate_python(payload)]
            except ValidationError as exc:
                raise validation_error(exc) from None
        if not payload:
            raise invalid("events", "at least one event is needed")
        if len(payload) > MAX_ALERTS:
            raise invalid("events", f"at most {MAX_ALERTS} events")
        try:
            return _events.validate_python(payload)
        except ValidationError as exc:
            raise validation_error(exc, prefix="events") from None
