"""Real peers for tests: an HTTP server that can be stopped and started, and an SMTP sink."""

from __future__ import annotations

import asyncio
import email
import json
import re
import signal
import subprocess
import sys
import threading
import time
from email.message import Message
from pathlib import Path
from typing import Any

import httpx
from aiohttp import web
from aiosmtpd.controller import Controller

from tests.conftest import free_port


class TargetServer:
    """A loopback HTTP server answering ``status`` on every path; stop() and start() it at will."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.port = free_port()
        self.hits = 0
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/health"

    async def _handle(self, request: web.Request) -> web.Response:
        self.hits += 1
        return web.Response(status=self.status, text="ok" if self.status < 400 else "failing")

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


class _Sink:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 OK"


class SmtpSink:
    """A real SMTP server (aiosmtpd) on loopback that keeps every message it receives."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.handler = _Sink()
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port)

    @property
    def messages(self) -> list[Message]:
        return self.handler.messages

    def start(self) -> None:
        self.controller.start()

    def stop(self) -> None:
        self.controller.stop()

    async def wait_for(self, count: int, timeout: float = 10.0) -> list[Message]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(self.messages) < count and loop.time() < deadline:
            await asyncio.sleep(0.05)
        return self.messages


CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


def login(client: Any, email: str, password: str) -> str:
    """Sign in through the login form; returns the session's CSRF token (read from a page)."""
    r = client.post("/login", data={"email": email, "password": password}, follow_redirects=False)
    assert r.status_code == 303, r.text
    found = CSRF_FIELD.search(client.get("/incidents", headers={"accept": "text/html"}).text)
    assert found is not None
    return found.group(1)


OPSDESK = str(Path(sys.executable).parent / "opsdesk")


def cli_run(env: dict[str, str], *args: str, stdin: str | None = None) -> str:
    out = subprocess.run([OPSDESK, *args], env=env, input=stdin, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr + out.stdout
    return out.stdout


class Serve:
    def __init__(self, env: dict[str, str], *args: str) -> None:
        self.proc = subprocess.Popen(
            [OPSDESK, "serve", *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        threading.Thread(target=self._pump, args=(self.proc.stdout, self.stdout), daemon=True).start()
        threading.Thread(target=self._pump, args=(self.proc.stderr, self.stderr), daemon=True).start()

    @staticmethod
    def _pump(stream, sink: list[str]) -> None:  # type: ignore[no-untyped-def]
        for line in stream:
            sink.append(line)

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


async def until(check, what: str, timeout: float = 30.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out waiting for: {what}")


def http_ok(client: httpx.Client, path: str) -> bool:
    try:
        return client.get(path).status_code == 200
    except httpx.TransportError:
        return False


class WebhookReceiver:
    """A loopback HTTP receiver that verifies Standard Webhooks signatures with the reference
    library (``standardwebhooks``), keeps what verified, and can be taken down (answers 503).
    Without a secret it keeps every JSON body it gets (for apprise's ``json://``)."""

    def __init__(self, secret: str | None) -> None:
        from standardwebhooks import Webhook

        self.verifier = Webhook(secret) if secret else None
        self.port = free_port()
        self.received: list[tuple[str, dict[str, Any]]] = []  # (webhook-id, payload)
        self.forged = 0
        self.down = False
        self.requests = 0
        # While ``hold`` is set and not released, each delivery is kept (counted in ``in_flight``)
        # and answered only on release: a receiver that is slow, so sends are in flight.
        self.hold: asyncio.Event | None = None
        self.in_flight = 0
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    @property
    def ids(self) -> list[str]:
        return [i for i, _ in self.received]

    async def _handle(self, request: web.Request) -> web.Response:
        self.requests += 1
        if self.down:
            return web.Response(status=503, text="down for maintenance")
        body = await request.read()
        if self.verifier is None:
            self.received.append((request.headers.get("webhook-id", ""), json.loads(body)))
            return web.Response(status=200)
        try:
            payload = self.verifier.verify(body, dict(request.headers))
        except Exception:
            self.forged += 1
            return web.Response(status=401, text="bad signature")
        self.received.append((request.headers["webhook-id"], payload))
        if self.hold is not None and not self.hold.is_set():
            self.in_flight += 1
            await self.hold.wait()
        return web.Response(status=204)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


def stored_event_ids(db: Any) -> list[int]:
    """The ids of every event committed, ascending: events rows, and the events of batches the
    pipeline has not turned into rows yet (``event_batches``; each holds its events' ids)."""
    from sqlalchemy import select

    from opsdesk.alerts.models import Event, EventBatch

    with db.session() as s:
        ids = list(s.scalars(select(Event.id)))
        for first, count, listed in s.execute(select(EventBatch.id, EventBatch.count, EventBatch.ids)):
            ids += json.loads(listed) if listed else range(first, first + count)
    return sorted(ids)


def expand_batches(db: Any) -> None:
    """Turn every stored batch into events rows, as the pipeline does before it processes them."""
    from opsdesk.alerts import service as alerts

    with db.session() as s:
        while alerts.expand_batches(s, 10_000) is not None:
            pass
