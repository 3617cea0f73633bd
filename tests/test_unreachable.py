"""One outage, one page: when a CI that others depend on goes down, the monitors of those others
become unreachable instead of down and page nobody; checks and recovery go on."""

from __future__ import annotations

import pytest

from opsdesk.auth import service as auth
from opsdesk.auth.schemas import TeamIn
from opsdesk.cmdb import service as cmdb
from opsdesk.cmdb.schemas import CIIn, RelationshipIn, ServiceIn
from opsdesk.core.actor import SYSTEM
from opsdesk.incidents import service as incidents
from opsdesk.monitoring import service as monitoring
from opsdesk.monitoring.scheduler import Scheduler
from opsdesk.monitoring.schemas import MonitorIn
from opsdesk.runtime.pipeline import Pipeline
from tests.support import TargetServer


@pytest.fixture
async def servers():
    db_server, app_server = TargetServer(), TargetServer()
    await db_server.start()
    await app_server.start()
    yield db_server, app_server
    await db_server.stop()
    await app_server.stop()


@pytest.fixture
def topology(db, clock, accounts, servers):
    """app-server runs on db-server's database: app CI depends_on db CI; a monitor on each."""
    db_server, app_server = servers
    now = clock.now()
    with db.session() as s:
        team = auth.create_team(
            s, TeamIn(name="ops", member_ids=[accounts["responder"].user.id]), actor=SYSTEM, now=now
        )
        svc = cmdb.create_service(s, ServiceIn(name="shop", owner_team_id=team.id), actor=SYSTEM, now=now)
        db_ci = cmdb.create_ci(
            s, CIIn.model_validate({"name": "db1", "class": "database"}), actor=SYSTEM, now=now
        )
        app_ci = cmdb.create_ci(
            s, CIIn.model_validate({"name": "app1", "class": "application"}), actor=SYSTEM, now=now
        )
        cmdb.create_relationship(
            s,
            RelationshipIn.model_validate(
                {
                    "type": "depends_on",
                    "source_type": "ci",
                    "source_id": app_ci.id,
                    "target_type": "ci",
                    "target_id": db_ci.id,
                }
            ),
            actor=SYSTEM,
            now=now,
        )
        ids = {}
        for name, ci, server in (("app-http", app_ci, app_server), ("db-http", db_ci, db_server)):
            ids[name] = monitoring.create_monitor(
                s,
                MonitorIn(
                    name=name,
                    target=server.url,
                    interval_seconds=30,
                    timeout_seconds=2,
                    failures_before_down=1,
                    service_id=svc.id,
                    ci_id=ci.id,
                ),
                actor=SYSTEM,
                now=now,
            ).id
    return ids


async def _cycle(db, clock, seconds=30):  # type: ignore[no-untyped-def]
    scheduler = Scheduler(db, clock)
    try:
        clock.advance(seconds)
        await scheduler.tick()
        await Pipeline(db, clock).drain()
    finally:
        await scheduler.close()


def _states(db) -> dict[str, tuple[str, str]]:  # type: ignore[no-untyped-def]
    with db.session() as s:
        return {m.name: (m.status, m.last_message) for m in monitoring.list_monitors(s)}


def _alert_count(db) -> int:  # type: ignore[no-untyped-def]
    from opsdesk.alerts import service as alerts

    with db.session() as s:
        return len(alerts.list_alerts(s))


async def test_dependent_monitor_is_unreachable_and_pages_nobody(db, clock, topology, servers):
    db_server, app_server = servers
    await _cycle(db, clock, 0)
    await db_server.stop()
    await app_server.stop()  # the application fails because its database did
    await _cycle(db, clock)
    states = _states(db)
    assert states["db-http"][0] == "down"
    assert states["app-http"][0] == "unreachable" and "db-http is down" in states["app-http"][1]
    assert _alert_count(db) == 1  # one outage, one page
    with db.session() as s:
        assert len(incidents.list_incidents(s)) == 1


async def test_recovery_of_the_upstream_lets_a_still_failing_dependent_page(db, clock, topology, servers):
    db_server, app_server = servers
    await _cycle(db, clock, 0)
    await db_server.stop()
    await app_server.stop()
    await _cycle(db, clock)
    await db_server.start()  # the database is back, the application is still broken
    await _cycle(db, clock)
    states = _states(db)
    assert states["db-http"][0] == "up" and states["app-http"][0] == "down"
    assert _alert_count(db) == 2


async def test_an_unreachable_monitor_recovers_quietly(db, clock, topology, servers):
    db_server, app_server = servers
    await _cycle(db, clock, 0)
    await db_server.stop()
    await app_server.stop()
    await _cycle(db, clock)
    await db_server.start()
    await app_server.start()
    await _cycle(db, clock)
    assert {n: st for n, (st, _) in _states(db).items()} == {"app-http": "up", "db-http": "up"}
    assert _alert_count(db) == 1


def test_upstream_is_transitive_and_follows_only_dependencies(db, clock):
    now = clock.now()
    with db.session() as s:
        a, b, c, d = (
            cmdb.create_ci(s, CIIn.model_validate({"name": n, "class": "server"}), actor=SYSTEM, now=now)
            for n in "abcd"
        )

        def rel(kind: str, src: int, dst: int) -> None:
            cmdb.create_relationship(
                s,
                RelationshipIn.model_validate(
                    {
                        "type": kind,
                        "source_type": "ci",
                        "source_id": src,
                        "target_type": "ci",
                        "target_id": dst,
                    }
                ),
                actor=SYSTEM,
                now=now,
            )

        rel("depends_on", a.id, b.id)
        rel("runs_on", b.id, c.id)
        rel("connects_to", c.id, d.id)
        rel("depends_on", c.id, a.id)  # a cycle must not loop forever
        assert cmdb.upstream_cis(s, a.id) == {b.id, c.id}
        assert cmdb.upstream_cis(s, d.id) == set()
