"""The fast path for ``POST /api/v1/events``: the ingestion hot path without the framework.

A plain ASGI handler in front of the application (like the heartbeat endpoint) answers the
common case itself: a bearer token of a responder or better, a JSON body that validates, service
and CI names that exist. It keeps short-lived caches of token digests and of service and CI
names (:data:`CACHE_SECONDS`), so a burst of single-event requests costs no database read per
request; the events are committed by the group-commit writer before the 202 goes out, exactly as
on the routed path.

Anything else (no or unknown token, cookie sessions, invalid JSON, unknown names, a body over the
limit) is handed to the application with the body replayed, so every error is answered by the
routed endpoint (:func:`opsdesk.alerts.api.post_events`) with the same problem+json as before
and counted once. A revoked token or a renamed service is seen within :data:`CACHE_SECONDS`.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from opsdesk.alerts import service
from opsdesk.alerts.api import parse_events
from opsdesk.alerts.schemas import EventIn
from opsdesk.core.actor import Role
from opsdesk.core.errors import OpsdeskError
from opsdesk.core.security import token_digest

PATH = "/api/v1/events"
CACHE_SECONDS = 5.0
ACCEPTED_HEADERS = [
    (b"content-type", b"application/json"),
    (b"cache-control", b"no-store"),
    (b"x-content-type-options", b"nosniff"),
]


class _TTLCache:
    def __init__(self, ttl: float, max_entries: int = 10_000) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self.data: dict[Any, tuple[float, Any]] = {}

    def get(self, key: Any, miss: Any) -> Any:
        """The key's cached value, or ``miss`` when the cache has no answer."""
        hit = self.data.get(key)
        if hit is None or hit[0] < time.monotonic():
            return miss
        return hit[1]

    def put(self, key: Any, value: Any) -> None:
        if len(self.data) >= self.max_entries:
            self.data.clear()
        self.data[key] = (time.monotonic() + self.ttl, value)


class EventsEndpoint:
    """Answers the happy path of ``POST /api/v1/events``; passes everything else on."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int, cache_seconds: float = CACHE_SECONDS) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.tokens = _TTLCache(cache_seconds)
        self.services = _TTLCache(cache_seconds)
        self.cis = _TTLCache(cache_seconds)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        token, length = bearer_and_length(scope["headers"])
        if token is None or length > self.max_body_bytes:  # (the body-limit middleware answers)
            await self.app(scope, receive, send)
            return
        body, over, more = await _read_body(receive, self.max_body_bytes)
        replay = _replay(body, receive, more)
        if over:  # the body-limit middleware answers
            await self.app(scope, replay, send)
            return
        state = scope["app"].state
        ok = await self._allowed(state, token)
        if not ok:
            await self.app(scope, replay, send)
            return
        try:
            events, _batch = parse_events(body, count_rejects=False)
        except OpsdeskError:
            await self.app(scope, replay, send)
            return
        normalized = await self._normalize(state, body, events)
        if normalized is None:
            await self.app(scope, replay, send)
            return
        out = accepted(ids_of(await state.event_writer.submit(normalized)))
        await send(
            {
                "type": "http.response.start",
                "status": 202,
                "headers": [*ACCEPTED_HEADERS, (b"content-length", str(len(out)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": out})

    async def _allowed(self, state: Any, token: str) -> bool:
        digest = token_digest(token)
        role = self.tokens.get(digest, _MISS)
        if role is _MISS:

            def lookup() -> Role | None:
                from opsdesk.auth import service as auth

                with state.db.session() as s:
                    user = auth.user_for_token(s, token, now=state.clock.now())
                    return Role(user.role) if user is not None else None

            role = await run_in_threadpool(lookup)
            self.tokens.put(digest, role)
        return _MAY_SEND.get(role, False)

    def prepare(self, digest: str, body: bytes) -> list[Any] | None:
        """The request's events from the caches alone, without awaiting anything; None when it
        needs the database (a token or a name not cached) or is refused: it then goes the
        awaited way. The uvicorn protocol's lane (:mod:`opsdesk.web.fastlane`) calls this with
        the bearer token's :func:`~opsdesk.core.security.token_digest`."""
        role = self.tokens.get(digest, _MISS)
        if role is _MISS or not _MAY_SEND.get(role, False):
            return None
        try:
            events, _batch = parse_events(body, count_rejects=False)
        except OpsdeskError:
            return None
        svc_ids, ci_ids = self._cached_ids(events)
        if any(v is _MISS or v is None for v in svc_ids.values()) or _MISS in ci_ids.values():
            return None
        return _raw(body, events, svc_ids, ci_ids)

    def _cached_ids(self, events: list[EventIn]) -> tuple[dict[Any, Any], dict[Any, Any]]:
        """Service and CI ids by name from the caches, ``_MISS`` where the cache has no answer; each
        name looked up once (one pass: a single event's request is the lane's commonest)."""
        svc_ids: dict[Any, Any] = {}
        ci_ids: dict[Any, Any] = {}
        services, cis = self.services, self.cis
        for e in events:
            name = e.service
            if name and name not in svc_ids:
                svc_ids[name] = services.get(name, _MISS)
            name = e.ci
            if name and name not in ci_ids:
                ci_ids[name] = cis.get(name, _MISS)
        return svc_ids, ci_ids

    async def _normalize(self, state: Any, body: bytes, events: list[EventIn]) -> list[Any] | None:
        """Events with their names resolved from the caches; None when a name is unknown. Each
        distinct name is looked up once per request (a batch names a few services many times)."""
        svc_ids, ci_ids = self._cached_ids(events)
        need_s = {name for name, hit in svc_ids.items() if hit is _MISS}
        need_c = {name for name, hit in ci_ids.items() if hit is _MISS}
        if need_s or need_c:

            def lookup() -> tuple[dict[str, int], dict[str, int]]:
                from opsdesk.cmdb import service as cmdb

                with state.db.session() as s:
                    return cmdb.service_ids_by_name(s, need_s), cmdb.ci_ids_by_name(s, need_c)

            found_s, found_c = await run_in_threadpool(lookup)
            for name in need_s:
                svc_ids[name] = found_s.get(name)
                self.services.put(name, svc_ids[name])
            for name in need_c:
                ci_ids[name] = found_c.get(name)
                self.cis.put(name, ci_ids[name])
        if any(v is None for v in svc_ids.values()):
            return None  # the routed endpoint refuses it, naming the field
        return _raw(body, events, svc_ids, ci_ids)


def bearer_and_length(headers: list[tuple[bytes, bytes]]) -> tuple[str | None, int]:
    """The bearer token of a request's (lower-cased) headers, None if it has none that could be one,
    and its Content-Length: -1 when absent, invalid, or the body is chunked."""
    token = b""
    length = -1
    chunked = False
    for name, value in headers:
        if name == b"authorization":
            token = value
        elif name == b"content-length":
            length = int(value) if value.isdigit() else -1
        elif name == b"transfer-encoding":
            chunked = True
    if chunked:
        length = -1
    if token[:7].lower() != b"bearer " or len(token) < 16:
        return None, length
    return token[7:].strip().decode("latin-1"), length


def accepted(ids: list[int]) -> bytes:
    """The 202's body: how many events were committed, and their ids."""
    return orjson.dumps({"accepted": len(ids), "ids": ids})


def _raw(body: bytes, events: list[EventIn], svc_ids: dict[Any, Any], ci_ids: dict[Any, Any]) -> list[Any]:
    """What the writer is given for the request: from :data:`WHOLE_FROM` events on, the request as
    one item it stores whole (:func:`~opsdesk.alerts.service.store_batches`); below, its events."""
    if len(events) < WHOLE_FROM:
        return service.normalized_events(events, svc_ids, ci_ids)
    return [service.RawEvents(body, len(events), svc_ids, ci_ids, Counter(e.source for e in events))]


def ids_of(results: list[Any]) -> list[int]:
    """The request's event ids from what the writer gave for the items of :func:`_raw`."""
    return results[0] if results and isinstance(results[0], list) else results


# From this many events on, a request is stored whole and read again by the pipeline (decision 0017):
# the web process then does not build, fingerprint and insert a row per event (5.5 -> 1.5 µs of CPU
# an event), which the pipeline does instead, at 9.6 µs an event in batches of 100 (it reads the
# body again) but 18 µs for a batch of one; so a request with a few events is stored as rows.
WHOLE_FROM = 10


_MISS = object()
_MAY_SEND = {role: role.at_least(Role.responder) for role in Role}  # who may post events


async def _read_body(receive: Receive, limit: int) -> tuple[bytes, bool, bool]:
    """What was read of the body, whether it went over ``limit`` (reading stops there), and whether
    more is left unread."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b"".join(chunks), False, False
        chunk = message.get("body", b"")
        size += len(chunk)
        chunks.append(chunk)
        more = bool(message.get("more_body", False))
        if size > limit or not more:
            return b"".join(chunks), size > limit, more


def _replay(body: bytes, receive: Receive, more: bool) -> Receive:
    """A ``receive`` that gives the application the body already read, then the rest."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": more}
        return await receive()

    return replay
