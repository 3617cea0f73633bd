"""The monitor pages: the list (tabs, filters, pagination, 90-day bar), the add and edit forms
generated per check type, the detail page (uptime, response time, state history, heartbeats), on
SQLite and PostgreSQL; and one browser test that switches the check type and takes screenshots."""

from __future__ import annotations

import html
import os
import re
from datetime import timedelta
from pathlib import Path
from typing import Any, ClassVar, Literal

import pytest
from pydantic import Field

from opsdesk.cmdb import service as cmdb
from opsdesk.cmdb.schemas import ServiceIn
from opsdesk.core import crypto
from opsdesk.core.actor import SYSTEM
from opsdesk.monitoring import heartbeat, views
from opsdesk.monitoring import service as monitoring
from opsdesk.monitoring.checks import REGISTRY
from opsdesk.monitoring.checks.base import CheckConfig, CheckOutcome, CheckType
from opsdesk.monitoring.models import CheckResult, DailyStats, LocationState, Monitor, StateChange
from opsdesk.monitoring.schemas import MonitorIn
from tests import test_browser
from tests.conftest import PASSWORD
from tests.support import login

HTML = {"accept": "text/html"}
# The browser test's fixtures (a live server, Debian's chromium), shared with tests/test_browser.py.
live_server = test_browser.live_server
browser = test_browser.browser
SHOTS = Path(os.environ.get("OPSDESK_SHOTS", "/tmp/opsdesk-shots"))


@pytest.fixture
def db_url(sqlite_url: str) -> str:
    """SQLite only: see ``sqlite_url`` in conftest."""
    return sqlite_url


def _as(client, accounts, role: str) -> str:  # type: ignore[no-untyped-def]
    return login(client, accounts[role].email, PASSWORD)


def _create(db, clock, name: str, type_: str = "http", target: str = "", **kw: Any) -> int:  # type: ignore[no-untyped-def]
    target = target or {"http": f"http://127.0.0.1:9/{name}", "tcp": "127.0.0.1:9"}.get(type_, "job")
    with db.session() as s:
        m = monitoring.create_monitor(
            s,
            MonitorIn(name=name, type=type_, target=target, **kw),
            actor=SYSTEM,
            now=clock.now() - timedelta(days=40),
        )
        return m.id


def _rows(page: str) -> list[str]:
    return re.findall(r'<tr data-monitor="\d+">.*?</tr>', page, re.S)


def _names(page: str) -> list[str]:
    return re.findall(r'<td class="name"><a href="/monitors/\d+">([^<]+)</a>', page)


def _field(page: str, key: str) -> str:
    """The HTML of one generated config field (its div)."""
    found = re.search(rf'<div class="field[^"]*" data-field="{key}">(.*?)\n</div>', page, re.S)
    assert found, f"no field {key}"
    return found.group(1)


# --- the list ------------------------------------------------------------------------------------


@pytest.fixture
def sixty(db, clock) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """53 http monitors web-00..web-52 and 7 tcp db-0..db-6; web-00..02 and db-0 are down."""
    ids = {f"web-{i:02d}": _create(db, clock, f"web-{i:02d}") for i in range(53)}
    ids |= {f"db-{i}": _create(db, clock, f"db-{i}", "tcp", f"db{i}.example.org:5432") for i in range(7)}
    with db.session() as s:
        for name in ("web-00", "web-01", "web-02", "db-0"):
            s.get(Monitor, ids[name]).status = "down"  # type: ignore[union-attr]
    return ids


def test_list_pages_through_monitors_with_counts_per_state(client, accounts, sixty):
    _as(client, accounts, "viewer")
    first = client.get("/monitors", headers=HTML).text
    assert len(_rows(first)) == 50
    assert "Page 1 of 2" in first
    assert 'href="/monitors?page=2" rel="next"' in first
    assert re.search(r"All <span class=\"count\">60</span>", first)
    assert re.search(r'data-state="down"[^>]*>Down <span class="count bad">4</span>', first)
    second = client.get("/monitors?page=2", headers=HTML).text
    assert len(_rows(second)) == 10 and "Page 2 of 2" in second
    assert 'href="/monitors" rel="prev"' in second
    # Sorted by name over both pages, without repeats.
    names = _names(first) + _names(second)
    assert names == sorted(names) and len(set(names)) == 60
    # A page past the end shows the last one.
    assert "Page 2 of 2" in client.get("/monitors?page=9", headers=HTML).text


def test_list_filters_by_state_type_and_search_and_keeps_them_in_links(client, accounts, sixty):
    _as(client, accounts, "viewer")
    tcp = client.get("/monitors?type=tcp", headers=HTML).text
    assert sorted(_names(tcp)) == [f"db-{i}" for i in range(7)]
    # The tabs count within the other filters.
    assert re.search(r"All <span class=\"count\">7</span>", tcp)
    assert re.search(r'data-state="down"[^>]*>Down <span class="count bad">1</span>', tcp)
    assert 'href="/monitors?status=down&amp;type=tcp"' in tcp
    down_http = client.get("/monitors?status=down&type=http", headers=HTML).text
    assert _names(down_http) == ["web-00", "web-01", "web-02"]
    search = client.get("/monitors?q=WEB-0", headers=HTML).text
    assert _names(search) == [f"web-{i:02d}" for i in range(10)]
    by_target = client.get("/monitors?q=db3.example", headers=HTML).text
    assert _names(by_target) == ["db-3"]
    web = client.get("/monitors?q=web&type=http", headers=HTML).text
    assert "Page 1 of 2" in web
    assert 'href="/monitors?q=web&amp;type=http&amp;page=2" rel="next"' in web
    assert _names(client.get("/monitors?q=nothing-like-this", headers=HTML).text) == []


def test_list_sorts_by_state(client, accounts, sixty):
    _as(client, accounts, "viewer")
    page = client.get("/monitors?sort=status", headers=HTML).text
    assert _names(page)[:4] == ["db-0", "web-00", "web-01", "web-02"]


def test_list_marks_stale_and_flapping_monitors(client, accounts, db, clock):
    mid = _create(db, clock, "old")
    with db.session() as s:
        m = s.get(Monitor, mid)
        assert m is not None
        m.status, m.flapping, m.last_check_at = "up", True, clock.now() - timedelta(hours=1)
    _as(client, accounts, "viewer")
    (row,) = _rows(client.get("/monitors", headers=HTML).text)
    assert ">stale</span>" in row and ">flapping</span>" in row
    assert "1 h ago" in row


def test_uptime_bar_colours_and_tooltips_from_daily_stats(client, accounts, db, clock):
    mid = _create(db, clock, "shop")
    today = clock.now().date()  # 2026-03-02
    with db.session() as s:
        for days_ago, checks, failures in ((0, 4320, 2), (1, 1440, 0), (2, 1440, 10), (3, 1440, 100)):
            s.add(
                DailyStats(
                    monitor_id=mid, day=today - timedelta(days=days_ago), checks=checks, failures=failures
                )
            )
    _as(client, accounts, "viewer")
    (row,) = _rows(client.get("/monitors", headers=HTML).text)
    cells = re.findall(r'<i class="(\w+)" title="([^"]+)"></i>', row)
    assert len(cells) == 90
    assert cells[-1] == ("minor", "2026-03-02: 99.95 % (2 of 4,320 checks failed)")
    assert cells[-2] == ("ok", "2026-03-01: 100 % (0 of 1,440 checks failed)")
    assert cells[-3] == ("warn", "2026-02-28: 99.30 % (10 of 1,440 checks failed)")
    assert cells[-4] == ("bad", "2026-02-27: 93.05 % (100 of 1,440 checks failed)")
    assert cells[0] == ("none", "2025-12-03: no data")
    assert {c for c, _ in cells[:-4]} == {"none"}
    # 90 days: (8,640 - 112) / 8,640 checks ok = 98.7037 %
    assert '<td class="num uptime">98.70 %</td>' in row


def test_bar_class_thresholds():
    assert views.bar_class(0, 0) == "none"
    assert views.bar_class(1440, 0) == "ok"
    assert views.bar_class(1440, 1) == "minor"  # 99.93 %
    assert views.bar_class(1000, 1) == "minor"  # 99.9 % exactly
    assert views.bar_class(1000, 2) == "warn"
    assert views.bar_class(100, 1) == "warn"  # 99 % exactly
    assert views.bar_class(100, 2) == "bad"
    assert views.percent_text(99.99999, False) == "99.99 %"


# --- the add form, per check type ----------------------------------------------------------------


def test_add_form_has_the_http_fields_and_creates_an_http_monitor(client, accounts, db):
    csrf = _as(client, accounts, "manager")
    page = client.get("/monitors/new", headers=HTML).text
    assert '<option value="http" selected>' in page
    assert 'name="config.method"' in _field(page, "method") and "<select" in _field(page, "method")
    assert 'type="password"' in _field(page, "password")
    assert "<textarea" in _field(page, "headers")
    assert 'type="checkbox"' in _field(page, "follow_redirects")
    assert 'placeholder="https://example.org/health"' in page
    r = client.post(
        "/monitors",
        data={
            "csrf_token": csrf,
            "type": "http",
            "name": "shop",
            "target": "https://127.0.0.1:9/health",
            "config.method": "HEAD",
            "config.expected_status": "200-299, 301",
            "config.headers": "X-Token: abc\nAccept: text/plain",
            "config.keyword": "",
            "config.follow_redirects": ["false"],  # the box left unticked: only the hidden field
            "config.verify_tls": ["false", "true"],
            "config.username": "monitor",
            "config.password": "s3cret",
            "interval_seconds": "30",
            "severity": "warning",
        },
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    with db.session() as s:
        (m,) = monitoring.list_monitors(s)
        assert (m.type, m.interval_seconds, m.severity) == ("http", 30, "warning")
        assert m.config["method"] == "HEAD"
        assert m.config["expected_status"] == ["200-299", 301]
        assert m.config["headers"] == {"X-Token": "abc", "Accept": "text/plain"}
        assert (m.config["follow_redirects"], m.config["verify_tls"], m.config["keyword"]) == (
            False,
            True,
            None,
        )
        assert "password" not in m.config and crypto.decrypt(m.secrets["password"]) == "s3cret"
    assert r.headers["location"].startswith(f"/monitors/{m.id}")


def test_switching_the_type_fetches_its_fields(client, accounts):
    _as(client, accounts, "manager")
    tcp = client.get("/monitors/new/fields?type=tcp&target=db1:5432", headers=HTML).text
    assert "<html" not in tcp  # a fragment
    assert '<input type="hidden" name="type" value="tcp">' in tcp
    assert 'name="config.latency_warn_ms"' in tcp and "config.method" not in tcp
    assert 'placeholder="db1.example.org:5432"' in tcp and 'value="db1:5432"' in tcp
    # Without JavaScript the select's own form reloads the page with the type.
    page = client.get("/monitors/new?type=heartbeat", headers=HTML).text
    assert '<option value="heartbeat" selected>' in page and 'name="config.grace_seconds"' in page
    assert "<noscript><button" in page


def test_add_a_tcp_monitor(client, accounts, db):
    csrf = _as(client, accounts, "manager")
    r = client.post(
        "/monitors",
        data={
            "csrf_token": csrf,
            "type": "tcp",
            "name": "postgres",
            "target": "db1.example.org:5432",
            "config.latency_warn_ms": "200",
            "config.latency_critical_ms": "",
            "timeout_seconds": "2.5",
        },
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    with db.session() as s:
        (m,) = monitoring.list_monitors(s)
        assert (m.type, m.target, m.timeout_seconds) == ("tcp", "db1.example.org:5432", 2.5)
        assert m.config == {"latency_warn_ms": 200.0, "latency_critical_ms": None}


def test_add_a_heartbeat_and_see_its_ping_url(client, accounts, db, clock, settings):
    csrf = _as(client, accounts, "manager")
    r = client.post(
        "/monitors",
        data={
            "csrf_token": csrf,
            "type": "heartbeat",
            "name": "nightly backup",
            "target": "",
            "config.grace_seconds": "900",
            "config.schedule": "0 2 * * *",
            "config.timezone": "Europe/Berlin",
            "interval_seconds": "86400",
        },
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    with db.session() as s:
        (m,) = monitoring.list_monitors(s)
        assert m.config == {"grace_seconds": 900, "schedule": "0 2 * * *", "timezone": "Europe/Berlin"}
        key, mid = m.ping_key, m.id
    assert key
    page = client.get(f"/monitors/{mid}", headers=HTML).text
    url = f"{settings.base_url}/ping/{key}"
    assert f'id="ping-url" value="{url}"' in page
    for suffix in ("", "/start", "/fail", "/$?"):
        assert f"curl -fsS -m 10 --retry 5 {url}{suffix}</code>" in page
    assert 'id="hb-last-ping">never' in page and "the first ping starts the clock" in page
    with db.session() as s:
        heartbeat.record_pings(s, [heartbeat.Ping(key, "start", clock.now() - timedelta(minutes=3))])
    page = client.get(f"/monitors/{mid}", headers=HTML).text
    assert re.search(r'id="hb-last-ping">2026-03-02 08:57:00 UTC', page)
    assert re.search(
        r'id="hb-run-started">2026-03-02 08:57:00 UTC <span class="muted">\(3 min ago, still running', page
    )
    # The run must end within the grace time: 15 min after the start.
    assert re.search(r'id="hb-deadline">2026-03-02 09:12:00 UTC', page)


def test_a_config_error_shows_next_to_its_field_and_creates_nothing(client, accounts, db):
    csrf = _as(client, accounts, "manager")
    r = client.post(
        "/monitors",
        data={
            "csrf_token": csrf,
            "type": "http",
            "name": "shop",
            "target": "https://127.0.0.1:9/",
            "config.expected_status": "abc",
            "config.latency_warn_ms": "fast",
        },
    )
    assert r.status_code == 422
    status_field = _field(r.text, "expected_status")
    assert 'aria-invalid="true"' in status_field
    assert re.search(r'<small class="field-error">[^<]*abc[^<]*</small>', status_field), status_field
    assert 'class="field-error"' in _field(r.text, "latency_warn_ms")
    assert 'class="field-error"' not in _field(r.text, "method")
    # What was typed is kept.
    assert 'value="abc"' in status_field and 'value="shop"' in r.text
    with db.session() as s:
        assert monitoring.list_monitors(s) == []


def test_bad_yaml_and_common_field_errors_show_at_once(client, accounts, db):
    csrf = _as(client, accounts, "manager")
    r = client.post(
        "/monitors",
        data={
            "csrf_token": csrf,
            "type": "http",
            "name": "shop",
            "target": "https://127.0.0.1:9/",
            "config.headers": "X-Token: [unclosed",
            "interval_seconds": "0",
        },
    )
    assert r.status_code == 422
    assert "not valid YAML or JSON" in _field(r.text, "headers")
    assert re.search(r'id="interval_seconds"[^>]*aria-invalid="true"', r.text)
    assert "greater than or equal to 1" in r.text
    with db.session() as s:
        assert monitoring.list_monitors(s) == []


def test_a_bad_target_and_a_taken_name_are_shown_at_their_fields(client, accounts, db, clock):
    _create(db, clock, "shop")
    csrf = _as(client, accounts, "manager")
    r = client.post(
        "/monitors", data={"csrf_token": csrf, "type": "tcp", "name": "pg", "target": "no port here"}
    )
    assert r.status_code == 422
    assert re.search(r'id="target"[^>]*aria-invalid="true"[^>]*>\s*<small class="field-error">', r.text)
    r = client.post(
        "/monitors", data={"csrf_token": csrf, "type": "http", "name": "shop", "target": "http://x.example/"}
    )
    assert r.status_code == 409
    assert re.search(
        r'id="name"[^>]*aria-invalid="true"[^>]*>\s*<small class="field-error">[^<]*already', r.text
    )


class ThrowawayConfig(CheckConfig):
    level: Literal["low", "high"] = "low"
    limit: int = Field(default=5, ge=1, le=10, description="how many at most")
    tags: list[str] = Field(default_factory=list)
    weights: dict[str, int] = Field(default_factory=dict)
    api_key: str | None = None
    strict: bool = False


class ThrowawayCheck(CheckType):
    name = "throwaway"
    config_model = ThrowawayConfig
    secret_fields: ClassVar[tuple[str, ...]] = ("api_key",)

    async def run(self, target: str, config: Any, timeout: float, ctx: Any) -> CheckOutcome:
        return CheckOutcome(True, "fine")


def test_a_newly_registered_check_type_gets_its_form(client, accounts, db, monkeypatch):
    monkeypatch.setitem(REGISTRY, "throwaway", ThrowawayCheck())
    csrf = _as(client, accounts, "manager")
    page = client.get("/monitors/new", headers=HTML).text
    assert '<option value="throwaway"' in page
    fields = client.get("/monitors/new/fields?type=throwaway", headers=HTML).text
    assert '<option value="high"' in _field(fields, "level")
    assert 'type="number"' in _field(fields, "limit") and 'min="1"' in _field(fields, "limit")
    assert "how many at most" in _field(fields, "limit")
    assert "<textarea" in _field(fields, "tags") and "<textarea" in _field(fields, "weights")
    assert 'type="password"' in _field(fields, "api_key")
    assert 'type="checkbox"' in _field(fields, "strict")
    r = client.post(
        "/monitors",
        data={
            "csrf_token": csrf,
            "type": "throwaway",
            "name": "new kind",
            "target": "anything",
            "config.level": "high",
            "config.limit": "7",
            "config.tags": "a\nb\n",
            "config.weights": '{"x": 1}',
            "config.api_key": "k",
            "config.strict": ["false", "true"],
        },
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    with db.session() as s:
        (m,) = monitoring.list_monitors(s)
        assert m.config == {
            "level": "high",
            "limit": 7,
            "tags": ["a", "b"],
            "weights": {"x": 1},
            "strict": True,
        }
        assert crypto.decrypt(m.secrets["api_key"]) == "k"
    r = client.post(
        "/monitors",
        data={"csrf_token": csrf, "type": "throwaway", "name": "bad", "target": "x", "config.limit": "11"},
    )
    assert r.status_code == 422 and "less than or equal to 10" in _field(r.text, "limit")


# --- edit ----------------------------------------------------------------------------------------


def test_the_edit_form_keeps_secrets_unless_retyped(client, accounts, db, clock):
    mid = _create(
        db, clock, "api", config={"password": "old-secret", "username": "bob", "headers": {"X-A": "1"}}
    )
    csrf = _as(client, accounts, "manager")
    page = client.get(f"/monitors/{mid}", headers=HTML).text
    assert "old-secret" not in page
    password = _field(page, "password")
    assert 'value=""' in password and "leave empty to keep" in password and 'name="clear_secret"' in password
    assert 'value="bob"' in _field(page, "username")
    assert "X-A: &#39;1&#39;" in _field(page, "headers") or "X-A: &#34;1&#34;" in _field(page, "headers")

    def secret() -> str | None:
        with db.session() as s:
            m = monitoring.get_monitor(s, mid)
            return crypto.decrypt(m.secrets["password"]) if "password" in m.secrets else None

    base = {"csrf_token": csrf, "name": "api", "target": "http://127.0.0.1:9/", "config.password": ""}
    r = client.post(f"/monitors/{mid}", data={**base, "config.keyword": "ok"}, follow_redirects=False)
    assert r.status_code == 303, r.text
    assert secret() == "old-secret"
    with db.session() as s:
        m = monitoring.get_monitor(s, mid)
        assert (m.config["keyword"], m.config["username"], m.config["headers"]) == ("ok", "bob", {"X-A": "1"})
    client.post(f"/monitors/{mid}", data={**base, "config.password": "new-secret"})
    assert secret() == "new-secret"
    client.post(f"/monitors/{mid}", data={**base, "clear_secret": "password"})
    assert secret() is None


def test_a_bad_edit_shows_the_error_at_its_field_and_changes_nothing(client, accounts, db, clock):
    mid = _create(db, clock, "api")
    csrf = _as(client, accounts, "manager")
    r = client.post(
        f"/monitors/{mid}",
        data={"csrf_token": csrf, "name": "api", "config.expected_status": "999", "interval_seconds": "30"},
    )
    assert r.status_code == 422
    assert 'class="field-error"' in _field(r.text, "expected_status")
    assert '<details id="edit" open>' in r.text
    with db.session() as s:
        m = monitoring.get_monitor(s, mid)
        assert (m.interval_seconds, m.config["expected_status"]) == (60, 200)


# --- detail --------------------------------------------------------------------------------------


@pytest.fixture
def history(db, clock) -> int:  # type: ignore[no-untyped-def]
    """Up 20 h ago, down 10 h ago, up again 9 h ago; 11 successful checks of 10..110 ms today."""
    mid = _create(db, clock, "shop")
    now = clock.now()
    with db.session() as s:
        for hours, old, new, flapping in (
            (20, "unknown", "up", False),
            (10, "up", "down", True),
            (9, "down", "up", False),
        ):
            s.add(
                StateChange(
                    monitor_id=mid,
                    at=now - timedelta(hours=hours),
                    old=old,
                    new=new,
                    flapping=flapping,
                    message=f"went {new}",
                )
            )
        for i in range(11):
            s.add(
                CheckResult(
                    monitor_id=mid,
                    at=now - timedelta(minutes=5 * (i + 1)),
                    ok=True,
                    latency_ms=10.0 * (i + 1),
                    status_code=200,
                    message="HTTP 200",
                )
            )
        s.add(
            CheckResult(
                monitor_id=mid, at=now - timedelta(hours=10), ok=False, latency_ms=None, message="refused"
            )
        )
        m = s.get(Monitor, mid)
        assert m is not None
        m.status = "up"
    return mid


def _uptime_row(page: str, label: str) -> dict[str, str]:
    found = re.search(rf'<th scope="row">{re.escape(label)}</th>(.*?)</tr>', page, re.S)
    assert found, f"no uptime row {label}"
    cells = re.findall(r'<td class="num (?:hide-sm )?(\w+)">(.*?)</td>', found.group(1), re.S)
    return {k: html.unescape(re.sub(r"<[^>]+>", "", v)).strip() for k, v in cells}


def test_detail_shows_uptime_from_the_state_history(client, accounts, history):
    _as(client, accounts, "viewer")
    page = client.get(f"/monitors/{history}", headers=HTML).text
    # Known for the last 20 h (before: no state), down for 1 h of them: 19/20 = 95 %.
    day = _uptime_row(page, "24 hours")
    assert (day["availability"], day["downtime"], day["outages"]) == ("95.00 %", "1 h", "1")
    # Response times of the 11 successful checks, 10..110 ms: p50 60, p95 105, p99 109.
    assert (day["p50"], day["p95"], day["p99"]) == ("60 ms", "105 ms", "109 ms")
    month = _uptime_row(page, "30 days")
    assert (month["availability"], month["downtime"], month["outages"]) == ("95.00 %", "1 h", "1")


def test_detail_shows_the_state_history(client, accounts, history):
    _as(client, accounts, "viewer")
    page = client.get(f"/monitors/{history}", headers=HTML).text
    rows = re.findall(r'<tr class="state-change">(.*?)</tr>', page, re.S)
    assert len(rows) == 3
    text = [re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", r)).strip() for r in rows]
    assert text[0].startswith("2026-03-02 00:00:00 UTC down → up 9 h (so far) went up")
    assert text[1] == "2026-03-01 23:00:00 UTC up → down flapping 1 h went down"
    assert text[2] == "2026-03-01 13:00:00 UTC unknown → up 10 h went up"


def test_detail_custom_range_and_its_errors(client, accounts, history):
    _as(client, accounts, "viewer")
    page = client.get(f"/monitors/{history}?start=2026-03-01&end=2026-03-02", headers=HTML).text
    row = _uptime_row(page, "2026-03-01 to 2026-03-02")
    assert (row["availability"], row["downtime"], row["outages"]) == ("95.00 %", "1 h", "1")
    # Before anything was known: no availability to show.
    old = _uptime_row(client.get(f"/monitors/{history}?start=2026-01-01&end=2026-01-31", headers=HTML).text,
                      "2026-01-01 to 2026-01-31")  # fmt: skip
    assert old["availability"] == "—"
    r = client.get(f"/monitors/{history}?start=2026-03-02&end=2026-03-01", headers=HTML)
    assert r.status_code == 422 and "the end is before the start" in r.text
    r = client.get(f"/monitors/{history}?start=2026-13-01&end=2026-03-01", headers=HTML)
    assert r.status_code == 422 and "not a date" in r.text
    r = client.get(f"/monitors/{history}?start=2026-03-01", headers=HTML)
    assert r.status_code == 422 and "give both" in r.text


def test_detail_shows_firing_rules_and_location_states(client, accounts, db, clock):
    mid = _create(db, clock, "edge")
    with db.session() as s:
        m = s.get(Monitor, mid)
        assert m is not None
        m.check_state = {"firing": {'cpu_high{instance="a"}': "warning"}}
        m.locations, m.quorum = ["local", "eu-west"], 2
        s.add(LocationState(monitor_id=mid, location="eu-west", ok=False, consecutive_failures=4,
                            last_check_at=clock.now(), last_message="connection refused"))  # fmt: skip
    _as(client, accounts, "viewer")
    page = client.get(f"/monitors/{mid}", headers=HTML).text
    assert "cpu_high{instance=&#34;a&#34;}" in page and "Rules firing" in page
    eu = re.search(r'<tr data-location="eu-west">(.*?)</tr>', page, re.S)
    local = re.search(r'<tr data-location="local">(.*?)</tr>', page, re.S)
    assert eu and "failing" in eu.group(1) and "connection refused" in eu.group(1) and ">4<" in eu.group(1)
    assert local and "unknown" in local.group(1)
    assert "down when 2 of 2 see it failing" in page


def test_service_uptime_section(app, db, clock, history):
    with db.session() as s:
        svc = cmdb.create_service(s, ServiceIn(name="shop"), actor=SYSTEM, now=clock.now())
        m = s.get(Monitor, history)
        assert m is not None
        m.service_id = svc.id
    with db.session() as s:
        context = views.service_uptime(s, svc.id, clock.now())
    html_ = app.state.templates.get_template("monitoring/_service_uptime.html").render(
        now=clock.now(), **context
    )
    day = re.search(r'24 hours</th><td class="num availability">([^<]+)</td>', html_)
    assert day and day.group(1) == "95.00 %"
    assert 'href="/monitors/' in html_ and 'class="uptime-bar"' in html_


# --- roles ---------------------------------------------------------------------------------------


def test_viewer_sees_no_add_or_bulk_controls_and_cannot_post(client, accounts, db, clock):
    mid = _create(db, clock, "api")
    csrf = _as(client, accounts, "viewer")
    listing = client.get("/monitors", headers=HTML).text
    assert "Add monitor" not in listing and 'name="ids"' not in listing and "Pause selected" not in listing
    detail = client.get(f"/monitors/{mid}", headers=HTML).text
    assert 'id="edit"' not in detail and "/pause" not in detail
    assert client.get("/monitors/new", headers=HTML).status_code == 403
    r = client.post(
        "/monitors",
        data={"csrf_token": csrf, "type": "tcp", "name": "x", "target": "127.0.0.1:9"},
        headers=HTML,
    )
    assert r.status_code == 403
    r = client.post(
        "/monitors/bulk", data={"csrf_token": csrf, "action": "pause", "ids": [mid]}, headers=HTML
    )
    assert r.status_code == 403
    with db.session() as s:
        assert [m.name for m in monitoring.list_monitors(s)] == ["api"]
        assert monitoring.get_monitor(s, mid).enabled


def test_manager_sees_add_and_bulk_and_bulk_returns_to_the_filtered_page(client, accounts, sixty):
    csrf = _as(client, accounts, "manager")
    page = client.get("/monitors?type=tcp", headers=HTML).text
    assert 'href="/monitors/new"' in page and 'name="ids"' in page
    assert '<input type="hidden" name="next" value="/monitors?type=tcp">' in page
    r = client.post(
        "/monitors/bulk",
        data={"csrf_token": csrf, "action": "pause", "ids": [sixty["db-1"]], "next": "/monitors?type=tcp"},
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"].startswith("/monitors?type=tcp&flash=1+monitor")


# --- in a browser --------------------------------------------------------------------------------


@pytest.mark.browser
async def test_browser_type_switch_and_screenshots(live_server, browser, accounts, db, clock, history):
    with db.session() as s:
        today = clock.now().date()
        for i in range(90):
            failures = 0 if i % 11 else (3 if i % 2 else 40)
            s.add(
                DailyStats(monitor_id=history, day=today - timedelta(days=i), checks=1440, failures=failures)
            )
    for i in range(12):
        _create(db, clock, f"svc-{i:02d}-api", target=f"https://svc-{i:02d}.internal.example.org/health")
    _create(db, clock, "nightly-backup", "heartbeat", "backup of db1")
    SHOTS.mkdir(parents=True, exist_ok=True)

    page = await browser.new_page(viewport={"width": 1280, "height": 900})
    await test_browser._login(page, live_server, "manager@example.org")
    await page.goto(f"{live_server}/monitors/new")
    assert await page.locator("[name='config.method']").count() == 1
    await page.fill("#target", "db1.example.org:5432")
    await page.select_option("#type-select", "tcp")
    await page.locator("#config-fields[data-type='tcp']").wait_for()
    assert await page.locator("[name='config.method']").count() == 0
    assert await page.locator("[name='config.latency_warn_ms']").count() == 1
    assert await page.input_value("#target") == "db1.example.org:5432"
    assert await page.input_value("input[name='type']") == "tcp"
    await page.select_option("#type-select", "heartbeat")
    await page.locator("#config-fields[data-type='heartbeat']").wait_for()
    await page.fill("#name", "backup job")
    await page.fill("[name='config.grace_seconds']", "600")
    await page.click("#monitor-form button[type=submit]")
    await page.wait_for_url(re.compile(r".*/monitors/\d+\?flash=.*"))
    assert "/ping/" in await page.input_value("#ping-url")
    await page.screenshot(path=str(SHOTS / "heartbeat-desktop.png"), full_page=True)
    await page.goto(f"{live_server}/monitors/new?type=http")
    await page.screenshot(path=str(SHOTS / "new-desktop.png"), full_page=True)

    await page.goto(f"{live_server}/monitors")
    await page.locator("#monitor-table").wait_for()
    wider = await page.evaluate(
        "(t => t.scrollWidth - t.parentElement.clientWidth)(document.getElementById('monitor-table'))"
    )
    assert wider <= 1, f"the monitor table is {wider}px wider than the page on a desktop"
    await page.screenshot(path=str(SHOTS / "list-desktop.png"), full_page=True)
    await page.goto(f"{live_server}/monitors/{history}")
    await page.locator("#latency-chart canvas").wait_for()
    await page.screenshot(path=str(SHOTS / "detail-desktop.png"), full_page=True)

    phone = await browser.new_context(
        viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True
    )
    p = await phone.new_page()
    await test_browser._login(p, live_server, "manager@example.org")
    for name, path in (("list", "/monitors"), ("detail", f"/monitors/{history}"), ("new", "/monitors/new")):
        await p.goto(f"{live_server}{path}")
        overflow = await p.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1, f"{name}: {overflow}px wider than the phone"
        await p.screenshot(path=str(SHOTS / f"{name}-phone.png"), full_page=True)
    await phone.close()
