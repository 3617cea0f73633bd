"""Alert-source webhooks: ``POST /hooks/<key>`` (or ``POST /hooks`` with ``Authorization: Bearer
<key>``), and the management API under ``/api/v1/integrations``.

The hook needs no user: the integration's key is the credential (see
:mod:`opsdesk.alerts.integrations`). Its checks, in order, each answered with problem+json and
none of them storing anything:

1. unknown key → 404 (the same answer for a malformed, rotated or deleted key);
2. a content type other than JSON (``application/json``, ``application/*+json``) → 415;
3. when the integration has a secret: missing or wrong ``X-Opsdesk-Signature`` → 401, a
   ``X-Opsdesk-Timestamp`` more than five minutes off → 401 naming the header; the same signed
   request a second time (a replay) → 409;
4. a body over ``max_body_bytes`` → 413 (the body-limit middleware, before any of this);
5. a body that is not JSON, or not the source's payload → 422 naming the field;
6. (generic source only) an unknown service name → 422.

Then the events are handed to the group-commit writer (``app.state.event_writer``): the 202
answer is sent only after their transaction committed.

Management: listing, creating, rotating and deleting integrations need the manager role, as do
monitors and services (configuring what feeds opsdesk is a manager's job, not only an admin's).
The key, and the hook URL holding it, are in the answer of create and rotate only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Request, Response
from pydantic import Field, StringConstraints
from starlette.concurrency import run_in_threadpool

from opsdesk.alerts import integrations, service
from opsdesk.alerts.schemas import EventAccepted
from opsdesk.alerts.sources import get_source
from opsdesk.core import metrics
from opsdesk.core.actor import Role
from opsdesk.core.errors import FieldError, OpsdeskError, unauthorized
from opsdesk.core.schemas import In, Out
from opsdesk.web.deps import Ctx, PathId, api

hook_router = APIRouter(tags=["hooks"])
router = APIRouter(tags=["integrations"])


# --- receiving ------------------------------------------------------------------------------------


@dataclass
class _Found:
    id: int
    kind: str
    secret: str | None
    service_id: int | None
    last_used_at: datetime | None


def _not_found() -> OpsdeskError:
    return OpsdeskError(detail="no integration has this key", status=404, title="Not found")


def _is_json(content_type: str) -> bool:
    mime = content_type.split(";", 1)[0].strip().lower()
    return mime == "application/json" or (mime.startswith("application/") and mime.endswith("+json"))


def _reject(reason: str, exc: OpsdeskError) -> OpsdeskError:
    metrics.EVENTS_REJECTED.labels(reason).inc()
    return exc


async def _receive(request: Request, key: str) -> dict[str, Any]:
    app = request.app
    db = app.state.db
    now: datetime = app.state.clock.now()

    def lookup() -> _Found | None:
        with db.session() as s:
            i = integrations.integration_for_key(s, key)
            if i is None:
                return None
            return _Found(i.id, i.kind, integrations.secret_of(i), i.service_id, i.last_used_at)

    found = await run_in_threadpool(lookup)
    if found is None:
        raise _reject("unknown_key", _not_found())
    if not _is_json(request.headers.get("content-type", "")):
        raise _reject(
            "content_type",
            OpsdeskError(
                detail="send the payload as application/json",
                status=415,
                title="Unsupported media type",
            ),
        )
    body = await request.body()
    if found.secret is not None:
        why = integrations.verify_signature(
            found.secret,
            request.headers.get(integrations.SIGNATURE_HEADER),
            request.headers.get(integrations.TIMESTAMP_HEADER),
            body,
            now=now,
        )
        if why is not None:
            raise _reject("signature", unauthorized(why))
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise _reject(
            "malformed",
            OpsdeskError(
                detail=f"body: not valid JSON ({exc})",
                status=422,
                title="Invalid input",
                errors=[FieldError("body", "not valid JSON")],
            ),
        ) from None
    source = get_source(found.kind)
    if source is None:  # a kind whose module was removed
        raise _reject("unknown_kind", _not_found())
    try:
        events = source.parse(payload)
    except OpsdeskError as exc:
        raise _reject("invalid", exc) from None

    def normalize() -> list[service.NormalizedEvent]:
        with db.session() as s:
            if not source.strict_services:
                from opsdesk.cmdb import service as cmdb

                known = cmdb.service_ids_by_name(s, {e.service for e in events if e.service})
                for e in events:
                    if e.service and e.service not in known:
                        e.labels.setdefault("service", e.service)
                        e.service = None
            out = service.normalize(s, events, batch=len(events) > 1)
        for ev in out:
            if ev.service_id is None:
                ev.service_id = found.service_id
        return out

    try:
        normalized = await run_in_threadpool(normalize)
    except OpsdeskError as exc:
        raise _reject("unknown_service", exc) from None
    if found.secret is not None:
        signature = request.headers.get(integrations.SIGNATURE_HEADER, "")

        def remember() -> bool:
            with db.session() as s:
                return integrations.remember_signature(s, signature, now=now)

        if not await run_in_threadpool(remember):
            raise _reject(
                "replayed",
                OpsdeskError(
                    detail="this signed request was already received (a replay): sign each delivery anew",
                    status=409,
                    title="Replayed request",
                ),
            )
    ids = await app.state.event_writer.submit(normalized)

    def mark() -> None:
        with db.session() as s:
            integrations.mark_used(s, found.id, now=now)

    # Written at most once a minute (checked here first, so a busy source opens no write
    # transaction per request; mark_used's WHERE settles races between workers).
    if found.last_used_at is None or now - found.last_used_at >= integrations.LAST_USED_EVERY:
        await run_in_threadpool(mark)
    return {"accepted": len(ids), "ids": ids}


@hook_router.post("/hooks/{key}", status_code=202, response_model=EventAccepted)
async def receive_with_key_in_url(key: str, request: Request) -> object:
    """Events from an alert source; the integration's key is the credential (no login)."""
    return await _receive(request, key)


@hook_router.post("/hooks", status_code=202, response_model=EventAccepted)
async def receive_with_bearer_key(request: Request) -> object:
    """As ``/hooks/<key>``, with the key in ``Authorization: Bearer <key>``."""
    scheme, _, key = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise _reject("unknown_key", _not_found())
    return await _receive(request, key.strip())


# --- management -----------------------------------------------------------------------------------

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]


class IntegrationIn(In):
    name: Name
    kind: str = Field(description="alertmanager, grafana, zabbix, nagios, icinga or generic")
    secret: str | None = Field(
        default=None,
        min_length=16,
        max_length=200,
        description="HMAC-SHA256 secret; when set, every request must be signed.",
    )
    service_id: int | None = Field(default=None, description="Service for events that name none.")


class IntegrationOut(Out):
    id: int
    name: str
    kind: str
    signed: bool
    service_id: int | None
    created_at: datetime
    last_used_at: datetime | None


class IntegrationKey(IntegrationOut):
    key: str = Field(description="Shown once.")
    hook_url: str = Field(description="Shown once: the URL to give the tool.")


def _out(i: Any) -> dict[str, Any]:
    return {
        "id": i.id,
        "name": i.name,
        "kind": i.kind,
        "signed": i.secret_encrypted is not None,
        "service_id": i.service_id,
        "created_at": i.created_at,
        "last_used_at": i.last_used_at,
    }


def _with_key(request: Request, i: Any, key: str) -> dict[str, Any]:
    base = request.app.state.settings.base_url.rstrip("/")
    return {**_out(i), "key": key, "hook_url": f"{base}/hooks/{key}"}


@router.get("/integrations", response_model=list[IntegrationOut])
def list_integrations(ctx: Ctx = Depends(api(Role.manager))) -> object:
    with ctx.session() as s:
        return [_out(i) for i in integrations.list_integrations(s)]


@router.post("/integrations", response_model=IntegrationKey, status_code=201)
def create_integration(
    data: IntegrationIn, request: Request, ctx: Ctx = Depends(api(Role.manager))
) -> object:
    """Create an integration (kind: alertmanager, grafana, zabbix, nagios, icinga or generic); its key
    is in this answer only."""
    with ctx.session() as s:
        i, key = integrations.create_integration(
            s,
            name=data.name,
            kind=data.kind,
            secret=data.secret,
            service_id=data.service_id,
            actor=ctx.actor,
            now=ctx.now(),
        )
        return _with_key(request, i, key)


@router.post("/integrations/{integration_id}/rotate", response_model=IntegrationKey)
def rotate_key(integration_id: PathId, request: Request, ctx: Ctx = Depends(api(Role.manager))) -> object:
    """A new key; the old one stops working at once."""
    with ctx.session() as s:
        i, key = integrations.rotate_key(s, integration_id, actor=ctx.actor, now=ctx.now())
        return _with_key(request, i, key)


@router.delete("/integrations/{integration_id}", status_code=204)
def delete_integration(integration_id: PathId, ctx: Ctx = Depends(api(Role.manager))) -> Response:
    with ctx.session() as s:
        integrations.delete_integration(s, integration_id, actor=ctx.actor, now=ctx.now())
    return Response(status_code=204)
