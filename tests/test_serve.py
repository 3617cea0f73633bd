"""``opsdesk serve`` as a user runs it: a real process, real time, real peers.

First start prints the admin login; a monitor on a local HTTP server goes down and up; the
incident opens and resolves by itself and the team gets both e-mails; an event posted to the
running server becomes an incident too. Runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port
from tests.support import SmtpSink, TargetServer

OPSDESK = str(Path(sys.executable).parent / "opsdesk")


def _cli(env: dict[str, str], *args: str, stdin: str | None = None) -> str:
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


async def _until(check, what: str, timeout: float = 30.0):  # type: ignore[no-untyped-def]
    import asyncio

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out waiting for: {what}")


@pytest.fixture
def env(db_url: str, tmp_path: Path) -> dict[str, str]:
    smtp_port = free_port()
    e = {k: v for k, v in os.environ.items() if not k.startswith("OPSDESK_")}
    e.update(
        OPSDESK_DATA_DIR=str(tmp_path / "var"),
        OPSDESK_DATABASE_URL=db_url,
        OPSDESK_PORT=str(free_port()),
        OPSDESK_SMTP_PORT=str(smtp_port),
        OPSDESK_LOG_FORMAT="json",
    )
    return e


async def test_first_start_then_outage_incident_and_recovery(env):
    smtp = SmtpSink(int(env["OPSDESK_SMTP_PORT"]))
    smtp.start()
    target = TargetServer()
    await target.start()
    _cli(env, "db", "upgrade")
    serve = Serve(env)
    base = f"http://127.0.0.1:{env['OPSDESK_PORT']}"
    try:
        await _until(lambda: any("Password" in line for line in serve.stdout), "the first-start banner")
        banner = "".join(serve.stdout)
        assert f"{base}/login" in banner and "admin@localhost" in banner
        password = re.search(r"Password\s+(\S+)", banner).group(1)  # type: ignore[union-attr]

        client = httpx.Client(base_url=base, timeout=10)
        await _until(lambda: _ok(client, "/healthz"), "healthz")
        login = client.post(
            "/login", data={"email": "admin@localhost", "password": password}, follow_redirects=False
        )
        assert login.status_code == 303 and "opsdesk_session" in login.cookies

        token = (
            _cli(env, "token", "create", "--user", "admin@localhost", "--name", "test")
            .strip()
            .splitlines()[-1]
        )
        h = {"Authorization": f"Bearer {token}"}
        _cli(
            env,
            "user",
            "create",
            "--email",
            "oncall@example.org",
            "--name",
            "On Call",
            "--role",
            "responder",
            "--password-stdin",
            stdin="a long enough password\n",
        )
        _cli(env, "team", "add", "web", "--member", "oncall@example.org")
        _cli(env, "service", "add", "shop", "--team", "web")
        _cli(
            env,
            "monitor",
            "add",
            "--name",
            "shop-http",
            "--url",
            target.url,
            "--interval",
            "1",
            "--timeout",
            "1",
            "--failures",
            "2",
            "--service",
            "shop",
        )

        def monitor_status() -> str:
            return client.get("/api/v1/monitors", headers=h).json()["items"][0]["status"]

        await _until(lambda: monitor_status() == "up", "the monitor to come up")
        await target.stop()
        await _until(lambda: monitor_status() == "down", "the monitor to go down")
        incident = await _until(
            lambda: (client.get("/api/v1/incidents?status=open", headers=h).json()["items"] or [None])[0],
            "an open incident",
        )
        assert incident["key"] == "INC-1"
        await _until(lambda: len(smtp.messages) >= 1, "the incident e-mail")
        assert smtp.messages[0]["To"] == "oncall@example.org" and "INC-1" in smtp.messages[0]["Subject"]

        await target.start()
        await _until(
            lambda: client.get("/api/v1/incidents/INC-1", headers=h).json()["status"] == "resolved",
            "the incident to resolve itself",
        )
        await _until(lambda: len(smtp.messages) >= 2, "the resolution e-mail")
        assert "RESOLVED" in smtp.messages[1]["Subject"]

        r = client.post(
            "/api/v1/events",
            headers=h,
            json={"source": "cron", "summary": "backup failed", "service": "shop", "severity": "error"},
        )
        assert r.status_code == 202
        second = await _until(
            lambda: (client.get("/api/v1/incidents?status=open", headers=h).json()["items"] or [None])[0],
            "an incident from the posted event",
        )
        assert second["title"] == "backup failed"
        assert len(smtp.messages) == 2 or "backup failed" in smtp.messages[-1]["Subject"]

        metrics = client.get("/metrics", headers=h).text
        assert 'opsdesk_events_ingested_total{source="cron"} 1.0' in metrics
    finally:
        code = serve.stop()
        await target.stop()
        smtp.stop()
    # uvicorn shuts down cleanly, then re-raises SIGTERM so the exit status tells how it ended.
    assert code in (0, -signal.SIGTERM), "".join(serve.stderr)[-3000:]
    assert any("Application shutdown complete" in line for line in serve.stderr)
    # Logs are structured: one JSON object per line.
    import json

    logged = [json.loads(line) for line in serve.stderr if line.startswith("{")]
    assert any(rec.get("msg") == "monitor state changed" and rec.get("to") == "down" for rec in logged)


def _ok(client: httpx.Client, path: str) -> bool:
    try:
        return client.get(path).status_code == 200
    except httpx.TransportError:
        return False


async def test_roles_split_over_two_processes(env):
    """The scale-out shape: a web-only process takes the event, a worker process opens the
    incident and sends the e-mail; neither does the other's job."""
    smtp = SmtpSink(int(env["OPSDESK_SMTP_PORT"]))
    smtp.start()
    _cli(env, "db", "upgrade")
    _cli(env, "user", "create", "--email", "oncall@example.org", "--name", "On Call", "--role", "responder")
    _cli(env, "team", "add", "web", "--member", "oncall@example.org")
    _cli(env, "service", "add", "shop", "--team", "web")
    token = (
        _cli(env, "token", "create", "--user", "oncall@example.org", "--name", "t").strip().splitlines()[-1]
    )
    h = {"Authorization": f"Bearer {token}"}
    base = f"http://127.0.0.1:{env['OPSDESK_PORT']}"
    web_only = Serve(env, "--roles", "web")
    client = httpx.Client(base_url=base, timeout=10)
    worker = None
    try:
        await _until(lambda: _ok(client, "/healthz"), "healthz")
        r = client.post("/api/v1/events", headers=h, json={"summary": "queue stuck", "service": "shop"})
        assert r.status_code == 202
        time.sleep(1.5)  # the web process alone never processes events
        assert client.get("/api/v1/incidents", headers=h).json()["items"] == []

        worker = Serve(env, "--roles", "probes,pipeline,notify")
        incident = await _until(
            lambda: (client.get("/api/v1/incidents", headers=h).json()["items"] or [None])[0],
            "the worker to open the incident",
        )
        assert incident["title"] == "queue stuck"
        await _until(lambda: len(smtp.messages) >= 1, "the worker to send the e-mail")
        assert smtp.messages[0]["To"] == "oncall@example.org"
    finally:
        codes = [web_only.stop()] + ([worker.stop()] if worker else [])
        smtp.stop()
    assert all(c in (0, -signal.SIGTERM) for c in codes)
