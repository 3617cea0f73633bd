"""Uptime (time-weighted, from the state history), response-time percentiles, daily bars, and
their API, checked against numbers computed by hand."""

from __future__ import annotations

from datetime import timedelta

import pytest

from opsdesk.cmdb import service as cmdb
from opsdesk.cmdb.schemas import ServiceIn
from opsdesk.core.actor import SYSTEM
from opsdesk.monitoring import service as monitoring
from opsdesk.monitoring import stats
from opsdesk.monitoring.checks.base import CheckOutcome
from opsdesk.monitoring.schemas import MonitorIn, MonitorUpdate


@pytest.fixture
def shop(db, clock):  # type: ignore[no-untyped-def]
    """Two monitors of service "shop", created at 09:00; results then move the clock."""
    with db.session() as s:
        svc = cmdb.create_service(s, ServiceIn(name="shop"), actor=SYSTEM, now=clock.now())
        ids = [
            monitoring.create_monitor(
                s,
                MonitorIn(name=n, target="http://127.0.0.1:9/", failures_before_down=1, service_id=svc.id),
                actor=SYSTEM,
                now=clock.now(),
            ).id
            for n in ("web", "api")
        ]
    return svc.id, ids


def _at(db, clock, minutes, mid, ok, latency=None):  # type: ignore[no-untyped-def]
    """A result ``minutes`` after 09:00."""
    t0 = clock.now().replace(hour=9, minute=0, second=0)
    with db.session() as s:
        monitoring.record_results(
            s,
            [
                monitoring.Result(
                    mid, t0 + timedelta(minutes=minutes), CheckOutcome(ok, "x", latency_ms=latency)
                )
            ],
        )


def test_availability_is_time_weighted_and_ignores_unknown_and_paused(db, clock, shop):
    _, (web, _api) = shop
    # web: unknown 09:00-09:10, up 09:10-10:00, down 10:00-10:30, up 10:30-11:00.
    _at(db, clock, 10, web, True)
    _at(db, clock, 60, web, False)
    _at(db, clock, 90, web, True)
    t0 = clock.now().replace(hour=9, minute=0)
    with db.session() as s:
        a = stats.availability(s, [web], t0, t0 + timedelta(hours=2))[web]
    assert a.known_seconds == 110 * 60 and a.down_seconds == 30 * 60 and a.outages == 1
    assert a.percent == pytest.approx(100 * 80 / 110, abs=1e-3)
    # Paused time is left out of both sides.
    with db.session() as s:
        monitoring.update_monitor(
            s, web, MonitorUpdate(enabled=False), actor=SYSTEM, now=t0 + timedelta(minutes=120)
        )
        a = stats.availability(s, [web], t0, t0 + timedelta(hours=3))[web]
    assert a.known_seconds == 110 * 60 and a.percent == pytest.approx(100 * 80 / 110, abs=1e-3)


def test_service_is_down_while_any_monitor_is(db, clock, shop):
    svc, (web, api) = shop
    _at(db, clock, 0, web, True)
    _at(db, clock, 0, api, True)
    _at(db, clock, 10, web, False)  # web down 09:10-09:30
    _at(db, clock, 20, api, False)  # api down 09:20-09:40
    _at(db, clock, 30, web, True)
    _at(db, clock, 40, api, True)
    t0 = clock.now().replace(hour=9, minute=0)
    with db.session() as s:
        a = stats.service_availability(s, svc, t0, t0 + timedelta(minutes=60))
    assert a.down_seconds == 30 * 60 and a.percent == pytest.approx(50.0)


def test_latency_percentiles(db, clock, shop):
    _, (web, _api) = shop
    for i in range(1, 101):
        _at(db, clock, i, web, True, latency=float(i))
    _at(db, clock, 200, web, False, latency=5000.0)  # failures are not response times
    t0 = clock.now().replace(hour=9, minute=0)
    with db.session() as s:
        p = stats.latency(s, [web], t0, t0 + timedelta(hours=5))
    assert p.count == 100 and p.p50 == pytest.approx(50.5) and p.p95 == pytest.approx(95.05)
    assert p.p99 == pytest.approx(99.01) and p.mean == pytest.approx(50.5)


def test_daily_bars_count_checks_per_day(db, clock, shop):
    _, (web, _api) = shop
    _at(db, clock, 0, web, True)
    _at(db, clock, 1, web, False)
    _at(db, clock, 60 * 24, web, True)  # the next day
    with db.session() as s:
        bar = stats.daily_bars(s, [web], (clock.now() + timedelta(days=1)).date(), days=3)[web]
    assert [(d.checks, d.failures) for d in bar] == [(0, 0), (2, 1), (1, 0)]
    assert [d.percent for d in bar] == [None, 50.0, 100.0]
    assert stats.range_uptime(bar) == pytest.approx(66.67)


def test_uptime_api(client, db, clock, shop, accounts):
    svc, (web, _api) = shop
    h = accounts["viewer"].headers
    _at(db, clock, 0, web, True, latency=10.0)
    _at(db, clock, 30, web, False)
    _at(db, clock, 45, web, True, latency=20.0)
    clock.set(clock.now().replace(hour=10, minute=0))
    r = client.get(f"/api/v1/monitors/{web}/uptime", headers=h, params={"range": "24h"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["availability"]["percent"] == pytest.approx(75.0)
    assert body["availability"]["outages"] == 1
    assert body["latency"]["count"] == 2 and body["latency"]["p50"] == pytest.approx(15.0)
    r = client.get(
        f"/api/v1/monitors/{web}/uptime",
        headers=h,
        params={"start": "2026-03-02T09:00:00Z", "end": "2026-03-02T09:40:00Z"},
    )
    assert r.json()["availability"]["percent"] == pytest.approx(75.0)
    r = client.get(f"/api/v1/services/{svc}/uptime", headers=h, params={"range": "7d"})
    assert r.status_code == 200 and r.json()["availability"]["down_seconds"] == 15 * 60
    hist = client.get(f"/api/v1/monitors/{web}/history", headers=h).json()
    assert [(x["old"], x["new"]) for x in hist] == [("down", "up"), ("up", "down"), ("unknown", "up")]
    daily = client.get(f"/api/v1/monitors/{web}/daily", headers=h, params={"days": 2}).json()
    assert [(d["checks"], d["failures"]) for d in daily] == [(0, 0), (3, 1)]
    # Bad input names the field.
    for params, field in (
        ({"range": "1y"}, "range"),
        ({"start": "2026-03-02T09:00:00Z"}, "end"),
        ({"start": "2026-03-02T10:00:00Z", "end": "2026-03-02T09:00:00Z"}, "end"),
        ({"start": "2026-03-02T09:00:00", "end": "2026-03-02T10:00:00"}, "start"),
        ({"start": "nope", "end": "2026-03-02T10:00:00Z"}, "start"),
    ):
        r = client.get(f"/api/v1/monitors/{web}/uptime", headers=h, params=params)
        assert r.status_code == 422, params
        assert field in r.text, (params, r.text)
    assert client.get("/api/v1/monitors/999999/uptime", headers=h).status_code == 404
    assert client.get(f"/api/v1/monitors/{web}/uptime").status_code == 401
