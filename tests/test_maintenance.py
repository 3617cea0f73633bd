"""Maintenance windows: expansion (DST, COUNT, one-off), what the pipeline asks, API, CLI, pages."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, func, select
from typer.testing import CliRunner

from opsdesk.alerts.admin_schemas import WindowIn
from opsdesk.changes import maintenance
from opsdesk.changes.models import MaintenanceWindow
from opsdesk.cli import common
from opsdesk.cli.main import app as cli_app
from opsdesk.cmdb import service as cmdb
from opsdesk.cmdb.schemas import CIIn, ServiceIn
from opsdesk.core.actor import SYSTEM
from opsdesk.core.clock import ManualClock
from opsdesk.core.db import Database
from opsdesk.core.errors import OpsdeskError
from tests.conftest import PASSWORD, Account
from tests.support import login

HTML = {"accept": "text/html"}
PARIS = ZoneInfo("Europe/Paris")
PROBLEM = "application/problem+json"


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def paris(*args: int) -> datetime:
    return datetime(*args, tzinfo=PARIS)  # type: ignore[misc]


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
        return s.scalar(select(func.count()).select_from(MaintenanceWindow)) or 0


@pytest.fixture
def targets(db: Database, clock: ManualClock) -> dict[str, int]:
    with db.session() as s:
        svc = cmdb.create_service(s, ServiceIn(name="checkout"), actor=SYSTEM, now=clock.now())
        ci = cmdb.create_ci(
            s, CIIn.model_validate({"name": "db-1", "class": "database"}), actor=SYSTEM, now=clock.now()
        )
        return {"service_id": svc.id, "ci_id": ci.id}


def make(db: Database, now: datetime, **fields: Any) -> MaintenanceWindow:
    with db.session() as s:
        return maintenance.create(s, WindowIn.model_validate({"name": "w", **fields}), actor=SYSTEM, now=now)


def active_ids(db: Database, at: datetime) -> list[int]:
    with db.session() as s:
        return [w.id for w in maintenance.in_progress(s, at)]


# --- expansion -----------------------------------------------------------------------------------


def test_weekly_0200_paris_stays_0200_local_across_the_march_change(
    db: Database, clock: ManualClock, targets: dict[str, int]
) -> None:
    # Clocks go forward in Paris on Sunday 2026-03-29 at 02:00 (to 03:00): UTC+1 before, UTC+2 after.
    w = make(
        db,
        clock.now(),
        service_id=targets["service_id"],
        starts_at=paris(2026, 3, 22, 2, 0).isoformat(),
        ends_at=paris(2026, 3, 22, 4, 0).isoformat(),
        rrule="FREQ=WEEKLY;BYDAY=SU",
        timezone="Europe/Paris",
    )
    occ = maintenance.occurrences(w, utc(2026, 3, 20), utc(2026, 4, 13))
    assert occ == [
        (utc(2026, 3, 22, 1), utc(2026, 3, 22, 3)),  # 02:00-04:00 CET
        (utc(2026, 3, 29, 1), utc(2026, 3, 29, 2)),  # 02:00 does not exist: 03:00-04:00 CEST
        (utc(2026, 4, 5, 0), utc(2026, 4, 5, 2)),  # 02:00-04:00 CEST
        (utc(2026, 4, 12, 0), utc(2026, 4, 12, 2)),
    ]
    assert [a.astimezone(PARIS).hour for a, _ in occ] == [2, 3, 2, 2]
    assert [b.astimezone(PARIS).hour for _, b in occ] == [4, 4, 4, 4]

    assert active_ids(db, utc(2026, 3, 22, 0, 59)) == []
    assert active_ids(db, utc(2026, 3, 22, 1, 0)) == [w.id]
    assert active_ids(db, utc(2026, 3, 22, 3, 0)) == []
    assert active_ids(db, utc(2026, 4, 5, 0, 30)) == [w.id]  # 02:30 CEST
    assert active_ids(db, utc(2026, 4, 5, 1, 30)) == [w.id]
    assert active_ids(db, utc(2026, 4, 5, 2, 0)) == []
    assert active_ids(db, utc(2026, 3, 29, 0, 30)) == []  # 01:30 CET, before the window
    with db.session() as s:
        (aw,) = maintenance.in_progress(s, utc(2026, 4, 5, 1))
        assert (aw.id, aw.service_id, aw.ci_id, aw.ends_at) == (
            w.id,
            targets["service_id"],
            None,
            utc(2026, 4, 5, 2),
        )

    assert maintenance.next_occurrence(w, utc(2026, 3, 23)) == (utc(2026, 3, 29, 1), utc(2026, 3, 29, 2))
    assert maintenance.next_occurrence(w, utc(2026, 4, 5, 1)) == (utc(2026, 4, 5, 0), utc(2026, 4, 5, 2))


def test_the_october_change_keeps_0200_local_too(
    db: Database, clock: ManualClock, targets: dict[str, int]
) -> None:
    # Back to UTC+1 on Sunday 2026-10-25 at 03:00 CEST.
    w = make(
        db,
        clock.now(),
        ci_id=targets["ci_id"],
        starts_at=paris(2026, 10, 18, 2, 0).isoformat(),
        ends_at=paris(2026, 10, 18, 2, 30).isoformat(),
        rrule="FREQ=WEEKLY",
        timezone="Europe/Paris",
    )
    assert maintenance.occurrences(w, utc(2026, 10, 17), utc(2026, 11, 2)) == [
        (utc(2026, 10, 18, 0), utc(2026, 10, 18, 0, 30)),
        (utc(2026, 10, 25, 0), utc(2026, 10, 25, 0, 30)),  # 02:00 CEST, the first of the two 02:00s
        (utc(2026, 11, 1, 1), utc(2026, 11, 1, 1, 30)),  # 02:00 CET
    ]


def test_count_ends_the_rule(db: Database, clock: ManualClock, targets: dict[str, int]) -> None:
    w = make(
        db,
        clock.now(),
        service_id=targets["service_id"],
        starts_at="2026-03-03T22:00:00Z",
        ends_at="2026-03-03T23:00:00Z",
        rrule="FREQ=DAILY;COUNT=3",
    )
    assert [a.day for a, _ in maintenance.occurrences(w, utc(2026, 3, 1), utc(2026, 4, 1))] == [3, 4, 5]
    assert maintenance.next_occurrence(w, utc(2026, 3, 5, 22, 30)) == (
        utc(2026, 3, 5, 22),
        utc(2026, 3, 5, 23),
    )
    assert maintenance.next_occurrence(w, utc(2026, 3, 5, 23)) is None
    assert active_ids(db, utc(2026, 3, 5, 22, 30)) == [w.id]
    assert active_ids(db, utc(2026, 3, 6, 22, 30)) == []


def test_until_ends_the_rule(db: Database, clock: ManualClock, targets: dict[str, int]) -> None:
    w = make(
        db,
        clock.now(),
        service_id=targets["service_id"],
        starts_at="2026-03-03T22:00:00Z",
        ends_at="2026-03-03T23:00:00Z",
        rrule="RRULE:FREQ=DAILY;UNTIL=20260304T220000Z",
    )
    assert w.rrule == "FREQ=DAILY;UNTIL=20260304T220000Z"
    assert len(maintenance.occurrences(w, utc(2026, 3, 1), utc(2026, 4, 1))) == 2


def test_one_off(db: Database, clock: ManualClock, targets: dict[str, int]) -> None:
    w = make(
        db,
        clock.now(),
        service_id=targets["service_id"],
        starts_at="2026-03-02T10:00:00Z",
        ends_at="2026-03-02T12:00:00Z",
    )
    assert active_ids(db, utc(2026, 3, 2, 9, 59)) == []
    assert active_ids(db, utc(2026, 3, 2, 10)) == [w.id]
    assert active_ids(db, utc(2026, 3, 2, 12)) == []
    assert maintenance.next_occurrence(w, utc(2026, 3, 2, 9)) == (utc(2026, 3, 2, 10), utc(2026, 3, 2, 12))
    assert maintenance.next_occurrence(w, utc(2026, 3, 2, 12)) is None
    assert maintenance.occurrences(w, utc(2026, 3, 2, 11), utc(2026, 3, 3)) == [
        (utc(2026, 3, 2, 10), utc(2026, 3, 2, 12))
    ]
    assert maintenance.occurrences(w, utc(2026, 3, 2, 12), utc(2026, 3, 3)) == []


def test_in_progress_is_one_query_for_many_windows(
    db: Database, clock: ManualClock, targets: dict[str, int]
) -> None:
    for i in range(20):
        make(
            db,
            clock.now(),
            service_id=targets["service_id"],
            starts_at=f"2026-03-01T{i:02d}:00:00Z",
            ends_at=f"2026-03-01T{i:02d}:30:00Z",
            rrule="FREQ=DAILY",
        )
    statements: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", seen)
    try:
        for minute in (5, 10, 15):
            with db.session() as s:
                (aw,) = maintenance.in_progress(s, utc(2026, 3, 9, 7, minute))
                assert aw.ends_at == utc(2026, 3, 9, 7, 30)
    finally:
        event.remove(db.engine, "before_cursor_execute", seen)
    selects = [x for x in statements if x.lstrip().upper().startswith("SELECT")]
    assert len(selects) == 3


# --- validation (service level) ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"rrule": "FREQ=WEEKLY;UNTIL=20260401T000000"}, "rrule", "must be a UTC date-time ending in Z"),
        ({"rrule": "FREQ=WEEKLY;UNTIL=20260401"}, "rrule", "ending in Z"),
        ({"rrule": "DTSTART:20260301T000000Z\nRRULE:FREQ=DAILY"}, "rrule", "one RRULE line"),
        ({"rrule": "DTSTART=20260301T000000Z;FREQ=DAILY"}, "rrule", "leave DTSTART out"),
        ({"rrule": "BYDAY=SU"}, "rrule", "FREQ is missing"),
        ({"rrule": "FREQ=MINUTELY"}, "rrule", "FREQ must be one of"),
        ({"rrule": "FREQ=FORTNIGHTLY"}, "rrule", "FREQ must be one of"),
        ({"rrule": "FREQ=DAILY;COUNT=2;UNTIL=20270101T000000Z"}, "rrule", "not both"),
        ({"rrule": "FREQ=DAILY;COUNT=0"}, "rrule", "COUNT must be a whole number"),
        ({"rrule": "FREQ=DAILY;INTERVAL=-1"}, "rrule", "INTERVAL must be a whole number"),
        ({"rrule": "FREQ=WEEKLY;BYDAY=XX"}, "rrule", "not a valid RFC 5545 rule"),
        ({"rrule": "FREQ=WEEKLY;COLOR=RED"}, "rrule", "not an RFC 5545 rule part"),
        ({"rrule": "FREQ=WEEKLY;FREQ=DAILY"}, "rrule", "given twice"),
        ({"rrule": "FREQ"}, "rrule", "is not KEY=VALUE"),
        ({"rrule": "FREQ=WEEKLY;BYDAY=MO"}, "rrule", "is not an occurrence of the rule"),
        ({"timezone": "Mars/Olympus"}, "timezone", "not an IANA time zone"),
        ({"timezone": "localtime"}, "timezone", "not an IANA time zone"),
        ({"timezone": "../../etc/passwd"}, "timezone", "not an IANA time zone"),
        ({"ends_at": "2026-03-08T01:00:00Z"}, "ends_at", "must be after starts_at"),
        ({"ends_at": "2026-03-15T02:01:00Z"}, "ends_at", "at most 7 days"),
    ],
)
def test_bad_windows_are_refused_clearly(
    db: Database,
    clock: ManualClock,
    targets: dict[str, int],
    fields: dict[str, Any],
    field: str,
    message: str,
) -> None:
    base = {
        "service_id": targets["service_id"],
        "starts_at": "2026-03-08T02:00:00Z",
        "ends_at": "2026-03-08T04:00:00Z",
    }
    with pytest.raises(OpsdeskError) as caught:
        make(db, clock.now(), **(base | fields))
    assert caught.value.status == 422
    assert caught.value.errors[0].field == field
    assert message in caught.value.errors[0].message
    assert count(db) == 0


def test_a_one_off_window_in_the_past_is_refused(
    db: Database, clock: ManualClock, targets: dict[str, int]
) -> None:
    with pytest.raises(OpsdeskError, match="already be over"):
        make(
            db,
            clock.now(),
            service_id=targets["service_id"],
            starts_at="2026-03-01T02:00Z",
            ends_at="2026-03-01T03:00Z",
        )


# --- API -----------------------------------------------------------------------------------------


def test_api_create_by_name_get_list_patch_delete(
    client: TestClient, accounts: dict[str, Account], targets: dict[str, int], clock: ManualClock
) -> None:
    m = accounts["manager"]
    body = {
        "name": "Sunday patching",
        "service": "checkout",
        "ci": "db-1",
        "starts_at": "2026-03-08T02:00:00+01:00",
        "ends_at": "2026-03-08T04:00:00+01:00",
        "rrule": "freq=weekly;byday=su",
        "timezone": "Europe/Paris",
        "comment": "OS updates",
    }
    w = ok(client.post("/api/v1/maintenance-windows", json=body, headers=m.headers), 201)
    assert (w["service_id"], w["service"], w["ci_id"], w["ci"]) == (
        targets["service_id"],
        "checkout",
        targets["ci_id"],
        "db-1",
    )
    assert w["rrule"] == "FREQ=WEEKLY;BYDAY=SU"
    assert w["in_progress"] is False
    assert w["next_occurrence"] == {"starts_at": "2026-03-08T01:00:00Z", "ends_at": "2026-03-08T03:00:00Z"}
    assert w["created_by"] == m.email

    clock.set(utc(2026, 3, 8, 1, 30))
    v = accounts["viewer"]
    got = ok(client.get(f"/api/v1/maintenance-windows/{w['id']}", headers=v.headers))
    assert got["in_progress"] is True and got["next_occurrence"]["ends_at"] == "2026-03-08T03:00:00Z"
    listed = ok(
        client.get(
            "/api/v1/maintenance-windows", params={"service_id": targets["service_id"]}, headers=v.headers
        )
    )
    assert [x["id"] for x in listed["items"]] == [w["id"]]
    assert (
        ok(client.get("/api/v1/maintenance-windows", params={"ci_id": 999}, headers=v.headers))["items"] == []
    )

    patched = ok(
        client.patch(
            f"/api/v1/maintenance-windows/{w['id']}",
            json={"ci_id": None, "name": "Patching", "rrule": None, "ends_at": "2026-03-08T05:00:00+01:00"},
            headers=m.headers,
        )
    )
    assert (patched["name"], patched["ci_id"], patched["rrule"], patched["in_progress"]) == (
        "Patching",
        None,
        None,
        True,
    )
    problem(
        client.patch(f"/api/v1/maintenance-windows/{w['id']}", json={"service_id": None}, headers=m.headers),
        422,
        "service",
    )

    assert client.delete(f"/api/v1/maintenance-windows/{w['id']}", headers=m.headers).status_code == 204
    problem(client.get(f"/api/v1/maintenance-windows/{w['id']}", headers=v.headers), 404)
    trail = ok(client.get("/api/v1/audit", params={"entity_type": "maintenance_window"}, headers=m.headers))[
        "items"
    ]
    assert [e["action"] for e in reversed(trail)] == ["create", "update", "delete"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"rrule": "FREQ=WEEKLY;BYDAY=SU;UNTIL=20261231T235959"}, "rrule"),
        ({"rrule": "every sunday"}, "rrule"),
        ({"timezone": "Europe/Atlantis"}, "timezone"),
        ({"timezone": ""}, "timezone"),
        ({"starts_at": "2026-03-08T02:00:00"}, "starts_at"),
        ({"starts_at": "soon"}, "starts_at"),
        ({"ends_at": "2026-03-08T01:00:00Z"}, "ends_at"),
        ({"ends_at": "2026-03-20T01:00:00Z"}, "ends_at"),
        ({"service_id": None}, "service"),
        ({"service_id": 4242}, "service_id"),
        ({"service": "nope"}, "service"),
        ({"service": "checkout"}, "service"),  # together with service_id
        ({"ci": "nope"}, "ci"),
        ({"ci_id": 0}, "ci_id"),
        ({"ci_id": 2**40}, "ci_id"),
        ({"name": ""}, "name"),
        ({"owner": "me"}, "owner"),
    ],
)
def test_api_bad_input_is_422_and_changes_nothing(
    client: TestClient,
    accounts: dict[str, Account],
    targets: dict[str, int],
    db: Database,
    change: dict[str, Any],
    field: str,
) -> None:
    body = {
        "name": "w",
        "service_id": targets["service_id"],
        "starts_at": "2026-03-08T02:00:00Z",
        "ends_at": "2026-03-08T04:00:00Z",
    } | change
    problem(
        client.post("/api/v1/maintenance-windows", json=body, headers=accounts["manager"].headers), 422, field
    )
    assert count(db) == 0


def test_api_roles_and_unknown_ids(
    client: TestClient, accounts: dict[str, Account], targets: dict[str, int], db: Database
) -> None:
    body = {
        "name": "w",
        "service_id": targets["service_id"],
        "starts_at": "2026-03-08T02:00Z",
        "ends_at": "2026-03-08T03:00Z",
    }
    for role in ("viewer", "responder"):
        problem(client.post("/api/v1/maintenance-windows", json=body, headers=accounts[role].headers), 403)
    assert count(db) == 0
    w = ok(client.post("/api/v1/maintenance-windows", json=body, headers=accounts["manager"].headers), 201)
    problem(
        client.patch(
            f"/api/v1/maintenance-windows/{w['id']}",
            json={"name": "x"},
            headers=accounts["responder"].headers,
        ),
        403,
    )
    problem(client.delete(f"/api/v1/maintenance-windows/{w['id']}", headers=accounts["viewer"].headers), 403)
    m = accounts["manager"].headers
    problem(client.patch("/api/v1/maintenance-windows/4242", json={"name": "x"}, headers=m), 404)
    problem(client.delete("/api/v1/maintenance-windows/4242", headers=m), 404)
    problem(
        client.post(
            "/api/v1/maintenance-windows", content=b"[", headers=m | {"content-type": "application/json"}
        ),
        400,
    )
    assert count(db) == 1


def test_deleting_the_service_deletes_its_windows(
    client: TestClient, accounts: dict[str, Account], targets: dict[str, int], db: Database
) -> None:
    with db.session() as s:
        spare = cmdb.create_service(s, ServiceIn(name="spare"), actor=SYSTEM, now=utc(2026, 3, 2)).id
    body = {
        "name": "w",
        "service_id": spare,
        "starts_at": "2026-03-08T02:00Z",
        "ends_at": "2026-03-08T03:00Z",
    }
    ok(client.post("/api/v1/maintenance-windows", json=body, headers=accounts["manager"].headers), 201)
    ok(client.delete(f"/api/v1/services/{spare}", headers=accounts["manager"].headers), 204)
    assert count(db) == 0


# --- CLI -----------------------------------------------------------------------------------------

runner = CliRunner()


@pytest.fixture
def cli(db: Database, db_url: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch, clock: ManualClock) -> Any:
    monkeypatch.setenv("OPSDESK_DATABASE_URL", db_url)
    monkeypatch.setenv("OPSDESK_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(common, "clock", clock)
    monkeypatch.setenv("COLUMNS", "250")
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


def test_cli_add_list_delete(cli: Any, targets: dict[str, int], db: Database) -> None:
    out = cli(
        *("maintenance", "add", "Sunday patching", "--service", "checkout", "--tz", "Europe/Paris"),
        *("--start", "2026-03-08T02:00", "--end", "2026-03-08T04:00", "--rrule", "FREQ=WEEKLY;BYDAY=SU"),
    ).output
    assert "maintenance window 1 Sunday patching: next 2026-03-08 01:00 UTC" in out
    cli(
        "maintenance",
        "add",
        "disk swap",
        "--ci",
        str(targets["ci_id"]),
        "--start",
        "2026-03-03T10:00Z",
        "--end",
        "2026-03-03T11:00Z",
    )
    listed = json.loads(cli("maintenance", "list", "--json").output)
    assert [(x["name"], x["service"], x["ci"], x["timezone"]) for x in listed] == [
        ("Sunday patching", "checkout", None, "Europe/Paris"),
        ("disk swap", None, "db-1", "UTC"),
    ]
    table = cli("maintenance", "list").output
    assert "FREQ=WEEKLY;BYDAY=SU" in table and "once" in table
    assert "deleted maintenance window 2" in cli("maintenance", "delete", "2").output
    assert count(db) == 1


def test_cli_bad_input_exits_1(cli: Any, targets: dict[str, int], db: Database) -> None:
    base = ["maintenance", "add", "w", "--start", "2026-03-08T02:00", "--end", "2026-03-08T04:00"]
    for extra in (
        [],  # no target
        ["--service", "nope"],
        ["--service", "checkout", "--tz", "Nowhere/City"],
        ["--service", "checkout", "--rrule", "FREQ=WEEKLY;UNTIL=20260501"],
        ["--service", "checkout", "--start", "next sunday"],
    ):
        result = cli(*base, *extra, ok=False)
        assert result.exit_code == 1 and "error:" in result.output, (extra, result.output)
    assert cli("maintenance", "delete", "99", ok=False).exit_code == 1
    assert count(db) == 0


# --- pages ---------------------------------------------------------------------------------------


def test_manager_creates_a_recurring_window_on_the_page(
    client: TestClient, accounts: dict[str, Account], targets: dict[str, int], db: Database
) -> None:
    csrf = login(client, accounts["manager"].email, PASSWORD)
    page = client.get("/maintenance", headers=HTML)
    assert (
        page.status_code == 200 and "No maintenance windows." in page.text and 'id="window-form"' in page.text
    )

    form = {
        "csrf_token": csrf,
        "name": "Sunday patching",
        "service_id": str(targets["service_id"]),
        "ci_id": "",
        "start": "2026-03-08T02:00",
        "end": "2026-03-08T04:00",
        "timezone": "Europe/Paris",
        "repeat": "weekly",
        "rrule": "",
        "comment": "",
    }
    r = client.post("/maintenance", data=form, follow_redirects=False)
    assert r.status_code == 303, r.text
    detail = client.get(r.headers["location"], headers=HTML).text
    assert "FREQ=WEEKLY" in detail and "Sun 2026-03-08 02:00 \u2013 04:00" in detail
    assert "Sun 2026-03-29 03:00 \u2013 04:00" in detail  # the night the clocks go forward
    assert "Sun 2026-04-05 02:00 \u2013 04:00" in detail

    listed = client.get("/maintenance", headers=HTML).text
    assert (
        "Sunday patching" in listed and "scheduled" in listed and "Sun 2026-03-08 02:00\u201304:00" in listed
    )

    wid = r.headers["location"].rsplit("/", 1)[1].split("?")[0]
    edit = form | {"repeat": "custom", "rrule": "FREQ=DAILY;COUNT=2", "ci_id": str(targets["ci_id"])}
    r = client.post(f"/maintenance/{wid}", data=edit, follow_redirects=False)
    assert r.status_code == 303, r.text
    with db.session() as s:
        w = maintenance.get(s, int(wid))
        assert (w.rrule, w.ci_id) == ("FREQ=DAILY;COUNT=2", targets["ci_id"])

    r = client.post(f"/maintenance/{wid}/delete", data={"csrf_token": csrf}, follow_redirects=False)
    assert r.status_code == 303 and count(db) == 0


def test_window_form_errors_are_shown(
    client: TestClient, accounts: dict[str, Account], targets: dict[str, int], db: Database
) -> None:
    csrf = login(client, accounts["manager"].email, PASSWORD)
    good = {
        "csrf_token": csrf,
        "name": "w",
        "service_id": str(targets["service_id"]),
        "start": "2026-03-08T02:00",
        "end": "2026-03-08T04:00",
        "timezone": "UTC",
        "repeat": "",
    }
    for change, message in [
        ({"timezone": "Moon/Base"}, "not an IANA time zone"),
        ({"repeat": "custom", "rrule": ""}, "write the rule"),
        ({"repeat": "custom", "rrule": "FREQ=WEEKLY;UNTIL=20260501"}, "ending in Z"),
        ({"repeat": "hourly-ish"}, "choose how the window repeats"),
        ({"service_id": ""}, "choose a service or a CI"),
        ({"end": "2026-03-08T01:00"}, "must be after starts_at"),
        ({"start": "someday"}, "not a date and time"),
        ({"name": ""}, "at least 1 character"),
    ]:
        r = client.post("/maintenance", data=good | change, headers=HTML)
        assert r.status_code == 422 and message in r.text, (change, r.status_code)
    assert count(db) == 0


def test_viewer_sees_windows_without_forms(
    client: TestClient,
    accounts: dict[str, Account],
    targets: dict[str, int],
    db: Database,
    clock: ManualClock,
) -> None:
    w = make(
        db,
        clock.now(),
        service_id=targets["service_id"],
        starts_at="2026-03-02T08:00Z",
        ends_at="2026-03-02T10:00Z",
    )
    csrf = login(client, accounts["viewer"].email, PASSWORD)
    listed = client.get("/maintenance", headers=HTML).text
    assert "in progress" in listed and 'id="window-form"' not in listed
    detail = client.get(f"/maintenance/{w.id}", headers=HTML)
    assert detail.status_code == 200 and "Delete window" not in detail.text
    assert (
        client.post(f"/maintenance/{w.id}/delete", data={"csrf_token": csrf}, headers=HTML).status_code == 403
    )
    assert client.get("/maintenance/4242", headers=HTML).status_code == 404
    assert count(db) == 1
