"""``POST /hooks/<key>``: integrations' own keys, signatures, every refusal storing nothing, and
Debian's real prometheus-alertmanager posting to opsdesk end to end."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from opsdesk.alerts import integrations
from opsdesk.alerts.models import Alert, Event, Integration
from opsdesk.alerts.service import process_pending
from opsdesk.audit.models import AuditEntry
from opsdesk.core.clock import ManualClock
from opsdesk.core.db import Database
from tests.conftest import Account, free_port

DATA = Path(__file__).parent / "data"
PROBLEM = "application/problem+json"
ALERTMANAGER = "/usr/bin/prometheus-alertmanager"


def load(name: str) -> bytes:
    return (DATA / name).read_bytes()


def event_count(db: Database) -> int:
    with db.session() as s:
        return s.scalar(select(func.count()).select_from(Event)) or 0


def create(client: TestClient, manager: Account, **body: Any) -> dict[str, Any]:
    r = client.post("/api/v1/integrations", json=body, headers=manager.headers)
    assert r.status_code == 201, r.text
    return dict(r.json())


@pytest.fixture
def manager(accounts: dict[str, Account]) -> Account:
    return accounts["manager"]


@pytest.fixture
def checkout(client: TestClient, manager: Account) -> int:
    r = client.post("/api/v1/services", json={"name": "checkout"}, headers=manager.headers)
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


def post(client: TestClient, key: str, body: bytes, **headers: str) -> httpx.Response:
    return client.post(f"/hooks/{key}", content=body, headers={"content-type": "application/json", **headers})


def assert_refused(r: httpx.Response, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(PROBLEM)
    return dict(r.json())


# --- management ------------------------------------------------------------------------------------


def test_create_shows_the_key_and_url_once(client: TestClient, manager: Account, checkout: int) -> None:
    made = create(client, manager, name="prod-am", kind="alertmanager", service_id=checkout)

    assert made["key"].startswith("odh_")
    assert made["hook_url"].endswith(f"/hooks/{made['key']}")
    assert made["signed"] is False and made["service_id"] == checkout
    listed = client.get("/api/v1/integrations", headers=manager.headers).json()
    assert [i["name"] for i in listed] == ["prod-am"]
    assert "key" not in listed[0] and "hook_url" not in listed[0]


def test_create_refuses_bad_input(client: TestClient, manager: Account) -> None:
    r = client.post("/api/v1/integrations", json={"name": "x", "kind": "pagerduty"}, headers=manager.headers)
    assert assert_refused(r, 422)["errors"][0]["field"] == "kind"
    r = client.post(
        "/api/v1/integrations",
        json={"name": "x", "kind": "generic", "service_id": 999},
        headers=manager.headers,
    )
    assert assert_refused(r, 422)["errors"][0]["field"] == "service_id"
    create(client, manager, name="x", kind="generic")
    assert_refused(
        client.post("/api/v1/integrations", json={"name": "x", "kind": "generic"}, headers=manager.headers),
        409,
    )


def test_the_key_is_stored_hashed_and_the_secret_encrypted(
    client: TestClient, manager: Account, db: Database
) -> None:
    made = create(client, manager, name="signed", kind="generic", secret="s" * 32)
    with db.session() as s:
        row = s.get(Integration, made["id"])
        assert row is not None
        assert made["key"] not in row.key_hash and "s" * 32 not in (row.secret_encrypted or "")
        assert integrations.secret_of(row) == "s" * 32


def test_rotate_replaces_the_key_and_delete_removes_it(
    client: TestClient, manager: Account, db: Database
) -> None:
    made = create(client, manager, name="g", kind="generic")
    r = client.post(f"/api/v1/integrations/{made['id']}/rotate", headers=manager.headers)
    assert r.status_code == 200, r.text
    new = r.json()["key"]

    assert_refused(post(client, made["key"], b'{"summary": "x"}'), 404)
    assert post(client, new, b'{"summary": "x"}').status_code == 202
    assert client.delete(f"/api/v1/integrations/{made['id']}", headers=manager.headers).status_code == 204
    assert_refused(post(client, new, b'{"summary": "x"}'), 404)
    with db.session() as s:
        actions = list(
            s.scalars(
                select(AuditEntry.action)
                .where(AuditEntry.entity_type == "integration")
                .order_by(AuditEntry.id)
            )
        )
    assert actions == ["create", "rotate_key", "delete"]


# --- receiving -------------------------------------------------------------------------------------


def test_alertmanager_fires_and_resolves(
    client: TestClient, manager: Account, db: Database, clock: ManualClock, checkout: int
) -> None:
    key = create(client, manager, name="am", kind="alertmanager")["key"]

    r = post(client, key, load("alertmanager_firing.json"))
    assert r.status_code == 202, r.text
    assert r.json()["accepted"] == 1
    with db.session() as s:
        (ev,) = s.scalars(select(Event))
        assert (ev.fingerprint, ev.status, ev.severity, ev.service_id) == (
            "alertmanager:5f2c1a7b9e3d4c60",
            "firing",
            "critical",
            checkout,
        )
        process_pending(s, now=clock.now())
    assert post(client, key, load("alertmanager_resolved.json")).status_code == 202
    with db.session() as s:
        process_pending(s, now=clock.now())
        (alert,) = s.scalars(select(Alert))
        assert alert.status == "resolved" and alert.service_id == checkout
        used = s.scalar(select(Integration.last_used_at))
    assert used == clock.now()


def test_a_group_of_three_is_three_events_on_the_default_service(
    client: TestClient, manager: Account, db: Database, checkout: int
) -> None:
    key = create(client, manager, name="am", kind="alertmanager", service_id=checkout)["key"]

    r = post(client, key, load("alertmanager_grouped.json"))

    assert r.status_code == 202 and r.json()["accepted"] == 3
    with db.session() as s:
        rows = list(s.scalars(select(Event).order_by(Event.id)))
    assert [e.status for e in rows] == ["firing", "firing", "resolved"]
    assert {e.service_id for e in rows} == {checkout}


def test_an_unknown_service_label_falls_back_to_the_default(
    client: TestClient, manager: Account, db: Database, checkout: int
) -> None:
    key = create(client, manager, name="am", kind="alertmanager", service_id=checkout)["key"]
    payload = json.loads(load("alertmanager_firing.json"))
    payload["alerts"][0]["labels"]["service"] = "not-in-the-cmdb"

    assert post(client, key, json.dumps(payload).encode()).status_code == 202
    with db.session() as s:
        (ev,) = s.scalars(select(Event))
    assert ev.service_id == checkout and ev.labels["service"] == "not-in-the-cmdb"


def test_grafana_and_the_bearer_form(client: TestClient, manager: Account, db: Database) -> None:
    key = create(client, manager, name="grafana", kind="grafana")["key"]

    r = client.post(
        "/hooks",
        content=load("grafana_firing.json"),
        headers={"content-type": "application/json", "authorization": f"Bearer {key}"},
    )

    assert r.status_code == 202, r.text
    with db.session() as s:
        (ev,) = s.scalars(select(Event))
    assert ev.fingerprint == "grafana:8e4f5c3b2a1d0e9f" and ev.source == "grafana"
    assert_refused(client.post("/hooks", content=b"{}", headers={"content-type": "application/json"}), 404)


def test_signed_requests(client: TestClient, manager: Account, db: Database, clock: ManualClock) -> None:
    secret = "a-long-shared-secret-0123456789"
    key = create(client, manager, name="signed", kind="generic", secret=secret)["key"]
    body = b'{"summary": "signed event"}'
    ts = str(int(clock.now().timestamp()))

    ok = post(
        client,
        key,
        body,
        **{"x-opsdesk-timestamp": ts, "x-opsdesk-signature": integrations.sign(secret, ts, body)},
    )

    assert ok.status_code == 202, ok.text
    assert event_count(db) == 1

    # The same signed request again, within the tolerance: a replay, refused and not stored.
    again = post(
        client,
        key,
        body,
        **{"x-opsdesk-timestamp": ts, "x-opsdesk-signature": integrations.sign(secret, ts, body)},
    )
    assert "replay" in assert_refused(again, 409)["detail"]
    assert event_count(db) == 1
    # Signed anew (a later timestamp), the same body is a new delivery.
    clock.advance(1)
    ts2 = str(int(clock.now().timestamp()))
    fresh = post(
        client,
        key,
        body,
        **{"x-opsdesk-timestamp": ts2, "x-opsdesk-signature": integrations.sign(secret, ts2, body)},
    )
    assert fresh.status_code == 202, fresh.text
    assert event_count(db) == 2


def _signed_refusals(secret: str, clock: ManualClock) -> list[tuple[str, dict[str, str], str]]:
    body = b'{"summary": "x"}'
    now = str(int(clock.now().timestamp()))
    stale = str(int(clock.now().timestamp()) - 301)
    future = str(int(clock.now().timestamp()) + 600)
    return [
        ("unsigned", {}, "requires a signature"),
        (
            "no timestamp",
            {"x-opsdesk-signature": integrations.sign(secret, now, body)},
            "x-opsdesk-timestamp",
        ),
        (
            "wrong secret",
            {"x-opsdesk-timestamp": now, "x-opsdesk-signature": integrations.sign("other" * 5, now, body)},
            "does not match",
        ),
        (
            "other body",
            {"x-opsdesk-timestamp": now, "x-opsdesk-signature": integrations.sign(secret, now, b"{}")},
            "does not match",
        ),
        (
            "stale (a replay)",
            {"x-opsdesk-timestamp": stale, "x-opsdesk-signature": integrations.sign(secret, stale, body)},
            "x-opsdesk-timestamp is 301 s away",
        ),
        (
            "from the future",
            {"x-opsdesk-timestamp": future, "x-opsdesk-signature": integrations.sign(secret, future, body)},
            "stale or replayed",
        ),
        (
            "timestamp not a number",
            {"x-opsdesk-timestamp": "yesterday", "x-opsdesk-signature": "sha256=00"},
            "unix",
        ),
    ]


def test_bad_signatures_are_401_and_store_nothing(
    client: TestClient, manager: Account, db: Database, clock: ManualClock
) -> None:
    secret = "a-long-shared-secret-0123456789"
    key = create(client, manager, name="signed", kind="generic", secret=secret)["key"]
    before = event_count(db)

    for case, headers, words in _signed_refusals(secret, clock):
        problem = assert_refused(post(client, key, b'{"summary": "x"}', **headers), 401)
        assert words in problem["detail"], case

    assert event_count(db) == before
    with db.session() as s:
        assert s.scalar(select(Integration.last_used_at)) is None


def test_refusals_are_clear_and_store_nothing(client: TestClient, manager: Account, db: Database) -> None:
    key = create(client, manager, name="am", kind="alertmanager")["key"]
    generic = create(client, manager, name="api", kind="generic")["key"]
    firing = load("alertmanager_firing.json")
    missing = json.loads(firing)
    del missing["alerts"][0]["labels"]
    before = event_count(db)

    assert_refused(post(client, "odh_" + "x" * 43, firing), 404)
    assert_refused(post(client, "nonsense", firing), 404)
    assert_refused(client.post(f"/hooks/{key}", content=firing, headers={"content-type": "text/plain"}), 415)
    assert_refused(client.post(f"/hooks/{key}", content=firing), 415)
    assert assert_refused(post(client, key, b'{"version": "4", '), 422)["errors"][0]["field"] == "body"
    p = assert_refused(post(client, key, json.dumps(missing).encode()), 422)
    assert p["errors"][0]["field"] == "alerts[0].labels"
    huge = b'{"summary": "' + b"x" * 1_100_000 + b'"}'
    assert_refused(post(client, key, huge), 413)
    p = assert_refused(post(client, generic, b'{"summary": "x", "service": "nope"}'), 422)
    assert p["errors"][0]["field"] == "service"

    assert event_count(db) == before
    with db.session() as s:
        assert set(s.scalars(select(Integration.last_used_at))) == {None}


def test_hooks_need_no_user_but_refuse_user_tokens_as_keys(
    client: TestClient, accounts: dict[str, Account], db: Database
) -> None:
    r = client.post(
        "/hooks",
        content=b'{"summary": "x"}',
        headers={"content-type": "application/json", **accounts["admin"].headers},
    )

    assert_refused(r, 404)
    assert event_count(db) == 0


# --- end to end with the real Alertmanager -------------------------------------------------------


class ThreadServer:
    """The app under test on a loopback port, served by uvicorn in a thread."""

    def __init__(self, app: Any, port: int) -> None:
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> ThreadServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


@pytest.fixture
def alertmanager_bin() -> str:
    if not shutil.which(ALERTMANAGER):
        pytest.skip("Debian's prometheus-alertmanager is not installed (.ci/run installs it)")
    return ALERTMANAGER


@pytest.fixture
def served(app: Any, db: Database, accounts: dict[str, Account]) -> Iterator[str]:
    port = free_port()
    with ThreadServer(app, port):
        yield f"http://127.0.0.1:{port}"


def _start_alertmanager(binary: str, tmp: Path, hook_url: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    config = tmp / "alertmanager.yml"
    config.write_text(
        "route:\n"
        "  receiver: opsdesk\n"
        "  group_by: [alertname]\n"
        "  group_wait: 1s\n"
        "  group_interval: 1s\n"
        "  repeat_interval: 1h\n"
        "receivers:\n"
        "  - name: opsdesk\n"
        "    webhook_configs:\n"
        f"      - url: '{hook_url}'\n"
        "        send_resolved: true\n"
    )
    (tmp / "am-data").mkdir()
    log = (tmp / "alertmanager.log").open("wb")
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.path={tmp / 'am-data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            if httpx.get(f"{base}/-/ready", timeout=1).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail("alertmanager did not start:\n" + (tmp / "alertmanager.log").read_text())
        time.sleep(0.1)


def _wait_for(db: Database, clock: ManualClock, status: str, timeout: float = 30) -> Alert:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with db.session() as s:
            process_pending(s, now=clock.now())
            alert = s.scalar(select(Alert).where(Alert.source == "alertmanager"))
            if alert is not None and alert.status == status:
                s.expunge(alert)
                return alert
        time.sleep(0.2)
    pytest.fail(f"no {status} alert from alertmanager within {timeout} s")


def test_real_alertmanager_fires_and_resolves_through_the_hook(
    alertmanager_bin: str, served: str, manager: Account, db: Database, clock: ManualClock, tmp_path: Path
) -> None:
    with httpx.Client(base_url=served, headers=manager.headers, timeout=10) as opsdesk:
        r = opsdesk.post("/api/v1/services", json={"name": "checkout"})
        assert r.status_code == 201, r.text
        checkout = r.json()["id"]
        r = opsdesk.post("/api/v1/integrations", json={"name": "am", "kind": "alertmanager"})
        assert r.status_code == 201, r.text
        hook_url = f"{served}/hooks/{r.json()['key']}"
    proc, am = _start_alertmanager(alertmanager_bin, tmp_path, hook_url)
    try:
        labels = {
            "alertname": "CheckoutDown",
            "service": "checkout",
            "severity": "critical",
            "instance": "web-1",
        }
        start = datetime.now(UTC) - timedelta(seconds=5)
        alert = {
            "labels": labels,
            "annotations": {"summary": "checkout is down from e2e"},
            "startsAt": start.isoformat(),
            "generatorURL": "http://prometheus.invalid/graph",
        }
        assert httpx.post(f"{am}/api/v2/alerts", json=[alert], timeout=5).status_code == 200

        fired = _wait_for(db, clock, "firing")
        assert fired.summary == "checkout is down from e2e"
        assert fired.severity == "critical" and fired.service_id == checkout
        assert fired.fingerprint.startswith("alertmanager:") and len(fired.fingerprint) > len("alertmanager:")

        ended = {**alert, "endsAt": (datetime.now(UTC) - timedelta(seconds=1)).isoformat()}
        assert httpx.post(f"{am}/api/v2/alerts", json=[ended], timeout=5).status_code == 200

        resolved = _wait_for(db, clock, "resolved")
        assert resolved.id == fired.id
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_last_used_at_is_written_at_most_once_a_minute(
    client: TestClient, manager: Account, db: Database, clock: ManualClock
) -> None:
    key = create(client, manager, name="api", kind="generic")["key"]

    def used() -> datetime | None:
        with db.session() as s:
            return s.scalar(select(Integration.last_used_at))

    first = clock.now()
    assert post(client, key, b'{"summary": "a"}').status_code == 202
    clock.advance(30)
    assert post(client, key, b'{"summary": "b"}').status_code == 202
    assert used() == first
    clock.advance(31)
    assert post(client, key, b'{"summary": "c"}').status_code == 202
    assert used() == clock.now()
