"""The thin path end to end, through real parts: an HTTP server goes down and comes back; the
monitor sees it, an incident opens and closes, and the owner team gets both e-mails from a real
SMTP server. Time moves by the injectable clock, so nothing here sleeps for intervals."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from opsdesk.alerts.models import Alert
from opsdesk.auth import service as auth
from opsdesk.auth.schemas import TeamIn
from opsdesk.cmdb import service as cmdb
from opsdesk.cmdb.schemas import ServiceIn
from opsdesk.core.actor import SYSTEM
from opsdesk.incidents import service as incidents
from opsdesk.monitoring import service as monitoring
from opsdesk.monitoring.scheduler import Scheduler
from opsdesk.monitoring.schemas import MonitorIn
from opsdesk.notify import service as notify
from opsdesk.notify.delivery import Notifier
from opsdesk.runtime.pipeline import Pipeline
from tests.support import SmtpSink, TargetServer


@pytest.fixture
async def target():
    server = TargetServer()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def smtp():
    sink = SmtpSink()
    sink.start()
    yield sink
    sink.stop()


@pytest.fixture
def shop(db, clock, accounts, target):
    """A service owned by a team of two, and a monitor on it: down after 2 failures, every 30 s."""
    with db.session() as s:
        team = auth.create_team(
            s,
            TeamIn(name="web-team", member_ids=[accounts["responder"].user.id, accounts["manager"].user.id]),
            actor=SYSTEM,
            now=clock.now(),
        )
        svc = cmdb.create_service(
            s, ServiceIn(name="shop", owner_team_id=team.id), actor=SYSTEM, now=clock.now()
        )
        mon = monitoring.create_monitor(
            s,
            MonitorIn(
                name="shop-http",
                target=target.url,
                interval_seconds=30,
                timeout_seconds=2,
                failures_before_down=2,
                service_id=svc.id,
            ),
            actor=SYSTEM,
            now=clock.now(),
        )
        return {"service_id": svc.id, "monitor_id": mon.id}


@pytest.fixture
async def stages(db, clock, settings, smtp):
    settings.smtp_port = smtp.port
    scheduler = Scheduler(db, clock)
    yield scheduler, Pipeline(db, clock), Notifier(db, clock, settings)
    await scheduler.close()


async def _cycle(clock, stages, seconds: float = 30):
    """One interval passes: checks run, the pipeline runs, the notifier sends."""
    scheduler, pipeline, notifier = stages
    clock.advance(seconds)
    await scheduler.tick()
    await pipeline.drain()
    await notifier.deliver_due()


def _monitor(db, monitor_id):
    with db.session() as s:
        return monitoring.get_monitor(s, monitor_id)


def _open_incidents(db):
    with db.session() as s:
        return incidents.list_incidents(s, status=list(incidents.OPEN))


async def test_outage_opens_incident_emails_team_and_recovery_resolves_it(
    db, clock, shop, target, smtp, stages
):
    await _cycle(clock, stages, 0)
    assert _monitor(db, shop["monitor_id"]).status == "up"
    assert _open_incidents(db) == []

    await target.stop()
    await _cycle(clock, stages)  # first failure: not down yet
    assert _monitor(db, shop["monitor_id"]).status == "up"
    assert _open_incidents(db) == []
    assert smtp.messages == []

    await _cycle(clock, stages)  # second failure: down
    assert _monitor(db, shop["monitor_id"]).status == "down"
    (inc,) = _open_incidents(db)
    assert inc.key == "INC-1" and inc.status == "triggered" and inc.service_id == shop["service_id"]
    mails = await smtp.wait_for(2)
    assert sorted(m["To"] for m in mails) == ["manager@example.org", "responder@example.org"]
    assert all("INC-1" in m["Subject"] and "shop-http is down" in m["Subject"] for m in mails)
    assert "/incidents/1" in mails[0].get_payload()

    await _cycle(clock, stages)  # still down: deduplicated, no new incident, no new mail
    assert len(_open_incidents(db)) == 1
    assert len(smtp.messages) == 2
    with db.session() as s:
        (alert,) = s.scalars(select(Alert)).all()
        assert alert.status == "firing" and alert.event_count == 1

    await target.start()
    await _cycle(clock, stages)
    assert _monitor(db, shop["monitor_id"]).status == "up"
    assert _open_incidents(db) == []
    with db.session() as s:
        inc = incidents.get_incident(s, 1)
        assert inc.status == "resolved" and inc.resolved_by_id is None
        kinds = [e.kind for e in incidents.timeline(s, 1)]
    assert kinds[0] == "opened" and "alert_resolved" in kinds and "resolved" in kinds
    mails = await smtp.wait_for(4)
    resolved = [m for m in mails if "RESOLVED" in m["Subject"]]
    assert sorted(m["To"] for m in resolved) == ["manager@example.org", "responder@example.org"]


async def test_restart_with_a_healthy_target_pages_nobody(db, clock, shop, smtp, stages):
    await _cycle(clock, stages, 0)
    # A new prober (a restart) checks the same healthy monitor again.
    _, pipeline, notifier = stages
    await _cycle(clock, (Scheduler(db, clock), pipeline, notifier))
    assert _open_incidents(db) == []
    assert smtp.messages == []


async def test_email_is_retried_until_the_smtp_server_answers(db, clock, settings, shop, target):
    sink = SmtpSink()  # not started yet: the first attempts fail
    settings.smtp_port = sink.port
    scheduler = Scheduler(db, clock)
    stages = (scheduler, Pipeline(db, clock), Notifier(db, clock, settings))
    try:
        await _cycle(clock, stages, 0)
        await target.stop()
        await _cycle(clock, stages)
        await _cycle(clock, stages)
        with db.session() as s:
            msgs = notify.list_messages(s)
            assert {m.status for m in msgs} == {"pending"} and all(m.attempts == 1 for m in msgs)
            assert "SMTP" in msgs[0].last_error
            assert any("failed (attempt 1)" in e.message for e in incidents.timeline(s, 1))
        sink.start()
        clock.advance(60)  # past the first backoff (5 s ± jitter)
        await stages[2].deliver_due()
        mails = await sink.wait_for(2)
        assert len(mails) == 2
        with db.session() as s:
            assert {m.status for m in notify.list_messages(s)} == {"sent"}
        # Nothing is sent twice.
        clock.advance(3600)
        await stages[2].deliver_due()
        assert len(sink.messages) == 2
    finally:
        await scheduler.close()
        sink.stop()


async def test_manual_resolve_closes_alerts_and_mails_resolution(
    db, clock, shop, target, smtp, stages, accounts
):
    await _cycle(clock, stages, 0)
    await target.stop()
    await _cycle(clock, stages)
    await _cycle(clock, stages)
    with db.session() as s:
        incidents.resolve(
            s, 1, actor=auth.actor_for(accounts["responder"].user), now=clock.now(), note="fixed"
        )
        assert all(a.status == "resolved" for a in s.scalars(select(Alert)))
    await stages[2].deliver_due()
    mails = await smtp.wait_for(4)
    assert len([m for m in mails if "RESOLVED" in m["Subject"]]) == 2
