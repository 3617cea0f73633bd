"""Postmortems and action items: drafted from a real incident (events → pipeline → resolve through
the API), edited, reviewed and published, tracked; through the API, the pages and the CLI, on SQLite
and PostgreSQL."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from typer.testing import CliRunner

from opsdesk.alerts.service import process_pending
from opsdesk.audit.models import AuditEntry
from opsdesk.cli import common
from opsdesk.cli.main import app as cli_app
from opsdesk.core.clock import ManualClock
from opsdesk.core.db import Database
from opsdesk.core.settings import Settings
from opsdesk.incidents import postmortems as pms
from opsdesk.incidents import service as incidents
from opsdesk.incidents.models import ActionItem, Incident, Postmortem, TimelineEntry
from tests.conftest import PASSWORD, Account
from tests.support import login

HTML = {"accept": "text/html"}


def ok(r: Any, status: int = 200) -> Any:
    assert r.status_code == status, r.text
    return r.json() if r.content else None


def problem(r: Any, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    return r.json()


def run_pipeline(db: Database, clock: ManualClock) -> int:
    with db.session() as s:
        return process_pending(s, now=clock.now())


def state(db: Database) -> dict[str, Any]:
    """Every postmortem and action item, and how many audit and timeline rows exist."""
    with db.session() as s:
        return {
            "postmortems": [
                tuple(getattr(p, c.name) for c in Postmortem.__table__.c)
                for p in s.scalars(select(Postmortem).order_by(Postmortem.id))
            ],
            "items": [
                tuple(getattr(i, c.name) for c in ActionItem.__table__.c)
                for i in s.scalars(select(ActionItem).order_by(ActionItem.id))
            ],
            "audit": s.scalar(select(func.count()).select_from(AuditEntry)),
            "timeline": s.scalar(select(func.count()).select_from(TimelineEntry)),
        }


@pytest.fixture
def world(
    client: TestClient, db: Database, clock: ManualClock, accounts: dict[str, Account]
) -> dict[str, Any]:
    """A service with a CI, two alerts on it (one incident, P1), opened at 09:00."""
    admin = accounts["admin"].headers
    ok(client.post("/api/v1/services", json={"name": "checkout"}, headers=admin), 201)
    ok(client.post("/api/v1/cis", json={"name": "db-1", "class": "database"}, headers=admin), 201)
    events = {
        "events": [
            {
                "summary": "checkout answers 502",
                "severity": "critical",
                "service": "checkout",
                "ci": "db-1",
                "fingerprint": "http",
            },
            {
                "summary": "db-1 latency high",
                "severity": "error",
                "service": "checkout",
                "ci": "db-1",
                "fingerprint": "db",
            },
        ]
    }
    ok(client.post("/api/v1/events", json=events, headers=accounts["responder"].headers), 202)
    assert run_pipeline(db, clock) == 2
    alerts = ok(client.get("/api/v1/alerts", headers=admin))["items"]
    incident_ids = {a["incident_id"] for a in alerts}
    assert len(incident_ids) == 1
    (incident_id,) = incident_ids
    return {"incident_id": incident_id, "ref": f"INC-{incident_id}", "alerts": len(alerts)}


def resolve(client: TestClient, who: Account, ref: str) -> dict[str, Any]:
    return ok(client.post(f"/api/v1/incidents/{ref}/resolve", headers=who.headers))


def get_pm(client: TestClient, who: Account, ref: str) -> dict[str, Any]:
    return ok(client.get(f"/api/v1/incidents/{ref}/postmortem", headers=who.headers))


def fill(client: TestClient, who: Account, ref: str, **sections: str) -> dict[str, Any]:
    return ok(client.patch(f"/api/v1/incidents/{ref}/postmortem", json=sections, headers=who.headers))


def move(client: TestClient, who: Account, ref: str, status: str) -> Any:
    return client.post(
        f"/api/v1/incidents/{ref}/postmortem/status", json={"status": status}, headers=who.headers
    )


# --- the draft -----------------------------------------------------------------------------------


def test_resolving_drafts_the_postmortem_from_the_incident(client, accounts, world, clock):
    responder, viewer = accounts["responder"], accounts["viewer"]
    ref = world["ref"]
    problem(client.get(f"/api/v1/incidents/{ref}/postmortem", headers=viewer.headers), 404)
    clock.advance(minutes=45)
    resolve(client, responder, ref)

    pm = get_pm(client, viewer, ref)

    assert (pm["status"], pm["incident_key"], pm["author_id"]) == ("draft", ref, None)
    assert pm["summary"].splitlines() == [
        f"{ref}: checkout answers 502",
        "Service: checkout",
        "Priority: P1 (impact high, urgency high)",
        "Severity: critical",
    ]
    assert pm["impact"].splitlines() == [
        "Duration: 45 min (2026-03-02 09:00:00 UTC to 2026-03-02 09:45:00 UTC)",
        "Service: checkout",
        "Affected CIs: db-1",
        f"Alerts: {world['alerts']}",
    ]
    lines = pm["timeline"].splitlines()
    assert lines[0].startswith("- 2026-03-02 09:00:00 UTC · ")
    assert any(
        line.startswith(
            "- 2026-03-02 09:45:00 UTC · responder@example.org · Resolved by responder@example.org"
        )
        for line in lines
    )
    assert not any("Postmortem" in line for line in lines)
    assert (pm["root_cause"], pm["went_well"], pm["went_badly"]) == ("", "", "")
    assert pm["missing_to_publish"] == ["root_cause", "went_badly"]
    detail = ok(client.get(f"/api/v1/incidents/{ref}", headers=viewer.headers))
    assert "Postmortem draft created" in [e["message"] for e in detail["timeline"]]


def test_the_form_shows_guidance_as_placeholders_not_content(client, accounts, world):
    resolve(client, accounts["responder"], world["ref"])
    login(client, accounts["responder"].email, PASSWORD)

    page = client.get(f"/incidents/{world['incident_id']}/postmortem", headers=HTML).text

    guidance = pms.GUIDANCE["root_cause"]
    assert f'placeholder="{guidance}"' in page
    textarea = re.search(r'<textarea id="pm-root_cause"[^>]*>(.*?)</textarea>', page, re.S)
    assert textarea is not None and textarea.group(1) == ""
    assert "checkout answers 502" in page


def test_ensure_draft_is_idempotent(db, client, accounts, world, clock):
    resolve(client, accounts["responder"], world["ref"])
    before = state(db)
    with db.session() as s:
        inc = incidents.get_incident(s, world["incident_id"])
        first = pms.ensure_draft(s, inc, now=clock.now()).id
    clock.advance(minutes=5)
    with db.session() as s:
        inc = incidents.get_incident(s, world["incident_id"])
        again = pms.ensure_draft(s, inc, now=clock.now()).id

    assert first == again
    assert state(db) == before


def test_ensure_draft_drafts_once_when_nothing_did(db, client, accounts, world, clock):
    with db.session() as s:
        inc = incidents.get_incident(s, world["incident_id"])
        a = pms.ensure_draft(s, inc, now=clock.now())
        b = pms.ensure_draft(s, inc, now=clock.now())
        assert a is b
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Postmortem)) == 1
        audit = list(s.scalars(select(AuditEntry).where(AuditEntry.entity_type == "postmortem")))
        assert [(e.action, e.actor) for e in audit] == [("create", "opsdesk")]


def test_a_reopened_incident_refreshes_its_draft_only_while_it_is_a_draft(client, accounts, world, clock):
    responder, ref = accounts["responder"], world["ref"]
    clock.advance(minutes=10)
    resolve(client, responder, ref)
    fill(client, responder, ref, summary="Checkout failed: the database ran out of connections.")
    clock.advance(minutes=5)
    ok(client.post(f"/api/v1/incidents/{ref}/reopen", headers=responder.headers))
    clock.advance(minutes=20)
    resolve(client, responder, ref)

    pm = get_pm(client, responder, ref)

    assert "Reopened by responder@example.org" in pm["timeline"]
    assert pm["timeline"].count("Resolved by") == 2
    assert pm["impact"].startswith("Duration: 35 min (")  # nobody edited it: rebuilt
    assert pm["summary"] == "Checkout failed: the database ran out of connections."  # edited: kept

    fill(client, responder, ref, root_cause="Pool too small", went_badly="Slow to find")
    ok(move(client, responder, ref, "in_review"))
    frozen = get_pm(client, responder, ref)
    ok(client.post(f"/api/v1/incidents/{ref}/reopen", headers=responder.headers))
    clock.advance(minutes=5)
    resolve(client, responder, ref)

    after = get_pm(client, responder, ref)
    assert after["timeline"] == frozen["timeline"]
    assert after["impact"] == frozen["impact"]


# --- closing needs a published postmortem for the required priorities -------------------------


def test_close_blocker_for_p1_but_not_for_p4(db, client, accounts, world, settings, clock):
    responder, ref = accounts["responder"], world["ref"]
    resolve(client, responder, ref)
    with db.session() as s:
        inc = incidents.get_incident(s, world["incident_id"])
        reason = pms.close_blocker(s, inc, settings)
        assert reason is not None and "P1" in reason and "draft" in reason
        assert (
            pms.close_blocker(s, inc, Settings(data_dir=settings.data_dir, postmortem_required_priorities=[]))
            is None
        )
        inc.priority = "P4"
        assert pms.close_blocker(s, inc, settings) is None
        inc.priority = "P1"

    body = problem(client.post(f"/api/v1/incidents/{ref}/close", headers=responder.headers), 409)
    assert "postmortem must be published" in body["detail"]

    fill(client, responder, ref, root_cause="Pool too small", went_badly="Slow to find")
    ok(move(client, responder, ref, "in_review"))
    ok(move(client, responder, ref, "published"))
    with db.session() as s:
        assert pms.close_blocker(s, incidents.get_incident(s, world["incident_id"]), settings) is None
    closed = ok(client.post(f"/api/v1/incidents/{ref}/close", headers=responder.headers))
    assert "closed" in [e["kind"] for e in closed["timeline"]]


def test_close_blocker_without_any_postmortem(db, settings, world):
    with db.session() as s:
        inc = s.get(Incident, world["incident_id"])
        assert inc is not None
        reason = pms.close_blocker(s, inc, settings)
    assert reason is not None and "there is none yet" in reason


def test_required_priorities_come_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("OPSDESK_POSTMORTEM_REQUIRED_PRIORITIES", "p1, P3")
    assert Settings(data_dir=tmp_path).postmortem_required_priorities == ["P1", "P3"]
    monkeypatch.setenv("OPSDESK_POSTMORTEM_REQUIRED_PRIORITIES", "")
    assert Settings(data_dir=tmp_path).postmortem_required_priorities == []
    monkeypatch.delenv("OPSDESK_POSTMORTEM_REQUIRED_PRIORITIES")
    assert Settings(data_dir=tmp_path).postmortem_required_priorities == ["P1", "P2"]
    monkeypatch.setenv("OPSDESK_POSTMORTEM_REQUIRED_PRIORITIES", "P9")
    with pytest.raises(ValueError, match="P9"):
        Settings(data_dir=tmp_path)


# --- review and publication ----------------------------------------------------------------------


def test_publishing_needs_every_section_but_what_went_well(db, client, accounts, world, clock):
    responder, manager, ref = accounts["responder"], accounts["manager"], world["ref"]
    resolve(client, responder, ref)

    body = problem(move(client, responder, ref, "published"), 409)
    assert "review" in body["detail"]
    ok(move(client, responder, ref, "in_review"))
    before = state(db)
    body = problem(move(client, responder, ref, "published"), 422)
    assert body["detail"] == "cannot publish: fill in root cause, what went badly"
    assert [e["field"] for e in body["errors"]] == ["root_cause", "went_badly"]
    assert state(db) == before

    fill(client, responder, ref, root_cause="The pool was sized for last year's traffic.", went_badly="  ")
    body = problem(move(client, responder, ref, "published"), 422)
    assert [e["field"] for e in body["errors"]] == ["went_badly"]
    fill(client, responder, ref, went_badly="Nobody looked at the pool metrics.")
    clock.advance(hours=2)
    published = ok(move(client, responder, ref, "published"))
    assert published["status"] == "published"
    assert published["published_at"].startswith("2026-03-02T11:00")
    assert published["went_well"] == ""

    before = state(db)
    problem(
        client.patch(
            f"/api/v1/incidents/{ref}/postmortem", json={"root_cause": "x"}, headers=responder.headers
        ),
        409,
    )
    problem(move(client, responder, ref, "draft"), 403)
    problem(move(client, responder, ref, "in_review"), 409)
    assert state(db) == before

    reopened = ok(move(client, manager, ref, "draft"))
    assert (reopened["status"], reopened["published_at"]) == ("draft", None)
    fill(client, responder, ref, went_well="The on-call answered in two minutes.")

    with db.session() as s:
        actions = [
            (e.action, (e.after or {}).get("status"))
            for e in s.scalars(
                select(AuditEntry).where(AuditEntry.entity_type == "postmortem").order_by(AuditEntry.id)
            )
        ]
    assert ("update", "published") in actions and actions[-1] == ("update", "draft")
    detail = ok(client.get(f"/api/v1/incidents/{ref}", headers=responder.headers))
    messages = [e["message"] for e in detail["timeline"]]
    assert "Postmortem published by responder@example.org" in messages
    assert "Postmortem reopened to draft by manager@example.org" in messages


def test_start_early_then_resolution_keeps_it(client, accounts, world, clock):
    responder, ref = accounts["responder"], world["ref"]
    started = ok(client.post(f"/api/v1/incidents/{ref}/postmortem", headers=responder.headers), 201)
    assert started["author_id"] == responder.user.id
    assert started["impact"].startswith("Duration: ongoing since 2026-03-02 09:00:00 UTC")
    again = ok(client.post(f"/api/v1/incidents/{ref}/postmortem", headers=responder.headers), 200)
    assert again["id"] == started["id"]
    clock.advance(minutes=30)
    resolve(client, responder, ref)

    pm = get_pm(client, responder, ref)

    assert pm["id"] == started["id"]
    assert pm["impact"].startswith("Duration: 30 min (")
    assert "Resolved by" in pm["timeline"]


# --- action items --------------------------------------------------------------------------------


def test_action_items_crud_and_the_overdue_filter(db, client, accounts, world, clock):
    responder, manager, viewer, ref = (
        accounts["responder"],
        accounts["manager"],
        accounts["viewer"],
        world["ref"],
    )
    resolve(client, responder, ref)
    pm_id = get_pm(client, viewer, ref)["id"]
    today = clock.now().date()

    def add(**body: Any) -> dict[str, Any]:
        return ok(
            client.post(
                "/api/v1/action-items", json={"postmortem_id": pm_id, **body}, headers=responder.headers
            ),
            201,
        )

    late = add(
        title="Raise the pool size", owner_id=responder.user.id, due_date=str(today - timedelta(days=1))
    )
    later = add(
        title="Alert on pool saturation", owner_id=manager.user.id, due_date=str(today + timedelta(days=10))
    )
    undated = add(title="Write a runbook")
    assert (late["overdue"], later["overdue"], undated["overdue"]) == (True, False, False)
    assert late["incident_id"] == world["incident_id"]

    def listed(**params: Any) -> list[int]:
        return [
            i["id"]
            for i in ok(client.get("/api/v1/action-items", params=params, headers=viewer.headers))["items"]
        ]

    assert listed() == [late["id"], later["id"], undated["id"]]
    assert listed(overdue=True) == [late["id"]]
    assert listed(owner_id=manager.user.id) == [later["id"]]
    assert [i["id"] for i in get_pm(client, viewer, ref)["action_items"]] == listed()

    clock.advance(hours=1)
    done = ok(
        client.patch(f"/api/v1/action-items/{late['id']}", json={"status": "done"}, headers=responder.headers)
    )
    assert (done["status"], done["overdue"]) == ("done", False)
    assert done["done_at"].startswith("2026-03-02T10:00")
    assert listed(overdue=True) == []
    assert listed(status="open") == [later["id"], undated["id"]]
    assert listed(status="done") == [late["id"]]
    reopened = ok(
        client.patch(f"/api/v1/action-items/{late['id']}", json={"status": "open"}, headers=responder.headers)
    )
    assert (reopened["status"], reopened["done_at"], reopened["overdue"]) == ("open", None, True)

    changed = ok(
        client.patch(
            f"/api/v1/action-items/{undated['id']}",
            json={
                "title": "Write the pool runbook",
                "owner_id": viewer.user.id,
                "due_date": str(today + timedelta(days=3)),
            },
            headers=responder.headers,
        )
    )
    assert (changed["title"], changed["owner_id"]) == ("Write the pool runbook", viewer.user.id)
    assert listed() == [late["id"], changed["id"], later["id"]]

    assert client.delete(f"/api/v1/action-items/{later['id']}", headers=responder.headers).status_code == 204
    problem(client.delete(f"/api/v1/action-items/{later['id']}", headers=responder.headers), 404)
    assert listed() == [late["id"], undated["id"]]

    with db.session() as s:
        audit = [
            (e.action, e.entity_id)
            for e in s.scalars(
                select(AuditEntry).where(AuditEntry.entity_type == "action_item").order_by(AuditEntry.id)
            )
        ]
    assert audit[:3] == [
        ("create", str(late["id"])),
        ("create", str(later["id"])),
        ("create", str(undated["id"])),
    ]
    assert ("delete", str(later["id"])) in audit
    messages = [
        e["message"] for e in ok(client.get(f"/api/v1/incidents/{ref}", headers=viewer.headers))["timeline"]
    ]
    assert f"Action item #{late['id']} done by responder@example.org: Raise the pool size" in messages
    assert (
        f"Action item #{later['id']} deleted by responder@example.org: Alert on pool saturation" in messages
    )


def test_action_items_stay_trackable_after_publication(client, accounts, world):
    responder, ref = accounts["responder"], world["ref"]
    resolve(client, responder, ref)
    fill(client, responder, ref, root_cause="x", went_badly="y")
    ok(move(client, responder, ref, "in_review"))
    ok(move(client, responder, ref, "published"))
    pm_id = get_pm(client, responder, ref)["id"]
    item = ok(
        client.post(
            "/api/v1/action-items",
            json={"postmortem_id": pm_id, "title": "Fix it"},
            headers=responder.headers,
        ),
        201,
    )
    ok(client.patch(f"/api/v1/action-items/{item['id']}", json={"status": "done"}, headers=responder.headers))


# --- bad input and roles -------------------------------------------------------------------------


def test_bad_input_is_a_clear_4xx_and_changes_nothing(db, client, accounts, world):
    responder = accounts["responder"]
    h = responder.headers
    ref = world["ref"]
    resolve(client, responder, ref)
    pm_id = get_pm(client, responder, ref)["id"]
    item = ok(
        client.post("/api/v1/action-items", json={"postmortem_id": pm_id, "title": "t"}, headers=h), 201
    )
    before = state(db)
    pm_url = f"/api/v1/incidents/{ref}/postmortem"

    cases: list[tuple[str, str, Any, int, str | None]] = [
        ("GET", "/api/v1/incidents/INC-999999/postmortem", None, 404, None),
        ("GET", "/api/v1/incidents/nope/postmortem", None, 404, None),
        ("POST", "/api/v1/incidents/99999999999/postmortem", None, 404, None),
        ("PATCH", "/api/v1/incidents/INC-999999/postmortem", {"root_cause": "x"}, 404, None),
        ("PATCH", pm_url, {"root_cause": 5}, 422, "root_cause"),
        ("PATCH", pm_url, {"root_cause": None}, 422, "root_cause"),
        ("PATCH", pm_url, {"cause": "x"}, 422, "cause"),
        ("PATCH", pm_url, {"root_cause": "x" * 50_001}, 422, "root_cause"),
        ("PATCH", pm_url, [], 422, None),
        ("POST", pm_url + "/status", {"status": "done"}, 422, "status"),
        ("POST", pm_url + "/status", {}, 422, "status"),
        ("POST", "/api/v1/action-items", {"postmortem_id": 999999, "title": "x"}, 422, "postmortem_id"),
        ("POST", "/api/v1/action-items", {"postmortem_id": pm_id, "title": "  "}, 422, "title"),
        (
            "POST",
            "/api/v1/action-items",
            {"postmortem_id": pm_id, "title": "x", "owner_id": 999999},
            422,
            "owner_id",
        ),
        (
            "POST",
            "/api/v1/action-items",
            {"postmortem_id": pm_id, "title": "x", "due_date": "next week"},
            422,
            "due_date",
        ),
        ("POST", "/api/v1/action-items", {"postmortem_id": 2**40, "title": "x"}, 422, "postmortem_id"),
        ("POST", "/api/v1/action-items", {"title": "x"}, 422, "postmortem_id"),
        ("PATCH", f"/api/v1/action-items/{item['id']}", {"status": "finished"}, 422, "status"),
        ("PATCH", f"/api/v1/action-items/{item['id']}", {"title": None}, 422, "title"),
        ("PATCH", f"/api/v1/action-items/{item['id']}", {"owner_id": "me"}, 422, "owner_id"),
        ("PATCH", "/api/v1/action-items/999999", {"status": "done"}, 404, None),
        ("PATCH", "/api/v1/action-items/0", {"status": "done"}, 422, None),
        ("DELETE", "/api/v1/action-items/99999999999", None, 422, None),
        ("GET", "/api/v1/action-items?status=bogus", None, 422, "status"),
        ("GET", "/api/v1/action-items?owner_id=x", None, 422, None),
        ("GET", "/api/v1/action-items?overdue=maybe", None, 422, None),
    ]
    for method, url, body, status, field in cases:
        r = client.request(method, url, json=body, headers=h)
        p = problem(r, status)
        assert p["detail"], (method, url)
        if field:
            assert field in [e["field"] for e in p.get("errors", [])], (method, url, p)
    r = client.patch(pm_url, content=b'{"root_cause": ', headers={**h, "content-type": "application/json"})
    assert problem(r, 400)["title"] == "Malformed JSON"
    assert state(db) == before


def test_viewer_reads_but_cannot_write(db, client, accounts, world):
    viewer, ref = accounts["viewer"], world["ref"]
    resolve(client, accounts["responder"], ref)
    pm_id = get_pm(client, viewer, ref)["id"]
    item = ok(
        client.post(
            "/api/v1/action-items",
            json={"postmortem_id": pm_id, "title": "t"},
            headers=accounts["responder"].headers,
        ),
        201,
    )
    before = state(db)
    for method, url, body in [
        ("POST", f"/api/v1/incidents/{ref}/postmortem", None),
        ("PATCH", f"/api/v1/incidents/{ref}/postmortem", {"root_cause": "x"}),
        ("POST", f"/api/v1/incidents/{ref}/postmortem/status", {"status": "in_review"}),
        ("POST", "/api/v1/action-items", {"postmortem_id": pm_id, "title": "x"}),
        ("PATCH", f"/api/v1/action-items/{item['id']}", {"status": "done"}),
        ("DELETE", f"/api/v1/action-items/{item['id']}", None),
    ]:
        problem(client.request(method, url, json=body, headers=viewer.headers), 403)
    problem(client.get(f"/api/v1/incidents/{ref}/postmortem"), 401)
    assert state(db) == before
    ok(client.get("/api/v1/action-items", headers=viewer.headers))


# --- pages ---------------------------------------------------------------------------------------


def test_the_postmortem_pages_through_their_forms(db, client, accounts, world, clock):
    responder, ref, iid = accounts["responder"], world["ref"], world["incident_id"]
    csrf = login(client, responder.email, PASSWORD)
    url = f"/incidents/{iid}/postmortem"
    page = client.get(url, headers=HTML).text
    assert "Start the postmortem now" in page

    r = client.post(url + "/start", data={"csrf_token": csrf}, follow_redirects=False)
    assert r.status_code == 303
    sections = {f: v for f, v in get_pm(client, responder, ref).items() if f in pms.SECTIONS}
    sections |= {"root_cause": "Pool too small\r\nfor the traffic", "went_badly": "Slow <script>x</script>"}
    r = client.post(url, data={"csrf_token": csrf, **sections}, follow_redirects=False)
    assert r.status_code == 303
    pm = get_pm(client, responder, ref)
    assert pm["root_cause"] == "Pool too small\nfor the traffic"

    r = client.post(url, data={"csrf_token": csrf, **sections, "summary": "x" * 50_001}, headers=HTML)
    assert r.status_code == 422 and "at most 50000" in r.text
    assert get_pm(client, responder, ref)["summary"] == pm["summary"]

    for status in ("in_review", "published"):
        r = client.post(url + "/status", data={"csrf_token": csrf, "status": status}, follow_redirects=False)
        assert r.status_code == 303
    page = client.get(url, headers=HTML).text
    assert "postmortem published" in page and 'id="pm-form"' not in page
    assert "Slow &lt;script&gt;x&lt;/script&gt;" in page and "<script>x" not in page
    assert "Reopen to draft" not in page  # responders cannot

    # Action items: a bad date is refused on the page, a good one is added, then done.
    r = client.post(
        url + "/action-items", data={"csrf_token": csrf, "title": "Resize", "due_date": "soon"}, headers=HTML
    )
    assert r.status_code == 422 and "Resize" in r.text
    yesterday = (clock.now().date() - timedelta(days=1)).isoformat()
    r = client.post(
        url + "/action-items",
        data={
            "csrf_token": csrf,
            "title": "Resize the pool",
            "owner_id": str(responder.user.id),
            "due_date": yesterday,
        },
        follow_redirects=False,
    )
    assert r.status_code == 303
    (item,) = get_pm(client, responder, ref)["action_items"]

    items_page = client.get("/action-items?mine=1", headers=HTML).text
    assert "Resize the pool" in items_page and 'class="overdue"' in items_page and "overdue 1 d" in items_page
    assert "Resize the pool" not in client.get("/action-items?mine=1&show=done", headers=HTML).text
    listing = client.get("/postmortems", headers=HTML).text
    assert ref in listing and "published" in listing and "P1" in listing

    r = client.post(
        f"/action-items/{item['id']}/done",
        data={"csrf_token": csrf, "next": "/action-items"},
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"].startswith("/action-items")
    assert "Resize the pool" not in client.get("/action-items", headers=HTML).text
    assert "Resize the pool" in client.get("/action-items?show=done", headers=HTML).text
    r = client.post(f"/action-items/{item['id']}/delete", data={"csrf_token": csrf}, follow_redirects=False)
    assert r.status_code == 303
    assert get_pm(client, responder, ref)["action_items"] == []


def test_page_forms_refuse_viewers_and_missing_csrf(db, client, accounts, world):
    resolve(client, accounts["responder"], world["ref"])
    before = state(db)
    url = f"/incidents/{world['incident_id']}/postmortem"
    csrf = login(client, accounts["viewer"].email, PASSWORD)
    assert client.post(url, data={"csrf_token": csrf, "root_cause": "x"}, headers=HTML).status_code == 403
    page = client.get(url, headers=HTML).text
    assert 'id="pm-form"' not in page and "Send for review" not in page
    login(client, accounts["responder"].email, PASSWORD)
    assert client.post(url, data={"root_cause": "x"}, headers=HTML).status_code == 403
    assert client.post(url + "/status", data={"status": "in_review"}, headers=HTML).status_code == 403
    assert client.get("/incidents/999999/postmortem", headers=HTML).status_code == 404
    assert state(db) == before


# --- CLI -----------------------------------------------------------------------------------------

runner = CliRunner()


@pytest.fixture
def cli(db, db_url, tmp_path, monkeypatch):
    monkeypatch.setenv("OPSDESK_DATABASE_URL", db_url)
    monkeypatch.setenv("OPSDESK_DATA_DIR", str(tmp_path))
    common.settings.cache_clear()
    common.database.cache_clear()

    def run(*args: str, ok: bool = True):  # type: ignore[no-untyped-def]
        result = runner.invoke(cli_app, list(args))
        if ok:
            assert result.exit_code == 0, result.output
        return result

    yield run
    common.database().dispose()
    common.settings.cache_clear()
    common.database.cache_clear()


def test_cli_postmortem_and_action_items(cli, client, accounts, world):
    ref = world["ref"]
    resolve(client, accounts["responder"], ref)

    assert cli("postmortem", "publish", ref, ok=False).exit_code == 1
    cli("postmortem", "set", ref, "--root-cause", "Pool too small", "--impact", "Checkout failed for 45 min")
    cli("postmortem", "status", ref, "in_review")
    failed = cli("postmortem", "publish", ref, ok=False)
    assert failed.exit_code == 1 and "what went badly" in failed.output
    cli("postmortem", "set", ref, "--went-badly", "Slow to find\\nand slow to fix")
    cli("postmortem", "publish", ref)

    shown = json.loads(cli("postmortem", "show", ref, "--json").output)
    assert (shown["status"], shown["impact"], shown["went_badly"]) == (
        "published",
        "Checkout failed for 45 min",
        "Slow to find\nand slow to fix",
    )
    md = cli("postmortem", "show", ref, "--markdown").output
    assert md.startswith(f"# Postmortem: {ref} checkout answers 502\n")
    assert "## Root cause\n\nPool too small\n" in md and "## What went well\n\n_(empty)_" in md

    cli(
        "action-item",
        "add",
        ref,
        "Resize the pool",
        "--owner",
        "Responder@example.org",
        "--due",
        "2026-03-01",
    )
    cli("action-item", "add", ref, "Write a runbook")
    assert cli("action-item", "add", ref, "x", "--due", "soon", ok=False).exit_code == 1
    assert cli("action-item", "add", ref, "x", "--owner", "nobody@example.org", ok=False).exit_code == 1
    assert cli("action-item", "add", "INC-999999", "x", ok=False).exit_code == 1

    overdue = json.loads(cli("action-item", "list", "--overdue", "--json").output)
    assert [i["title"] for i in overdue] == ["Resize the pool"]
    mine = json.loads(cli("action-item", "list", "--owner", "responder@example.org", "--json").output)
    assert [i["title"] for i in mine] == ["Resize the pool"]
    cli("action-item", "done", str(overdue[0]["id"]))
    assert json.loads(cli("action-item", "list", "--overdue", "--json").output) == []
    assert cli("action-item", "done", "999999", ok=False).exit_code == 1
    md = cli("postmortem", "show", ref, "--markdown").output
    assert "| Resize the pool | Responder <responder@example.org> | 2026-03-01 | done |" in md
