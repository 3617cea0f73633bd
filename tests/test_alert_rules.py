"""Dedup and grouping rules: what the pipeline loads and matches, the API, the CLI and the pages."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from typer.testing import CliRunner

from opsdesk.alerts import rules
from opsdesk.alerts.admin_schemas import RuleIn, RuleUpdate, format_duration, parse_duration
from opsdesk.alerts.models import AlertRule
from opsdesk.cli import common
from opsdesk.cli.main import app as cli_app
from opsdesk.core.actor import SYSTEM
from opsdesk.core.clock import ManualClock
from opsdesk.core.db import Database
from tests.conftest import PASSWORD, Account
from tests.support import login

HTML = {"accept": "text/html"}
PROBLEM = "application/problem+json"


def ok(r: Any, status: int = 200) -> Any:
    assert r.status_code == status, r.text
    return r.json() if r.content else None


def problem(r: Any, status: int, field: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(PROBLEM)
    body = r.json()
    if field is not None:
        assert field in {e["field"] for e in body.get("errors", [])}, body
    return body


def count(db: Database) -> int:
    with db.session() as s:
        return s.scalar(select(func.count()).select_from(AlertRule)) or 0


def add(db: Database, clock: ManualClock, **fields: Any) -> int:
    with db.session() as s:
        return rules.create(s, RuleIn.model_validate(fields), actor=SYSTEM, now=clock.now()).id


# --- for the pipeline ----------------------------------------------------------------------------


def test_load_orders_by_position_then_id_and_skips_disabled(db: Database, clock: ManualClock) -> None:
    catch_all = add(db, clock, name="catch-all", position=1000)
    disk = add(
        db, clock, name="disk", position=10, matchers=["alertname=DiskFull"], fingerprint_labels=["instance"]
    )
    add(db, clock, name="off", position=1, enabled=False)
    db_disk = add(
        db,
        clock,
        name="db-disk",
        position=10,
        matchers=['alertname=DiskFull, instance=~"db-.*"'],
        group_by=["cluster"],
        group_window_seconds="5m",
        reopen_window_seconds=600,
    )
    with db.session() as s:
        loaded = rules.load(s)
    assert [r.id for r in loaded] == [disk, db_disk, catch_all]
    d = loaded[1]
    assert (d.name, d.group_by, d.group_window_seconds, d.reopen_window_seconds) == (
        "db-disk",
        ("cluster",),
        300,
        600,
    )
    assert [str(m) for m in d.matchers] == ['alertname="DiskFull"', 'instance=~"db-.*"']
    assert loaded[0].fingerprint_labels == ("instance",) and loaded[0].group_by == ()

    def first(labels: dict[str, str]) -> str | None:
        rule = rules.first_match(loaded, labels)
        return rule.name if rule else None

    assert first({"alertname": "DiskFull", "instance": "db-1"}) == "disk"  # same position: lower id first
    assert first({"alertname": "CPU"}) == "catch-all"
    assert rules.first_match(loaded[:2], {"alertname": "CPU"}) is None
    assert rules.first_match([], {"alertname": "CPU"}) is None
    with db.session() as s:
        rules.update(s, disk, RuleUpdate(position=20), actor=SYSTEM, now=clock.now())
        assert (
            rules.first_match(rules.load(s), {"alertname": "DiskFull", "instance": "db-1"}).name == "db-disk"
        )  # type: ignore[union-attr]


def test_load_skips_a_rule_whose_stored_matchers_no_longer_parse(db: Database, clock: ManualClock) -> None:
    good = add(db, clock, name="good")
    bad = add(db, clock, name="bad")
    with db.session() as s:
        s.get(AlertRule, bad).matchers = [{"name": "a", "op": "=~", "value": "("}]  # type: ignore[union-attr]
    with db.session() as s:
        assert [r.id for r in rules.load(s)] == [good]


def test_durations() -> None:
    assert parse_duration("5m").total_seconds() == 300
    assert parse_duration("1h30m").total_seconds() == 5400
    assert parse_duration("2d").total_seconds() == 172800
    assert parse_duration("1w").total_seconds() == 604800
    assert parse_duration("90").total_seconds() == 90
    assert parse_duration(45).total_seconds() == 45
    for bad in ("", "soon", "5x", "m5", "1.5h", "-5m"):
        with pytest.raises(ValueError, match="is not a duration"):
            parse_duration(bad)
    assert [format_duration(x) for x in (None, 0, 59, 300, 5400, 90061)] == [
        "",
        "0s",
        "59s",
        "5m",
        "1h30m",
        "1d1h1m1s",
    ]


# --- API -----------------------------------------------------------------------------------------


def test_api_crud(client: TestClient, accounts: dict[str, Account]) -> None:
    m = accounts["manager"]
    body = {
        "name": "disk-per-host",
        "position": 10,
        "matchers": ['alertname="DiskFull"', {"name": "severity", "op": "=~", "value": "critical|error"}],
        "fingerprint_labels": ["alertname", "instance"],
        "group_by": ["cluster"],
        "group_window_seconds": "5m",
        "reopen_window_seconds": 600,
    }
    r = ok(client.post("/api/v1/alert-rules", json=body, headers=m.headers), 201)
    assert r["matchers_text"] == '{alertname="DiskFull", severity=~"critical|error"}'
    assert (r["enabled"], r["group_window_seconds"], r["reopen_window_seconds"]) == (True, 300, 600)
    other = ok(
        client.post("/api/v1/alert-rules", json={"name": "catch-all", "position": 1000}, headers=m.headers),
        201,
    )
    assert other["matchers"] == [] and other["group_window_seconds"] is None

    v = accounts["viewer"].headers
    assert [x["name"] for x in ok(client.get("/api/v1/alert-rules", headers=v))] == [
        "disk-per-host",
        "catch-all",
    ]
    assert ok(client.get(f"/api/v1/alert-rules/{r['id']}", headers=v)) == r

    patched = ok(
        client.patch(
            f"/api/v1/alert-rules/{r['id']}",
            json={"position": 2000, "enabled": False, "group_window_seconds": None, "matchers": "job=node"},
            headers=m.headers,
        )
    )
    assert (patched["position"], patched["enabled"], patched["group_window_seconds"]) == (2000, False, None)
    assert patched["reopen_window_seconds"] == 600 and patched["matchers_text"] == '{job="node"}'
    assert [x["name"] for x in ok(client.get("/api/v1/alert-rules", headers=v))] == [
        "catch-all",
        "disk-per-host",
    ]

    assert client.delete(f"/api/v1/alert-rules/{r['id']}", headers=m.headers).status_code == 204
    problem(client.get(f"/api/v1/alert-rules/{r['id']}", headers=v), 404)
    trail = ok(
        client.get(
            "/api/v1/audit",
            params={"entity_type": "alert_rule", "entity_id": str(r["id"])},
            headers=m.headers,
        )
    )["items"]
    assert [e["action"] for e in reversed(trail)] == ["create", "update", "delete"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "name"),
        ({"name": ""}, "name"),
        ({"name": "x" * 101}, "name"),
        ({"name": "default"}, "name"),
        ({"name": "r", "position": -1}, "position"),
        ({"name": "r", "position": "first"}, "position"),
        ({"name": "r", "enabled": "maybe"}, "enabled"),
        ({"name": "r", "matchers": ["a=~("]}, "matchers"),
        ({"name": "r", "matchers": [{"name": "a"}]}, "matchers.0.value"),
        ({"name": "r", "matchers": {"a": "b"}}, "matchers"),
        ({"name": "r", "fingerprint_labels": ["instance", "instance"]}, "fingerprint_labels"),
        ({"name": "r", "fingerprint_labels": ["not-a-label"]}, "fingerprint_labels.0"),
        ({"name": "r", "group_by": "cluster"}, "group_by"),
        ({"name": "r", "group_by": ["a"] * 21}, "group_by"),
        ({"name": "r", "group_window_seconds": "8d"}, "group_window_seconds"),
        ({"name": "r", "group_window_seconds": -1}, "group_window_seconds"),
        ({"name": "r", "reopen_window_seconds": "later"}, "reopen_window_seconds"),
        ({"name": "r", "colour": "red"}, "colour"),
    ],
)
def test_api_bad_input_is_422_and_changes_nothing(
    client: TestClient, accounts: dict[str, Account], db: Database, body: dict[str, Any], field: str
) -> None:
    problem(client.post("/api/v1/alert-rules", json=body, headers=accounts["manager"].headers), 422, field)
    assert count(db) == 0


def test_api_conflicts_roles_and_unknown_ids(
    client: TestClient, accounts: dict[str, Account], db: Database
) -> None:
    m = accounts["manager"].headers
    a = ok(client.post("/api/v1/alert-rules", json={"name": "a"}, headers=m), 201)
    ok(client.post("/api/v1/alert-rules", json={"name": "b"}, headers=m), 201)
    problem(client.post("/api/v1/alert-rules", json={"name": "a"}, headers=m), 409)
    problem(client.patch(f"/api/v1/alert-rules/{a['id']}", json={"name": "b"}, headers=m), 409)
    problem(client.patch(f"/api/v1/alert-rules/{a['id']}", json={"name": None}, headers=m), 422, "name")
    problem(
        client.patch(f"/api/v1/alert-rules/{a['id']}", json={"group_by": None}, headers=m), 422, "group_by"
    )
    for role in ("viewer", "responder"):
        h = accounts[role].headers
        problem(client.post("/api/v1/alert-rules", json={"name": "c"}, headers=h), 403)
        problem(client.patch(f"/api/v1/alert-rules/{a['id']}", json={"position": 1}, headers=h), 403)
        problem(client.delete(f"/api/v1/alert-rules/{a['id']}", headers=h), 403)
    problem(client.patch("/api/v1/alert-rules/4242", json={"position": 1}, headers=m), 404)
    problem(client.delete("/api/v1/alert-rules/4242", headers=m), 404)
    problem(client.get("/api/v1/alert-rules/abc", headers=m), 422)
    problem(
        client.post("/api/v1/alert-rules", content=b"{", headers=m | {"content-type": "application/json"}),
        400,
    )
    assert count(db) == 2
    assert ok(client.get(f"/api/v1/alert-rules/{a['id']}", headers=m))["position"] == 100


# --- CLI -----------------------------------------------------------------------------------------

runner = CliRunner()


@pytest.fixture
def cli(db: Database, db_url: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch, clock: ManualClock) -> Any:
    monkeypatch.setenv("OPSDESK_DATABASE_URL", db_url)
    monkeypatch.setenv("OPSDESK_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("COLUMNS", "250")
    monkeypatch.setattr(common, "clock", clock)
    common.settings.cache_clear()
    common.database.cache_clear()

    def run(*args: str, ok: bool = True) -> Any:
        result = runner.invoke(cli_app, list(args))
        if ok:
            assert result.exit_code == 0, result.output
        return result

    yield run
    common.database().dispose()
    common.settings.cache_clear()
    common.database.cache_clear()


def test_cli_add_list_delete(cli: Any, db: Database) -> None:
    out = cli(
        *(
            "alert-rule",
            "add",
            "disk-per-host",
            "--match",
            "alertname=DiskFull",
            "--match",
            'severity=~"critical|error"',
        ),
        *("--fingerprint-labels", "alertname,instance", "--group-by", "cluster", "--group-window", "5m"),
        *("--reopen-window", "10m", "--position", "10"),
    ).output
    assert "alert rule 1 disk-per-host at position 10" in out
    cli("alert-rule", "add", "catch-all", "--position", "1000", "--disabled")
    listed = json.loads(cli("alert-rule", "list", "--json").output)
    assert [
        (x["name"], x["enabled"], x["group_window_seconds"], x["reopen_window_seconds"]) for x in listed
    ] == [
        ("disk-per-host", True, 300, 600),
        ("catch-all", False, None, None),
    ]
    assert listed[0]["fingerprint_labels"] == ["alertname", "instance"]
    table = cli("alert-rule", "list").output
    assert "5m / 10m" in table and "default / default" in table
    assert "deleted alert rule disk-per-host" in cli("alert-rule", "delete", "disk-per-host").output
    assert "deleted alert rule catch-all" in cli("alert-rule", "delete", "2").output
    assert count(db) == 0


def test_cli_bad_input_exits_1(cli: Any, db: Database) -> None:
    cli("alert-rule", "add", "taken")
    for args in [
        ("alert-rule", "add", "taken"),
        ("alert-rule", "add", "r", "--match", "a=~("),
        ("alert-rule", "add", "r", "--group-by", "not-a-label"),
        ("alert-rule", "add", "r", "--group-window", "soon"),
        ("alert-rule", "add", "default"),
        ("alert-rule", "delete", "missing"),
        ("alert-rule", "delete", "99"),
    ]:
        result = cli(*args, ok=False)
        assert result.exit_code == 1 and "error:" in result.output, (args, result.output)
    assert count(db) == 1


# --- pages ---------------------------------------------------------------------------------------


def test_manager_creates_edits_and_deletes_a_rule_on_the_page(
    client: TestClient, accounts: dict[str, Account], db: Database
) -> None:
    csrf = login(client, accounts["manager"].email, PASSWORD)
    page = client.get("/alert-rules", headers=HTML)
    assert page.status_code == 200 and "No rules" in page.text and 'id="rule-form"' in page.text

    form = {
        "csrf_token": csrf,
        "name": "disk-per-host",
        "position": "10",
        "enabled": "on",
        "matchers": 'alertname="DiskFull"\nseverity=~"critical|error"',
        "fingerprint_labels": "alertname, instance",
        "group_by": "cluster",
        "group_window": "5m",
        "reopen_window": "",
    }
    r = client.post("/alert-rules", data=form, follow_redirects=False)
    assert r.status_code == 303, r.text
    listed = client.get("/alert-rules", headers=HTML).text
    assert "disk-per-host" in listed and "alertname, instance" in listed and "5m / default" in listed
    with db.session() as s:
        (rule,) = rules.list_rules(s)
        assert (rule.fingerprint_labels, rule.group_by, rule.group_window_seconds) == (
            ["alertname", "instance"],
            ["cluster"],
            300,
        )

    edit_page = client.get(f"/alert-rules/{rule.id}", headers=HTML).text
    assert 'value="5m"' in edit_page and "severity=~&#34;critical|error&#34;" in edit_page
    r = client.post(
        f"/alert-rules/{rule.id}", data=form | {"enabled": "", "group_window": ""}, follow_redirects=False
    )
    assert r.status_code == 303
    with db.session() as s:
        rule = rules.get(s, rule.id)
        assert (rule.enabled, rule.group_window_seconds) == (False, None)
    assert "disabled" in client.get("/alert-rules", headers=HTML).text

    r = client.post(f"/alert-rules/{rule.id}/delete", data={"csrf_token": csrf}, follow_redirects=False)
    assert r.status_code == 303 and count(db) == 0


def test_rule_form_errors_are_shown_and_nothing_is_saved(
    client: TestClient, accounts: dict[str, Account], db: Database
) -> None:
    csrf = login(client, accounts["manager"].email, PASSWORD)
    for change, message in [
        ({"name": ""}, "at least 1 character"),
        ({"matchers": "a=~("}, "invalid regular expression"),
        ({"group_by": "bad-label"}, "String should match pattern"),
        ({"group_window": "eight days"}, "is not a duration"),
        ({"position": "first"}, "valid integer"),
        ({"fingerprint_labels": "a, a"}, "a label is listed twice"),
    ]:
        r = client.post("/alert-rules", data={"csrf_token": csrf, "name": "r"} | change, headers=HTML)
        assert r.status_code == 422 and message in r.text, (change, r.status_code)
    client.post("/alert-rules", data={"csrf_token": csrf, "name": "r"}, follow_redirects=False)
    dup = client.post("/alert-rules", data={"csrf_token": csrf, "name": "r"}, headers=HTML)
    assert dup.status_code == 409 and "already exists" in dup.text
    assert count(db) == 1
    assert (
        client.post("/alert-rules/4242", data={"csrf_token": csrf, "name": "x"}, headers=HTML).status_code
        == 404
    )


def test_viewer_reads_rules_without_forms(
    client: TestClient, accounts: dict[str, Account], db: Database, clock: ManualClock
) -> None:
    rid = add(db, clock, name="disk", matchers=["alertname=DiskFull"], reopen_window_seconds=600)
    csrf = login(client, accounts["viewer"].email, PASSWORD)
    listed = client.get("/alert-rules", headers=HTML).text
    assert "disk" in listed and 'id="rule-form"' not in listed
    detail = client.get(f"/alert-rules/{rid}", headers=HTML).text
    assert "10m" in detail and 'id="rule-form"' not in detail
    assert (
        client.post(f"/alert-rules/{rid}/delete", data={"csrf_token": csrf}, headers=HTML).status_code == 403
    )
    assert count(db) == 1
