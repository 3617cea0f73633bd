"""Monitors of several check types run side by side through the scheduler, from the API."""

from __future__ import annotations

import asyncio

from opsdesk.monitoring import service as monitoring
from opsdesk.monitoring.scheduler import Scheduler
from tests.conftest import free_port


async def test_tcp_and_ping_monitors_run_through_the_scheduler(client, accounts, db, clock):
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    h = accounts["manager"].headers
    for body in (
        {"name": "tcp-open", "type": "tcp", "target": f"127.0.0.1:{port}"},
        {
            "name": "tcp-closed",
            "type": "tcp",
            "target": f"127.0.0.1:{free_port()}",
            "failures_before_down": 1,
        },
        {"name": "ping-loopback", "type": "ping", "target": "127.0.0.1", "config": {"count": 2}},
    ):
        r = client.post("/api/v1/monitors", json=body, headers=h)
        assert r.status_code == 201, r.text
    scheduler = Scheduler(db, clock)
    try:
        await scheduler.tick()
    finally:
        await scheduler.close()
        server.close()
        await server.wait_closed()
    with db.session() as s:
        states = {m.name: (m.status, m.last_message) for m in monitoring.list_monitors(s)}
    assert states["tcp-open"][0] == "up"
    assert states["tcp-closed"] == ("down", "connection refused")
    assert states["ping-loopback"][0] == "up" and "2/2 replies" in states["ping-loopback"][1]


def test_unknown_type_and_bad_type_config_are_refused(client, accounts):
    h = accounts["manager"].headers
    r = client.post(
        "/api/v1/monitors", json={"name": "x", "type": "carrier-pigeon", "target": "x"}, headers=h
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "type"
    r = client.post(
        "/api/v1/monitors",
        json={"name": "x", "type": "dns", "target": "example.org", "config": {"record_type": "BOGUS"}},
        headers=h,
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"].startswith("config.record_type")
