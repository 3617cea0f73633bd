"""Heartbeat monitors: a job calls its ping URL; missing the deadline (period or cron schedule
plus grace) or reporting a failure takes the monitor down, the next success brings it back."""

from __future__ import annotations

from datetime import timedelta

import pytest

from opsdesk.alerts import service as alerts
from opsdesk.core.actor import SYSTEM
from opsdesk.monitoring import heartbeat
from opsdesk.monitoring import service as monitoring
from opsdesk.monitoring.scheduler import Scheduler
from opsdesk.monitoring.schemas import MonitorIn, MonitorUpdate


def _create(db, clock, **kw):  # type: ignore[no-untyped-def]
    fields = {
        "name": "backup",
        "type": "heartbeat",
        "interval_seconds": 3600,
        "config": {"grace_seconds": 600},
    }
    fields.update(kw)
    with db.session() as s:
        m = monitoring.create_monitor(s, MonitorIn(**fields), actor=SYSTEM, now=clock.now())
        return m.id, m.ping_key


def _monitor(db, mid):  # type: ignore[no-untyped-def]
    with db.session() as s:
        m = monitoring.get_monitor(s, mid)
        s.expunge(m)
        return m


async def _tick(db, clock) -> None:  # type: ignore[no-untyped-def]
    sched = Scheduler(db, clock)
    try:
        await sched.tick()
    finally:
        await sched.close()


def test_ping_endpoint_records_success_start_fail_and_exit_status(client, db, clock):
    mid, key = _create(db, clock)
    assert key and len(key) >= 16
    assert client.get(f"/ping/{key}").text == "OK\n"
    m = _monitor(db, mid)
    assert m.status == "up" and m.last_ping_at == clock.now()
    assert m.next_check_at == clock.now() + timedelta(seconds=3600 + 600)

    clock.advance(minutes=1)
    assert client.post(f"/ping/{key}/start").status_code == 200
    clock.advance(seconds=95)
    r = client.post(f"/ping/{key}/1", content=b"rsync: connection unexpectedly closed\n")
    assert r.status_code == 200
    m = _monitor(db, mid)
    assert m.status == "down"
    assert "exit status 1" in m.last_message and "after 1 min 35 s" in m.last_message
    assert "rsync: connection unexpectedly closed" in m.last_message
    assert m.last_latency_ms == pytest.approx(95_000)

    clock.advance(minutes=1)
    assert client.head(f"/ping/{key}/0").status_code == 200
    assert _monitor(db, mid).status == "up"
    assert client.get(f"/ping/{key}/fail").status_code == 200
    assert _monitor(db, mid).status == "down"


def test_ping_bad_input(client, db, clock):
    mid, key = _create(db, clock)
    assert client.get("/ping/no-such-key-at-all").status_code == 404
    assert client.get("/ping/x").status_code == 404  # not even the shape of a key
    assert client.get(f"/ping/{key}/256").status_code == 400
    assert client.get(f"/ping/{key}/bogus").status_code == 400
    assert client.post(f"/ping/{key}", content=b"x" * 5_000_000).status_code == 413
    m = _monitor(db, mid)
    assert m.last_ping_at is None and m.status == "unknown"  # nothing above touched it


async def test_missed_deadline_goes_down_once_and_pages_then_recovers(client, db, clock):
    mid, key = _create(db, clock)
    # A new heartbeat waits for its first ping: it cannot be late before it ever ran.
    clock.advance(days=2)
    await _tick(db, clock)
    assert _monitor(db, mid).status == "unknown"

    client.get(f"/ping/{key}")
    clock.advance(seconds=3600 + 599)
    await _tick(db, clock)
    assert _monitor(db, mid).status == "up"
    clock.advance(seconds=2)
    await _tick(db, clock)
    m = _monitor(db, mid)
    assert m.status == "down" and "no success ping in time" in m.last_message
    assert m.next_check_at is None
    with db.session() as s:
        n_results = len(monitoring.recent_results(s, mid))
    clock.advance(hours=5)
    await _tick(db, clock)  # still down; no new failed result every tick
    with db.session() as s:
        assert len(monitoring.recent_results(s, mid)) == n_results
        alerts.process_pending(s, now=clock.now())
        assert [a.fingerprint for a in alerts.list_alerts(s, status="firing")] == [f"monitor:{mid}"]

    client.get(f"/ping/{key}")
    assert _monitor(db, mid).status == "up"
    with db.session() as s:
        alerts.process_pending(s, now=clock.now())
        assert alerts.list_alerts(s, status="firing") == []


async def test_a_started_run_must_finish_within_grace(client, db, clock):
    mid, key = _create(db, clock, config={"grace_seconds": 120})
    client.get(f"/ping/{key}")
    clock.advance(minutes=10)
    client.get(f"/ping/{key}/start")
    clock.advance(seconds=121)
    await _tick(db, clock)
    m = _monitor(db, mid)
    assert m.status == "down" and "did not finish within its grace time" in m.last_message


async def test_cron_schedule_in_a_time_zone(client, db, clock):
    # 02:30 every day in New York; grace 15 minutes. The clock starts 2026-03-02 09:00 UTC (04:00 EST).
    mid, key = _create(
        db, clock, config={"schedule": "30 2 * * *", "timezone": "America/New_York", "grace_seconds": 900}
    )
    client.get(f"/ping/{key}")
    m = _monitor(db, mid)
    # The next run is 2026-03-03 02:30 EST = 07:30 UTC; + 15 min grace.
    assert m.next_check_at.isoformat() == "2026-03-03T07:45:00+00:00"
    clock.advance(hours=22, minutes=44)  # 07:44 UTC next day
    await _tick(db, clock)
    assert _monitor(db, mid).status == "up"
    clock.advance(minutes=2)
    await _tick(db, clock)
    assert _monitor(db, mid).status == "down"


def test_definition_errors_name_the_field(client, db, clock, accounts):
    h = accounts["manager"].headers
    bad = [
        ({"schedule": "every day"}, "config.schedule"),
        ({"schedule": "61 * * * *"}, "config.schedule"),
        ({"timezone": "Mars/Olympus"}, "config.timezone"),
        ({"grace_seconds": -1}, "config.grace_seconds"),
        ({"nope": 1}, "config.nope"),
    ]
    for config, field in bad:
        r = client.post(
            "/api/v1/monitors", headers=h, json={"name": "j", "type": "heartbeat", "config": config}
        )
        assert r.status_code == 422, config
        assert field in [e["field"] for e in r.json()["errors"]], r.json()
    r = client.post("/api/v1/monitors", headers=h, json={"name": "j", "type": "heartbeat"})
    assert r.status_code == 201
    assert r.json()["ping_url"].endswith("/ping/" + r.json()["ping_key"])
    # Active types still need a target.
    r = client.post("/api/v1/monitors", headers=h, json={"name": "k", "type": "http"})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "target"


async def test_pause_and_resume_restart_the_deadline(client, db, clock):
    mid, key = _create(db, clock)
    client.get(f"/ping/{key}")
    with db.session() as s:
        monitoring.update_monitor(s, mid, MonitorUpdate(enabled=False), actor=SYSTEM, now=clock.now())
    clock.advance(days=3)
    await _tick(db, clock)
    assert _monitor(db, mid).status == "paused"
    assert client.get(f"/ping/{key}").status_code == 200  # accepted, changes no state
    assert _monitor(db, mid).status == "paused"
    with db.session() as s:
        monitoring.update_monitor(s, mid, MonitorUpdate(enabled=True), actor=SYSTEM, now=clock.now())
    m = _monitor(db, mid)
    assert m.next_check_at == clock.now() + timedelta(seconds=3600 + 600)
    await _tick(db, clock)
    assert _monitor(db, mid).status == "unknown"


def test_the_watchdog_leaves_heartbeats_to_their_deadline(client, db, clock):
    _create(db, clock)
    clock.advance(days=1)
    with db.session() as s:
        assert monitoring.watch(s, clock.now()) == []


def test_record_pings_batches_in_order(db, clock):
    mid, key = _create(db, clock)
    t0 = clock.now()
    with db.session() as s:
        found = heartbeat.record_pings(
            s,
            [
                heartbeat.Ping(key, "start", t0),
                heartbeat.Ping("unknown-key-123", "success", t0),
                heartbeat.Ping(key, "success", t0 + timedelta(seconds=30)),
            ],
        )
    assert found == [True, False, True]
    m = _monitor(db, mid)
    assert m.status == "up" and m.last_latency_ms == pytest.approx(30_000)
