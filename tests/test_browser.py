"""A person in Chromium (Debian's, driven by Playwright): logs in, finds the incident on the
dashboard, acknowledges it; and the pages read well on a phone-sized screen."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import uvicorn
from playwright.async_api import Browser, async_playwright

from opsdesk.alerts import service as alerts
from opsdesk.cmdb import service as cmdb
from opsdesk.cmdb.schemas import ServiceIn
from opsdesk.core.actor import SYSTEM
from opsdesk.incidents import service as incidents
from tests.conftest import PASSWORD, free_port

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("OPSDESK_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(os.environ.get("OPSDESK_TEST_ARTIFACTS", "test-artifacts"))
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


@pytest.fixture
def live_server(app) -> Iterator[str]:
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
async def browser() -> AsyncIterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (see .ci/run)")
    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        await b.close()


@pytest.fixture
def incident(db, clock, accounts) -> int:
    with db.session() as s:
        svc = cmdb.create_service(s, ServiceIn(name="payments"), actor=SYSTEM, now=clock.now())
        alerts.store_events(
            s,
            [
                alerts.NormalizedEvent(
                    source="api",
                    status="firing",
                    severity="critical",
                    summary="payments API answers 503",
                    service_id=svc.id,
                )
            ],
            now=clock.now(),
        )
    with db.session() as s:
        alerts.process_pending(s, now=clock.now())
    with db.session() as s:
        (inc,) = incidents.list_incidents(s)
        return inc.id


async def _login(page, base: str, email: str) -> None:
    await page.goto(f"{base}/")
    assert "/login" in page.url
    await page.fill("input[name=email]", email)
    await page.fill("input[name=password]", PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_url(f"{base}/")


async def test_responder_logs_in_and_acknowledges_from_the_dashboard(live_server, browser, incident, db):
    page = await browser.new_page()
    await _login(page, live_server, "responder@example.org")
    row = page.locator("#open-incidents tr[data-incident='INC-1']")
    await row.wait_for()
    assert "payments API answers 503" in await row.inner_text()
    assert "triggered" in await row.inner_text()

    await row.get_by_role("button", name="Acknowledge").click()
    await page.wait_for_url(f"{live_server}/?**")
    assert "INC-1 acknowledged" in await page.inner_text("main")
    assert "acknowledged" in await page.locator("#open-incidents tr[data-incident='INC-1']").inner_text()
    with db.session() as s:
        inc = incidents.get_incident(s, incident)
        assert inc.status == "acknowledged"
        assert any(
            e.kind == "acknowledged" and e.actor == "responder@example.org"
            for e in incidents.timeline(s, inc.id)
        )

    await page.locator("#open-incidents a", has_text="INC-1").click()
    await page.wait_for_url(f"{live_server}/incidents/{incident}")
    assert "Acknowledged by responder@example.org" in await page.inner_text("#timeline")
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "incident-detail.png"), full_page=True)


async def test_wrong_password_stays_on_login_with_a_message(live_server, browser, accounts):
    page = await browser.new_page()
    await page.goto(f"{live_server}/login")
    await page.fill("input[name=email]", "responder@example.org")
    await page.fill("input[name=password]", "not the password")
    await page.click("button[type=submit]")
    assert "Wrong e-mail or password" in await page.inner_text("main")
    assert "/login" in page.url


async def test_viewer_sees_the_incident_but_no_acknowledge_button(live_server, browser, incident):
    page = await browser.new_page()
    await _login(page, live_server, "viewer@example.org")
    row = page.locator("#open-incidents tr[data-incident='INC-1']")
    await row.wait_for()
    assert await row.get_by_role("button", name="Acknowledge").count() == 0


async def test_dashboard_fits_a_phone_screen(live_server, browser, incident):
    context = await browser.new_context(
        viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True
    )
    page = await context.new_page()
    await _login(page, live_server, "responder@example.org")
    await page.locator("#open-incidents").wait_for()
    overflow = await page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 1, f"the page is {overflow}px wider than the phone screen"
    ack = page.locator("#open-incidents").get_by_role("button", name="Acknowledge")
    box = await ack.bounding_box()
    assert box is not None and box["x"] + box["width"] <= 390, (
        "the Acknowledge button is off screen on a phone"
    )
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "dashboard-phone.png"), full_page=True)
    await context.close()


async def test_api_docs_render_from_vendored_files(live_server, browser, accounts):
    page = await browser.new_page()
    external: list[str] = []
    page.on("request", lambda req: external.append(req.url) if not req.url.startswith(live_server) else None)
    await _login(page, live_server, "viewer@example.org")
    await page.goto(f"{live_server}/api/docs")
    await page.locator(".swagger-ui .info .title").wait_for()
    assert "opsdesk" in await page.locator(".swagger-ui .info .title").inner_text()
    # swagger-ui renders a long list of operations lazily, as it scrolls into view: scroll down
    # until the incidents group is drawn (every operation's group comes from the spec).
    incidents = page.locator(".opblock-tag", has_text="incidents").first
    for _ in range(200):
        if await incidents.count():
            break
        await page.mouse.wheel(0, 1500)
        await page.wait_for_timeout(50)
    await incidents.wait_for()
    assert external == [], f"the docs page fetched from outside: {external}"


async def test_monitor_page_charts_response_time(live_server, browser, accounts, db, clock):
    from datetime import timedelta

    from opsdesk.monitoring import service as monitoring
    from opsdesk.monitoring.checks import CheckOutcome
    from opsdesk.monitoring.schemas import MonitorIn

    with db.session() as s:
        mid = monitoring.create_monitor(
            s, MonitorIn(name="shop-http", target="http://127.0.0.1:9/"), actor=SYSTEM, now=clock.now()
        ).id
    start = clock.now() - timedelta(hours=1)
    results = [
        (mid, start + timedelta(minutes=i), CheckOutcome(i % 17 != 5, "HTTP 200", 40 + (i * 7) % 30, 200))
        for i in range(60)
    ]
    with db.session() as s:
        monitoring.record_results(s, results)
    page = await browser.new_page(viewport={"width": 1280, "height": 900})
    await _login(page, live_server, "viewer@example.org")
    await page.goto(f"{live_server}/monitors/{mid}")
    await page.locator("#latency-chart canvas").wait_for()
    legend = await page.locator("#latency-chart .u-legend").inner_text()
    assert "response time" in legend and "failed" in legend
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "monitor-detail.png"), full_page=True)
