"""The incident pages (SQLite and PostgreSQL): every form on the incident page and the list, the
live fragments, the Server-Sent Events stream read by a real client from a real server, and the
page updating itself in Chromium when someone else comments."""

from __future__ import annotations

import asyncio
import os
import re
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import uvicorn
from fastapi.testclient import TestClient

from opsdesk.alerts import service as alerts
from opsdesk.auth import service as auth
from opsdesk.auth.schemas import TeamIn
from opsdesk.cmdb import service as cmdb
from opsdesk.cmdb.schemas import ServiceIn
from opsdesk.core.actor import SYSTEM
from opsdesk.core.clock import ManualClock
from opsdesk.core.db import Database
from opsdesk.incidents import service as incidents
from opsdesk.incidents import views
from tests.conftest import PASSWORD, Account, free_port
from tests.support import login

HTML = {"accept": "text/html"}
CHROMIUM = os.environ.get("OPSDESK_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(os.environ.get("OPSDESK_TEST_ARTIFACTS", "test-artifacts"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


# --- the world -----------------------------------------------------------------------------------


@pytest.fixture
def db_url(sqlite_url: str) -> str:
    """SQLite only: see ``sqlite_url`` in conftest."""
    return sqlite_url


def _fire(db: Database, clock: ManualClock, summary: str, service_id: int | None, **labels: str) -> int:
    with db.session() as s:
        alerts.store_events(
            s,
            [
                alerts.NormalizedEvent(
                    source="alertmanager",
                    status="firing",
                    severity="critical",
                    summary=summary,
                    service_id=service_id,
                    labels=dict(labels),
                )
            ],
            now=clock.now(),
        )
    with db.session() as s:
        alerts.process_pending(s, now=clock.now())
    with db.session() as s:
        (alert,) = [a for a in alerts.list_alerts(s, limit=500) if a.summary == summary]
        assert alert.incident_id is not None
        return alert.incident_id


@pytest.fixture
def world(db: Database, clock: ManualClock, accounts: dict[str, Account]) -> dict[str, int]:
    """Service checkout (team payments: the responder) with one incident of two alerts, and an
    incident on search."""
    now = clock.now()
    with db.session() as s:
        team = auth.create_team(
            s, TeamIn(name="payments", member_ids=[accounts["responder"].user.id]), actor=SYSTEM, now=now
        )
        checkout = cmdb.create_service(
            s, ServiceIn(name="checkout", owner_team_id=team.id), actor=SYSTEM, now=now
        )
        search = cmdb.create_service(s, ServiceIn(name="search"), actor=SYSTEM, now=now)
        ids = {"team_id": team.id, "checkout": checkout.id, "search": search.id}
    a = _fire(db, clock, "checkout answers 503", ids["checkout"], alertname="http")
    a2 = _fire(db, clock, "checkout p99 over 2 s", ids["checkout"], alertname="latency")
    if a2 != a:  # correlation put it apart: join them by hand, as a person would
        with db.session() as s:
            incidents.merge(s, a, [a2], actor=SYSTEM, now=clock.now())
    ids["incident"] = a
    ids["other"] = _fire(db, clock, "search index stale", ids["search"], alertname="index")
    return ids


def _as(client: TestClient, accounts: dict[str, Account], role: str) -> str:
    return login(client, accounts[role].email, PASSWORD)


def _get(db: Database, incident_id: int) -> Any:
    with db.session() as s:
        return incidents.get_incident(s, incident_id)


def _timeline(db: Database, incident_id: int) -> list[Any]:
    with db.session() as s:
        return incidents.timeline(s, incident_id)


def _flash(r: Any) -> str:
    from urllib.parse import parse_qs, urlparse

    assert r.status_code == 303, r.text
    return parse_qs(urlparse(r.headers["location"]).query).get("flash", [""])[0]


# --- the incident page ---------------------------------------------------------------------------


def test_responder_sees_every_section_and_form(client, accounts, world) -> None:  # type: ignore[no-untyped-def]
    _as(client, accounts, "responder")

    page = client.get(f"/incidents/{world['incident']}", headers=HTML).text

    for needle in (
        'id="incident-status"',
        "prio-P",
        'name="impact"',
        'name="urgency"',
        'name="severity"',
        'name="team_id"',
        'name="assignee_id"',
        'name="commander_id"',
        'name="comms_lead_id"',
        'name="tags"',
        "Add a comment",
        "Post update",
        "Public (status page)",
        "Split into new incident",
        "Merge other incidents into this one",
        "Relate",
        "Acknowledge",
        "rule ",
        "checkout answers 503",
        "checkout p99 over 2 s",
        f"/incidents/{world['incident']}/stream?after=",
        "/static/incident.js",
    ):
        assert needle in page, needle
    for section in ("inc-head", "inc-facts", "inc-alerts", "inc-related", "inc-updates", "timeline"):
        assert re.search(rf'id="{section}"[^>]*data-live', page), section


def test_viewer_sees_the_facts_but_no_forms(client, accounts, world) -> None:  # type: ignore[no-untyped-def]
    _as(client, accounts, "viewer")

    page = client.get(f"/incidents/{world['incident']}", headers=HTML).text

    assert "checkout answers 503" in page and "Comms lead" in page
    for absent in (
        "Add a comment",
        "Post update",
        "Split into new incident",
        'name="impact"',
        ">Acknowledge<",
    ):
        assert absent not in page, absent


def test_live_fragment_has_every_live_section(client, accounts, world) -> None:  # type: ignore[no-untyped-def]
    _as(client, accounts, "viewer")

    r = client.get(f"/incidents/{world['incident']}/live", headers=HTML)

    assert r.status_code == 200
    for section in ("inc-head", "inc-facts", "inc-alerts", "inc-related", "inc-updates", "timeline"):
        assert re.search(rf'id="{section}"[^>]*data-live', r.text), section
    assert "<html" not in r.text


def test_comment_and_status_update_forms(client, accounts, world, db) -> None:  # type: ignore[no-untyped-def]
    csrf = _as(client, accounts, "responder")
    url = f"/incidents/{world['incident']}"

    assert (
        _flash(
            client.post(
                f"{url}/comment", data={"csrf_token": csrf, "text": "db failover"}, follow_redirects=False
            )
        )
        == "Comment added"
    )
    r = client.post(
        f"{url}/updates",
        data={"csrf_token": csrf, "status": "identified", "message": "Database failover in progress"},
        follow_redirects=False,
    )

    assert _flash(r) == "Internal update posted"
    with db.session() as s:
        (update,) = incidents.list_updates(s, world["incident"])
        assert (update.status, update.public, update.author) == ("identified", False, "responder@example.org")
    page = client.get(url, headers=HTML).text
    assert "db failover" in page and "Database failover in progress" in page


def test_details_form_sets_priority_people_and_tags(client, accounts, world, db) -> None:  # type: ignore[no-untyped-def]
    csrf = _as(client, accounts, "responder")
    form = {
        "csrf_token": csrf,
        "impact": "high",
        "urgency": "high",
        "severity": "critical",
        "team_id": str(world["team_id"]),
        "assignee_id": str(accounts["responder"].user.id),
        "commander_id": str(accounts["manager"].user.id),
        "comms_lead_id": "",
        "tags": "DB, customer-facing  eu:west",
    }

    r = client.post(f"/incidents/{world['incident']}/edit", data=form, follow_redirects=False)

    assert _flash(r).endswith("saved")
    inc = _get(db, world["incident"])
    assert (inc.priority, inc.assignee_id, inc.commander_id) == (
        "P1",
        accounts["responder"].user.id,
        accounts["manager"].user.id,
    )
    assert inc.tags == ["db", "customer-facing", "eu:west"]
    again = client.post(f"/incidents/{world['incident']}/edit", data=form, follow_redirects=False)
    assert _flash(again) == "Nothing changed"


def test_details_form_with_a_bad_tag_changes_nothing(client, accounts, world, db) -> None:  # type: ignore[no-untyped-def]
    csrf = _as(client, accounts, "responder")
    before = (_get(db, world["incident"]).priority, len(_timeline(db, world["incident"])))

    r = client.post(
        f"/incidents/{world['incident']}/edit",
        data={"csrf_token": csrf, "impact": "low", "urgency": "low", "tags": "ok, -bad"},
        follow_redirects=False,
    )

    assert "is not a tag" in _flash(r) and "kind=bad" in r.headers["location"]
    assert (_get(db, world["incident"]).priority, len(_timeline(db, world["incident"]))) == before


def test_refused_actions_come_back_as_a_red_message(client, accounts, world, db) -> None:  # type: ignore[no-untyped-def]
    csrf = _as(client, accounts, "responder")
    before = len(_timeline(db, world["incident"]))

    for action in ("close", "reopen"):
        r = client.post(
            f"/incidents/{world['incident']}/{action}", data={"csrf_token": csrf}, follow_redirects=False
        )
        assert "kind=bad" in r.headers["location"], action
    assert "resolve it before closing" in _flash(
        client.post(
            f"/incidents/{world['incident']}/close", data={"csrf_token": csrf}, follow_redirects=False
        )
    )
    assert len(_timeline(db, world["incident"])) == before


def test_resolve_reopen_and_close_through_the_page(client, accounts, world, db) -> None:  # type: ignore[no-untyped-def]
    csrf = _as(client, accounts, "responder")
    url = f"/incidents/{world['incident']}"
    client.post(f"{url}/edit", data={"csrf_token": csrf, "impact": "low", "urgency": "low"})

    client.post(f"{url}/resolve", data={"csrf_token": csrf})
    page = client.get(url, headers=HTML).text
    assert ">Reopen<" in page and ">Close<" in page and f"{url}/postmortem" in page
    client.post(f"{url}/reopen", data={"csrf_token": csrf, "note": "it is back"})
    assert _get(db, world["incident"]).status == "triggered"
    client.post(f"{url}/resolve", data={"csrf_token": csrf})
    assert _flash(client.post(f"{url}/close", data={"csrf_token": csrf}, follow_redirects=False)).endswith(
        "closed"
    )

    page = client.get(url, headers=HTML).text
    assert ">closed<" in page and ">Reopen<" not in page


def test_relate_and_unrelate(client, accounts, world, db) -> None:  # type: ignore[no-untyped-def]
    csrf = _as(client, accounts, "responder")
    url = f"/incidents/{world['incident']}"

    r = client.post(
        f"{url}/related", data={"csrf_token": csrf, "other": f"inc-{world['other']}"}, follow_redirects=False
    )

    assert _flash(r) == f"Related to INC-{world['other']}"
    assert f"/incidents/{world['incident']}" in client.get(f"/incidents/{world['other']}", headers=HTML).text
    self_link = client.post(
        f"{url}/related", data={"csrf_token": csrf, "other": str(world["incident"])}, follow_redirects=False
    )
    assert "itself" in _flash(self_link)
    r = client.post(
        f"{url}/unrelate", data={"csrf_token": csrf, "other_id": str(world["other"])}, follow_redirects=False
    )
    assert _flash(r) == f"No longer related to INC-{world['other']}"
    with db.session() as s:
        assert incidents.related(s, world["incident"]) == []


def test_merge_and_split_through_the_page(client, accounts, world, db) -> None:  # type: ignore[no-untyped-def]
    csrf = _as(client, accounts, "responder")
    url = f"/incidents/{world['incident']}"

    r = client.post(
        f"{url}/merge",
        data={"csrf_token": csrf, "incident_ids": [str(world["other"])]},
        follow_redirects=False,
    )

    assert _flash(r) == f"Merged INC-{world['other']} into INC-{world['incident']}"
    banner = client.get(f"/incidents/{world['other']}", headers=HTML).text
    assert "Merged into" in banner and "Add a comment" not in banner
    with db.session() as s:
        moving = [
            a.id
            for a in alerts.list_alerts(s, incident_id=world["incident"])
            if a.summary == "search index stale"
        ]
    r = client.post(
        f"{url}/split",
        data={"csrf_token": csrf, "alert_ids": [str(a) for a in moving], "title": "Search again"},
        follow_redirects=False,
    )
    new_id = int(r.headers["location"].split("?")[0].rsplit("/", 1)[1])
    assert new_id not in (world["incident"], world["other"])
    assert _get(db, new_id).title == "Search again"
    nothing = client.post(f"{url}/split", data={"csrf_token": csrf}, follow_redirects=False)
    assert "tick the alerts" in _flash(nothing)


def test_forms_are_refused_to_a_viewer(client, accounts, world, db) -> None:  # type: ignore[no-untyped-def]
    csrf = _as(client, accounts, "viewer")
    before = len(_timeline(db, world["incident"]))

    r = client.post(
        f"/incidents/{world['incident']}/comment", data={"csrf_token": csrf, "text": "hi"}, headers=HTML
    )

    assert r.status_code == 403
    assert len(_timeline(db, world["incident"])) == before


# --- the list ------------------------------------------------------------------------------------


def test_list_shows_priority_assignee_tags_and_filters(client, accounts, world, db, clock) -> None:  # type: ignore[no-untyped-def]
    responder = auth.actor_for(accounts["responder"].user)
    with db.session() as s:
        incidents.set_priority(
            s, world["incident"], impact="high", urgency="high", actor=responder, now=clock.now()
        )
        incidents.set_person(
            s, world["incident"], "assignee_id", responder.id, actor=responder, now=clock.now()
        )
        incidents.set_tags(s, world["incident"], ["db"], actor=responder, now=clock.now())
        incidents.set_priority(
            s, world["other"], impact="low", urgency="low", actor=responder, now=clock.now()
        )
    _as(client, accounts, "responder")

    page = client.get("/incidents", headers=HTML).text

    row = re.search(rf'<tr data-incident="INC-{world["incident"]}">.*?</tr>', page, re.S)
    assert row is not None
    assert "P1" in row.group(0) and "Responder" in row.group(0) and ">db<" in row.group(0)
    assert "Declare incident" in page
    for query, shown, hidden in (
        ("priority=P1", world["incident"], world["other"]),
        ("assignee=me", world["incident"], world["other"]),
        ("tag=DB", world["incident"], world["other"]),
        ("q=INDEX", world["other"], world["incident"]),
    ):
        text = client.get(f"/incidents?{query}", headers=HTML).text
        assert f'data-incident="INC-{shown}"' in text and f'data-incident="INC-{hidden}"' not in text, query
    bad = client.get("/incidents?tag=no+spaces", headers=HTML)
    assert bad.status_code == 200 and "is not a tag" in bad.text


def test_declare_through_the_list_page(client, accounts, world, db) -> None:  # type: ignore[no-untyped-def]
    csrf = _as(client, accounts, "responder")

    r = client.post(
        "/incidents",
        data={
            "csrf_token": csrf,
            "title": "Printers offline",
            "service_id": str(world["checkout"]),
            "severity": "warning",
            "urgency": "high",
            "description": "Floor 3",
        },
        follow_redirects=False,
    )

    assert _flash(r).endswith("declared")
    new_id = int(r.headers["location"].split("?")[0].rsplit("/", 1)[1])
    inc = _get(db, new_id)
    assert (inc.title, inc.severity, inc.impact, inc.urgency, inc.priority) == (
        "Printers offline",
        "warning",
        "medium",
        "high",
        "P2",
    )
    assert any(e.kind == "comment" and e.message == "Floor 3" for e in _timeline(db, new_id))
    empty = client.post("/incidents", data={"csrf_token": csrf, "title": " "}, follow_redirects=False)
    assert "title" in _flash(empty)


def test_viewer_has_no_declare_form(client, accounts, world) -> None:  # type: ignore[no-untyped-def]
    _as(client, accounts, "viewer")

    assert "Declare incident" not in client.get("/incidents", headers=HTML).text


# --- the event stream ----------------------------------------------------------------------------


def test_stream_needs_a_login_and_an_incident(client, accounts, world) -> None:  # type: ignore[no-untyped-def]
    r = client.get(f"/incidents/{world['incident']}/stream", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/login")
    _as(client, accounts, "viewer")
    assert client.get("/incidents/9999/stream", headers=HTML).status_code == 404
    assert client.get(f"/incidents/{world['incident']}/stream?after=-1", headers=HTML).status_code == 422


@pytest.fixture
def live_server(app) -> Iterator[str]:  # type: ignore[no-untyped-def]
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
async def browser_session(
    live_server: str, accounts: dict[str, Account]
) -> AsyncIterator[aiohttp.ClientSession]:
    """An aiohttp session signed in as the viewer through the login form (a cookie, as a browser)."""
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        async with session.post(
            f"{live_server}/login",
            data={"email": accounts["viewer"].email, "password": PASSWORD},
            allow_redirects=False,
        ) as r:
            assert r.status == 303
        yield session


async def _next_event(resp: aiohttp.ClientResponse, wanted: str, timeout: float = 15.0) -> str:
    """Read blocks (separated by a blank line) until one contains ``wanted``; return it."""

    async def read() -> str:
        block: list[str] = []
        while True:
            raw = await resp.content.readline()
            if not raw:
                raise AssertionError(f"the stream ended before {wanted!r}")
            line = raw.decode().rstrip("\n")
            if line:
                block.append(line)
                continue
            text = "\n".join(block)
            block = []
            if wanted in text:
                return text

    return await asyncio.wait_for(read(), timeout)


async def _until(check, what: str, timeout: float = 15.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for: {what}")
        await asyncio.sleep(0.05)


async def test_stream_delivers_a_comment_made_by_another_request(
    live_server, browser_session, accounts, world
) -> None:  # type: ignore[no-untyped-def]
    url = f"{live_server}/incidents/{world['incident']}/stream"
    async with browser_session.get(url, headers={"accept": "text/event-stream"}) as resp:
        assert resp.status == 200 and resp.headers["content-type"].startswith("text/event-stream")
        assert "retry:" in await _next_event(resp, "retry:")
        async with aiohttp.ClientSession() as other:
            r = await other.post(
                f"{live_server}/api/v1/incidents/{world['incident']}/comment",
                json={"text": "failover done, watching"},
                headers=accounts["responder"].headers,
            )
            assert r.status == 200, await r.text()

        event = await _next_event(resp, "failover done, watching")

        assert "event: changed" in event and re.search(r"^id: \d+$", event, re.M)
    await _until(lambda: views.open_streams() == 0, "the stream to stop after the client left")


async def test_stream_sees_writes_from_another_connection_pool(
    live_server, browser_session, world, db_url, clock
) -> None:  # type: ignore[no-untyped-def]
    """Another process writes (its own engine and connections): the stream polls the database."""
    url = f"{live_server}/incidents/{world['incident']}/stream"
    async with browser_session.get(url) as resp:
        await _next_event(resp, "retry:")
        elsewhere = Database(db_url)
        try:
            with elsewhere.session() as s:
                incidents.set_priority(
                    s, world["incident"], impact="low", urgency="low", actor=SYSTEM, now=clock.now()
                )
        finally:
            elsewhere.dispose()

        event = await _next_event(resp, "event: changed")

        assert "P5" in event


async def test_stream_resumes_after_last_event_id(live_server, browser_session, world, db, clock) -> None:  # type: ignore[no-untyped-def]
    seen = max(e.id for e in _timeline(db, world["incident"]))
    with db.session() as s:
        incidents.comment(s, world["incident"], text="while you were away", actor=SYSTEM, now=clock.now())

    url = f"{live_server}/incidents/{world['incident']}/stream"
    async with browser_session.get(url, headers={"last-event-id": str(seen)}) as resp:
        event = await _next_event(resp, "event: changed")

    assert "while you were away" in event


async def test_stream_sends_keepalives_and_ends_after_its_lifetime(
    live_server, browser_session, world, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(views, "STREAM_POLL_SECONDS", 0.05)
    monkeypatch.setattr(views, "STREAM_KEEPALIVE_SECONDS", 0.2)
    monkeypatch.setattr(views, "STREAM_LIFETIME_SECONDS", 1.0)
    url = f"{live_server}/incidents/{world['incident']}/stream"
    async with browser_session.get(url) as resp:
        body = (await asyncio.wait_for(resp.content.read(), 20)).decode()

    assert ": keepalive" in body and "event: changed" not in body
    await _until(lambda: views.open_streams() == 0, "the stream to close")


# --- in Chromium ---------------------------------------------------------------------------------


@pytest.mark.browser
async def test_the_page_shows_a_comment_from_elsewhere_without_reloading(
    live_server, accounts, world, db, clock
) -> None:  # type: ignore[no-untyped-def]
    from playwright.async_api import async_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (see .ci/run)")
    responder = auth.actor_for(accounts["responder"].user)
    with db.session() as s:
        now = clock.now()
        iid = world["incident"]
        incidents.set_priority(s, iid, impact="high", urgency="medium", actor=responder, now=now)
        incidents.set_team(s, iid, world["team_id"], actor=responder, now=now)
        incidents.set_person(s, iid, "assignee_id", responder.id, actor=responder, now=now)
        incidents.set_person(s, iid, "commander_id", accounts["manager"].user.id, actor=responder, now=now)
        incidents.set_tags(s, iid, ["db", "customer-facing"], actor=responder, now=now)
        incidents.acknowledge(s, iid, actor=responder, now=now, note="looking")
        incidents.post_update(
            s,
            iid,
            status="investigating",
            message="Checkout fails for some customers.",
            public=True,
            actor=responder,
            now=now,
        )
        incidents.link(s, iid, world["other"], actor=responder, now=now)
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 1000})
            await page.goto(f"{live_server}/login")
            await page.fill("input[name=email]", accounts["responder"].email)
            await page.fill("input[name=password]", PASSWORD)
            await page.click("button[type=submit]")
            await page.wait_for_url(f"{live_server}/")
            await page.goto(f"{live_server}/incidents/{iid}")
            await page.locator("#live-state.on").wait_for(timeout=15_000)
            await page.evaluate("window.__notReloaded = true")
            await page.fill("textarea[name=text]", "half-typed comment")

            async with aiohttp.ClientSession() as other:
                r = await other.post(
                    f"{live_server}/api/v1/incidents/{iid}/comment",
                    json={"text": "Rolled back release 42"},
                    headers=accounts["manager"].headers,
                )
                assert r.status == 200, await r.text()
                r = await other.patch(
                    f"{live_server}/api/v1/incidents/{iid}",
                    json={"urgency": "high"},
                    headers=accounts["manager"].headers,
                )
                assert r.status == 200, await r.text()

            await page.locator("#timeline", has_text="Rolled back release 42").wait_for(timeout=15_000)
            await page.locator("#inc-head .badge", has_text="P1").wait_for(timeout=15_000)
            assert await page.evaluate("window.__notReloaded === true"), "the page reloaded"
            assert await page.input_value("textarea[name=text]") == "half-typed comment"
            ARTIFACTS.mkdir(exist_ok=True)
            await page.screenshot(path=str(ARTIFACTS / "incident-live.png"), full_page=True)
            await page.goto(f"{live_server}/incidents?show=all")
            await page.screenshot(path=str(ARTIFACTS / "incident-list.png"), full_page=True)
            await page.set_viewport_size({"width": 390, "height": 844})
            await page.goto(f"{live_server}/incidents/{iid}")
            overflow = await page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 1, f"the incident page is {overflow}px wider than a phone screen"
            await page.screenshot(path=str(ARTIFACTS / "incident-phone.png"), full_page=True)
        finally:
            await browser.close()
