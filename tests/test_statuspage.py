"""The status page: public (/status, /status.json; no login, nothing private leaks) and private
(/status/private), with service states, incidents, public updates and 90-day uptime bars."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from opsdesk.alerts.service import process_pending
from opsdesk.audit.models import AuditEntry
from opsdesk.core.actor import SYSTEM
from opsdesk.core.clock import ManualClock
from opsdesk.core.db import Database
from opsdesk.incidents import service as incidents
from opsdesk.incidents import statuspage
from opsdesk.monitoring.models import DailyStats
from tests.conftest import PASSWORD, Account
from tests.support import login

HTML = {"accept": "text/html"}


def ok(r: Any, status: int = 200) -> Any:
    assert r.status_code == status, r.text
    return r.json() if r.content else None


def service(client: TestClient, admin: Account, name: str, public: bool) -> int:
    body = {"name": name, "public_status": public}
    return int(ok(client.post("/api/v1/services", json=body, headers=admin.headers), 201)["id"])


def fire(client: TestClient, db: Database, clock: ManualClock, who: Account, **event: Any) -> int:
    ok(client.post("/api/v1/events", json=event, headers=who.headers), 202)
    with db.session() as s:
        process_pending(s, now=clock.now())
    alerts = ok(client.get("/api/v1/alerts", headers=who.headers))["items"]
    return int(next(a["incident_id"] for a in alerts if a["fingerprint"] == event["fingerprint"]))


def update(
    db: Database,
    clock: ManualClock,
    incident_id: int,
    message: str,
    *,
    public: bool,
    status: str = "investigating",
    who: Any = SYSTEM,
) -> None:
    with db.session() as s:
        incidents.post_update(
            s, incident_id, status=status, message=message, public=public, actor=who, now=clock.now()
        )


@pytest.fixture
def world(client, db, clock, accounts) -> dict[str, Any]:
    """A public service with an open incident (one public, one private update) and a private service
    with an incident whose only update is private."""
    admin, responder = accounts["admin"], accounts["responder"]
    ok(
        client.post("/api/v1/cis", json={"name": "pg-primary-7", "class": "database"}, headers=admin.headers),
        201,
    )
    shop = service(client, admin, "webshop", True)
    billing = service(client, admin, "internal-billing", False)
    shop_inc = fire(
        client,
        db,
        clock,
        responder,
        summary="pod web-7f9c OOMKilled on node k8s-worker-3",
        service="webshop",
        ci="pg-primary-7",
        severity="error",
        fingerprint="oom",
        labels={"namespace": "prod-secret-ns"},
    )
    billing_inc = fire(
        client,
        db,
        clock,
        responder,
        summary="billing batch job stuck",
        service="internal-billing",
        severity="critical",
        fingerprint="batch",
    )
    clock.advance(minutes=5)
    update(
        db,
        clock,
        shop_inc,
        "Checkout is slow for some customers; we are on it.",
        public=True,
        who=_actor(db, responder),
    )
    clock.advance(minutes=5)
    update(
        db,
        clock,
        shop_inc,
        "Ana thinks the OOM is from the new release, rolling back",
        public=False,
        status="identified",
        who=_actor(db, responder),
    )
    update(db, clock, billing_inc, "Billing exports are delayed for the finance team", public=False)
    return {"shop": shop, "billing": billing, "shop_inc": shop_inc, "billing_inc": billing_inc}


def _actor(db: Database, who: Account) -> Any:
    from opsdesk.auth import service as auth

    with db.session() as s:
        return auth.actor_for(auth.get_user(s, who.user.id))


SECRETS = [
    "internal-billing",
    "billing batch job stuck",
    "Billing exports are delayed",
    "Ana thinks",
    "rolling back",
    "OOMKilled",
    "k8s-worker-3",
    "prod-secret-ns",
    "pg-primary-7",
    "responder@example.org",
    "Responder",
    "identified",
]


def _assert_no_leak(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"{secret!r} leaked"


def test_public_page_shows_public_things_only_and_needs_no_login(client, world):
    r = client.get("/status", headers=HTML, follow_redirects=False)

    assert r.status_code == 200
    assert r.headers["cache-control"] == "public, max-age=30"
    assert "set-cookie" not in r.headers
    page = r.text
    _assert_no_leak(page)
    assert "webshop" in page
    assert "Checkout is slow for some customers; we are on it." in page
    assert "webshop: partial outage" in page  # error → P2 → partial outage
    assert "Partial outage" in page
    assert "/static/app.css" not in page and 'class="topbar"' not in page  # standalone, no app chrome


def test_public_json_has_the_same_data_and_leaks_nothing(client, world):
    r = client.get("/status.json")

    assert r.status_code == 200
    assert r.headers["cache-control"] == "public, max-age=30"
    _assert_no_leak(r.text)
    body = r.json()
    assert body["status"] == {"indicator": "major", "description": "Partial outage"}
    assert body["page"]["url"].endswith("/status")
    (component,) = body["components"]
    assert (component["id"], component["name"], component["status"]) == (
        world["shop"],
        "webshop",
        "partial_outage",
    )
    assert len(component["uptime_days"]) == 90
    (inc,) = body["incidents"]
    assert (inc["id"], inc["name"], inc["status"], inc["impact"]) == (
        world["shop_inc"],
        "webshop: partial outage",
        "investigating",
        "major",
    )
    assert inc["components"] == [{"id": world["shop"], "name": "webshop"}]
    assert [u["body"] for u in inc["incident_updates"]] == [
        "Checkout is slow for some customers; we are on it."
    ]
    assert set(inc["incident_updates"][0]) == {"id", "status", "body", "created_at"}
    assert body["resolved_incidents"] == []


def test_the_public_page_is_the_same_for_signed_in_users_and_bad_cookies(client, accounts, world):
    anonymous = client.get("/status.json").json()
    login(client, accounts["admin"].email, PASSWORD)
    assert client.get("/status.json").json() == anonymous
    signed_in = client.get("/status", headers=HTML)
    assert signed_in.status_code == 200
    _assert_no_leak(signed_in.text)
    client.cookies.set("opsdesk_session", "not-a-session")
    assert client.get("/status", headers=HTML, follow_redirects=False).status_code == 200
    assert client.get("/status.json").json() == anonymous


def test_an_empty_page_is_operational(client):
    body = client.get("/status.json").json()
    assert body["status"] == {"indicator": "none", "description": "All systems operational"}
    assert (body["components"], body["incidents"]) == ([], [])
    assert "No services are published on this page yet." in client.get("/status", headers=HTML).text


def test_recently_resolved_incidents_for_seven_days(client, db, clock, accounts, world):
    responder = accounts["responder"]
    ok(client.post(f"/api/v1/incidents/{world['shop_inc']}/resolve", headers=responder.headers))
    update(db, clock, world["shop_inc"], "Fixed: checkout is fast again.", public=True, status="resolved")
    ok(client.post(f"/api/v1/incidents/{world['billing_inc']}/resolve", headers=responder.headers))
    clock.advance(days=6)

    body = client.get("/status.json").json()
    assert body["incidents"] == []
    (recent,) = body["resolved_incidents"]
    assert (recent["id"], recent["status"]) == (world["shop_inc"], "resolved")
    assert recent["incident_updates"][0]["body"] == "Fixed: checkout is fast again."
    assert body["components"][0]["status"] == "operational"
    page = client.get("/status", headers=HTML).text
    assert "Fixed: checkout is fast again." in page
    _assert_no_leak(page)

    clock.advance(days=2)
    assert client.get("/status.json").json()["resolved_incidents"] == []


def _set_monitors(db: Database, clock: ManualClock, service_id: int, statuses: list[str]) -> list[int]:
    """Monitors of the service in these states (set directly: the prober is not under test here)."""
    from opsdesk.monitoring import service as monitoring
    from opsdesk.monitoring.schemas import MonitorIn

    ids = []
    with db.session() as s:
        for n, st in enumerate(statuses):
            data = MonitorIn(name=f"m-{service_id}-{n}", target="http://127.0.0.1:9/", service_id=service_id)
            m = monitoring.create_monitor(s, data, actor=SYSTEM, now=clock.now())
            m.status = st
            m.enabled = st != "paused"
            s.flush()
            ids.append(m.id)
    return ids


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        ([], "operational"),
        (["up", "up"], "operational"),
        (["up", "unknown", "paused"], "operational"),
        (["up", "degraded"], "degraded_performance"),
        (["up", "down"], "partial_outage"),
        (["down", "unreachable", "paused"], "major_outage"),
    ],
)
def test_service_state_from_its_monitors(client, db, clock, accounts, statuses, expected):
    sid = service(client, accounts["admin"], "api", True)
    _set_monitors(db, clock, sid, statuses)
    (component,) = client.get("/status.json").json()["components"]
    assert component["status"] == expected


@pytest.mark.parametrize(
    ("priority", "expected", "indicator"),
    [
        ("P1", "major_outage", "critical"),
        ("P2", "partial_outage", "major"),
        ("P3", "degraded_performance", "minor"),
        ("P5", "degraded_performance", "minor"),
    ],
)
def test_service_state_from_open_incidents_by_priority(
    client, db, clock, accounts, priority, expected, indicator
):
    sid = service(client, accounts["admin"], "api", True)
    _set_monitors(db, clock, sid, ["up"])
    inc = fire(client, db, clock, accounts["responder"], summary="x", service="api", fingerprint="x")
    with db.session() as s:
        incidents.get_incident(s, inc).priority = priority
    body = client.get("/status.json").json()
    assert body["components"][0]["status"] == expected
    assert body["status"]["indicator"] == indicator
    assert body["incidents"][0]["impact"] == indicator


def test_the_worst_of_incidents_and_monitors_wins(client, db, clock, accounts):
    sid = service(client, accounts["admin"], "api", True)
    _set_monitors(db, clock, sid, ["down", "down"])
    inc = fire(
        client,
        db,
        clock,
        accounts["responder"],
        summary="x",
        service="api",
        fingerprint="x",
        severity="warning",
    )
    with db.session() as s:
        assert incidents.get_incident(s, inc).priority == "P3"
    assert client.get("/status.json").json()["components"][0]["status"] == "major_outage"


def test_uptime_bars_show_the_worst_monitor_of_each_day(client, db, clock, accounts):
    sid = service(client, accounts["admin"], "api", True)
    a, b = _set_monitors(db, clock, sid, ["up", "up"])
    today = clock.now().date()
    with db.session() as s:
        s.add(DailyStats(monitor_id=a, day=today - timedelta(days=1), checks=100, failures=10))
        s.add(DailyStats(monitor_id=b, day=today - timedelta(days=1), checks=100, failures=50))
        s.add(DailyStats(monitor_id=a, day=today, checks=100, failures=0))
        s.add(DailyStats(monitor_id=b, day=today - timedelta(days=100), checks=100, failures=100))

    days = client.get("/status.json").json()["components"][0]["uptime_days"]

    assert len(days) == 90
    assert days[0]["date"] == (today - timedelta(days=89)).isoformat()
    assert days[-2] == {"date": (today - timedelta(days=1)).isoformat(), "uptime": 50.0}
    assert days[-1] == {"date": today.isoformat(), "uptime": 100.0}
    assert all(d["uptime"] is None for d in days[:-2])
    page = client.get("/status", headers=HTML).text
    assert page.count('class="uptime-bar"') == 1
    assert page.count("<i class=") == 90
    assert 'class="bad"' in page  # the 50 % day


def test_private_page_needs_a_login_and_shows_everything(client, db, accounts, world):
    r = client.get("/status/private", headers=HTML, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/login")

    login(client, accounts["viewer"].email, PASSWORD)
    page = client.get("/status/private", headers=HTML).text

    for text in (
        "internal-billing",
        "billing batch job stuck",
        "Billing exports are delayed",
        "Ana thinks the OOM",
        "webshop",
        "pod web-7f9c OOMKilled",
        "responder@example.org",
        "Major outage",
    ):
        assert text in page, text
    assert f'href="/incidents/{world["billing_inc"]}"' in page
    assert 'class="uptime-bar"' in page


def test_public_status_is_a_service_setting_with_audit(client, db, accounts):
    admin, manager = accounts["admin"], accounts["manager"]
    sid = service(client, admin, "api", False)
    assert client.get("/status.json").json()["components"] == []

    out = ok(client.patch(f"/api/v1/services/{sid}", json={"public_status": True}, headers=manager.headers))
    assert out["public_status"] is True
    assert [c["name"] for c in client.get("/status.json").json()["components"]] == ["api"]
    r = client.patch(f"/api/v1/services/{sid}", json={"public_status": None}, headers=manager.headers)
    assert r.status_code == 422
    r = client.patch(f"/api/v1/services/{sid}", json={"public_status": "sometimes"}, headers=manager.headers)
    assert r.status_code == 422
    with db.session() as s:
        entry = s.scalars(
            select(AuditEntry).where(AuditEntry.entity_type == "service").order_by(AuditEntry.id.desc())
        ).first()
        assert entry is not None
        assert (entry.before["public_status"], entry.after["public_status"]) == (False, True)

    # The service edit form's checkbox: unticked means not public.
    csrf = login(client, manager.email, PASSWORD)
    page = client.get(f"/services/{sid}", headers=HTML).text
    assert 'name="public_status" checked' in page
    r = client.post(
        f"/services/{sid}",
        data={"csrf_token": csrf, "name": "api", "description": "", "owner_team_id": "", "attributes": ""},
        follow_redirects=False,
    )
    assert r.status_code == 303
    assert client.get("/status.json").json()["components"] == []
    r = client.post(
        f"/services/{sid}",
        data={
            "csrf_token": csrf,
            "name": "api",
            "description": "",
            "owner_team_id": "",
            "attributes": "",
            "public_status": "on",
        },
        follow_redirects=False,
    )
    assert r.status_code == 303
    assert [c["name"] for c in client.get("/status.json").json()["components"]] == ["api"]


def test_state_rule_helpers():
    S = statuspage.State
    assert statuspage.worst([]) is S.operational
    assert statuspage.worst([S.degraded_performance, S.major_outage, S.partial_outage]) is S.major_outage
    assert statuspage.monitors_state(["unknown", "paused"]) is S.operational
