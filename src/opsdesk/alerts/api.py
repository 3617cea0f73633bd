from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Query, Request
from pydantic import TypeAdapter, ValidationError
from starlette.concurrency import run_in_threadpool

from opsdesk.alerts import noise, service
from opsdesk.alerts.models import EventStatus
from opsdesk.alerts.schemas import AlertOut, EventAccepted, EventIn
from opsdesk.core import metrics
from opsdesk.core.actor import Role
from opsdesk.core.errors import FieldError, OpsdeskError
from opsdesk.core.paging import next_cursor, parse_cursor
from opsdesk.core.schemas import Page
from opsdesk.web.deps import Ctx, PathId, QueryId, api

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


def _refuse(reason: str, field: str, message: str, detail: str, count: bool = True) -> OpsdeskError:
    if count:
        metrics.EVENTS_REJECTED.labels(reason).inc()
    return OpsdeskError(detail=detail, status=422, title="Invalid input", errors=[FieldError(field, message)])


def parse_events(raw: bytes, *, count_rejects: bool = True) -> tuple[list[EventIn], bool]:
    """The events of a body holding one event, a JSON array, or ``{"events": [...]}``; and whether it
    was a batch (field errors then name ``events[i]``). ``count_rejects=False`` for the fast path,
    which hands refusals to the routed endpoint (that one counts them)."""
    quick = _parse_quickly(raw)
    if quick is not None:
        return quick
    try:
        payload = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        if count_rejects:
            metrics.EVENTS_REJECTED.labels("malformed").inc()
        raise OpsdeskError(
            detail=f"the body is not valid JSON: {exc}", status=400, title="Malformed JSON"
        ) from None
    if isinstance(payload, dict) and set(payload) == {"events"}:
        payload = payload["events"]
        if not isinstance(payload, list):
            raise _refuse(
                "invalid",
                "events",
                "must be a list of events",
                "events: must be a list of events",
                count_rejects,
            )
    if not isinstance(payload, list):
        try:
            return [_event.validate_python(payload)], False
        except ValidationError as exc:
            raise _invalid(exc, batch=False, count=count_rejects) from None
    if not payload:
        raise _refuse(
            "invalid", "events", "at least one event is needed", "the batch is empty", count_rejects
        )
    if len(payload) > MAX_BATCH:
        raise _refuse(
            "too_many",
            "events",
            f"at most {MAX_BATCH} events",
            f"at most {MAX_BATCH} events per request",
            count_rejects,
        )
    try:
        return _events.validate_python(payload), True
    except ValidationError as exc:
        raise _invalid(exc, batch=True, count=count_rejects) from None


def _parse_quickly(raw: bytes) -> tuple[list[EventIn], bool] | None:
    """A valid array of events, or a valid single event, validated straight from the JSON bytes
    (a third cheaper than loading then validating); None for anything else, which the full parse
    then takes, so every refusal is worded by it."""
    start = raw[:1] if raw[:1] in (b"[", b"{") else raw.lstrip()[:1]
    try:
        if start == b"[":
            events = _events.validate_json(raw)
            return (events, True) if 0 < len(events) <= MAX_BATCH else None
        if start == b"{" and b'"events"' not in raw[:64]:
            return [_event.validate_json(raw)], False
    except ValidationError:
        return None
    return None


def _invalid(exc: ValidationError, *, batch: bool, count: bool = True) -> OpsdeskError:
    if count:
        metrics.EVENTS_REJECTED.labels("invalid").inc()
    errors = []
    for e in exc.errors():
        loc = [str(p) for p in e["loc"]]
        if batch and loc:
            loc = [f"events[{loc[0]}]", *loc[1:]]
        errors.append(FieldError(".".join(loc) or "body", e["msg"]))
    return OpsdeskError(
        detail="; ".join(f"{x.field}: {x.message}" for x in errors[:5]),
        status=422,
        title="Invalid input",
        errors=errors,
    )


@router.post(
    "/events", status_code=202, response_model=EventAccepted, tags=["events"], openapi_extra=_BODY_DOC
)
async def post_events(request: Request, ctx: Ctx = Depends(api(Role.responder))) -> object:
    """Send one event, a JSON array of events, or ``{"events": [...]}``.

    A 202 answer means the events are committed; the pipeline turns them into alerts and incidents.
    """
    events, batch = parse_events(await request.body())

    def normalize() -> list[service.NormalizedEvent]:
        with ctx.session() as s:
            return service.normalize(s, events, batch=batch)

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
    status: EventStatus | None = None,
    incident_id: QueryId = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> object:
    """Alerts, newest first."""
    with ctx.session() as s:
        rows = service.list_alerts(
            s,
            status=status.value if status else None,
            incident_id=incident_id,
            before_id=parse_cursor(cursor) or None,
            limit=limit,
        )
        return {"items": rows, "next_cursor": next_cursor(rows, limit)}


@router.get("/alerts/{alert_id}", response_model=AlertOut, tags=["alerts"])
def get_alert(alert_id: PathId, ctx: Ctx = Depends(api())) -> object:
    with ctx.session() as s:
        return service.get_alert(s, alert_id)


# --- noise-reduction report (opsdesk.alerts.noise) ------------------------------------------------


@router.get("/alerts/noise", response_model=noise.NoiseReportOut, tags=["alerts"])
def get_noise(
    ctx: Ctx = Depends(api()),
    days: Annotated[int, Query(ge=1, le=noise.MAX_DAYS, description="UTC days up to today.")] = 30,
    source: Annotated[str | None, Query(max_length=100, description="Only this source.")] = None,
) -> object:
    """Noise reduction per day and per source: events received, alerts and incidents opened, alerts
    muted, events per incident and the share of events that did not become an incident."""
    with ctx.session() as s:
        return noise.report(s, days=days, source=source, today=ctx.now().date())


# ``/alerts/{alert_id}`` above would take "noise" for an id: try this route before it.
router.routes.insert(
    next(i for i, r in enumerate(router.routes) if getattr(r, "path", "") == "/alerts/{alert_id}"),
    router.routes.pop(),
)
