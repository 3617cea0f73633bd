"""``opsdesk serve`` as a user runs it: a real process, real time, real peers.

First start prints the admin login; a monitor on a local HTTP server goes down and up; the
incident opens and resolves by itself and the team gets both e-mails; an event posted to the
running server becomes an incident too. Runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import re
import signal
import time

import httpx

from tests.support import Serve, SmtpSink, TargetServer, cli_run, http_ok, until


async def test_first_start_then_outage_incident_and_recovery(serve_env):
    env = serve_env
    smtp = SmtpSink(int(env["OPSDESK_SMTP_PORT"]))
    smtp.start()
    target = TargetServer()
    await target.start()
    cli_run(env, "db", "upgrade")
    serve = Serve(env)
    base = f"http://127.0.0.1:{env['OPSDESK_PORT']}"
    try:
        await until(lambda: any("Password" in line for line in serve.stdout), "the first-start banner")
        banner = "".join(serve.stdout)
        assert f"{base}/login" in banner and "admin@localhost" in banner
        password = re.search(r"Password\s+(\S+)", banner).group(1)  # type: ignore[union-attr]

        client = httpx.Client(base_url=base, timeout=10)
        await until(lambda: http_ok(client, "/healthz"), "healthz")
        login = client.post(
            "/login", data={"email": "admin@localhost", "password": password}, follow_redirects=False
        )
        assert login.status_code == 303 and "opsdesk_session" in login.cookies

        token = (
            cli_run(env, "token", "create", "--user", "admin@localhost", "--name", "test")
            .strip()
            .splitlines()[-1]
        )
        h = {"Authorization": f"Bearer {token}"}
        cli_run(
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
        cli_run(env, "team", "add", "web", "--member", "oncall@example.org")
        cli_run(env, "service", "add", "shop", "--team", "web")
        cli_run(
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

        await until(lambda: monitor_status() == "up", "the monitor to come up")
        await target.stop()
        await until(lambda: monitor_status() == "down", "the monitor to go down")
        incident = await until(
            lambda: (client.get("/api/v1/incidents?status=open", headers=h).json()["items"] or [None])[0],
            "an open incident",
        )
        assert incident["key"] == "INC-1"
        await until(lambda: len(smtp.messages) >= 1, "the incident e-mail")
        assert smtp.messages[0]["To"] == "oncall@example.org" and "INC-1" in smtp.messages[0]["Subject"]

        await target.start()
        await until(
            lambda: client.get("/api/v1/incidents/INC-1", headers=h).json()["status"] == "resolved",
            "the incident to resolve itself",
        )
        await until(lambda: len(smtp.messages) >= 2, "the resolution e-mail")
        assert "RESOLVED" in smtp.messages[1]["Subject"]

        r = client.post(
            "/api/v1/events",
            headers=h,
            json={"source": "cron", "summary": "backup failed", "service": "shop", "severity": "error"},
        )
        assert r.status_code == 202
        # The same request again: its token and service are cached now, so uvicorn's protocol
        # takes it in the events lane (the first went the awaited way and filled the caches).
        r = client.post(
            "/api/v1/events",
            headers=h,
            json={"source": "cron", "summary": "backup failed", "service": "shop", "severity": "error"},
        )
        assert r.status_code == 202 and r.json()["accepted"] == 1
        second = await until(
            lambda: (client.get("/api/v1/incidents?status=open", headers=h).json()["items"] or [None])[0],
            "an incident from the posted event",
        )
        assert second["title"] == "backup failed"
        await until(lambda: len(smtp.messages) >= 3, "the e-mail for the posted event's incident")
        assert "backup failed" in smtp.messages[2]["Subject"]

        metrics = client.get("/metrics", headers=h).text
        assert 'opsdesk_events_ingested_total{source="cron"} 2.0' in metrics
        assert 'opsdesk_events_lane_requests_total{outcome="lane"} 1.0' in metrics
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


async def test_roles_split_over_two_processes(serve_env):
    env = serve_env
    """The scale-out shape: a web-only process takes the event, a worker process opens the
    incident and sends the e-mail; neither does the other's job."""
    smtp = SmtpSink(int(env["OPSDESK_SMTP_PORT"]))
    smtp.start()
    cli_run(env, "db", "upgrade")
    cli_run(
        env,
        "user",
        "create",
        "--email",
        "oncall@example.org",
        "--name",
        "On Call",
        "--role",
        "responder",
    )
    cli_run(env, "team", "add", "web", "--member", "oncall@example.org")
    cli_run(env, "service", "add", "shop", "--team", "web")
    token = (
        cli_run(env, "token", "create", "--user", "oncall@example.org", "--name", "t")
        .strip()
        .splitlines()[-1]
    )
    h = {"Authorization": f"Bearer {token}"}
    base = f"http://127.0.0.1:{env['OPSDESK_PORT']}"
    web_only = Serve(env, "--roles", "web")
    client = httpx.Client(base_url=base, timeout=10)
    worker = None
    try:
        await until(lambda: http_ok(client, "/healthz"), "healthz")
        r = client.post("/api/v1/events", headers=h, json={"summary": "queue stuck", "service": "shop"})
        assert r.status_code == 202
        time.sleep(1.5)  # the web process alone never processes events
        assert client.get("/api/v1/incidents", headers=h).json()["items"] == []

        worker = Serve(env, "--roles", "probes,pipeline,notify")
        incident = await until(
            lambda: (client.get("/api/v1/incidents", headers=h).json()["items"] or [None])[0],
            "the worker to open the incident",
        )
        assert incident["title"] == "queue stuck"
        await until(lambda: len(smtp.messages) >= 1, "the worker to send the e-mail")
        assert smtp.messages[0]["To"] == "oncall@example.org"
    finally:
        codes = [web_only.stop()] + ([worker.stop()] if worker else [])
        smtp.stop()
    assert all(c in (0, -signal.SIGTERM) for c in codes)
