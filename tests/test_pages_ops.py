"""The dashboard, incident and monitor pages, driven through their forms (SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest

from opsdesk.alerts import service as alerts
from opsdesk.incidents import service as incidents
from opsdesk.monitoring import service as monitoring
from tests.conftest import PASSWORD
from tests.support import login

HTML = {"accept": "text/html"}


@pytest.fixture
def db_url(sqlite_url: str) -> str:
    """SQLite only: see ``sqlite_url`` in conftest."""
    return sqlite_url


@pytest.fixture
def incident(db, clock) -> int:
    with db.session() as s:
        alerts.store_events(
            s,
            [alerts.NormalizedEvent(source="api", status="firing", severity="critical", summary="disk full")],
            now=clock.now(),
        )
    with db.session() as s:
        alerts.process_pending(s, now=clock.now())
        return incidents.list_incidents(s)[0].id


def _as(client, accounts, role: str) -> str:
    return login(client, accounts[role].email, PASSWORD)


def test_pages_redirect_to_login_without_a_session(client):
    for path in ("/", "/incidents", "/incidents/1", "/monitors", "/services", "/cis", "/teams"):
        r = client.get(path, headers=HTML, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/login?next="), path


def test_login_redirects_only_to_local_paths(client, accounts):
    r = client.post(
        "/login",
        data={"email": accounts["viewer"].email, "password": PASSWORD, "next": "https://evil.example/"},
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"] == "/"


def test_wrong_password_is_401_with_a_message(client, accounts):
    r = client.post("/login", data={"email": accounts["viewer"].email, "password": "nope"})
    assert r.status_code == 401 and "Wrong e-mail or password" in r.text


def test_logout_ends_the_session(client, accounts):
    csrf = _as(client, accounts, "viewer")
    client.post("/logout", data={"csrf_token": csrf})
    r = client.get("/", headers=HTML, follow_redirects=False)
    assert r.status_code == 303


def test_dashboard_lists_open_incident_with_ack_for_responder(client, accounts, incident):
    _as(client, accounts, "responder")
    page = client.get("/", headers=HTML).text
    assert "INC-1" in page and "disk full" in page and "Acknowledge INC-1" in page


def test_responder_acknowledges_then_resolves_through_the_forms(client, accounts, incident, db):
    csrf = _as(client, accounts, "responder")
    r = client.post(
        f"/incidents/{incident}/ack", data={"csrf_token": csrf, "note": "looking"}, follow_redirects=False
    )
    assert r.status_code == 303
    r = client.post(f"/incidents/{incident}/resolve", data={"csrf_token": csrf}, follow_redirects=False)
    assert r.status_code == 303
    page = client.get(f"/incidents/{incident}", headers=HTML).text
    assert (
        "Acknowledged by responder@example.org: looking" in page
        and "Resolved by responder@example.org" in page
    )
    with db.session() as s:
        assert incidents.get_incident(s, incident).status == "resolved"


def test_viewer_cannot_acknowledge(client, accounts, incident, db):
    csrf = _as(client, accounts, "viewer")
    r = client.post(f"/incidents/{incident}/ack", data={"csrf_token": csrf}, headers=HTML)
    assert r.status_code == 403
    with db.session() as s:
        assert incidents.get_incident(s, incident).status == "triggered"


def test_acknowledge_without_csrf_token_is_refused(client, accounts, incident, db):
    _as(client, accounts, "responder")
    r = client.post(f"/incidents/{incident}/ack", data={}, headers=HTML)
    assert r.status_code == 403 and "CSRF" in r.text
    with db.session() as s:
        assert incidents.get_incident(s, incident).status == "triggered"


def test_incident_list_filters_open_and_all(client, accounts, incident, db, clock):
    _as(client, accounts, "viewer")
    with db.session() as s:
        incidents.resolve(s, incident, actor=_admin(accounts), now=clock.now())
    assert "INC-1" not in client.get("/incidents", headers=HTML).text
    assert "INC-1" in client.get("/incidents?show=all", headers=HTML).text


def _admin(accounts):  # type: ignore[no-untyped-def]
    from opsdesk.auth import service as auth

    return auth.actor_for(accounts["admin"].user)


def test_unknown_incident_page_is_404(client, accounts):
    _as(client, accounts, "viewer")
    assert client.get("/incidents/999", headers=HTML).status_code == 404


def test_manager_adds_a_monitor_through_the_form(client, accounts, db):
    csrf = _as(client, accounts, "manager")
    r = client.post(
        "/monitors",
        data={
            "csrf_token": csrf,
            "name": "api",
            "target": "http://127.0.0.1:9/",
            "config.expected_status": "204",
            "interval_seconds": "15",
        },
        follow_redirects=False,
    )
    assert r.status_code == 303
    with db.session() as s:
        (m,) = monitoring.list_monitors(s)
        assert (m.name, m.interval_seconds, m.config["expected_status"]) == ("api", 15, 204)
    assert "api" in client.get("/monitors", headers=HTML).text


def test_bad_monitor_form_shows_the_field_error_and_creates_nothing(client, accounts, db):
    csrf = _as(client, accounts, "manager")
    r = client.post(
        "/monitors", data={"csrf_token": csrf, "name": "api", "target": "not a url", "interval_seconds": "0"}
    )
    assert r.status_code == 422
    assert "must be an http" in r.text or "greater than or equal to 1" in r.text
    with db.session() as s:
        assert monitoring.list_monitors(s) == []


def test_pause_and_resume_a_monitor(client, accounts, db, clock):
    from opsdesk.core.actor import SYSTEM
    from opsdesk.monitoring.schemas import MonitorIn

    with db.session() as s:
        mid = monitoring.create_monitor(
            s, MonitorIn(name="api", target="http://127.0.0.1:9/"), actor=SYSTEM, now=clock.now()
        ).id
    csrf = _as(client, accounts, "manager")
    client.post(f"/monitors/{mid}/pause", data={"csrf_token": csrf})
    with db.session() as s:
        m = monitoring.get_monitor(s, mid)
        assert (m.enabled, m.status, m.next_check_at) == (False, "paused", None)
    client.post(f"/monitors/{mid}/resume", data={"csrf_token": csrf})
    with db.session() as s:
        m = monitoring.get_monitor(s, mid)
        assert (m.enabled, m.status) == (True, "unknown") and m.next_check_at is not None


def test_responder_cannot_add_monitors(client, accounts, db):
    csrf = _as(client, accounts, "responder")
    r = client.post(
        "/monitors", data={"csrf_token": csrf, "name": "x", "target": "http://127.0.0.1:9/"}, headers=HTML
    )
    assert r.status_code == 403
    with db.session() as s:
        assert monitoring.list_monitors(s) == []


def _monitor(db, clock) -> int:  # type: ignore[no-untyped-def]
    from opsdesk.core.actor import SYSTEM
    from opsdesk.monitoring.schemas import MonitorIn

    with db.session() as s:
        return monitoring.create_monitor(
            s, MonitorIn(name="api", target="http://127.0.0.1:9/"), actor=SYSTEM, now=clock.now()
        ).id


def test_manager_edits_a_monitor_through_the_form(client, accounts, db, clock):
    mid = _monitor(db, clock)
    csrf = _as(client, accounts, "manager")
    fields = {
        "csrf_token": csrf,
        "name": "api-v2",
        "target": "https://127.0.0.1:9/v2",
        "config.expected_status": "204",
        "interval_seconds": "30",
        "timeout_seconds": "5",
        "failures_before_down": "2",
    }
    r = client.post(f"/monitors/{mid}", data=fields, follow_redirects=False)
    assert r.status_code == 303
    with db.session() as s:
        m = monitoring.get_monitor(s, mid)
        assert (
            m.name,
            m.target,
            m.config["expected_status"],
            m.interval_seconds,
            m.failures_before_down,
        ) == ("api-v2", "https://127.0.0.1:9/v2", 204, 30, 2)


def test_bad_edit_shows_the_error_and_changes_nothing(client, accounts, db, clock):
    mid = _monitor(db, clock)
    csrf = _as(client, accounts, "manager")
    r = client.post(
        f"/monitors/{mid}",
        data={"csrf_token": csrf, "name": "api", "target": "ftp://x", "interval_seconds": "30"},
    )
    assert r.status_code == 422 and "must be an http" in r.text
    with db.session() as s:
        m = monitoring.get_monitor(s, mid)
        assert (m.target, m.interval_seconds) == ("http://127.0.0.1:9/", 60)


def test_bulk_pause_and_resume_from_the_list(client, accounts, db, clock):
    from opsdesk.core.actor import SYSTEM
    from opsdesk.monitoring.schemas import MonitorIn

    with db.session() as s:
        ids = [
            monitoring.create_monitor(
                s, MonitorIn(name=n, target="http://127.0.0.1:9/"), actor=SYSTEM, now=clock.now()
            ).id
            for n in ("a", "b", "c")
        ]
    csrf = _as(client, accounts, "manager")
    page = client.get("/monitors", headers=HTML).text
    assert 'name="ids"' in page and "Pause selected" in page
    r = client.post(
        "/monitors/bulk", data={"csrf_token": csrf, "action": "pause", "ids": ids[:2]}, follow_redirects=False
    )
    assert r.status_code == 303 and "2+monitor" in r.headers["location"]
    with db.session() as s:
        assert [m.status for m in monitoring.list_monitors(s)] == ["paused", "paused", "unknown"]
    client.post("/monitors/bulk", data={"csrf_token": csrf, "action": "resume", "ids": ids})
    with db.session() as s:
        assert [m.enabled for m in monitoring.list_monitors(s)] == [True, True, True]


def test_bulk_with_an_unknown_id_changes_nothing(client, accounts, db, clock):
    from opsdesk.core.actor import SYSTEM
    from opsdesk.monitoring.schemas import MonitorIn

    with db.session() as s:
        mid = monitoring.create_monitor(
            s, MonitorIn(name="a", target="http://127.0.0.1:9/"), actor=SYSTEM, now=clock.now()
        ).id
    csrf = _as(client, accounts, "manager")
    r = client.post(
        "/monitors/bulk", data={"csrf_token": csrf, "action": "pause", "ids": [mid, 99999]}, headers=HTML
    )
    assert r.status_code == 422 and "no monitor with id 99999" in r.text
    with db.session() as s:
        assert monitoring.get_monitor(s, mid).enabled
