"""The events lane: ``POST /api/v1/events`` answered inside uvicorn's HTTP protocol.

At thousands of single-event requests a second, uvicorn's ASGI machinery (a scope, a request
cycle, a task, receive and send messages per request) costs more CPU than taking the event.
:class:`FastLaneProtocol` is uvicorn's own httptools protocol with one addition: a request for
``POST /api/v1/events`` whose token and names are all in the fast path's caches
(:meth:`opsdesk.alerts.fastpath.EventsEndpoint.prepare`) is handed to the group-commit writer
straight from the parser's callbacks, and its 202 is written to the socket when the writer's
future is done, after the commit, exactly as on the other paths.

Everything else is uvicorn's: any other request, and any events request the lane does not take
(no cached token, a name not cached, invalid JSON, no Content-Length, ``Expect: 100-continue``,
a request pipelined behind another) is given to the application as if the lane were not there,
body included, so every refusal is answered by the routed endpoint. Pipelined requests behind a
lane request wait for it: the lane holds uvicorn's ``cycle`` slot until its answer is written.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson
import uvicorn
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

from opsdesk.alerts.fastpath import (
    ACCEPTED_HEADERS,
    PATH,
    EventsEndpoint,
    accepted,
    bearer_and_length,
    ids_of,
)
from opsdesk.alerts.service import NormalizedEvent, RawEvents
from opsdesk.core import metrics
from opsdesk.core.security import token_digest
from opsdesk.runtime.writer import BatchWriter

log = logging.getLogger("opsdesk.web")
_TAKEN = metrics.EVENTS_LANE.labels("lane")
_HANDED_OVER = metrics.EVENTS_LANE.labels("handed_over")

_PATH = PATH.encode()
_HEAD = b"".join(name + b": " + value + b"\r\n" for name, value in ACCEPTED_HEADERS)
_FAILED = orjson.dumps(
    {
        "type": "about:blank",
        "title": "Service Unavailable",
        "status": 503,
        "detail": "the events could not be stored; none of them was accepted: send them again",
    }
)


# The uvicorn releases the lane was written and tested against: it subclasses uvicorn's protocol and
# uses its internals, so with any other release `opsdesk serve` uses uvicorn's plain protocol.
TESTED_UVICORN = ("0.54.",)


def http_protocol(version: str = uvicorn.__version__) -> type[asyncio.Protocol] | str:
    """What ``opsdesk serve`` gives uvicorn as ``http``: the lane on a tested uvicorn release, else
    uvicorn's own httptools protocol (every request then takes the ASGI fast path), said once."""
    if version.startswith(TESTED_UVICORN):
        return FastLaneProtocol
    log.warning(
        "uvicorn %s is not a release the events lane was tested with (%s); serving without it",
        version,
        ", ".join(f"{v}x" for v in TESTED_UVICORN),
    )
    return "httptools"


_default_cache: tuple[Any, bytes] = (None, b"")


def _default_head(headers: list[tuple[bytes, bytes]]) -> bytes:
    """uvicorn's default headers (date, server) as bytes; uvicorn makes a new list each second."""
    global _default_cache
    if _default_cache[0] is not headers:
        _default_cache = (headers, b"".join(name + b": " + value + b"\r\n" for name, value in headers))
    return _default_cache[1]


class _LaneCycle:
    """Holds uvicorn's ``cycle`` slot while a lane request waits for its commit: a request
    pipelined behind it is queued, and shutdown and disconnects find what they look for."""

    __slots__ = ("disconnected", "keep_alive", "message_event", "response_complete")

    def __init__(self, keep_alive: bool) -> None:
        self.keep_alive = keep_alive
        self.response_complete = False
        self.disconnected = False
        self.message_event = self

    def set(self) -> None:  # connection_lost sets the cycle's message event
        pass


class FastLaneProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, taking cached ``POST /api/v1/events`` requests itself."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        app = config.app
        self.lane: EventsEndpoint | None = getattr(app, "events", None)
        self.lane_state = getattr(app, "state", None)
        self.lane_body: list[bytes] | None = None
        # The last bearer token seen on this connection and its digest: a source sends the same
        # token with every request, and hashing it each time cost a few percent of a request.
        self.lane_token = ("", "")

    def on_message_begin(self) -> None:
        # uvicorn builds the request's ASGI scope here (two dicts, one a copy of the app state); the
        # lane builds it only for a request it gives to the application (_scope_and_headers).
        self.url = b""
        self.expect_100_continue = False
        self.headers = []

    def _scope_and_headers(self) -> None:
        """uvicorn's ``on_message_begin`` for a request the lane does not take, keeping what the
        parser gave since: then uvicorn's ``on_headers_complete``."""
        url, headers, expect = self.url, self.headers, self.expect_100_continue
        super().on_message_begin()
        self.url, self.headers, self.expect_100_continue = url, headers, expect
        self.scope["headers"] = headers
        super().on_headers_complete()

    def on_headers_complete(self) -> None:
        if self._lane_takes():
            self.lane_body = []
            return
        self.lane_body = None
        self._scope_and_headers()

    def _lane_takes(self) -> bool:
        lane = self.lane
        if lane is None or self.url != _PATH or self.parser.get_method() != b"POST":
            return False
        if self._lane_declines(lane.max_body_bytes):
            _HANDED_OVER.inc()
            return False
        return True

    def _lane_declines(self, max_body_bytes: int) -> bool:
        if self.limit_concurrency is not None or self.expect_100_continue or self.parser.should_upgrade():
            return True
        if self.cycle is not None and not self.cycle.response_complete:
            return True  # pipelined behind another request: uvicorn queues it
        token, length = bearer_and_length(self.headers)
        if token is None or length < 0 or length > max_body_bytes:
            return True
        if token != self.lane_token[0]:
            self.lane_token = (token, token_digest(token))
        return False

    def on_body(self, body: bytes) -> None:
        if self.lane_body is None:
            super().on_body(body)
        else:
            self.lane_body.append(body)

    def on_message_complete(self) -> None:
        if self.lane_body is None:
            super().on_message_complete()
            return
        body = b"".join(self.lane_body)
        self.lane_body = None
        lane = self.lane
        writer: BatchWriter[NormalizedEvent | RawEvents, Any] | None = getattr(
            self.lane_state, "event_writer", None
        )
        try:
            events = (
                lane.prepare(self.lane_token[1], body) if lane is not None and writer is not None else None
            )
        except Exception:  # the awaited path answers (and logs) whatever went wrong
            log.debug("the events lane could not prepare a request", exc_info=True)
            events = None
        if events is None or writer is None:
            _HANDED_OVER.inc()
            self._hand_over(body)
            return
        _TAKEN.inc()
        keep_alive = self.parser.get_http_version() != "1.0" and self.parser.should_keep_alive()
        cycle = _LaneCycle(keep_alive)
        self.cycle = cycle  # type: ignore[assignment]
        try:
            fut = writer.submit_nowait(events, self.loop)
        except Exception as exc:  # the writer is stopping: answered 503 like a failed commit
            log.warning("the events writer refused a request: %s", exc)
            fut = self.loop.create_future()
            fut.set_exception(exc)
        fut.add_done_callback(lambda f: self._answer(cycle, f))

    def _hand_over(self, body: bytes) -> None:
        """Give the request to the application, as uvicorn would have from its headers on."""
        self._scope_and_headers()
        if body:
            super().on_body(body)
        super().on_message_complete()

    def _answer(self, cycle: _LaneCycle, fut: asyncio.Future[list[Any]]) -> None:
        failed = fut.cancelled() or fut.exception() is not None  # (the writer logged why)
        if cycle.disconnected or self.transport.is_closing():
            cycle.response_complete = True
            return  # the events are committed (or not) all the same; nobody is left to tell
        if failed:
            status, out = 503, _FAILED
            head = b"content-type: application/problem+json\r\ncache-control: no-store\r\nretry-after: 1\r\n"
        else:
            status, out, head = 202, accepted(ids_of(fut.result())), _HEAD
        parts = [STATUS_LINE[status], _default_head(self.server_state.default_headers)]
        parts += [head, b"content-length: ", str(len(out)).encode(), b"\r\n"]
        if not cycle.keep_alive:
            parts.append(b"connection: close\r\n")
        parts += [b"\r\n", out]
        self.transport.write(b"".join(parts))
        cycle.response_complete = True
        if not cycle.keep_alive:
            self.transport.close()
        self.on_response_complete()
