"""``opsdesk policy``, ``opsdesk service-policy`` and ``opsdesk notifications``, run in-process against
the test database (SQLite and PostgreSQL) with the test clock."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from opsdesk.cli import common
from opsdesk.cli.main import app as cli_app
from opsdesk.cmdb import service as cmdb
from opsdesk.cmdb.schemas import ServiceIn
from opsdesk.core.actor import SYSTEM
from opsdesk.core.clock import ManualClock
from opsdesk.core.db import Database
from opsdesk.notify import service as outbox
from opsdesk.notify.models import OutboxMessage
from opsdesk.oncall import escalation
from tests.conftest import Account

R, M = "responder@example.org", "manager@example.org"
ARROW = "\u2192"

runner = CliRunner()


@pytest.fixture
def cli(
    db: Database,
    db_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    clock: ManualClock,
    accounts: dict[str, Account],
) -> Any:
    """Runs ``opsdesk ...`` on the test database; the users of ``accounts`` exist."""
    monkeypatch.setenv("OPSDESK_DATABASE_URL", db_url)
    monkeypatch.setenv("OPSDESK_DATA_DIR", str(tmp_path))
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


def primary(cli: Any) -> None:
    cli("schedule", "create", "Primary", "--tz", "Europe/Berlin")
    cli("schedule", "add-layer", "Primary", "-p", R, "--start", "2026-03-02T09:00", "--turn", "1w")


def test_create_list_show_update_and_delete_a_policy(cli: Any, db: Database) -> None:
    primary(cli)
    out = cli(
        "policy", "create", "Database", "--level", f"5: schedule Primary, user {R}", "--level", f"10m: {M}",
        "--repeat", "1", "--description", "DBA first",
    ).output  # fmt: skip
    assert (
        f"created escalation policy 1 Database: 1: schedule Primary, user {R} {ARROW} 5 min {ARROW} 2:" in out
    )
    listed = cli("policy", "list").output
    assert "Database" in listed
    data = json.loads(cli("policy", "list", "--json").output)
    assert data[0]["name"] == "Database" and data[0]["repeat"] == 1
    assert [lv["timeout_minutes"] for lv in data[0]["levels"]] == [5, 10]
    assert data[0]["levels"][0]["targets"] == [
        {"type": "schedule", "id": 1, "name": "Primary"},
        {"type": "user", "id": data[0]["levels"][0]["targets"][1]["id"], "name": R},
    ]
    shown = cli("policy", "show", "Database").output
    assert "1. schedule Primary, user responder@example.org; then wait 5 min" in shown
    assert "repeat: 1 (2 rounds, then stop)" in shown and "services: none" in shown
    assert f'as --level: "5: schedule Primary, user {R}" "10: user {M}"' in shown
    assert json.loads(cli("policy", "show", "1", "--json").output)["description"] == "DBA first"
    out = cli("policy", "update", "Database", "--level", "3: schedule Primary", "--name", "DB").output
    assert "updated escalation policy 1 DB" in out
    assert [
        lv["timeout_minutes"] for lv in json.loads(cli("policy", "show", "DB", "--json").output)["levels"]
    ] == [3]
    assert "deleted escalation policy DB" in cli("policy", "delete", "DB").output
    with db.session() as s:
        assert escalation.list_policies(s) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "--level: give at least one"),
        (["--level", "five: schedule Primary"], "--level: level 1"),
        (
            ["--level", "5: schedule Primary", "--level", "0: schedule Primary"],
            "level 2: wait from 1 to 1440",
        ),
        (["--level", "5: robot X"], "is not a target"),
        (["--level", "5: schedule Primary, user ghost@example.org"], "--level: level 1, target 2: no user"),
        (["--level", "5: schedule Primary", "--repeat", "10"], "repeat"),
    ],
)
def test_bad_levels_exit_1_with_one_line_and_save_nothing(
    cli: Any, db: Database, args: list[str], message: str
) -> None:
    primary(cli)
    result = cli("policy", "create", "Broken", *args, ok=False)
    assert result.exit_code == 1
    assert message in result.output, result.output
    with db.session() as s:
        assert escalation.list_policies(s) == []


def test_delete_refused_while_used_and_service_policy_sets_and_clears(
    cli: Any, db: Database, clock: ManualClock
) -> None:
    primary(cli)
    cli("policy", "create", "Default", "--level", "5: schedule Primary")
    with db.session() as s:
        cmdb.create_service(s, ServiceIn(name="shop"), actor=SYSTEM, now=clock.now())
    assert "service shop: escalation policy none" in cli("service-policy", "shop").output
    assert "service shop: escalation policy Default" in cli("service-policy", "shop", "Default").output
    with db.session() as s:
        assert cmdb.get_service_by_name(s, "shop").escalation_policy_id == 1  # type: ignore[union-attr]
    assert "services: shop" in cli("policy", "show", "Default").output
    result = cli("policy", "delete", "Default", ok=False)
    assert result.exit_code == 1 and "is used by service(s) shop" in result.output
    assert cli("service-policy", "shop", "Nope", ok=False).exit_code == 1
    assert cli("service-policy", "nowhere", "Default", ok=False).exit_code == 1
    assert cli("service-policy", "shop", "Default", "--none", ok=False).exit_code == 1
    assert "escalation policy none" in cli("service-policy", "shop", "--none").output
    with db.session() as s:
        assert cmdb.get_service_by_name(s, "shop").escalation_policy_id is None  # type: ignore[union-attr]
    cli("policy", "delete", "Default")


def _dead(db: Database, clock: ManualClock, key: str) -> int:
    with db.session() as s:
        m = outbox.enqueue(
            s, channel="email", recipient="ann@example.org", subject="page", body="b", idempotency_key=key,
            now=clock.now(),
        )  # fmt: skip
        outbox.mark_failed(s, m.id, "SMTP refused", now=clock.now(), max_attempts=1, backoff_seconds=5)
        return m.id


def _status(db: Database, message_id: int) -> str:
    with db.session() as s:
        m = s.get(OutboxMessage, message_id)
        assert m is not None
        return m.status


def test_notifications_list_filter_and_retry(cli: Any, db: Database, clock: ManualClock) -> None:
    with db.session() as s:
        outbox.enqueue(s, channel="email", recipient="bob@example.org", subject="s", body="b",
                       idempotency_key="ok", now=clock.now())  # fmt: skip
    a, b, c = (_dead(db, clock, k) for k in ("a", "b", "c"))
    out = cli("notifications").output
    assert "pending: 1  sent: 0  dead: 3  cancelled: 0" in out and "SMTP" in out  # a narrow table wraps
    assert out.count("dead") == 4 and out.count("pending") == 2
    data = json.loads(cli("notifications", "--status", "dead", "--json").output)
    assert data["counts"]["dead"] == 3
    assert [m["id"] for m in data["messages"]] == [c, b, a]  # newest first
    assert all(m["status"] == "dead" and m["last_error"] == "SMTP refused" for m in data["messages"])
    assert "body" not in data["messages"][0]  # the body holds the signed links
    bad = cli("notifications", "--status", "lost", ok=False)
    assert bad.exit_code == 1 and "--status" in bad.output
    assert f"queued message {a} again" in cli("notifications", "retry", str(a)).output
    assert _status(db, a) == "pending" and _status(db, b) == "dead"
    again = cli("notifications", "retry", str(a), ok=False)
    assert again.exit_code == 1 and "only dead messages can be retried" in again.output
    assert cli("notifications", "retry", ok=False).exit_code == 1
    assert cli("notifications", "retry", str(b), "--all-dead", ok=False).exit_code == 1
    assert "queued 2 dead message(s) again" in cli("notifications", "retry", "--all-dead").output
    assert [_status(db, x) for x in (a, b, c)] == ["pending"] * 3
    assert cli("notifications", "retry", "9999", ok=False).exit_code == 1
