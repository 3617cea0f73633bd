"""Escalation policies driven by the injectable clock, with pages delivered through real peers: a
loopback webhook receiver that verifies Standard Webhooks signatures with the reference library,
apprise posting to a loopback endpoint, and a real SMTP server. Plus the signed action links."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from opsdesk.cmdb import service as cmdb
from opsdesk.cmdb.schemas import ServiceIn, ServiceUpdate
from opsdesk.core.actor import SYSTEM
from opsdesk.core.clock import ManualClock
from opsdesk.core.db import Database
from opsdesk.core.settings import Settings
from opsdesk.incidents import service as incidents
from opsdesk.incidents.models import TimelineEntry
from opsdesk.notify import links, rules
from opsdesk.notify import service as outbox
from opsdesk.notify.delivery import Notifier
from opsdesk.notify.models import OutboxMessage
from opsdesk.oncall import escalation
from opsdesk.oncall import service as schedules
from opsdesk.oncall.models import Escalation, Page
from opsdesk.oncall.schemas import PolicyIn, ScheduleIn
from tests.conftest import Account
from tests.support import SmtpSink, WebhookReceiver


@pytest.fixture(autouse=True)
def _secrets(settings: Settings) -> None:
    settings.configure_secrets()


def setup_policy(db: Database, clock: ManualClock, accounts: dict[str, Account], *, repeat: int = 1) -> int:
    """Schedule "Primary" (the responder, weekly), policy "Default" (level 1: the schedule, 5 min;
    level 2: the manager, 10 min), service "db" using it. Returns the service id."""
    now = clock.now()
    with db.session() as s:
        schedules.create(
            s,
            ScheduleIn.model_validate(
                {
                    "name": "Primary",
                    "time_zone": "Europe/Berlin",
                    "layers": [
                        {
                            "participants": [accounts["responder"].email],
                            "rotation_start": "2026-03-02T09:00:00",
                            "turn_unit": "weeks",
                        }
                    ],
                }
            ),
            actor=SYSTEM,
            now=now,
        )
        p = escalation.create(
            s,
            PolicyIn.model_validate(
                {
                    "name": "Default",
                    "repeat": repeat,
                    "levels": [
                        {"timeout_minutes": 5, "targets": [{"type": "schedule", "ref": "Primary"}]},
                        {
                            "timeout_minutes": 10,
                            "targets": [{"type": "user", "ref": accounts["manager"].email}],
                        },
                    ],
                }
            ),
            actor=SYSTEM,
            now=now,
        )
        svc = cmdb.create_service(s, ServiceIn(name="db", escalation_policy_id=p.id), actor=SYSTEM, now=now)
        return svc.id


def declare(db: Database, clock: ManualClock, service_id: int, urgency: str = "high") -> int:
    with db.session() as s:
        return incidents.declare(
            s,
            title="db down",
            service_id=service_id,
            severity="critical",
            urgency=urgency,
            actor=SYSTEM,
            now=clock.now(),
        ).id


def tick(db: Database, clock: ManualClock) -> list[tuple[int, float]]:
    with db.session() as s:
        return escalation.run_due(s, now=clock.now(), base_url="http://opsdesk.test")


def pages(db: Database, incident_id: int) -> list[tuple[int, int, int, int]]:
    """(user, round, level, run) of each page, in order."""
    with db.session() as s:
        rows = s.scalars(select(Page).where(Page.incident_id == incident_id).order_by(Page.id))
        return [(p.user_id, p.round, p.level, p.run) for p in rows]


def timeline(db: Database, incident_id: int, kind: str) -> list[str]:
    with db.session() as s:
        q = select(TimelineEntry.message).where(
            TimelineEntry.incident_id == incident_id, TimelineEntry.kind == kind
        )
        return list(s.scalars(q.order_by(TimelineEntry.id)))


def test_levels_time_out_repeat_and_then_exhaust(
    db: Database, clock: ManualClock, accounts: dict[str, Account]
) -> None:
    svc = setup_policy(db, clock, accounts, repeat=1)
    inc = declare(db, clock, svc)
    resp, mgr = accounts["responder"].user.id, accounts["manager"].user.id
    assert [late for _, late in tick(db, clock)] == [0.0]
    assert pages(db, inc) == [(resp, 0, 0, 1)]
    clock.advance(minutes=4, seconds=59)
    assert tick(db, clock) == []  # level 1's 5 minutes are not up
    clock.advance(seconds=1)
    assert len(tick(db, clock)) == 1
    assert pages(db, inc)[-1] == (mgr, 0, 1, 1)
    clock.advance(minutes=10)
    tick(db, clock)  # round 2, level 1
    clock.advance(minutes=5)
    tick(db, clock)  # round 2, level 2
    assert pages(db, inc) == [(resp, 0, 0, 1), (mgr, 0, 1, 1), (resp, 1, 0, 1), (mgr, 1, 1, 1)]
    clock.advance(minutes=10)
    tick(db, clock)
    with db.session() as s:
        esc = escalation.escalation_of(s, inc)
        assert esc is not None and esc.state == "exhausted" and esc.next_at is None
    clock.advance(hours=1)
    assert tick(db, clock) == []
    assert len(pages(db, inc)) == 4
    steps = timeline(db, inc, "escalation")
    assert steps[0] == "Escalation started: policy Default"
    assert steps[1].startswith(
        "Escalation level 1 of 2, round 1 of 2 (Default): paged Responder (on call for Primary)"
    )
    assert "level 2 of 2, round 2 of 2" in steps[4]
    assert steps[-1] == "Escalation stopped: nobody acknowledged after 2 round(s) of policy Default"


def test_acknowledge_stops_escalation_and_cancels_waiting_notifications(
    db: Database, clock: ManualClock, accounts: dict[str, Account]
) -> None:
    svc = setup_policy(db, clock, accounts)
    responder = accounts["responder"]
    with db.session() as s:  # e-mail at once for any urgency; a webhook after 3 minutes for high
        hook, _ = rules.create_channel(
            s,
            rules.ChannelIn(name="pager", kind="webhook", url="http://127.0.0.1:9/hook"),
            owner_id=responder.user.id,
            actor=SYSTEM,
            now=clock.now(),
        )
        rules.add_rule(s, responder.user.id, rules.RuleIn(urgency="any"), actor=SYSTEM, now=clock.now())
        rules.add_rule(
            s,
            responder.user.id,
            rules.RuleIn(urgency="high", delay_minutes=3, channel_id=hook.id),
            actor=SYSTEM,
            now=clock.now(),
        )
    inc = declare(db, clock, svc, urgency="high")
    tick(db, clock)
    with db.session() as s:
        msgs = s.scalars(
            select(OutboxMessage).where(OutboxMessage.incident_id == inc).order_by(OutboxMessage.id)
        ).all()
        assert [(m.channel, (m.next_attempt_at - clock.now()).total_seconds()) for m in msgs] == [
            ("email", 0.0),
            ("webhook", 180.0),
        ]
    clock.advance(minutes=1)
    with db.session() as s:
        incidents.acknowledge(s, inc, actor=SYSTEM, now=clock.now())
    with db.session() as s:
        statuses = [
            m.status
            for m in s.scalars(
                select(OutboxMessage).where(OutboxMessage.incident_id == inc).order_by(OutboxMessage.id)
            )
        ]
        assert statuses == ["cancelled", "cancelled"]  # neither was sent yet
        esc = escalation.escalation_of(s, inc)
        assert esc is not None and esc.state == "acknowledged"
    clock.advance(hours=1)
    assert tick(db, clock) == []
    assert timeline(db, inc, "escalation")[-1] == (
        "Escalation stopped: acknowledged by opsdesk; 2 notification(s) not yet sent were cancelled"
    )
    # A low-urgency incident: only the "any" rule.
    inc2 = declare(db, clock, svc, urgency="low")
    tick(db, clock)
    with db.session() as s:
        assert (
            s.scalar(select(func.count()).select_from(OutboxMessage).where(OutboxMessage.incident_id == inc2))
            == 1
        )


def test_each_person_is_paged_once_per_step_even_when_a_step_is_retried(
    db: Database, clock: ManualClock, accounts: dict[str, Account]
) -> None:
    svc = setup_policy(db, clock, accounts)
    inc = declare(db, clock, svc)
    tick(db, clock)
    with db.session() as s:  # the step's transaction is retried: the row is put back where it was
        esc = s.scalar(select(Escalation).where(Escalation.incident_id == inc))
        assert esc is not None
        esc.level, esc.steps, esc.next_at = 0, 0, clock.now()
    tick(db, clock)
    assert len(pages(db, inc)) == 1
    with db.session() as s:
        assert (
            s.scalar(select(func.count()).select_from(OutboxMessage).where(OutboxMessage.incident_id == inc))
            == 1
        )


def test_reopen_escalates_again_and_a_gap_is_reported(
    db: Database, clock: ManualClock, accounts: dict[str, Account]
) -> None:
    svc = setup_policy(db, clock, accounts)
    inc = declare(db, clock, svc)
    tick(db, clock)
    with db.session() as s:
        incidents.resolve(s, inc, actor=SYSTEM, now=clock.now())
        assert escalation.escalation_of(s, inc).state == "resolved"  # type: ignore[union-attr]
    clock.advance(minutes=1)
    with db.session() as s:
        incidents.reopen(s, inc, actor=None, now=clock.now())
    tick(db, clock)
    assert [p[3] for p in pages(db, inc)] == [1, 2]  # a second run pages again
    # Nobody on call: the step says so.
    with db.session() as s:
        p = escalation.create(
            s,
            PolicyIn.model_validate(
                {"name": "Gap", "levels": [{"targets": [{"type": "schedule", "ref": "Empty"}]}]}
            )
            if schedules.create(s, ScheduleIn(name="Empty"), actor=SYSTEM, now=clock.now())
            else None,  # type: ignore[arg-type]
            actor=SYSTEM,
            now=clock.now(),
        )
        cmdb.update_service(s, svc, ServiceUpdate(escalation_policy_id=p.id), actor=SYSTEM, now=clock.now())
    inc2 = declare(db, clock, svc)
    tick(db, clock)
    assert "nobody to page" in timeline(db, inc2, "escalation")[-1]


async def test_pages_reach_a_signed_webhook_apprise_and_email_and_survive_a_receiver_outage(
    db: Database, clock: ManualClock, accounts: dict[str, Account], settings: Settings
) -> None:
    secret_old, secret_new = rules.new_secret(), rules.new_secret()
    receiver = WebhookReceiver(secret_new)  # knows only the new secret: rotation in progress
    apprise_sink = WebhookReceiver(None)  # apprise's json:// plugin posts here
    smtp = SmtpSink()
    await receiver.start()
    await apprise_sink.start()
    smtp.start()
    settings.smtp_port = smtp.port
    settings.notify_backoff_seconds = 30
    try:
        svc = setup_policy(db, clock, accounts)
        responder = accounts["responder"]
        with db.session() as s:
            hook, _ = rules.create_channel(
                s,
                rules.ChannelIn(
                    name="hook", kind="webhook", url=receiver.url, secrets=[secret_old, secret_new]
                ),
                owner_id=responder.user.id,
                actor=SYSTEM,
                now=clock.now(),
            )
            chat, _ = rules.create_channel(
                s,
                rules.ChannelIn(
                    name="chat", kind="apprise", url=f"json://127.0.0.1:{apprise_sink.port}/apprise"
                ),
                owner_id=responder.user.id,
                actor=SYSTEM,
                now=clock.now(),
            )
            for ch in (None, hook.id, chat.id):
                rules.add_rule(
                    s, responder.user.id, rules.RuleIn(channel_id=ch), actor=SYSTEM, now=clock.now()
                )
        receiver.down = True
        inc = declare(db, clock, svc)
        tick(db, clock)
        notifier = Notifier(db, clock, settings)
        try:
            assert await notifier.deliver_due() == 3
            assert receiver.requests == 1 and receiver.received == []  # it answered 503
            mails = await smtp.wait_for(1)
            assert len(mails) == 1 and mails[0]["To"] == responder.email
            body = mails[0].get_payload()
            assert "Acknowledge: http://opsdesk.test/act/" in body
            # apprise's json:// plugin posted the title and body
            ((_, posted),) = apprise_sink.received
            assert posted["title"].startswith(f"[opsdesk] {incidents.key_of(inc)} ")
            assert "Acknowledge: http://opsdesk.test/act/" in posted["message"]
            # The receiver stays down for 30 minutes of retries with backoff, then comes back.
            for _ in range(12):
                clock.advance(minutes=3)
                await notifier.deliver_due()
            tries = receiver.requests
            assert 4 <= tries <= 8  # 30 s, 60 s, 120 s, 240 s, 300 s … within 36 minutes
            receiver.down = False
            clock.advance(minutes=6)
            assert await notifier.deliver_due() == 1
            assert receiver.forged == 0 and len(receiver.received) == 1
            msg_id, payload = receiver.received[0]
            assert msg_id.startswith("page:")
            assert payload["type"] == "incident.page"
            assert payload["data"]["incident"]["key"] == incidents.key_of(inc)
            assert payload["data"]["actions"]["acknowledge"].startswith("http://opsdesk.test/act/")
            clock.advance(hours=2)
            assert await notifier.deliver_due() == 0  # delivered once, never again
        finally:
            await notifier.close()
        lines = timeline(db, inc, "notification")
        assert any(line.startswith("Webhook to http://127.0.0.1") and "503" in line for line in lines)
        assert sum(line.startswith("Webhook sent") for line in lines) == 1
        assert any(line.startswith("E-mail sent to responder@example.org") for line in lines)
        assert any(line.startswith("Message sent to json://") for line in lines)
    finally:
        await receiver.stop()
        await apprise_sink.stop()
        smtp.stop()


def test_a_wrong_secret_fails_verification_at_the_receiver() -> None:
    """The signature is checked by the reference library, so a receiver with another secret refuses."""
    from standardwebhooks import Webhook

    from opsdesk.notify.channels.webhook import sign

    secret = rules.new_secret()
    body = b'{"type":"x"}'
    header = sign([secret], "msg_1", 1_700_000_000, body)
    headers = {"webhook-id": "msg_1", "webhook-timestamp": "1700000000", "webhook-signature": header}
    from standardwebhooks.webhooks import WebhookVerificationError

    with pytest.raises(WebhookVerificationError):
        Webhook(rules.new_secret()).verify(body, headers)
    # The right secret verifies (the timestamp check is the library's, so send a fresh one).
    import time

    ts = int(time.time())
    fresh = {**headers, "webhook-timestamp": str(ts), "webhook-signature": sign([secret], "msg_1", ts, body)}
    assert Webhook(secret).verify(body, fresh) == {"type": "x"}


# --- signed action links ---------------------------------------------------------------------------


def _link(body: str, action: str) -> str:
    found = re.search(rf"{action.title()}:\s+http://opsdesk.test(/act/\S+)", body)
    assert found, body
    return found.group(1)


def test_action_links_work_once_without_login_and_refuse_forgery_and_expiry(
    client: TestClient, db: Database, clock: ManualClock, accounts: dict[str, Account]
) -> None:
    svc = setup_policy(db, clock, accounts)
    inc = declare(db, clock, svc)
    tick(db, clock)
    with db.session() as s:
        (msg,) = outbox.list_messages(s, incident_id=inc)
        body = msg.body
    ack = _link(body, "acknowledge")
    # Opening the link changes nothing (mail scanners open links); it shows one button.
    page = client.get(ack)
    assert page.status_code == 200 and 'method="post"' in page.text
    with db.session() as s:
        assert incidents.get_incident(s, inc).status == "triggered"
    done = client.post(ack)
    assert done.status_code == 200 and "acknowledged" in done.text
    with db.session() as s:
        got = incidents.get_incident(s, inc)
        assert got.status == "acknowledged" and got.acknowledged_by_id == accounts["responder"].user.id
    assert client.post(ack).status_code == 409  # used
    assert client.get(ack).status_code == 409
    # Forged: a changed claim with the old signature, or a made-up token.
    _, sig = ack.removeprefix("/act/").split(".")
    other = links.make(inc, "resolve", accounts["responder"].user.id, now=clock.now()).split(".")[0]
    assert client.post(f"/act/{other}.{sig}").status_code == 403
    assert client.post("/act/nonsense").status_code == 403
    r = client.post(f"/act/{other}.{sig}", headers={"accept": "application/json"})
    assert r.status_code == 403 and r.headers["content-type"].startswith("application/problem+json")
    # Expired: the resolve link, a day and a minute later.
    res = _link(body, "resolve")
    clock.advance(hours=24, minutes=1)
    r = client.post(res)
    assert r.status_code == 410 and "expired" in r.text
    with db.session() as s:
        assert incidents.get_incident(s, inc).status == "acknowledged"


def test_policy_api_roles_and_bad_input(
    client: TestClient, accounts: dict[str, Account], db: Database, clock: ManualClock
) -> None:
    mgr, resp = accounts["manager"].headers, accounts["responder"].headers
    body: dict[str, Any] = {
        "name": "P",
        "levels": [{"timeout_minutes": 5, "targets": [{"type": "user", "ref": accounts["responder"].email}]}],
    }
    assert client.post("/api/v1/escalation-policies", json=body, headers=resp).status_code == 403
    r = client.post("/api/v1/escalation-policies", json=body, headers=mgr)
    assert r.status_code == 201, r.text
    pid = r.json()["id"]
    assert r.json()["levels"][0]["targets"][0]["name"] == accounts["responder"].email
    for bad in (
        {**body, "name": "Q", "levels": []},
        {**body, "name": "Q", "levels": [{"targets": [{"type": "robot", "id": 1}]}]},
        {**body, "name": "Q", "levels": [{"targets": [{"type": "user", "ref": "ghost@example.org"}]}]},
        {**body, "name": "Q", "levels": [{"timeout_minutes": 0, "targets": [{"type": "user", "id": 1}]}]},
        {**body, "name": "Q", "repeat": 99},
    ):
        r = client.post("/api/v1/escalation-policies", json=bad, headers=mgr)
        assert r.status_code == 422, (bad, r.text)
    assert client.post("/api/v1/escalation-policies", json=body, headers=mgr).status_code == 409
    # A service uses it: it cannot be deleted until the service lets go.
    r = client.post("/api/v1/services", json={"name": "web", "escalation_policy_id": pid}, headers=mgr)
    assert r.status_code == 201, r.text
    assert client.delete(f"/api/v1/escalation-policies/{pid}", headers=mgr).status_code == 409
    assert (
        client.post(
            "/api/v1/services", json={"name": "x", "escalation_policy_id": 999}, headers=mgr
        ).status_code
        == 422
    )
    # Channels and rules: a person's own; a shared one needs a manager; bad URLs are refused.
    r = client.post(
        "/api/v1/me/channels",
        json={"name": "tg", "kind": "apprise", "url": "tgram://123:abc/456"},
        headers=resp,
    )
    assert r.status_code == 201, r.text
    assert r.json()["display"] == "tgram://…" and "abc" not in r.text
    for bad in (
        {"name": "a", "kind": "apprise", "url": "nonsense://x"},
        {"name": "b", "kind": "webhook", "url": "ftp://x"},
        {"name": "c", "kind": "webhook", "url": "http://x", "secrets": ["whsec_%%%notbase64"]},
        {"name": "d", "kind": "email", "address": "not-an-address"},
        {"name": "e", "kind": "pigeon"},
    ):
        assert client.post("/api/v1/me/channels", json=bad, headers=resp).status_code == 422, bad
    assert (
        client.post(
            "/api/v1/channels", json={"name": "w", "kind": "webhook", "url": "http://x/y"}, headers=resp
        ).status_code
        == 403
    )
    made = client.post(
        "/api/v1/channels", json={"name": "w", "kind": "webhook", "url": "http://x/y"}, headers=mgr
    ).json()
    assert made["secrets"][0].startswith("whsec_")  # shown once
    listed = client.get("/api/v1/channels", headers=resp).json()
    assert listed[0]["secrets"] is None
    assert (
        client.post("/api/v1/me/notification-rules", json={"urgency": "whenever"}, headers=resp).status_code
        == 422
    )
    assert (
        client.post(
            "/api/v1/me/notification-rules", json={"channel_id": made["id"]}, headers=resp
        ).status_code
        == 422
    )
    r = client.post(
        "/api/v1/me/notification-rules", json={"urgency": "high", "delay_minutes": 5}, headers=resp
    )
    assert r.status_code == 201 and r.json()["channel"] == "account e-mail"
    assert client.get("/api/v1/incidents/1/escalation", headers=resp).status_code == 404


def test_one_escalation_pass_says_when_the_next_level_is_due(
    db: Database, clock: ManualClock, accounts: dict[str, Account], settings: Settings
) -> None:
    """The notify role sleeps until what ``escalate_once`` says is next, not a fixed poll."""
    from opsdesk.runtime.roles import Runtime

    runtime = Runtime(settings, db, clock, set())
    assert runtime.escalate_once() == (0, None)  # nothing scheduled
    svc = setup_policy(db, clock, accounts)
    declare(db, clock, svc)
    assert runtime.escalate_once() == (1, 300.0)  # level 1 paged; level 2 in its 5 minutes
    clock.advance(minutes=2)
    assert runtime.escalate_once() == (0, 180.0)


async def test_a_storm_is_stepped_whole_before_delivery_is_woken(
    db: Database, clock: ManualClock, accounts: dict[str, Account], settings: Settings
) -> None:
    import asyncio

    from opsdesk.runtime.roles import Runtime

    svc = setup_policy(db, clock, accounts)
    made = [declare(db, clock, svc) for _ in range(5)]
    runtime = Runtime(settings, db, clock, set())
    loop = asyncio.create_task(runtime._escalate_loop(limit=2))  # three transactions
    try:
        await asyncio.wait_for(runtime.notify_wake.wait(), 30)
        with db.session() as s:
            paged = set(s.scalars(select(Page.incident_id)))
        assert paged == set(made), "delivery was woken before every due escalation was stepped"
    finally:
        runtime.stop_event.set()
        await asyncio.wait_for(loop, 10)
