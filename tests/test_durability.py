"""Nothing acknowledged is lost: ``kill -9`` of opsdesk while events pour in, then a restart.

Every event answered 202 before the kill is in the database after it, the restarted pipeline
processes all of them, and neither an alert nor an incident is duplicated by the pipeline's work
being cut off midway (it commits a batch's alerts, incidents and processed marks together).
Runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import os
import signal
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
from sqlalchemy import func, select

from opsdesk.alerts.models import Alert, Event
from opsdesk.core.db import Database
from opsdesk.incidents.models import Incident
from tests.support import Serve, cli_run, http_ok, until


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
        # 40 alerts, repeated: dedup and the open incident are exercised across the kill.
        body = {"source": "load", "summary": f"event {n}", "service": "shop", "labels": {"n": str(n % 40)}}
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
        with db.session() as s:
            stored = set(s.scalars(select(Event.id)))
        assert set(acked) <= stored, f"{len(set(acked) - stored)} acknowledged events were lost"

        restarted = Serve(env)
        try:

            def pending() -> int:
                with db.session() as s:
                    return (
                        s.scalar(select(func.count()).select_from(Event).where(Event.processed_at.is_(None)))
                        or 0
                    )

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
