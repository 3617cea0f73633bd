"""The noise-reduction report: the queries over ``alert_noise_daily``, ``GET /api/v1/alerts/noise``,
the ``/alerts/noise`` page and ``opsdesk alerts noise``; on SQLite and PostgreSQL.

The report reads what the pipeline counts per day and source, so most tests insert those daily rows
themselves; ``test_pipeline_fills_the_daily_counts`` checks the pipeline's side end to end.
"""

from __future__ import annotations

import json
import re
from datetime import date, timedelta

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from opsdesk.alerts import noise
from opsdesk.alerts.models import NoiseDaily
from opsdesk.alerts.service import process_pending
from opsdesk.cli import common
from opsdesk.cli.main import app as cli_app
from tests.conftest import PASSWORD
from tests.support import login

HTML = {"accept": "text/html"}
TODAY = date(2026, 3, 2)  # the test clock's day


def add(db, *rows: tuple[date, str, int, int, int, int]) -> None:  # type: ignore[no-untyped-def]
    with db.session() as s:
        for day, source, events, alerts, incidents, muted in rows:
            s.add(
                NoiseDaily(
                    day=day, source=source, events=events, alerts=alerts, incidents=incidents, muted=muted
                )
            )


@pytest.fixture
def counts(db) -> None:  # type: ignore[no-untyped-def]
    """Three sources over the last days, and rows outside a 7-day range on both sides."""
    add(
        db,
        (TODAY, "prometheus", 1000, 40, 4, 10),
        (TODAY, "zabbix", 300, 30, 3, 0),
        (TODAY - timedelta(days=1), "prometheus", 500, 20, 1, 5),
        (TODAY - timedelta(days=6), "nagios", 10, 2, 0, 2),
        (TODAY - timedelta(days=7), "prometheus", 99_999, 9, 9, 9),  # one day too old for 7 days
        (TODAY + timedelta(days=1), "zabbix", 77_777, 7, 7, 7),  # tomorrow (a clock ahead)
    )


# --- the queries ---------------------------------------------------------------------------------


def test_daily_fills_every_day_and_sums_sources(db, counts):
    with db.session() as s:
        rows = noise.daily(s, start=TODAY - timedelta(days=6), end=TODAY)

    assert [r.day for r in rows] == [TODAY - timedelta(days=n) for n in range(6, -1, -1)]
    assert [r.events for r in rows] == [10, 0, 0, 0, 0, 500, 1300]
    assert rows[-1].alerts == 70 and rows[-1].incidents == 7 and rows[-1].muted == 10
    assert rows[1].events_per_incident is None and rows[1].noise_reduction_percent is None
    assert rows[0].events_per_incident is None and rows[0].noise_reduction_percent == 100.0
    assert rows[-1].events_per_incident == round(1300 / 7, 2)
    assert rows[-1].noise_reduction_percent == round(100 * 1293 / 1300, 2)


def test_source_filter_and_totals(db, counts):
    start = TODAY - timedelta(days=6)
    with db.session() as s:
        only = noise.daily(s, start=start, end=TODAY, source="prometheus")
        per_source = noise.by_source(s, start=start, end=TODAY)
        one = noise.by_source(s, start=start, end=TODAY, source="zabbix")

    assert [r.events for r in only] == [0, 0, 0, 0, 0, 500, 1000]
    assert {r.source for r in only} == {"prometheus"}
    assert [(r.source, r.events, r.alerts, r.incidents, r.muted) for r in per_source] == [
        ("prometheus", 1500, 60, 5, 15),
        ("zabbix", 300, 30, 3, 0),
        ("nagios", 10, 2, 0, 2),
    ]
    assert [r.source for r in one] == ["zabbix"]
    total = noise.total(per_source)
    assert (total.events, total.alerts, total.incidents, total.muted) == (1810, 92, 8, 17)
    assert total.as_dict()["events_per_incident"] == 226.25


def test_ranges_are_checked(db):
    with db.session() as s:
        with pytest.raises(Exception, match="before the start"):
            noise.daily(s, start=TODAY, end=TODAY - timedelta(days=1))
        with pytest.raises(Exception, match="at most 366 days"):
            noise.by_source(s, start=TODAY - timedelta(days=400), end=TODAY)
        with pytest.raises(Exception, match="days: from 1 to 366"):
            noise.report(s, days=0, source=None, today=TODAY)


# --- the API -------------------------------------------------------------------------------------


def test_api_report_of_the_last_7_days(client, accounts, counts):
    r = client.get("/api/v1/alerts/noise", params={"days": 7}, headers=accounts["viewer"].headers)

    assert r.status_code == 200, r.text
    body = r.json()
    assert body["start"] == str(TODAY - timedelta(days=6)) and body["end"] == str(TODAY)
    assert body["source"] is None
    assert len(body["days"]) == 7 and body["days"][-1]["day"] == str(TODAY)
    assert body["days"][-1] == {
        "day": str(TODAY),
        "events": 1300,
        "alerts": 70,
        "incidents": 7,
        "muted": 10,
        "events_per_incident": 185.71,
        "noise_reduction_percent": 99.46,
    }
    assert [x["source"] for x in body["sources"]] == ["prometheus", "zabbix", "nagios"]
    assert body["total"]["events"] == 1810 and body["total"]["incidents"] == 8
    assert body["total"]["noise_reduction_percent"] == round(100 * (1810 - 8) / 1810, 2)


def test_api_defaults_to_30_days_and_filters_a_source(client, accounts, counts):
    r = client.get(
        "/api/v1/alerts/noise", params={"source": "prometheus"}, headers=accounts["viewer"].headers
    )

    body = r.json()
    assert len(body["days"]) == 30 and body["source"] == "prometheus"
    assert body["total"]["events"] == 1500 + 99_999
    assert [x["source"] for x in body["sources"]] == ["prometheus"]


def test_api_report_without_data_is_zeros(client, accounts):
    body = client.get("/api/v1/alerts/noise?days=3", headers=accounts["viewer"].headers).json()

    assert [d["events"] for d in body["days"]] == [0, 0, 0]
    assert body["sources"] == []
    assert body["total"] == {
        "events": 0,
        "alerts": 0,
        "incidents": 0,
        "muted": 0,
        "events_per_incident": None,
        "noise_reduction_percent": None,
    }


@pytest.mark.parametrize(
    ("query", "field"),
    [("days=0", "days"), ("days=367", "days"), ("days=abc", "days"), ("days=1.5", "days"),
     ("source=" + "x" * 101, "source")],
)  # fmt: skip
def test_api_bad_parameters_are_422(client, accounts, query, field):
    r = client.get(f"/api/v1/alerts/noise?{query}", headers=accounts["viewer"].headers)

    assert r.status_code == 422
    assert r.headers["content-type"].startswith("application/problem+json")
    assert [e["field"] for e in r.json()["errors"]] == [f"query.{field}"]


def test_api_needs_a_token(client):
    assert client.get("/api/v1/alerts/noise").status_code == 401


# --- the page ------------------------------------------------------------------------------------


def test_page_shows_totals_chart_data_and_sources(client, accounts, counts):
    login(client, accounts["viewer"].email, PASSWORD)

    r = client.get("/alerts/noise", params={"days": 7}, headers=HTML)

    assert r.status_code == 200
    page = r.text
    totals = page.split('id="noise-totals"')[1].split('class="chart-card"')[0]
    assert "1,810" in totals and "226.25" in totals  # 1810 events / 8 incidents in 7 days
    found = re.search(r'<script type="application/json" id="noise-data">(.*?)</script>', page)
    assert found is not None
    chart = json.loads(found.group(1))
    assert len(chart["x"]) == 7 and chart["x"] == sorted(chart["x"])
    assert [s["label"] for s in chart["series"]] == ["events", "alerts", "incidents", "muted"]
    assert chart["series"][0]["y"] == [10, 0, 0, 0, 0, 500, 1300]
    table = page.split('id="noise-sources"')[1].split("</table>")[0]
    assert re.findall(r'data-source="([^"]+)"', table) == ["prometheus", "zabbix", "nagios"]
    zabbix = table.split('data-source="zabbix"')[1].split("</tr>")[0]
    assert "100.0" in zabbix and "99.0 %" in zabbix  # 300 events, 3 incidents
    nagios = table.split('data-source="nagios"')[1].split("</tr>")[0]
    assert "—" in nagios and "100.0 %" in nagios  # 10 events, no incident
    assert 'href="/alerts/noise?days=7&amp;source=zabbix"' in table


def test_page_for_one_source_and_empty_range(client, accounts, counts):
    login(client, accounts["viewer"].email, PASSWORD)

    page = client.get("/alerts/noise", params={"days": 7, "source": "zabbix"}, headers=HTML).text
    assert re.findall(r'data-source="([^"]+)"', page) == ["zabbix"]
    assert '<option value="zabbix" selected>' in page

    empty = client.get("/alerts/noise", params={"source": "none-such"}, headers=HTML).text
    assert "No events in this range from none-such" in empty and 'id="noise-data"' not in empty


@pytest.mark.parametrize("query", ["days=0", "days=x", "days=999", "source=" + "y" * 101])
def test_page_bad_parameters_are_422(client, accounts, query):
    login(client, accounts["viewer"].email, PASSWORD)

    assert client.get(f"/alerts/noise?{query}", headers=HTML).status_code == 422


# --- the CLI -------------------------------------------------------------------------------------

runner = CliRunner()


@pytest.fixture
def cli(db, db_url, tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
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


def _recent(db) -> date:  # type: ignore[no-untyped-def]
    """The CLI runs on the real clock: put the rows on its today."""
    today = common.now().date()
    add(db, (today, "prometheus", 900, 30, 3, 6), (today, "zabbix", 50, 5, 0, 0))
    return today


def test_cli_noise_json_and_table(cli, db):
    today = _recent(db)

    body = json.loads(cli("alerts", "noise", "--days", "7", "--json").output)
    assert body["end"] == str(today) and len(body["days"]) == 7
    assert body["total"]["events"] == 950 and body["total"]["events_per_incident"] == round(950 / 3, 2)
    assert [x["source"] for x in body["sources"]] == ["prometheus", "zabbix"]

    text = cli("alerts", "noise").output
    assert "prometheus" in text and "zabbix" in text and "total" in text
    assert "300.0" in text and "99.7 %" in text  # prometheus: 900 events per 3 incidents

    only = json.loads(cli("alerts", "noise", "--source", "zabbix", "--json").output)
    assert only["total"]["events"] == 50 and only["total"]["noise_reduction_percent"] == 100.0


@pytest.mark.parametrize("days", ["0", "367", "x"])
def test_cli_noise_bad_days(cli, days):
    r = cli("alerts", "noise", "--days", days, ok=False)

    assert r.exit_code == 2


# --- END TO END: the pipeline fills the counts -----------------------------------------------------
# This test checks the pipeline's side (alerts/service.py maintains alert_noise_daily per batch),
# not this report's: when it fails, look at the pipeline first.


def test_e2e_pipeline_fills_the_daily_noise_counts(client, accounts, db, clock):
    """END TO END. Events posted and run through the pipeline are counted per day and source:
    5 events, 2 alerts (one fingerprint repeated 4 times), the incidents they opened, none muted."""
    disk = {"source": "e2e", "summary": "disk full", "labels": {"host": "db-9", "alertname": "Disk"}}
    other = {"source": "e2e", "summary": "cpu hot", "labels": {"host": "app-9", "alertname": "Cpu"}}
    r = client.post(
        "/api/v1/events", json=[disk, disk, disk, disk, other], headers=accounts["responder"].headers
    )
    assert r.status_code == 202, r.text
    with db.session() as s:
        assert process_pending(s, now=clock.now()) == 5
    with db.session() as s:
        row = s.scalar(select(NoiseDaily).where(NoiseDaily.source == "e2e"))
        assert row is not None, "the pipeline did not count the batch in alert_noise_daily"
        assert (row.day, row.events, row.alerts, row.muted) == (TODAY, 5, 2, 0)
        assert 1 <= row.incidents <= 2

    body = client.get("/api/v1/alerts/noise?days=1", headers=accounts["viewer"].headers).json()
    assert body["total"]["events"] == 5 and body["sources"][0]["source"] == "e2e"
