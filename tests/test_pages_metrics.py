"""The metrics explorer page (``/metrics/explore``) on SQLite and PostgreSQL: samples are written
through the SQL store, then read back as names, chart JSON and tables; and one browser test that
the chart draws, with screenshots at desktop and phone width."""

from __future__ import annotations

import html
import json
import os
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from markupsafe import escape

from opsdesk.core.actor import SYSTEM
from opsdesk.metrics import views
from opsdesk.metrics.remote import PrometheusRemoteStore
from opsdesk.metrics.samples import Sample, labels_of
from opsdesk.metrics.sqlstore import SQLMetricsStore, to_ms
from opsdesk.monitoring import service as monitoring
from opsdesk.monitoring.schemas import MonitorIn
from tests import test_browser
from tests.conftest import PASSWORD, free_port
from tests.support import login

HTML = {"accept": "text/html"}
MIN = 60_000
live_server = test_browser.live_server
browser = test_browser.browser
SHOTS = Path(os.environ.get("OPSDESK_SHOTS", "/tmp/opsdesk-shots"))


@pytest.fixture
def db_url(sqlite_url: str) -> str:
    """SQLite only: see ``sqlite_url`` in conftest."""
    return sqlite_url


def _as(client, accounts, role: str = "viewer") -> str:  # type: ignore[no-untyped-def]
    return login(client, accounts[role].email, PASSWORD)


@pytest.fixture
def samples(db, clock) -> int:  # type: ignore[no-untyped-def]
    """Two node exporters, one switch, and an old metric; returns now in ms."""
    now = to_ms(clock.now())
    node = [("node-a", "10.0.0.1:9100", 1.5), ("node-b", "10.0.0.2:9100", 7.25)]
    rows = [
        Sample("node_load1", labels_of({"job": job, "instance": inst}), now - i * MIN, base + i)
        for job, inst, base in node
        for i in range(30)
    ]
    rows.append(Sample("node_load1", labels_of({"job": "node-a", "instance": "10.0.0.1:9100"}),
                       now - 2 * 60 * MIN, 999.0))  # fmt: skip
    rows += [
        Sample(
            "node_cpu_seconds_total",
            labels_of({"job": "node-a", "instance": "10.0.0.1:9100", "cpu": str(cpu), "mode": mode}),
            now - i * MIN,
            1000.0 * (cpu + 1) + (0 if mode == "idle" else 500) + i,
        )
        for cpu in (0, 1)
        for mode in ("idle", "user", "system")
        for i in range(5)
    ]
    rows += [
        Sample(
            "snmp_value",
            labels_of({"job": "switch 1", "instance": "sw1:161", "ifname": name, "oid": "ifInOctets"}),
            now - i * 5 * MIN,
            value,
        )
        for name, value in (("ge-0/0/1", 123456789.0), ("ge-0/0/2", 0.25))
        for i in range(6)
    ]
    rows.append(Sample("snmp_sys_uptime_seconds", labels_of({"job": "switch 1", "instance": "sw1:161"}),
                       now, 86400.0))  # fmt: skip
    rows.append(Sample("old_metric", labels_of({"job": "node-a"}), now - 3 * 60 * MIN, 5.0))
    SQLMetricsStore(db, clock=clock).write(rows)
    return now


def _chart(page: str) -> dict[str, Any]:
    found = re.search(r'<script type="application/json" id="metrics-data">(.*?)</script>', page, re.S)
    assert found, "no chart on the page"
    return json.loads(found.group(1))


def _names(page: str) -> list[str]:
    return re.findall(r'class="metric-name">([^<]+)</a>', page)


def _error(page: str, field: str) -> str:
    found = re.search(rf'<small class="field-error" id="error-{field}">([^<]*)</small>', page)
    assert found, f"no error at {field}"
    return html.unescape(found.group(1))


def _get(client, **params: str):  # type: ignore[no-untyped-def]
    return client.get("/metrics/explore", params=params, headers=HTML)


# --- names ---------------------------------------------------------------------------------------


def test_without_a_name_the_known_names_are_listed_grouped(client, accounts, samples):
    _as(client, accounts)
    r = _get(client)
    assert r.status_code == 200
    page = r.text
    assert _names(page) == [
        "node_cpu_seconds_total",
        "node_load1",
        "snmp_sys_uptime_seconds",
        "snmp_value",
        "old_metric",
    ]
    groups = re.findall(r'<div class="metric-group" data-group="([^"]+)">', page)
    assert groups == ["node", "snmp", "other"]
    assert re.search(r'node_cpu_seconds_total</a> <span class="count">6 series</span>', page)
    assert 'href="/metrics/explore?name=node_load1"' in page
    # The datalist offers each name once.
    options = re.findall(
        r'<option value="([^"]+)">', page.split('id="metric-names"')[1].split("</datalist>")[0]
    )
    assert options == sorted(set(options)) and "node_load1" in options and len(options) == 5
    assert 'id="metrics-data"' not in page


def test_the_job_field_filters_the_names(client, accounts, samples):
    _as(client, accounts)
    page = _get(client, job="switch 1").text
    assert _names(page) == ["snmp_sys_uptime_seconds", "snmp_value"]
    assert 'id="job" name="job" value="switch 1"' in page
    # The links keep the job.
    assert 'href="/metrics/explore?name=snmp_value&amp;job=switch+1"' in page
    page = _get(client, job="nobody").text
    assert _names(page) == [] and "No metrics match the job nobody" in page


def test_no_metrics_yet(client, accounts):
    _as(client, accounts)
    r = _get(client)
    assert r.status_code == 200 and "No metrics stored yet" in r.text


# --- the chart -----------------------------------------------------------------------------------


def test_the_chart_holds_the_written_values_of_the_range(client, accounts, samples):
    _as(client, accounts)
    r = _get(client, name="node_load1")
    assert r.status_code == 200, r.text
    chart = _chart(r.text)
    assert [s["label"] for s in chart["series"]] == [
        "instance=10.0.0.1:9100, job=node-a",
        "instance=10.0.0.2:9100, job=node-b",
    ]
    assert len(chart["x"]) == 30 and chart["x"][-1] == samples / 1000
    assert chart["x"][0] == (samples - 29 * MIN) / 1000
    # Oldest first: the value written i minutes ago is base + i.
    assert chart["y"][0] == [1.5 + i for i in reversed(range(30))]
    assert chart["y"][1] == [7.25 + i for i in reversed(range(30))]
    assert 999.0 not in chart["y"][0]  # two hours old: outside the last hour
    assert all(s["gap"] == 150 for s in chart["series"])  # 2.5 x one minute
    assert 'data-resolution="raw"' in r.text and "2 series" in r.text
    rows = re.findall(r'<td class="num last">([^<]+)</td>', r.text)
    assert rows == ["1.5", "7.25"]
    # Six hours reach the old sample.
    chart = _chart(_get(client, name="node_load1", range="6h").text)
    assert chart["y"][0][0] == 999.0 and chart["y"][1][0] is None


def test_aggregation_and_resolution_follow_the_form(client, accounts, samples):
    _as(client, accounts)
    # Four-minute steps over 24 h: max of the samples in each step.
    chart = _chart(_get(client, name="node_load1", range="24h", agg="max", filters="job=node-a").text)
    assert chart["y"][0][-1] == 1.5  # the step holding only "now"
    assert chart["y"][0][-2] == 1.5 + 4  # 4..1 minutes ago: the max is the oldest
    count = _chart(_get(client, name="node_load1", range="24h", agg="count", filters="job=node-a").text)
    assert count["y"][0][-2] == 4
    page = _get(client, name="node_load1", range="7d").text
    assert 'data-resolution="5m"' in page and "one point per 30 min" in page
    page = _get(client, name="node_load1", range="30d").text
    assert 'data-resolution="1h"' in page


def test_one_series_is_named_by_all_its_labels_and_values_are_formatted(client, accounts, samples):
    _as(client, accounts)
    page = _get(client, name="snmp_value", filters="ifname=ge-0/0/1").text
    chart = _chart(page)
    assert [s["label"] for s in chart["series"]] == [
        "ifname=ge-0/0/1, instance=sw1:161, job=switch 1, oid=ifInOctets"
    ]
    assert chart["y"][0][-1] == 123456789.0 and chart["si"] is True
    assert re.findall(r'<td class="num last">([^<]+)</td>', page) == ["123,456,789"]
    # Two series: the labels they share are listed once, the legend names what differs.
    page = _get(client, name="snmp_value").text
    assert [s["label"] for s in _chart(page)["series"]] == ["ifname=ge-0/0/1", "ifname=ge-0/0/2"]
    common = re.search(r'id="common-labels">(.*?)</p>', page, re.S)
    assert common and "<code>job=switch 1</code>" in common.group(1) and "oid=ifInOctets" in common.group(1)
    assert re.findall(r'<td class="num last">([^<]+)</td>', page) == ["123,456,789", "0.25"]


def test_label_filters_narrow_the_series(client, accounts, samples):
    _as(client, accounts)

    def labels(**params: str) -> list[str]:
        r = _get(client, name="node_cpu_seconds_total", **params)
        assert r.status_code == 200, r.text
        if "No series called node_cpu_seconds_total with these filters." in r.text:
            return []
        return [s["label"] for s in _chart(r.text)["series"]]

    assert len(labels()) == 6
    assert labels(filters="mode=idle") == ["cpu=0", "cpu=1"]
    assert labels(filters="mode=idle\ncpu=1") == ["cpu=1, instance=10.0.0.1:9100, job=node-a, mode=idle"]
    assert labels(filters="mode!=idle\ncpu=0") == ["mode=system", "mode=user"]
    assert labels(filters="mode=!idle\n\ncpu=0") == ["mode=system", "mode=user"]  # the store's syntax
    # Regular expressions, fully anchored.
    assert labels(filters="mode=~us.*") == ["cpu=0", "cpu=1"]
    assert labels(filters="mode=~us") == []
    assert labels(filters="mode!~(idle|user), cpu=1") == [
        "cpu=1, instance=10.0.0.1:9100, job=node-a, mode=system"
    ]
    # A pasted PromQL selector.
    assert labels(filters='{mode="idle", cpu=~"1|2"}') == [
        "cpu=1, instance=10.0.0.1:9100, job=node-a, mode=idle"
    ]


def test_a_filter_that_matches_nothing_says_so(client, accounts, samples):
    _as(client, accounts)
    r = _get(client, name="node_load1", filters="instance=~nothing.*")
    assert r.status_code == 200
    assert "No series called node_load1 with these filters." in html.unescape(r.text)
    assert 'id="metrics-data"' not in r.text


def test_the_job_field_narrows_the_chart(client, accounts, samples):
    _as(client, accounts)
    chart = _chart(_get(client, name="node_load1", job="node-b").text)
    assert [s["label"] for s in chart["series"]] == ["instance=10.0.0.2:9100, job=node-b"]
    assert chart["y"][0][-1] == 7.25


def test_narrow_by_label_links_add_a_filter(client, accounts, samples):
    _as(client, accounts)
    page = _get(client, name="node_cpu_seconds_total", filters="cpu=0").text
    narrow = re.search(r'<section id="narrow">(.*?)</section>', page, re.S)
    assert narrow
    links = re.findall(r"<dt>([^<]+)</dt>", narrow.group(1))
    assert links == ["mode"]  # cpu is filtered; instance and job have one value
    assert 'href="/metrics/explore?name=node_cpu_seconds_total&amp;filters=cpu%3D0%0Amode%3Didle"' in page


def test_an_unknown_name_lists_the_names_like_it(client, accounts, samples):
    _as(client, accounts)
    r = _get(client, name="node_cpu")
    assert r.status_code == 200
    assert "No series called node_cpu." in r.text
    assert _names(r.text) == ["node_cpu_seconds_total"]
    page = _get(client, name="zzz").text
    assert "No series called zzz." in page and len(_names(page)) == 5


def test_a_name_without_samples_in_the_range(client, accounts, samples):
    _as(client, accounts)
    r = _get(client, name="old_metric")
    assert r.status_code == 200
    assert "old_metric has no samples in the last hour: choose a longer range." in r.text
    assert _chart(_get(client, name="old_metric", range="6h").text)["y"] == [[5.0]]


def test_more_series_than_the_chart_draws(client, accounts, db, clock):
    now = to_ms(clock.now())
    SQLMetricsStore(db, clock=clock).write(
        [Sample("ifaces", labels_of({"job": "sw", "port": f"{i:02d}"}), now, float(i)) for i in range(25)]
    )
    _as(client, accounts)
    page = _get(client, name="ifaces").text
    chart = _chart(page)
    assert len(chart["series"]) == 20 and chart["series"][-1]["label"] == "port=19"
    assert len(set(s["color"] for s in chart["series"])) == 20
    assert "Showing the first 20 of 25 series: 5 left out." in page
    assert len(re.findall(r'<td class="num last">', page)) == 20


def test_infinite_values_are_null_in_the_chart(client, accounts, db, clock):
    now = to_ms(clock.now())
    SQLMetricsStore(db, clock=clock).write(
        [Sample("odd", (), now - MIN, float("inf")), Sample("odd", (), now, 2.0)]
    )
    _as(client, accounts)
    page = _get(client, name="odd", agg="last").text
    assert _chart(page)["y"] == [[None, 2.0]]
    assert [s["label"] for s in _chart(page)["series"]] == ["odd"]


# --- bad input -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "field", "message"),
    [
        (
            {"name": "node_load1", "filters": "mode=~(idle"},
            "filters",
            "(mode): not a valid regular expression",
        ),
        ({"name": "node_load1", "filters": "just some text"}, "filters", "is not label=value"),
        (
            {"name": "node_load1", "filters": "env=prod\nhost-name=x"},
            "filters",
            "line 2: “host-name” before =",
        ),
        ({"name": "node_load1", "filters": "env=a\nenv=b"}, "filters", "the label env is filtered twice"),
        ({"name": "node_load1", "filters": "__name__=x"}, "filters", "the metric name goes in the Metric"),
        (
            {"name": "node_load1", "filters": 'env="prod'},
            "filters",
            "(env): a quoted value must end with its",
        ),
        (
            {"name": "node_load1", "job": "node-a", "filters": "job=x"},
            "filters",
            "also given in the Job field",
        ),
        ({"name": "node_load1", "range": "2h"}, "range", "choose one of 1h, 6h, 24h, 7d, 30d"),
        ({"name": "node_load1", "agg": "median"}, "agg", "choose one of avg, min, max, sum, count, last"),
        ({"name": "1abc"}, "name", "not a metric name"),
        ({"name": "x" * 201}, "name", "at most 200 characters"),
    ],
)
def test_bad_input_is_shown_at_its_field_with_422(client, accounts, samples, params, field, message):
    _as(client, accounts)
    r = _get(client, **params)
    assert r.status_code == 422, r.text
    assert message in _error(r.text, field)
    assert re.search(rf'id="{field}" name="{field}"[^>]*aria-invalid="true"', r.text)
    assert 'id="metrics-data"' not in r.text
    # What was typed is kept in the form.
    if "filters" in params:
        assert f">{escape(params['filters'])}</textarea>" in r.text


def test_a_quoted_value_is_literal_and_a_bad_quote_is_an_error(client, accounts, db, clock):
    now = to_ms(clock.now())
    SQLMetricsStore(db, clock=clock).write(
        [Sample("q", labels_of({"k": v}), now, float(i)) for i, v in enumerate(["!x", "~y", "z"])]
    )
    _as(client, accounts)
    assert [s["label"] for s in _chart(_get(client, name="q", filters='k="!x"').text)["series"]] == ["k=!x"]
    assert [s["label"] for s in _chart(_get(client, name="q", filters="k!=~y").text)["series"]] == [
        "k=!x",
        "k=z",
    ]
    assert views.parse_filters('k="a\\"b"') == ({"k": '=a"b'}, "")


def test_too_many_points_is_a_422(client, accounts, samples, monkeypatch):
    monkeypatch.setattr(views, "MAX_POINTS", 40)
    _as(client, accounts)
    r = _get(client, name="node_load1")
    assert r.status_code == 422
    assert "too many points: 2 series with 60 points" in _error(r.text, "filters")
    assert _get(client, name="node_load1", job="node-a").status_code == 200


def test_parse_filters():
    assert views.parse_filters("") == ({}, "")
    assert views.parse_filters(" env = prod \n# a comment\nhost=~web-.*") == (
        {"env": "prod", "host": "~web-.*"},
        "",
    )
    assert views.parse_filters("a!=1, b=~x,y, c!~z")[0] == {"a": "!1", "b": "~x,y", "c": "!~z"}
    assert views.parse_filters('{a="1,b=2"}')[0] == {"a": "=1,b=2"}
    matchers, problem = views.parse_filters("a=1\n=2\nb~3")
    assert set(matchers) == {"a"}
    assert "line 2: nothing before = is not a label name" in problem and "line 3:" in problem


# --- access and links ----------------------------------------------------------------------------


def test_no_login_redirects_to_the_login_page(client, samples):
    r = client.get("/metrics/explore?name=node_load1", headers=HTML, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/login")


def test_the_viewer_sees_the_page_and_the_nav_link(client, accounts, samples):
    _as(client, accounts, "viewer")
    r = _get(client, name="node_load1")
    assert r.status_code == 200
    assert '<a href="/metrics/explore" aria-current="page">Metrics</a>' in r.text
    assert '<a href="/metrics/explore" >Metrics</a>' in client.get("/monitors", headers=HTML).text


def test_prometheus_and_snmp_monitors_link_to_their_metrics(client, accounts, db, clock):
    with db.session() as s:
        now = clock.now() - timedelta(days=1)
        prom = monitoring.create_monitor(
            s, MonitorIn(name="node a&b", type="prometheus", target="http://127.0.0.1:9/metrics"),
            actor=SYSTEM, now=now,
        )  # fmt: skip
        web = monitoring.create_monitor(
            s, MonitorIn(name="web", type="http", target="http://127.0.0.1:9/"), actor=SYSTEM, now=now
        )
        ids = prom.id, web.id
    _as(client, accounts)
    page = client.get(f"/monitors/{ids[0]}", headers=HTML).text
    link = re.search(r'<a href="([^"]+)" id="monitor-metrics">Metrics from this monitor</a>', page)
    assert link and html.unescape(link.group(1)) == "/metrics/explore?job=node%20a%26b"
    assert "Metrics from this monitor" not in client.get(f"/monitors/{ids[1]}", headers=HTML).text


# --- in a browser --------------------------------------------------------------------------------


@pytest.mark.browser
async def test_browser_chart_draws_and_fits_a_phone(live_server, browser, accounts, db, clock, samples):
    now = to_ms(clock.now())
    store = SQLMetricsStore(db, clock=clock)
    # Interfaces scraped at different instants (so their times interleave) and one with a gap.
    store.write(
        [
            Sample(
                "snmp_if_in_octets_rate",
                labels_of(
                    {
                        "job": "core-switch-01.dc1.example.org",
                        "instance": "10.20.30.40:161",
                        "ifname": f"TenGigabitEthernet1/0/{port}",
                        "ifalias": f"uplink to rack {port}",
                    }
                ),
                now - i * MIN - port * 7_000,
                1e6 * port + 2e5 * ((i * (port + 3)) % 7),
            )
            for port in range(1, 7)
            for i in range(60)
            if not (port == 2 and 20 <= i < 30)
        ]
    )
    SHOTS.mkdir(parents=True, exist_ok=True)
    url = f"{live_server}/metrics/explore?name=snmp_if_in_octets_rate&job=core-switch-01.dc1.example.org"

    page = await browser.new_page(viewport={"width": 1280, "height": 900})
    await test_browser._login(page, live_server, "viewer@example.org")
    await page.goto(url)
    await page.locator("#metrics-chart canvas").wait_for()
    assert await page.locator("#metrics-chart .u-legend .u-series").count() == 7  # time + 6
    await page.screenshot(path=str(SHOTS / "metrics-desktop.png"), full_page=True)
    await page.goto(f"{live_server}/metrics/explore")
    await page.screenshot(path=str(SHOTS / "metrics-names-desktop.png"), full_page=True)
    await page.goto(f"{live_server}/metrics/explore?name=node_load1&filters=mode%3D~(")
    await page.screenshot(path=str(SHOTS / "metrics-error-desktop.png"), full_page=True)

    phone = await browser.new_context(
        viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True
    )
    p = await phone.new_page()
    await test_browser._login(p, live_server, "viewer@example.org")
    for name, path in (
        ("chart", url.removeprefix(live_server)),
        ("names", "/metrics/explore"),
        ("cpu", "/metrics/explore?name=node_cpu_seconds_total"),
    ):
        await p.goto(f"{live_server}{path}")
        if name != "names":
            await p.locator("#metrics-chart canvas").wait_for()
        overflow = await p.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1, f"{name}: {overflow}px wider than the phone"
        await p.screenshot(path=str(SHOTS / f"metrics-{name}-phone.png"), full_page=True)
        if name == "chart":
            await p.locator("#result").screenshot(path=str(SHOTS / "metrics-chart-phone-result.png"))
    await phone.close()


def test_an_unreachable_remote_store_is_said_on_the_page(client, accounts):
    _as(client, accounts)
    port = free_port()
    client.app.state.metrics_store = PrometheusRemoteStore(
        f"http://127.0.0.1:{port}/api/v1/write", f"http://127.0.0.1:{port}", timeout=1, retries=0
    )
    r = _get(client, name="up")
    assert r.status_code == 502
    alert = re.search(r'<p class="flash bad" role="alert" id="error-form">([^<]+)</p>', r.text)
    assert alert and "failed after 1 attempts" in alert.group(1)
    assert 'id="name" name="name" value="up"' in r.text
