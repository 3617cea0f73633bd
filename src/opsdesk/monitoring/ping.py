"""The heartbeat ping endpoint: ``/ping/<key>`` and its ``/start``, ``/fail`` and ``/<exit status>``
variants, for GET, POST and HEAD, as cron jobs call them (``curl -fsS -m 10 --retry 5 URL``).

The key in the URL is the credential, as with Healthchecks.io, so the route needs no login. It is
the hottest route of all (every cron job of a fleet calls it), so it is a plain ASGI handler in
front of the application: no routing table, no dependency machinery, its own body limit. The ping
is committed by the batching writer before the answer goes out.
"""

from __future__ import annotations

import re

from starlette.types import ASGIApp, Receive, Scope, Send

from opsdesk.core import metrics
from opsdesk.monitoring.heartbeat import Ping

_KEY = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
BODY_KEPT = 10_000  # bytes of what the job sent that are kept (shown as the result's message)
METHODS = ("GET", "POST", "HEAD")
_HEADERS = [
    (b"content-type", b"text/plain; charset=utf-8"),
    (b"cache-control", b"no-store"),
    (b"x-content-type-options", b"nosniff"),
]


class PingEndpoint:
    """Answers ``/ping/...`` itself and passes every other request to the application."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/ping/"):
            await self.app(scope, receive, send)
            return
        status, text = await self._handle(scope, receive)
        metrics.PINGS.labels(str(status)).inc()
        body = b"" if scope["method"] == "HEAD" else text.encode()
        headers = [*_HEADERS, (b"content-length", str(len(text.encode())).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _handle(self, scope: Scope, receive: Receive) -> tuple[int, str]:
        if scope["method"] not in METHODS:
            return 405, "use GET, POST or HEAD\n"
        parts = scope["path"][len("/ping/") :].split("/")
        if len(parts) > 2 or not _KEY.match(parts[0]):
            return 404, "not found\n"
        key, signal = parts[0], parts[1] if len(parts) == 2 else ""
        exit_status = None
        if signal in ("", "success"):
            kind = "success"
        elif signal in ("start", "fail"):
            kind = signal
        elif signal.isdigit() and len(signal) <= 3 and int(signal) <= 255:
            exit_status = int(signal)
            kind = "success" if exit_status == 0 else "fail"
        else:
            return 400, "invalid signal: use start, fail or an exit status from 0 to 255\n"
        body = b""
        if scope["method"] == "POST":
            read = await _read_body(receive, self.max_body_bytes)
            if read is None:
                return 413, f"the request body is larger than {self.max_body_bytes} bytes\n"
            body = read[:BODY_KEPT]
        state = scope["app"].state  # Starlette puts itself in the scope before its middleware
        item = Ping(key, kind, state.clock.now(), exit_status, body.decode("utf-8", "replace"))
        (found,) = await state.ping_writer.submit([item])
        return (200, "OK\n") if found else (404, "not found\n")


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b"".join(chunks)
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)
