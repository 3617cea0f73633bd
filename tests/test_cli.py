"""The ``opsdesk`` command, run in-process against the test database (SQLite and PostgreSQL)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from opsdesk.cli import common
from opsdesk.cli.main import app

runner = CliRunner()


@pytest.fixture
def cli(db, db_url, tmp_path, monkeypatch):
    monkeypatch.setenv("OPSDESK_DATABASE_URL", db_url)
    monkeypatch.setenv("OPSDESK_DATA_DIR", str(tmp_path))
    common.settings.cache_clear()
    common.database.cache_clear()

    def run(*args: str, input: str | None = None, ok: bool = True):  # type: ignore[no-untyped-def]
        result = runner.invoke(app, list(args), input=input)
        if ok:
            assert result.exit_code == 0, result.output
        return result

    yield run
    common.database().dispose()
    common.settings.cache_clear()
    common.database.cache_clear()


def test_user_create_reads_password_from_stdin_and_it_works(cli, db):
    cli(
        "user",
        "create",
        "--email",
        "Ana@Example.org",
        "--name",
        "Ana",
        "--role",
        "responder",
        "--password-stdin",
        input="a long password\n",
    )
    from opsdesk.auth import service as auth

    with db.session() as s:
        user = auth.authenticate(s, "ana@example.org", "a long password")
        assert user is not None and user.role == "responder"


def test_user_create_without_password_prints_a_generated_one(cli):
    out = cli("user", "create", "--email", "bo@example.org", "--name", "Bo").output
    assert "password:" in out


def test_user_create_rejects_a_bad_email_and_unknown_role(cli):
    assert cli("user", "create", "--email", "nope", "--name", "X", ok=False).exit_code == 1
    assert (
        cli("user", "create", "--email", "x@example.org", "--name", "X", "--role", "boss", ok=False).exit_code
        == 2
    )


def test_token_create_prints_the_token_alone_on_the_last_line(cli, db):
    cli("user", "create", "--email", "ci@example.org", "--name", "CI", "--role", "responder")
    out = cli("token", "create", "--user", "ci@example.org", "--name", "pipeline").output
    token = out.strip().splitlines()[-1]
    assert token.startswith("odk_") and " " not in token
    from opsdesk.auth import service as auth

    with db.session() as s:
        user = auth.user_for_token(s, token, now=common.now())
        assert user is not None and user.email == "ci@example.org"


def test_token_create_for_unknown_user_fails_clearly(cli):
    result = cli("token", "create", "--user", "ghost@example.org", "--name", "x", ok=False)
    assert result.exit_code == 1 and "ghost@example.org" in result.output


def test_cmdb_commands_create_relate_and_refuse_deleting_a_dependency(cli):
    cli("user", "create", "--email", "ops@example.org", "--name", "Ops")
    cli("team", "add", "ops", "--member", "ops@example.org")
    cli("service", "add", "shop", "--team", "ops", "--attr", "tier=1")
    cli("ci", "add", "db1", "--class", "database")
    cli("rel", "add", "service:shop", "depends_on", "ci:db1")
    refused = cli("ci", "delete", "db1", ok=False)
    assert refused.exit_code == 1 and "service shop" in refused.output
    rels = json.loads(cli("rel", "list", "--json").output)
    assert [(r["source"], r["type"], r["target"]) for r in rels] == [("service:shop", "depends_on", "ci:db1")]
    cli("rel", "delete", str(rels[0]["id"]))
    cli("ci", "delete", "db1")
    assert json.loads(cli("ci", "list", "--json").output) == []
    services = json.loads(cli("service", "list", "--json").output)
    assert services[0]["name"] == "shop" and services[0]["attributes"] == {"tier": "1"}


def test_service_update_and_delete(cli):
    cli("service", "add", "shop")
    cli("service", "update", "shop", "--name", "webshop", "--description", "the shop")
    (svc,) = json.loads(cli("service", "list", "--json").output)
    assert (svc["name"], svc["description"]) == ("webshop", "the shop")
    cli("service", "delete", "webshop")
    assert json.loads(cli("service", "list", "--json").output) == []


def test_monitor_add_and_list(cli):
    cli("service", "add", "shop")
    cli(
        "monitor",
        "add",
        "--name",
        "shop-http",
        "--url",
        "http://127.0.0.1:9/health",
        "--interval",
        "30",
        "--service",
        "shop",
    )
    (m,) = json.loads(cli("monitor", "list", "--json").output)
    assert (m["name"], m["status"], m["interval"]) == ("shop-http", "unknown", 30)


def test_monitor_add_rejects_a_non_http_url(cli):
    result = cli("monitor", "add", "--name", "x", "--url", "ftp://example.org", ok=False)
    assert result.exit_code == 1 and "target" in result.output


def test_incident_list_ack_and_resolve(cli, db, clock):
    from opsdesk.alerts import service as alerts

    with db.session() as s:
        alerts.store_events(
            s,
            [alerts.NormalizedEvent(source="api", status="firing", severity="error", summary="disk full")],
            now=clock.now(),
        )
    with db.session() as s:
        alerts.process_pending(s, now=clock.now())
    listed = json.loads(cli("incident", "list", "--json").output)
    assert [(i["key"], i["status"]) for i in listed] == [("INC-1", "triggered")]
    assert "acknowledged" in cli("incident", "ack", "INC-1").output
    assert "resolved" in cli("incident", "resolve", "1", "--note", "freed space").output
    assert json.loads(cli("incident", "list", "--json").output) == []
    assert len(json.loads(cli("incident", "list", "--all", "--json").output)) == 1


def test_incident_ack_of_unknown_incident_fails_clearly(cli):
    result = cli("incident", "ack", "INC-99", ok=False)
    assert result.exit_code == 1 and "does not exist" in result.output


def test_actions_as_a_user_are_audited_under_that_user(cli, db):
    cli("user", "create", "--email", "mgr@example.org", "--name", "M", "--role", "manager")
    cli("service", "add", "shop", "--as", "mgr@example.org")
    from opsdesk.audit import service as audit

    with db.session() as s:
        (entry,) = audit.list_entries(s, entity_type="service")
        assert entry.actor == "mgr@example.org" and entry.action == "create"


def test_db_upgrade_is_idempotent(cli):
    assert "already current" in cli("db", "upgrade").output
    assert "head" in cli("db", "current").output


def test_serve_prepares_sqlite_itself_but_refuses_an_old_postgres_schema(
    db_url, tmp_path, monkeypatch, capsys
):
    """SQLite is migrated on start; on PostgreSQL, where several processes may start at once,
    the schema is upgraded only by an explicit `opsdesk db upgrade`."""
    import typer

    from opsdesk.cli import main
    from opsdesk.core import migrate

    monkeypatch.setenv("OPSDESK_DATABASE_URL", db_url)  # an empty database: no migrations yet
    monkeypatch.setenv("OPSDESK_DATA_DIR", str(tmp_path))
    common.settings.cache_clear()
    common.database.cache_clear()
    try:
        if db_url.startswith("sqlite"):
            main._prepare()
            assert migrate.is_current(common.database().engine)
            assert "admin@localhost" in capsys.readouterr().out
        else:
            with pytest.raises(typer.Exit):
                main._prepare()
            assert "opsdesk db upgrade" in capsys.readouterr().err
            assert migrate.current_revision(common.database().engine) is None
    finally:
        common.database().dispose()
        common.settings.cache_clear()
        common.database.cache_clear()


def test_monitor_pause_resume_and_delete_by_name(cli):
    cli("monitor", "add", "--name", "shop-http", "--url", "http://127.0.0.1:9/health")
    assert "paused" in cli("monitor", "pause", "shop-http").output
    assert "unknown" in cli("monitor", "resume", "shop-http").output
    cli("monitor", "delete", "shop-http")
    assert json.loads(cli("monitor", "list", "--json").output) == []
    assert cli("monitor", "pause", "shop-http", ok=False).exit_code == 1


def test_monitor_add_any_type_with_config_then_uptime_and_history(cli, db):
    out = cli(
        "monitor",
        "add",
        "--name",
        "backup",
        "--type",
        "heartbeat",
        "--interval",
        "3600",
        "--config",
        "grace_seconds=600",
        "--config",
        "schedule=0 2 * * *",
    ).output
    assert "created heartbeat monitor" in out and "/ping/" in out
    out = cli(
        "monitor",
        "add",
        "--name",
        "db-port",
        "--type",
        "tcp",
        "--target",
        "127.0.0.1:9",
        "--location",
        "local",
        "--location",
        "lyon",
        "--quorum",
        "2",
    ).output
    assert "created tcp monitor" in out
    listed = json.loads(cli("monitor", "list", "--json").output)
    assert {(m["name"], m["type"]) for m in listed} == {("backup", "heartbeat"), ("db-port", "tcp")}
    from opsdesk.monitoring import service as monitoring

    with db.session() as s:
        hb = monitoring.get_monitor_by_name(s, "backup")
        assert hb.config == {"grace_seconds": 600, "schedule": "0 2 * * *", "timezone": "UTC"}
        assert monitoring.get_monitor_by_name(s, "db-port").locations == ["local", "lyon"]
    # Bad input: the field is named and nothing is created.
    bad = cli(
        "monitor", "add", "--name", "x", "--type", "heartbeat", "--config", "schedule=every day", ok=False
    )
    assert bad.exit_code != 0 and "schedule" in bad.output
    bad = cli("monitor", "add", "--name", "y", "--type", "tcp", "--config", "nonsense", ok=False)
    assert bad.exit_code != 0 and "key=value" in bad.output
    assert len(json.loads(cli("monitor", "list", "--json").output)) == 2
    up = json.loads(cli("monitor", "uptime", "db-port", "--range", "7d", "--json").output)
    assert up[0]["range"] == "7d" and up[0]["availability_percent"] is None  # nothing known yet
    assert json.loads(cli("monitor", "history", "db-port", "--json").output) == []
    assert cli("monitor", "uptime", "db-port", "--range", "1y", ok=False).exit_code != 0


def test_integration_create_list_rotate_delete(cli, db):
    from opsdesk.alerts import integrations

    out = cli("integration", "create", "prom-prod", "--kind", "alertmanager").output
    url = next(w for w in out.split() if "/hooks/" in w)
    key = url.rsplit("/", 1)[1]
    with db.session() as s:
        assert integrations.integration_for_key(s, key) is not None
    signed = cli("integration", "create", "grafana", "--kind", "grafana", "--secret-stdin", input="s3cret\n")
    assert "/hooks/" in signed.output
    rows = json.loads(cli("integration", "list", "--json").output)
    assert sorted((r["name"], r["kind"], r["signed"]) for r in rows) == [
        ("grafana", "grafana", True),
        ("prom-prod", "alertmanager", False),
    ]
    new_url = next(w for w in cli("integration", "rotate", "prom-prod").output.split() if "/hooks/" in w)
    with db.session() as s:
        assert integrations.integration_for_key(s, key) is None
        assert integrations.integration_for_key(s, new_url.rsplit("/", 1)[1]) is not None
    assert cli("integration", "create", "x", "--kind", "carrier-pigeon", ok=False).exit_code != 0
    cli("integration", "delete", "grafana")
    assert [r["name"] for r in json.loads(cli("integration", "list", "--json").output)] == ["prom-prod"]
    assert cli("integration", "delete", "nope", ok=False).exit_code != 0
