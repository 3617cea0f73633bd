"""The Alerts pages (list with filters and cursor pages, one alert), the Integrations page, and
``opsdesk alerts list|show``; on SQLite and PostgreSQL.

Alerts are made as in production: events posted to ``POST /api/v1/events`` (or a hook), then the
pipeline run by hand (the test app runs no background roles).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from opsdesk.alerts import integrations
from opsdesk.alerts.models import Alert, Event, Integration
from opsdesk.alerts.service import process_pending
from opsdesk.alerts.sources import REGISTRY
from opsdesk.audit.models import AuditEntry
from opsdesk.cli import common
from opsdesk.cli.main import app as cli_app
from opsdesk.cmdb import service as cmdb
from opsdesk.cmdb.schemas import CIIn, ServiceIn
from opsdesk.core.actor import SYSTEM
from tests.conftest import PASSWORD
from tests.support import login

HTML = {"accept": "text/html"}


# --- helpers -------------------------------------------------------------------------------------


@pytest.fixture
def db_url(sqlite_url: str) -> str:
    """SQLite only: see ``sqlite_url`` in conftest."""
    return sqlite_url


def run_pipeline(db, clock) -> int:  # type: ignore[no-untyped-def]
    total = 0
    while True:
        with db.session() as s:
            n = process_pending(s, now=clock.now())
        total += n
        if n == 0:
            return total


def post(client, accounts, *events: dict[str, Any]) -> None:  # type: ignore[no-untyped-def]
    r = client.post("/api/v1/events", json=list(events), headers=accounts["responder"].headers)
    assert r.status_code == 202, r.text


def alert_ids(db) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """Alert ids by summary."""
    with db.session() as s:
        return {a.summary: a.id for a in s.scalars(select(Alert))}


def rows_of(page: str) -> list[int]:
    return [int(x) for x in re.findall(r'<tr data-alert="(\d+)"', page)]


def count(db, model) -> int:  # type: ignore[no-untyped-def]
    with db.session() as s:
        return s.scalar(select(func.count()).select_from(model)) or 0


@pytest.fixture
def world(client, db, clock, accounts) -> dict[str, Any]:
    """Two services, a CI, and five alerts from three sources, one resolved and one muted."""
    with db.session() as s:
        checkout = cmdb.create_service(s, ServiceIn(name="checkout"), actor=SYSTEM, now=clock.now())
        search = cmdb.create_service(s, ServiceIn(name="search"), actor=SYSTEM, now=clock.now())
        ci = cmdb.create_ci(
            s, CIIn.model_validate({"name": "db-1", "class": "database"}), actor=SYSTEM, now=clock.now()
        )
        ids = {"checkout": checkout.id, "search": search.id, "ci": ci.id}
    disk = {
        "source": "prometheus",
        "summary": "disk full on db-1",
        "severity": "critical",
        "service": "checkout",
        "labels": {"alertname": "DiskFull", "instance": "db-1:9100", "note": 'say "hi"'},
    }
    post(client, accounts, disk, disk, disk)
    post(
        client,
        accounts,
        {"source": "prometheus", "summary": "latency high", "severity": "warning", "service": "search",
         "labels": {"alertname": "Latency", "instance": "search-1"}},
        {"source": "zabbix", "summary": "ping lost to sw-3", "severity": "error",
         "labels": {"host": "sw-3", "trigger": "unreachable"}},
        {"source": "nagios", "summary": "backup job late", "severity": "info", "fingerprint": "backup"},
    )  # fmt: skip
    run_pipeline(db, clock)
    clock.advance(120)
    post(client, accounts, {"source": "nagios", "summary": "backup job late", "status": "resolved",
                            "fingerprint": "backup"})  # fmt: skip
    run_pipeline(db, clock)
    by_summary = alert_ids(db)
    with db.session() as s:  # what the pipeline records when a silence and a window match
        a = s.get(Alert, by_summary["latency high"])
        assert a is not None
        a.muted = True
        a.muted_by = {"silences": [3], "maintenance": [2]}
        d = s.get(Alert, by_summary["disk full on db-1"])
        assert d is not None
        d.ci_id = ids["ci"]
    return {**ids, "alerts": by_summary}


# --- the list ------------------------------------------------------------------------------------


def test_viewer_sees_firing_alerts_with_their_columns(client, accounts, world):
    login(client, accounts["viewer"].email, PASSWORD)

    r = client.get("/alerts", headers=HTML)

    assert r.status_code == 200
    page = r.text
    ids = world["alerts"]
    assert set(rows_of(page)) == {ids["disk full on db-1"], ids["latency high"], ids["ping lost to sw-3"]}
    disk = page.split(f'<tr data-alert="{ids["disk full on db-1"]}">')[1].split("</tr>")[0]
    assert "critical" in disk and "prometheus" in disk
    assert '<td class="num hide-sm">3</td>' in disk  # three events, one alert
    assert "/services/" in disk and ">checkout</a>" in disk and ">db-1</a>" in disk
    assert re.search(r'href="/incidents/\d+">INC-\d+</a>', disk)
    assert "ago" in disk and "default" in disk
    latency = page.split(f'<tr data-alert="{ids["latency high"]}">')[1].split("</tr>")[0]
    assert "muted" in latency
    assert 'href="/silences#silence-3"' in latency and 'href="/maintenance#window-2"' in latency
    assert 'href="/alerts" aria-current="page"' in page  # the nav entry


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"status": "resolved"}, ["backup job late"]),
        ({"status": "all"}, ["disk full on db-1", "latency high", "ping lost to sw-3", "backup job late"]),
        ({"source": "zabbix"}, ["ping lost to sw-3"]),
        ({"severity": "warning"}, ["latency high"]),
        ({"muted": "yes"}, ["latency high"]),
        ({"muted": "no"}, ["disk full on db-1", "ping lost to sw-3"]),
        ({"q": "SW-3"}, ["ping lost to sw-3"]),  # summary, any case
        ({"q": "9100"}, ["disk full on db-1"]),  # a label value
        ({"q": "trigger"}, ["ping lost to sw-3"]),  # a label name
        ({"q": "100%_"}, []),  # LIKE wildcards are literal
        ({"status": "all", "source": "nagios", "q": "backup"}, ["backup job late"]),
    ],
)
def test_filters(client, accounts, world, query, expected):
    login(client, accounts["viewer"].email, PASSWORD)

    r = client.get("/alerts", params=query, headers=HTML)

    assert r.status_code == 200
    assert sorted(rows_of(r.text)) == sorted(world["alerts"][x] for x in expected)
    if not expected:
        assert "No firing alerts matching these filters." in r.text


def test_service_filter(client, accounts, world):
    login(client, accounts["viewer"].email, PASSWORD)

    r = client.get("/alerts", params={"service_id": world["search"]}, headers=HTML)

    assert rows_of(r.text) == [world["alerts"]["latency high"]]
    assert f'<option value="{world["search"]}" selected>search</option>' in r.text


def test_unknown_filter_values_fall_back_to_defaults(client, accounts, world):
    login(client, accounts["viewer"].email, PASSWORD)

    r = client.get("/alerts", params={"status": "bogus", "severity": "loud", "muted": "maybe"}, headers=HTML)

    assert r.status_code == 200
    assert len(rows_of(r.text)) == 3  # the firing ones, unfiltered


@pytest.mark.parametrize(
    "query",
    [
        {"before": "abc"},
        {"after": "-1"},
        {"before": "99999999999"},
        {"service_id": "0"},
        {"service_id": "x"},
        {"q": "x" * 201},
    ],
)
def test_bad_list_parameters_are_422(client, accounts, world, query):
    login(client, accounts["viewer"].email, PASSWORD)

    r = client.get("/alerts", params=query, headers=HTML)

    assert r.status_code == 422
    assert "text/html" in r.headers["content-type"]


def test_cursor_pages_walk_every_alert_once(client, accounts, db, clock):
    post(client, accounts, *({"summary": f"alert {n:03d}", "labels": {"n": str(n)}} for n in range(120)))
    run_pipeline(db, clock)
    login(client, accounts["viewer"].email, PASSWORD)

    first = client.get("/alerts", headers=HTML).text
    assert len(rows_of(first)) == 50
    assert '<span class="muted">← Newer</span>' in first
    seen = rows_of(first)
    page = first
    while 'rel="next"' in page:
        older = re.search(r'<a href="([^"]+)" rel="next">', page)
        assert older is not None
        page = client.get(older.group(1).replace("&amp;", "&"), headers=HTML).text
        seen += rows_of(page)
    assert len(seen) == 120 == len(set(seen))
    assert seen == sorted(seen, reverse=True)
    assert len(rows_of(page)) == 20
    newer = re.search(r'<a href="([^"]+)" rel="prev">', page)
    assert newer is not None
    back_one = client.get(newer.group(1).replace("&amp;", "&"), headers=HTML).text
    assert rows_of(back_one) == seen[50:100]
    assert 'rel="next"' in back_one and 'rel="prev"' in back_one


def test_pages_need_a_login(client):
    for path in ("/alerts", "/alerts/1", "/alerts/noise", "/integrations"):
        r = client.get(path, headers=HTML, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/login"), path


# --- one alert -----------------------------------------------------------------------------------


def test_alert_page_shows_fields_labels_events_and_links(client, accounts, world, db):
    login(client, accounts["responder"].email, PASSWORD)
    alert_id = world["alerts"]["disk full on db-1"]
    with db.session() as s:
        a = s.get(Alert, alert_id)
        assert a is not None
        incident_id, fingerprint = a.incident_id, a.fingerprint

    r = client.get(f"/alerts/{alert_id}", headers=HTML)

    assert r.status_code == 200
    page = r.text
    assert "disk full on db-1" in page and fingerprint in page
    assert f'href="/incidents/{incident_id}" id="incident-link">INC-{incident_id}</a>' in page
    assert ">checkout</a>" in page and ">db-1</a>" in page
    labels = page.split('id="labels"')[1].split("</table>")[0]
    assert "<code>alertname</code>" in labels and "DiskFull" in labels and "db-1:9100" in labels
    assert "say &#34;hi&#34;" in labels  # escaped
    assert len(re.findall(r"<tr data-event=", page)) == 3
    assert 'id="alert-rule">default' in page
    assert "Not muted" in page
    link = re.search(r'<a href="([^"]+)" role="button" class="secondary small" id="silence-this">', page)
    assert link is not None
    url = urlsplit(link.group(1).replace("&amp;", "&"))
    assert url.path == "/silences/new"
    assert parse_qs(url.query)["matcher"] == [
        'alertname="DiskFull"',
        'instance="db-1:9100"',
        'note="say \\"hi\\""',
    ]


def test_alert_page_explains_why_it_is_muted(client, accounts, world):
    login(client, accounts["viewer"].email, PASSWORD)

    page = client.get(f"/alerts/{world['alerts']['latency high']}", headers=HTML).text

    reasons = page.split('id="mute-reasons"')[1].split("</ul>")[0]
    assert 'href="/silences#silence-3"' in reasons and 'href="/maintenance#window-2"' in reasons
    assert 'id="silence-this"' not in page  # a viewer cannot silence


def test_alert_without_labels_is_silenced_by_source(client, accounts, world):
    login(client, accounts["responder"].email, PASSWORD)

    page = client.get(f"/alerts/{world['alerts']['backup job late']}", headers=HTML).text

    assert "/silences/new?matcher=source%3D%22nagios%22" in page
    assert "No labels." in page
    assert len(re.findall(r"<tr data-event=", page)) == 2  # firing, then resolved


@pytest.mark.parametrize(
    ("path", "status"),
    [("/alerts/999999", 404), ("/alerts/0", 422), ("/alerts/abc", 422), ("/alerts/99999999999", 422)],
)
def test_unknown_or_malformed_alert_ids(client, accounts, path, status):
    login(client, accounts["viewer"].email, PASSWORD)

    assert client.get(path, headers=HTML).status_code == status


def test_api_alert_carries_the_new_fields(client, accounts, world):
    r = client.get(f"/api/v1/alerts/{world['alerts']['latency high']}", headers=accounts["viewer"].headers)

    assert r.status_code == 200
    body = r.json()
    assert body["muted"] is True and body["muted_by"] == {"silences": [3], "maintenance": [2]}
    assert body["rule"] == "default" and body["reopened_count"] == 0
    assert "group_key" in body and body["ci_id"] is None


# --- integrations --------------------------------------------------------------------------------

KEY = re.compile(r'id="hook-key" value="(odh_[^"]+)"')


def create(client, csrf: str, **fields: str):  # type: ignore[no-untyped-def]
    data = {"csrf_token": csrf, "name": "prom", "kind": "alertmanager", "secret": "", "service_id": ""}
    data.update(fields)
    return client.post("/integrations", data=data, headers=HTML)


@pytest.mark.parametrize("role", ["viewer", "responder"])
def test_integrations_page_is_for_managers(client, accounts, db, role):
    csrf = login(client, accounts[role].email, PASSWORD)

    assert client.get("/integrations", headers=HTML).status_code == 403
    assert create(client, csrf).status_code == 403
    assert count(db, Integration) == 0
    assert 'href="/integrations"' not in client.get("/alerts", headers=HTML).text


def test_manager_creates_an_integration_and_sees_the_key_once(client, accounts, db, clock):
    csrf = login(client, accounts["manager"].email, PASSWORD)
    with db.session() as s:
        svc = cmdb.create_service(s, ServiceIn(name="checkout"), actor=SYSTEM, now=clock.now())
        service_id = svc.id

    r = create(client, csrf, name="prom-prod", service_id=str(service_id))

    assert r.status_code == 200
    assert r.headers["cache-control"] == "no-store"
    found = KEY.search(r.text)
    assert found is not None
    key = found.group(1)
    assert f'id="hook-url" value="http://127.0.0.1:8080/hooks/{key}"' in r.text
    assert 'data-copy="#hook-url"' in r.text
    assert "send_resolved: true" in r.text and "url: &#39;http://127.0.0.1:8080/hooks/" in r.text
    # never again
    listing = client.get("/integrations", headers=HTML).text
    assert key not in listing and "prom-prod" in listing and ">checkout</a>" in listing
    assert "never" in listing  # last used
    # the key works, and events get the default service
    payload = {
        "version": "4",
        "groupKey": "{}:{}",
        "status": "firing",
        "receiver": "opsdesk",
        "alerts": [{"status": "firing", "labels": {"alertname": "Up"}}],
    }
    assert client.post(f"/hooks/{key}", json=payload).status_code == 202
    with db.session() as s:
        assert [e.service_id for e in s.scalars(select(Event))] == [service_id]
    with db.session() as s:
        audit = s.scalars(select(AuditEntry).where(AuditEntry.entity_type == "integration")).all()
        assert [a.action for a in audit] == ["create"]
        assert key not in json.dumps([a.after for a in audit])


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"name": ""}, "name", "at least 1 character"),
        ({"name": "   "}, "name", "at least 1 character"),
        ({"name": "x" * 101}, "name", "at most 100 characters"),
        ({"kind": "pagerduty"}, "kind", "one of alertmanager"),
        ({"secret": "short"}, "secret", "at least 16 characters"),
        ({"service_id": "abc"}, "service_id", "not a service id"),
        ({"service_id": "999999"}, "service_id", "no service 999999"),
    ],
)
def test_bad_integration_input_is_422_and_creates_nothing(client, accounts, db, fields, field, message):
    csrf = login(client, accounts["manager"].email, PASSWORD)

    r = create(client, csrf, **fields)

    assert r.status_code == 422, r.text
    assert message in r.text
    assert 'aria-invalid="true"' in r.text and not KEY.search(r.text)
    assert count(db, Integration) == 0


def test_duplicate_name_is_409(client, accounts, db):
    csrf = login(client, accounts["manager"].email, PASSWORD)
    assert create(client, csrf, name="dup").status_code == 200

    r = create(client, csrf, name="dup", kind="grafana")

    assert r.status_code == 409 and "already exists" in r.text
    assert count(db, Integration) == 1


def test_create_without_csrf_is_refused(client, accounts, db):
    login(client, accounts["manager"].email, PASSWORD)

    r = client.post("/integrations", data={"name": "x", "kind": "generic"}, headers=HTML)

    assert r.status_code == 403
    assert count(db, Integration) == 0


def test_rotate_shows_a_new_key_and_the_old_one_stops_working(client, accounts, db):
    csrf = login(client, accounts["manager"].email, PASSWORD)
    first = KEY.search(create(client, csrf, kind="generic").text)
    assert first is not None
    with db.session() as s:
        (i,) = integrations.list_integrations(s)
    event = {"summary": "hello"}
    assert client.post(f"/hooks/{first.group(1)}", json=event).status_code == 202

    r = client.post(f"/integrations/{i.id}/rotate", data={"csrf_token": csrf}, headers=HTML)

    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
    second = KEY.search(r.text)
    assert second is not None and second.group(1) != first.group(1)
    assert "the old one no longer works" in r.text
    assert client.post(f"/hooks/{first.group(1)}", json=event).status_code == 404
    assert client.post(f"/hooks/{second.group(1)}", json=event).status_code == 202


def test_delete_removes_the_integration(client, accounts, db):
    csrf = login(client, accounts["manager"].email, PASSWORD)
    key = KEY.search(create(client, csrf, name="old").text)
    assert key is not None
    with db.session() as s:
        (i,) = integrations.list_integrations(s)

    r = client.post(f"/integrations/{i.id}/delete", data={"csrf_token": csrf}, follow_redirects=False)

    assert r.status_code == 303 and r.headers["location"].startswith("/integrations?flash=")
    assert count(db, Integration) == 0
    assert client.post(f"/hooks/{key.group(1)}", json={"alerts": []}).status_code == 404
    page = client.get(r.headers["location"], headers=HTML).text
    assert "Integration old deleted" in page and "return confirm(" not in page


@pytest.mark.parametrize("action", ["rotate", "delete"])
def test_rotate_or_delete_of_an_unknown_integration_is_404(client, accounts, db, action):
    csrf = login(client, accounts["manager"].email, PASSWORD)

    r = client.post(f"/integrations/424242/{action}", data={"csrf_token": csrf}, headers=HTML)

    assert r.status_code == 404
    assert (
        client.post(f"/integrations/abc/{action}", data={"csrf_token": csrf}, headers=HTML).status_code == 422
    )


def test_every_registered_kind_is_offered_with_its_setup_steps(client, accounts):
    csrf = login(client, accounts["manager"].email, PASSWORD)
    form = client.get("/integrations", headers=HTML).text
    for kind in REGISTRY:
        assert f'<option value="{kind}"' in form
    expected = {
        "alertmanager": ["webhook_configs", "send_resolved: true"],
        "grafana": ["Contact points", "type: webhook"],
        "zabbix": ["contrib/zabbix/opsdesk_webhook.yaml", "{$OPSDESK.URL}"],
        "nagios": ["contrib/nagios/opsdesk-notify", "notify-service-by-opsdesk"],
        "icinga": ["contrib/icinga2/opsdesk.conf", "contrib/nagios/opsdesk-notify"],
        "generic": ["curl -fsS -X POST", "X-Opsdesk-Signature: sha256=$sig"],
    }
    for kind in REGISTRY:
        page = create(client, csrf, name=f"i-{kind}", kind=kind).text
        key = KEY.search(page)
        assert key is not None, kind
        setup = page.split('<section id="setup"')[1].split("</section>")[0]
        assert f"/hooks/{key.group(1)}" in setup, kind
        for text in expected.get(kind, []):
            assert text.replace('"', "&#34;") in setup, (kind, text)


def test_signed_alertmanager_gets_a_warning(client, accounts):
    csrf = login(client, accounts["manager"].email, PASSWORD)

    page = create(client, csrf, kind="alertmanager", secret="a-long-enough-secret").text

    assert "cannot sign its requests" in page


@pytest.mark.skipif(not shutil.which("openssl"), reason="openssl is not installed")
def test_the_signed_curl_recipe_computes_opsdesks_signature():
    """The shell lines shown for signed requests give the signature the hook checks."""
    secret, ts, body = "a-long-enough-secret", "1767261600", '{"summary": "disk full", "labels": {"a": "b"}}'
    script = (
        f"SECRET='{secret}'; body='{body}'; ts={ts}; "
        'printf \'%s.%s\' "$ts" "$body" | openssl dgst -sha256 -hmac "$SECRET" -r | cut -d\' \' -f1'
    )
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True).stdout.strip()

    assert "sha256=" + out == integrations.sign(secret, ts, body.encode())


# --- the CLI -------------------------------------------------------------------------------------

runner = CliRunner()


@pytest.fixture
def cli(db, db_url, tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("OPSDESK_DATABASE_URL", db_url)
    monkeypatch.setenv("OPSDESK_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("COLUMNS", "200")  # wide enough for Rich not to cut the tables
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


def test_cli_lists_alerts(cli, world):
    listed = json.loads(cli("alerts", "list", "--json").output)
    assert sorted(a["summary"] for a in listed) == ["disk full on db-1", "latency high", "ping lost to sw-3"]
    assert {a["muted"] for a in listed} == {True, False}

    resolved = json.loads(cli("alerts", "list", "--status", "resolved", "--json").output)
    assert [a["summary"] for a in resolved] == ["backup job late"]

    table = cli("alerts", "list", "--status", "all", "--source", "prometheus").output
    assert "disk full on db-1" in table and "latency high" in table and "backup" not in table
    assert "INC-" in table and "muted" in table


def test_cli_shows_one_alert(cli, world):
    alert_id = world["alerts"]["latency high"]

    shown = json.loads(cli("alerts", "show", str(alert_id), "--json").output)
    assert shown["id"] == alert_id and shown["labels"]["alertname"] == "Latency"
    assert len(shown["events"]) == 1 and shown["muted_by"] == {"silences": [3], "maintenance": [2]}

    text = cli("alerts", "show", str(world["alerts"]["disk full on db-1"])).output
    assert "DiskFull" in text and "default" in text and text.count("firing") >= 3
    assert "yes (silence 3, maintenance 2)" in cli("alerts", "show", str(alert_id)).output


def test_cli_bad_input(cli, world):
    r = cli("alerts", "list", "--status", "bogus", ok=False)
    assert r.exit_code == 1 and "status" in r.output

    r = cli("alerts", "show", "999999", ok=False)
    assert r.exit_code == 1 and "alert 999999 does not exist" in r.output

    r = cli("alerts", "show", "abc", ok=False)
    assert r.exit_code == 2
