from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Query, Request
from pydantic import TypeAdapter, ValidationError
from starlette.concurrency import run_in_threadpool

from opsdesk.alerts import service
from opsdesk.alerts.schemas import AlertOut, EventAccepted, EventIn
from opsdesk.core import metrics
from opsdesk.core.actor import Role
from opsdesk.core.errors import FieldError, OpsdeskError
from opsdesk.core.paging import next_cursor, parse_cursor
from opsdesk.core.schemas import Page
from opsdesk.web.deps import Ctx, api

router = APIRouter()

_event = TypeAdapter(EventIn)
_events = TypeAdapter(list[EventIn])
MAX_BATCH = 1000

_EVENT_SCHEMA = EventIn.model_json_schema()
_BODY_DOC: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "oneOf": [
                        _EVENT_SCHEMA,
                        {"type": "array", "items": _EVENT_SCHEMA, "maxItems": MAX_BATCH},
                        {
                            "type": "object",
                            "properties": {"events": {"type": "array", "items": _EVENT_SCHEMA}},
                            "required": ["events"],
                        },
                    ]
                }
            }
        },
    }
}


def _parse(raw: bytes) -> list[EventIn]:
    try:
        payload = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        metrics.EVENTS_REJECTED.labels("malformed").inc()
        raise OpsdeskError(
            detail=f"the body is not valid JSON: {exc}", status=400, title="Malformed JSON"
        ) from None
    prefix = ""
    if isinstance(payload, dict) and "events" in payload and set(payload) == {"events"}:
        payload, prefix = payload["events"], "events"
    try:
        if isinstance(payload, list):
            if not payload:
                raise OpsdeskError(
                    detail="the batch is empty",
                    status=422,
                    title="Invalid input",
                    errors=[FieldError(prefix or "body", "at least one event is needed")],
                )
            if len(payload) > MAX_BATCH:
                raise OpsdeskError(
                    detail=f"at most {MAX_BATCH} events per request",
                    status=422,
                    title="Invalid input",
                    errors=[FieldError(prefix or "body", "too many events")],
                )
            return _events.validate_python(payload)
        return [_event.validate_python(payload)]
    except ValidationError as exc:
        metrics.EVENTS_REJECTED.labels("invalid").inc()
        errors = []
        for e in exc.errors():
            loc = list(e["loc"])
            if isinstance(payload, list) and loc and isinstance(loc[0], int):
                head = f"{prefix or 'events'}[{loc[0]}]"
                loc = [head, *loc[1:]]
            errors.append(FieldError(".".join(str(p) for p in loc) or "body", e["msg"]))
        raise OpsdeskError(
            detail="; ".join(f"{x.field}: {x.message}" for x in errors[:5]),
            status=422,
            title="Invalid input",
            errors=errors,
        ) from None


@router.post(
    "/events", status_code=202, response_model=EventAccepted, tags=["events"], openapi_extra=_BODY_DOC
)
async def post_events(request: Request, ctx: Ctx = Depends(api(Role.responder))) -> object:
    """Send one event, a JSON array of events, or ``{"events": [...]}``.

    A 202 answer means the events are committed; the pipeline turns them into alerts and incidents.
    """
    events = _parse(await request.body())

    def normalize() -> list[service.NormalizedEvent]:
        with ctx.session() as s:
            return service.normalize(s, events)

    try:
        normalized = await run_in_threadpool(normalize)
    except OpsdeskError:
        metrics.EVENTS_REJECTED.labels("unknown_service").inc()
        raise
    ids = await request.app.state.event_writer.submit(normalized)
    return {"accepted": len(ids), "ids": ids}


@router.get("/alerts", response_model=Page[AlertOut], tags=["alerts"])
def list_alerts(
    ctx: Ctx = Depends(api()),
    status: str | None = None,
    incident_id: int | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> object:
    """Alerts, newest first."""
    with ctx.session() as s:
        rows = service.list_alerts(
            s, status=status, incident_id=incident_id, before_id=parse_cursor(cursor) or None, limit=limit
        )
        return {"items": rows, "next_cursor": next_cursor(rows, limit)}


@router.get("/alerts/{alert_id}", response_model=AlertOut, tags=["alerts"])
def get_alert(alert_id: int, ctx: Ctx = Depends(api())) -> object:
    with ctx.session() as s:
        return service.get_alert(s, alert_id)
