"""Config as code: ``opsdesk apply -f`` creates or updates idempotently, ``opsdesk export`` writes
it back, errors name the line and field, and a bad document changes nothing."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from opsdesk.cli import common
from opsdesk.cli.main import app as cli_app

DOC = """\
teams:
  - name: web
    members: [responder@example.org]
services:
  - name: shop
    owner_team: web
    description: The web shop
    attributes: {tier: 1}
cis:
  - name: db1
    class: database
relationships:
  - {source: "service:shop", type: depends_on, target: "ci:db1"}
monitors:
  - name: shop-http
    target: https://shop.example.org/health
    interval: 30
    service: shop
    config:
      expected_status: 2xx
      keyword: Welcome
      username: probe
      password: ${SHOP_PASSWORD}
"""

runner = CliRunner()


@pytest.fixture
def cli(db, db_url, tmp_path, monkeypatch, accounts):
    monkeypatch.setenv("OPSDESK_DATABASE_URL", db_url)
    monkeypatch.setenv("OPSDESK_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("SHOP_PASSWORD", "s3cret-from-env")
    common.settings.cache_clear()
    common.database.cache_clear()

    def run(*args: str, input: str | None = None, code: int = 0):  # type: ignore[no-untyped-def]
        result = runner.invoke(cli_app, list(args), input=input)
        assert result.exit_code == code, result.output
        return result.output

    yield run
    common.database().dispose()
    common.settings.cache_clear()
    common.database.cache_clear()


def test_apply_creates_everything_then_a_second_apply_changes_nothing(cli, client, accounts):
    out = cli("apply", "-f", "-", input=DOC)
    assert "5 created, 0 updated, 0 unchanged" in out
    audit_after_first = len(
        client.get("/api/v1/audit?limit=500", headers=accounts["admin"].headers).json()["items"]
    )
    assert "0 created, 0 updated, 5 unchanged" in cli("apply", "-f", "-", input=DOC)
    audit_after_second = len(
        client.get("/api/v1/audit?limit=500", headers=accounts["admin"].headers).json()["items"]
    )
    assert audit_after_second == audit_after_first
    (m,) = client.get("/api/v1/monitors", headers=accounts["viewer"].headers).json()["items"]
    assert (
        m["interval_seconds"] == 30
        and m["secrets_set"] == ["password"]
        and m["config"]["keyword"] == "Welcome"
    )


def test_a_changed_field_is_an_update_of_that_object_only(cli):
    cli("apply", "-f", "-", input=DOC)
    out = cli("apply", "-f", "-", input=DOC.replace("interval: 30", "interval: 45"))
    assert "updated   monitor shop-http" in out and "0 created, 1 updated, 4 unchanged" in out


def test_export_round_trips_through_apply(cli):
    cli("apply", "-f", "-", input=DOC)
    exported = cli("export")
    assert "password" not in exported and "s3cret" not in exported
    assert "0 created, 0 updated, 5 unchanged" in cli("apply", "-f", "-", input=exported)


def test_dry_run_reports_and_changes_nothing(cli):
    out = cli("apply", "-f", "-", "--dry-run", input=DOC)
    assert "would be 5 created" in out
    assert "services" not in cli("export")


def test_an_error_names_line_and_field_and_changes_nothing(cli):
    bad = DOC.replace("interval: 30", "interval: often")
    out = cli("apply", "-f", "-", input=bad, code=1)
    assert "line 17: monitors[0].interval" in out
    assert cli("export").strip() == "{}"


def test_a_reference_to_a_missing_object_names_its_line(cli):
    bad = DOC.replace("owner_team: web", "owner_team: nobody")
    out = cli("apply", "-f", "-", input=bad, code=1)
    assert "line 6" in out and "no team 'nobody'" in out
    assert cli("export").strip() == "{}"  # the team created before the error was rolled back too


def test_malformed_yaml_and_missing_env_are_clear(cli, monkeypatch):
    out = cli("apply", "-f", "-", input="teams:\n  - name: [web\n", code=1)
    assert "line 3: not valid YAML" in out
    monkeypatch.delenv("SHOP_PASSWORD")
    out = cli("apply", "-f", "-", input=DOC, code=1)
    assert "SHOP_PASSWORD is not set" in out and "line 23" in out


def test_api_apply_and_export(client, accounts):
    doc = "services:\n  - name: api-made\n    description: from the API\n"
    h = accounts["manager"].headers
    r = client.post(
        "/api/v1/apply?dry_run=true", content=doc, headers={**h, "content-type": "application/yaml"}
    )
    assert r.status_code == 200 and r.json()["summary"]["created"] == 1 and r.json()["dry_run"]
    assert client.get("/api/v1/services", headers=h).json()["items"] == []
    r = client.post("/api/v1/apply", content=doc, headers={**h, "content-type": "application/yaml"})
    assert r.json()["changes"] == [{"kind": "services", "name": "api-made", "action": "created"}]
    exported = client.get("/api/v1/export", headers=accounts["viewer"].headers)
    assert exported.headers["content-type"].startswith("application/yaml") and "api-made" in exported.text


def test_api_apply_error_is_a_problem_with_the_line(client, accounts):
    r = client.post(
        "/api/v1/apply",
        content="monitors:\n  - name: x\n    target: ftp://x\n",
        headers=accounts["manager"].headers,
    )
    body = r.json()
    assert r.status_code == 422 and body["line"] == 3 and body["errors"][0]["field"] == "monitors[0].target"
    assert json.dumps(body).count("must be an http") == 2


KINDS = """\
monitors:
  - name: nightly-backup
    type: heartbeat
    target: backup of db1
    interval: 86400
    ping_key: backup-db1-0123456789
    config: {schedule: "0 2 * * *", timezone: Europe/Paris, grace_seconds: 1800}
  - name: shop-from-branches
    target: https://shop.example.org/
    locations: [local, lyon, lille]
    quorum: 2
  - name: db1-port
    type: tcp
    target: db1.example.org:5432
"""


def test_every_kind_of_monitor_applies_exports_and_reapplies(cli, client, accounts):
    assert "3 created" in cli("apply", "-f", "-", input=KINDS)
    items = {
        m["name"]: m
        for m in client.get("/api/v1/monitors", headers=accounts["viewer"].headers).json()["items"]
    }
    hb = items["nightly-backup"]
    assert hb["ping_url"].endswith("/ping/backup-db1-0123456789")
    assert hb["config"] == {"schedule": "0 2 * * *", "timezone": "Europe/Paris", "grace_seconds": 1800}
    assert items["shop-from-branches"]["locations"] == ["local", "lyon", "lille"]
    assert items["shop-from-branches"]["quorum"] == 2
    exported = cli("export")
    assert "quorum: 2" in exported and "lyon" in exported and "schedule:" in exported
    assert "backup-db1-0123456789" not in exported  # the ping key is a credential: not exported
    assert "0 created, 0 updated, 3 unchanged" in cli("apply", "-f", "-", input=exported)
    # The key survives an export without it; a wrong quorum names the field.
    assert items["nightly-backup"]["ping_key"] == "backup-db1-0123456789"
    out = cli("apply", "-f", "-", input=KINDS.replace("quorum: 2", "quorum: 5"), code=1)
    assert "monitors[1]" in out and "quorum" in out
    out = cli("apply", "-f", "-", input=KINDS.replace('"0 2 * * *"', '"0 25 * * *"'), code=1)
    assert "line 7" in out and "schedule" in out
