"""Remote probes: registered per location, fetch their monitors with a token of their own, push
results in order, buffer on disk while the server is away and replay in order when it returns;
a monitor checked from several locations is down only when a quorum of them agree."""

from __future__ import annotations

import os
import subprocess
from datetime import datetime

import aiohttp
import httpx
import orjson
import pytest
from sqlalchemy import select

from opsdesk.alerts.models import Event
from opsdesk.core.actor import SYSTEM
from opsdesk.core.db import Database
from opsdesk.monitoring import service as monitoring
from opsdesk.monitoring.checks.base import CheckOutcome
from opsdesk.monitoring.models import CheckResult
from opsdesk.monitoring.schemas import MonitorIn
from tests.support import OPSDESK, Serve, TargetServer, cli_run, http_ok, until


def _mk(db, clock, **kw):  # type: ignore[no-untyped-def]
    fields = {
        "name": "shop",
        "target": "http://127.0.0.1:9/",
        "interval_seconds": 30,
        "failures_before_down": 1,
    }
    fields.update(kw)
    with db.session() as s:
        return monitoring.create_monitor(s, MonitorIn(**fields), actor=SYSTEM, now=clock.now()).id


def _feed(db, clock, mid, location, ok):  # type: ignore[no-untyped-def]
    clock.advance(10)
    with db.session() as s:
        monitoring.record_results(
            s, [monitoring.Result(mid, clock.now(), CheckOutcome(ok, "fine" if ok else "refused"), location)]
        )
        m = monitoring.get_monitor(s, mid)
        return m.status


def _event_statuses(db) -> list[str]:  # type: ignore[no-untyped-def]
    with db.session() as s:
        return [e.status for e in s.scalars(select(Event).order_by(Event.id))]


def test_quorum_of_locations_decides_down(db, clock):
    mid = _mk(db, clock, locations=["eu", "us", "ap"], quorum=2)
    assert _feed(db, clock, mid, "eu", True) == "up"
    assert _feed(db, clock, mid, "us", True) == "up"
    assert _feed(db, clock, mid, "eu", False) == "degraded"  # one location alone: not down
    assert _event_statuses(db) == []
    assert _feed(db, clock, mid, "us", False) == "down"  # two of three agree
    assert _event_statuses(db) == ["firing"]
    with db.session() as s:
        assert "down from 2 of 3 locations (eu, us)" in monitoring.get_monitor(s, mid).last_message
    assert _feed(db, clock, mid, "eu", True) == "degraded"  # us still fails, alone now
    assert _event_statuses(db) == ["firing", "resolved"]
    assert _feed(db, clock, mid, "us", True) == "up"
    # A location the monitor does not run at changes nothing.
    assert _feed(db, clock, mid, "mars", False) == "up"


def test_monitor_without_local_location_is_not_claimed_by_the_local_prober(db, clock):
    mid = _mk(db, clock, locations=["branch"])
    with db.session() as s:
        assert monitoring.get_monitor(s, mid).next_check_at is None
        assert monitoring.claim_due(s, clock.now()) == []


def test_quorum_larger_than_locations_is_refused(client, accounts):
    r = client.post(
        "/api/v1/monitors",
        headers=accounts["manager"].headers,
        json={"name": "x", "target": "http://127.0.0.1:9/", "locations": ["eu"], "quorum": 2},
    )
    assert r.status_code == 422 and "quorum" in r.text
    r = client.post(
        "/api/v1/monitors",
        headers=accounts["manager"].headers,
        json={"name": "x", "target": "http://127.0.0.1:9/", "locations": ["EU West"]},
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"].startswith("locations")


def test_probe_api_tokens_results_and_replay(client, db, clock, accounts):
    admin = accounts["admin"].headers
    assert (
        client.post(
            "/api/v1/probes", headers=accounts["manager"].headers, json={"location": "eu"}
        ).status_code
        == 403
    )
    r = client.post("/api/v1/probes", headers=admin, json={"location": "eu"})
    assert r.status_code == 201
    token = r.json()["token"]
    assert client.post("/api/v1/probes", headers=admin, json={"location": "eu"}).status_code == 409
    assert client.post("/api/v1/probes", headers=admin, json={"location": "local"}).status_code == 422
    probe = {"Authorization": f"Bearer {token}"}

    mid = _mk(
        db,
        clock,
        locations=["eu"],
        config={"username": "u", "password": "s3cret"},
    )
    _mk(db, clock, name="local-only")
    # The probe's token opens the probe routes and nothing else; a user's token not those.
    assert client.get("/api/v1/monitors", headers=probe).status_code == 401
    assert client.get("/api/v1/probe/assignments", headers=admin).status_code == 401
    assert client.get("/api/v1/probe/assignments").status_code == 401
    a = client.get("/api/v1/probe/assignments", headers=probe).json()
    assert a["location"] == "eu" and [m["id"] for m in a["monitors"]] == [mid]
    assert a["monitors"][0]["config"]["password"] == "s3cret"  # the probe needs it to run the check
    assert "s3cret" not in client.get(f"/api/v1/monitors/{mid}", headers=admin).text

    def result(seq: int, ok: bool) -> dict:
        return {"seq": seq, "monitor_id": mid, "at": clock.now().isoformat(), "ok": ok, "message": f"r{seq}"}

    clock.advance(5)
    body = {"results": [result(1, True), result(2, False)]}
    r = client.post("/api/v1/probe/results", headers=probe, json=body)
    assert r.json() == {"taken": 2, "last_seq": 2}
    # The answer was lost; the probe replays: nothing counts twice.
    r = client.post(
        "/api/v1/probe/results", headers=probe, json={"results": [result(2, False), result(3, False)]}
    )
    assert r.json() == {"taken": 1, "last_seq": 3}
    with db.session() as s:
        assert [
            c.message
            for c in s.scalars(
                select(CheckResult).where(CheckResult.monitor_id == mid).order_by(CheckResult.id)
            )
        ] == ["r1", "r2", "r3"]
        assert monitoring.get_monitor(s, mid).status == "down"
    # Bad input: the field is named and nothing is taken.
    for bad in ({"results": [{"seq": 0, "monitor_id": mid, "at": "x", "ok": 1}]}, {"results": "no"}, {}):
        r = client.post("/api/v1/probe/results", headers=probe, json=bad)
        assert r.status_code == 422, bad
    # Results for a monitor that is gone are acknowledged and dropped.
    r = client.post(
        "/api/v1/probe/results",
        headers=probe,
        json={"results": [{**result(4, True), "monitor_id": 999999}]},
    )
    assert r.json()["last_seq"] == 4
    # Deleting the probe revokes its token at once.
    pid = client.get("/api/v1/probes", headers=admin).json()[0]["id"]
    assert client.delete(f"/api/v1/probes/{pid}", headers=admin).status_code == 204
    assert client.get("/api/v1/probe/assignments", headers=probe).status_code == 401


async def test_probe_buffers_while_the_server_is_away_and_replays_in_order(serve_env, tmp_path):
    env = serve_env
    if not env["OPSDESK_DATABASE_URL"].startswith("sqlite"):
        pytest.skip("one database is enough for the process-level test; the logic runs on both above")
    target = TargetServer()
    await target.start()
    cli_run(env, "db", "upgrade")
    base = f"http://127.0.0.1:{env['OPSDESK_PORT']}"
    server = Serve(env, "--roles", "web,pipeline")
    client = httpx.Client(base_url=base, timeout=10)
    probe = None
    try:
        await until(lambda: http_ok(client, "/healthz"), "healthz")
        token = (
            cli_run(env, "token", "create", "--user", "admin@localhost", "--name", "t")
            .strip()
            .splitlines()[-1]
        )
        h = {"Authorization": f"Bearer {token}"}
        out = cli_run(env, "probes", "create", "branch")
        probe_token = next(w for w in out.split() if w.startswith("odp_"))
        r = client.post(
            "/api/v1/monitors",
            headers=h,
            json={
                "name": "branch-web",
                "target": target.url,
                "interval_seconds": 1,
                "timeout_seconds": 1,
                "failures_before_down": 2,
                "locations": ["branch"],
            },
        )
        assert r.status_code == 201, r.text
        mid = r.json()["id"]
        probe_env = {**env, "OPSDESK_PROBE_TOKEN": probe_token}
        probe = subprocess.Popen(
            [OPSDESK, "probe", "--server", base, "--buffer", str(tmp_path / "buf")],
            env=probe_env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        await until(
            lambda: client.get(f"/api/v1/monitors/{mid}", headers=h).json()["status"] == "up",
            "the probe's first results",
        )
        # The server goes away; meanwhile the target fails and the probe keeps checking.
        assert server.stop() in (0, -15)
        await target.stop()
        outage_started = datetime.now().astimezone()
        buffer = tmp_path / "buf" / "probe-buffer.db"
        await until(lambda: _buffered(buffer) >= 4, "results buffered on disk", timeout=30)
        await target.start()
        server = Serve(env, "--roles", "web,pipeline")
        await until(lambda: http_ok(client, "/healthz"), "healthz again")
        await until(lambda: _buffered(buffer) == 0, "the buffer replayed", timeout=30)
        db = Database(env["OPSDESK_DATABASE_URL"])
        with db.session() as s:
            rows = list(
                s.scalars(select(CheckResult).where(CheckResult.monitor_id == mid).order_by(CheckResult.id))
            )
            during = [r for r in rows if r.at >= outage_started and not r.ok]
            assert len(during) >= 4, "the failures seen while the server was away arrived"
            assert [r.at for r in rows] == sorted(r.at for r in rows), "replayed in order"
            events = [e.status for e in s.scalars(select(Event).order_by(Event.id))]
        db.dispose()
        # The outage it saw was recorded: down (paged) then up again.
        assert events[:1] == ["firing"] and "resolved" in events
    finally:
        if probe is not None:
            probe.terminate()
            probe.wait(timeout=20)
        server.stop()
        await target.stop()


def _buffered(path) -> int:  # type: ignore[no-untyped-def]
    import sqlite3

    if not os.path.exists(path):
        return 0
    try:
        with sqlite3.connect(path, timeout=1) as c:
            return int(c.execute("SELECT count(*) FROM results").fetchone()[0])
    except sqlite3.Error:
        return 0


def test_watchdog_names_the_silent_location(db, clock):
    from opsdesk.alerts import service as alerts

    mid = _mk(db, clock, locations=["eu", "us"], interval_seconds=60, timeout_seconds=5)
    _feed(db, clock, mid, "eu", True)
    _feed(db, clock, mid, "us", True)
    clock.advance(100)
    _feed(db, clock, mid, "eu", True)  # eu keeps reporting; us went silent
    with db.session() as s:
        assert monitoring.watch(s, clock.now()) == []
    clock.advance(60)
    _feed(db, clock, mid, "eu", True)
    with db.session() as s:
        assert monitoring.watch(s, clock.now()) == ["shop"]
        alerts.process_pending(s, now=clock.now())
        firing = [(a.fingerprint, a.summary) for a in alerts.list_alerts(s, status="firing")]
    assert firing == [
        ("watchdog:stale-monitors:us", "1 monitor(s) have not reported in time from probe us: shop")
    ]
    _feed(db, clock, mid, "us", True)
    with db.session() as s:
        assert monitoring.watch(s, clock.now()) == []
        alerts.process_pending(s, now=clock.now())
        assert alerts.list_alerts(s, status="firing") == []


async def test_probe_posts_stay_under_the_body_limit_and_keep_order(tmp_path):
    """Scrape results carry hundreds of samples: the probe splits its posts to stay under the
    server's 1 MiB body limit, in sequence order, and a result too large alone loses its samples."""
    from aiohttp import web

    from opsdesk.monitoring.agent import MAX_POST_BYTES, Agent

    seen: list[int] = []
    sizes: list[int] = []
    samples_of: dict[int, int] = {}

    async def results(request: web.Request) -> web.Response:
        body = await request.read()
        sizes.append(len(body))
        data = orjson.loads(body)
        for r in data["results"]:
            seen.append(r["seq"])
            samples_of[r["seq"]] = len(r["samples"])
        return web.json_response({"taken": len(data["results"]), "last_seq": data["results"][-1]["seq"]})

    app = web.Application(client_max_size=2**20)
    app.router.add_post("/api/v1/probe/results", results)
    runner = web.AppRunner(app)
    await runner.setup()
    from tests.conftest import free_port

    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    agent = Agent(f"http://127.0.0.1:{port}", "odp_x", tmp_path)
    sample = {
        "name": "node_cpu_seconds_total",
        "labels": {"cpu": "0", "mode": "idle"},
        "ts_ms": 1,
        "value": 1.5,
    }
    item = {"monitor_id": 1, "at": "2026-03-02T09:00:00+00:00", "ok": True, "message": "m"}
    agent.buffer.append([{**item, "samples": [sample] * 3000} for _ in range(40)])
    agent.buffer.append([{**item, "samples": [sample] * 20000}])  # alone over the limit
    agent._api = aiohttp.ClientSession()
    try:
        while agent.buffer.count():
            await agent._send()
    finally:
        await agent._api.close()
        agent.buffer.close()
        await runner.cleanup()
    assert seen == list(range(1, 42))
    assert len(sizes) > 1 and max(sizes) < 2**20 and max(sizes) <= MAX_POST_BYTES + 1000
    assert samples_of[41] == 0 and samples_of[1] == 3000
