"""Nothing acknowledged is lost: ``kill -9`` of opsdesk while events pour in, then a restart.

Every event answered 202 before the kill is in the database after it, the restarted pipeline
processes all of them, and neither an alert nor an incident is duplicated by the pipeline's work
being cut off midway (it commits a batch's alerts, incidents and processed marks together).
And pages: opsdesk killed (or stopped) while its webhooks are in flight sends each one again after
the restart, with the same ``webhook-id``, and pages nobody a second time.
Runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from opsdesk.alerts import service as alerts
from opsdesk.alerts.fastpath import WHOLE_FROM
from opsdesk.alerts.models import Alert, Event
from opsdesk.core.db import Database
from opsdesk.incidents.models import Incident
from tests.support import Serve, WebhookReceiver, cli_run, http_ok, stored_event_ids, until


async def test_events_acknowledged_before_a_kill_9_survive_and_are_processed(serve_env, db_url):
    env = serve_env
    cli_run(env, "db", "upgrade")
    cli_run(env, "user", "create", "--email", "src@example.org", "--name", "Source", "--role", "responder")
    cli_run(env, "service", "add", "shop")
    token = (
        cli_run(env, "token", "create", "--user", "src@example.org", "--name", "t").strip().splitlines()[-1]
    )
    base = f"http://127.0.0.1:{env['OPSDESK_PORT']}"
    serve = Serve(env)
    client = httpx.Client(base_url=base, timeout=5)
    await until(lambda: http_ok(client, "/healthz"), "healthz")

    acked: list[int] = []
    lock = threading.Lock()
    killed = threading.Event()

    def send(n: int) -> None:
        if killed.is_set():
            return

        # 40 alerts, repeated: dedup and the open incident are exercised across the kill. Every
        # third request is a batch, stored whole (event_batches) and read by the pipeline later.
        def one(i: int) -> dict[str, Any]:
            return {
                "source": "load",
                "summary": f"event {i}",
                "service": "shop",
                "labels": {"n": str(i % 40)},
            }

        body: Any = [one(n * 100 + i) for i in range(WHOLE_FROM + 2)] if n % 3 == 0 else one(n)
        try:
            r = httpx.post(
                f"{base}/api/v1/events", json=body, headers={"Authorization": f"Bearer {token}"}, timeout=5
            )
        except httpx.TransportError:
            return  # not acknowledged: the client would retry
        if r.status_code == 202:
            with lock:
                acked.extend(r.json()["ids"])
                if len(acked) >= 150 and not killed.is_set():
                    killed.set()
                    os.kill(serve.proc.pid, signal.SIGKILL)

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(send, range(600)))
    serve.proc.wait(timeout=10)
    assert serve.proc.returncode == -signal.SIGKILL
    assert len(acked) >= 150

    db = Database(db_url)
    try:
        stored = set(stored_event_ids(db))
        assert set(acked) <= stored, f"{len(set(acked) - stored)} acknowledged events were lost"

        restarted = Serve(env)
        try:

            def pending() -> int:
                with db.session() as s:
                    return alerts.pending_count(s)

            await until(lambda: pending() == 0, "the restarted pipeline to process every stored event", 60)
        finally:
            restarted.stop()
        with db.session() as s:
            processed = set(s.scalars(select(Event.id).where(Event.alert_id.is_not(None))))
            per_fingerprint = list(
                s.execute(select(Alert.fingerprint, func.count()).group_by(Alert.fingerprint))
            )
            incidents = list(s.scalars(select(Incident)))
        assert set(acked) <= processed
        assert len(per_fingerprint) == len(labels(db))  # one alert per distinct label set stored
        assert all(count == 1 for _, count in per_fingerprint), "an alert was duplicated"
        assert len(incidents) == 1, f"{len(incidents)} incidents for one service's alerts"
    finally:
        db.dispose()


def labels(db: Database) -> set[str]:
    """The ``n`` labels of the stored events (what the alerts must cover, no more, no less)."""
    with db.session() as s:
        return {e.labels["n"] for e in s.scalars(select(Event))}


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["kill-9", "restart"])
async def test_pages_in_flight_when_opsdesk_dies_are_sent_again_once_with_the_same_id(serve_env, db_url, sig):
    from opsdesk.auth import service as auth
    from opsdesk.auth.schemas import UserIn
    from opsdesk.cmdb import service as cmdb
    from opsdesk.cmdb.schemas import ServiceIn
    from opsdesk.core.actor import SYSTEM
    from opsdesk.core.settings import Settings
    from opsdesk.incidents import service as incidents
    from opsdesk.notify import rules
    from opsdesk.notify.models import OutboxMessage
    from opsdesk.oncall import escalation
    from opsdesk.oncall.models import Page
    from opsdesk.oncall.schemas import PolicyIn

    env = dict(
        serve_env,
        OPSDESK_ROLES="notify",
        OPSDESK_NOTIFY_TIMEOUT_SECONDS="1",
        OPSDESK_NOTIFY_LEASE_SECONDS="3",
    )
    cli_run(env, "db", "upgrade")
    Settings(data_dir=Path(env["OPSDESK_DATA_DIR"]), database_url=db_url).configure_secrets()
    secret = rules.new_secret()
    receiver = WebhookReceiver(secret)
    receiver.hold = asyncio.Event()
    await receiver.start()
    db = Database(db_url)
    now = datetime.now(UTC)
    try:
        # Three people on call, each paged by a signed webhook; five incidents escalate at once.
        with db.session() as s:
            users = []
            for i in range(3):
                u = auth.create_user(
                    s,
                    UserIn(email=f"p{i}@example.org", name=f"P{i}", role="responder"),
                    actor=SYSTEM,
                    now=now,
                )
                ch, _ = rules.create_channel(
                    s,
                    rules.ChannelIn(name="hook", kind="webhook", url=receiver.url, secrets=[secret]),
                    owner_id=u.id,
                    actor=SYSTEM,
                    now=now,
                )
                rules.add_rule(s, u.id, rules.RuleIn(channel_id=ch.id), actor=SYSTEM, now=now)
                users.append(u.id)
            policy = escalation.create(
                s,
                PolicyIn.model_validate(
                    {
                        "name": "all",
                        "levels": [
                            {"timeout_minutes": 60, "targets": [{"type": "user", "id": u} for u in users]}
                        ],
                    }
                ),
                actor=SYSTEM,
                now=now,
            )
            svc = cmdb.create_service(
                s, ServiceIn(name="shop", escalation_policy_id=policy.id), actor=SYSTEM, now=now
            )
            for i in range(5):
                incidents.declare(
                    s, title=f"down {i}", service_id=svc.id, severity="critical", actor=SYSTEM, now=now
                )
        expected = 5 * 3

        serve = Serve(env)
        # The receiver holds every delivery: once some are in flight, opsdesk dies.
        await until(lambda: receiver.in_flight >= 5, "deliveries in flight", 30)
        serve.proc.send_signal(sig)
        serve.proc.wait(timeout=20)
        first_round = set(receiver.ids)
        with db.session() as s:
            sent_before = s.scalar(
                select(func.count()).select_from(OutboxMessage).where(OutboxMessage.status == "sent")
            )
        assert sent_before == 0, "a send the receiver never answered was recorded as sent"
        receiver.hold.set()  # the receiver answers now, to a client that is gone

        restarted = Serve(env)
        try:

            def all_sent() -> bool:
                with db.session() as s:
                    statuses = list(s.scalars(select(OutboxMessage.status)))
                return len(statuses) == expected and all(x == "sent" for x in statuses)

            await until(all_sent, "every page sent after the restart", 60)
        finally:
            restarted.stop()
        with db.session() as s:
            keys = set(s.scalars(select(OutboxMessage.idempotency_key)))
            pages = list(s.execute(select(Page.incident_id, Page.user_id)))
        # Nothing lost: every page reached the receiver; nothing repeated: one page per person per
        # incident, and what came twice came with the id the receiver drops a repeat by.
        assert len(pages) == len(set(pages)) == expected
        assert set(receiver.ids) == keys and len(keys) == expected
        repeats = [i for i in receiver.ids if receiver.ids.count(i) > 1]
        # Each one in flight was sent again (its send was never recorded); no other came twice.
        assert set(repeats) == first_round, "a delivery not in flight at the kill came twice"
        assert receiver.forged == 0
    finally:
        receiver.hold.set()
        await receiver.stop()
        db.dispose()
