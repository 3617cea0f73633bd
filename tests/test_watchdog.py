"""No silent monitors: when checks stop coming in (a dead or stuck prober), one alert names the
monitors concerned; it resolves itself when results flow again."""

from __future__ import annotations

import pytest

from opsdesk.alerts import service as alerts
from opsdesk.core.actor import SYSTEM
from opsdesk.incidents import service as incidents
from opsdesk.monitoring import service as monitoring
from opsdesk.monitoring.scheduler import Scheduler
from opsdesk.monitoring.schemas import MonitorIn, MonitorUpdate
from opsdesk.runtime.pipeline import Pipeline
from tests.conftest import PASSWORD
from tests.support import TargetServer, login


@pytest.fixture
async def target():
    server = TargetServer()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def monitors(db, clock, target) -> list[int]:
    with db.session() as s:
        return [
            monitoring.create_monitor(
                s,
                MonitorIn(name=name, target=target.url, interval_seconds=30, timeout_seconds=2),
                actor=SYSTEM,
                now=clock.now(),
            ).id
            for name in ("api", "web")
        ]


async def _tick(db, clock) -> None:  # type: ignore[no-untyped-def]
    scheduler = Scheduler(db, clock)
    try:
        await scheduler.tick()
    finally:
        await scheduler.close()


def _watch(db, clock) -> list[str]:  # type: ignore[no-untyped-def]
    with db.session() as s:
        return monitoring.watch(s, clock.now())


async def _open(db, clock) -> list:  # type: ignore[type-arg,no-untyped-def]
    await Pipeline(db, clock).drain()
    with db.session() as s:
        return incidents.list_incidents(s, status=list(incidents.OPEN))


async def test_silent_monitors_raise_one_alert_then_resolve_when_results_return(db, clock, monitors):
    await _tick(db, clock)
    clock.advance(61)  # two intervals plus the timeout is 62 s
    assert _watch(db, clock) == []
    clock.advance(2)
    assert _watch(db, clock) == ["api", "web"]
    assert _watch(db, clock) == ["api", "web"]  # still stale: the same alert, no second page
    (inc,) = await _open(db, clock)
    assert "2 monitor(s) have not reported" in inc.title and "api, web" in inc.title
    with db.session() as s:
        (alert,) = alerts.list_alerts(s, status="firing")
        assert alert.source == "watchdog" and alert.event_count == 2

    await _tick(db, clock)  # the prober is back
    assert _watch(db, clock) == []
    assert await _open(db, clock) == []


async def test_paused_monitors_are_never_stale(db, clock, monitors):
    with db.session() as s:
        for mid in monitors:
            monitoring.update_monitor(s, mid, MonitorUpdate(enabled=False), actor=SYSTEM, now=clock.now())
    clock.advance(3600)
    assert _watch(db, clock) == []


async def test_the_monitor_pages_mark_stale_monitors(db, clock, monitors, client, accounts):
    await _tick(db, clock)
    login(client, accounts["viewer"].email, PASSWORD)
    html = {"accept": "text/html"}
    assert "monitor-stale" not in client.get(f"/monitors/{monitors[0]}", headers=html).text
    clock.advance(120)
    assert "monitor-stale" in client.get(f"/monitors/{monitors[0]}", headers=html).text
    assert client.get("/monitors", headers=html).text.count(">stale</span>") == 2
