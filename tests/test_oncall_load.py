"""On-call load: pages made by real escalations (a schedule, a policy, a service, incidents declared
at chosen times on the test clock, escalations stepped with ``run_due``, some acknowledged), then
the report's numbers (per hour in a time zone, night, weekend, MTTA), the API and its CSV, the page
with its charts, the CLI, and who may see it.

The world (Berlin is UTC+1 throughout; the schedule "Primary" has the responder on call; the policy
pages it, then the manager after 5 minutes; nobody after that):

=====  =========================  ===================  ==============================================
 inc   declared (UTC)             Berlin               pages; acknowledgement
=====  =========================  ===================  ==============================================
 1     Mon 2 Mar 09:00            Mon 10:00            responder; acked by the responder 2 min later
 2     Tue 3 Mar 22:30            Tue 23:30 (night)    responder, manager at 22:35; acked by the
                                                       manager at 22:38 (responder 8 min, manager 3)
 3     Sat 7 Mar 12:00            Sat 13:00 (weekend)  responder, manager at 12:05; never acked
 4     Sun 8 Mar 23:30            Mon 00:30 (night)    responder; acked by the responder 1 min later
=====  =========================  ===================  ==============================================

In UTC incident 4 is a Sunday page (weekend) at 23:00; in Berlin a Monday page at 00:00.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from opsdesk.auth import service as auth
from opsdesk.auth.schemas import TeamIn
from opsdesk.cli import common
from opsdesk.cli.main import app as cli_app
from opsdesk.cmdb import service as cmdb
from opsdesk.cmdb.schemas import ServiceIn
from opsdesk.core.actor import SYSTEM
from opsdesk.core.clock import ManualClock
from opsdesk.core.db import Database
from opsdesk.core.errors import OpsdeskError
from opsdesk.core.settings import Settings
from opsdesk.incidents import service as incidents
from opsdesk.oncall import escalation, load
from opsdesk.oncall import service as schedules
from opsdesk.oncall.load import duration
from opsdesk.oncall.schemas import PolicyIn, ScheduleIn
from tests.conftest import PASSWORD, Account
from tests.support import login

START = datetime(2026, 3, 1, tzinfo=UTC)
END = datetime(2026, 3, 10, tzinfo=UTC)
BERLIN = "Europe/Berlin"
PROBLEM = "application/problem+json"


@pytest.fixture(autouse=True)
def _secrets(settings: Settings) -> None:
    settings.configure_secrets()


@dataclass
class World:
    team_id: int
    other_team_id: int
    responder: int
    manager: int
    incidents: list[int]


def _tick(db: Database, clock: ManualClock) -> None:
    with db.session() as s:
        escalation.run_due(s, now=clock.now(), base_url="http://opsdesk.test")


def _declare(db: Database, clock: ManualClock, service_id: int) -> int:
    with db.session() as s:
        return incidents.declare(
            s,
            title="db down",
            service_id=service_id,
            severity="critical",
            urgency="high",
            actor=SYSTEM,
            now=clock.now(),
        ).id


def _ack(db: Database, clock: ManualClock, incident_id: int, who: Account) -> None:
    with db.session() as s:
        incidents.acknowledge(s, incident_id, actor=auth.actor_for(who.user), now=clock.now())


@pytest.fixture
def world(db: Database, clock: ManualClock, accounts: dict[str, Account]) -> World:
    responder, manager = accounts["responder"], accounts["manager"]
    now = clock.now()
    with db.session() as s:
        team = auth.create_team(s, TeamIn(name="ops", member_ids=[responder.user.id]), actor=SYSTEM, now=now)
        other = auth.create_team(s, TeamIn(name="quiet"), actor=SYSTEM, now=now)
        schedules.create(
            s,
            ScheduleIn.model_validate(
                {
                    "name": "Primary",
                    "time_zone": BERLIN,
                    "team_id": team.id,
                    "layers": [
                        {
                            "participants": [responder.email],
                            "rotation_start": "2026-03-02T09:00:00",
                            "turn_unit": "weeks",
                        }
                    ],
                }
            ),
            actor=SYSTEM,
            now=now,
        )
        policy = escalation.create(
            s,
            PolicyIn.model_validate(
                {
                    "name": "Default",
                    "levels": [
                        {"timeout_minutes": 5, "targets": [{"type": "schedule", "ref": "Primary"}]},
                        {"timeout_minutes": 10, "targets": [{"type": "user", "ref": manager.email}]},
                    ],
                }
            ),
            actor=SYSTEM,
            now=now,
        )
        svc = cmdb.create_service(
            s,
            ServiceIn(name="db", escalation_policy_id=policy.id, owner_team_id=team.id),
            actor=SYSTEM,
            now=now,
        )
        team_id, other_id, service_id = team.id, other.id, svc.id
    made = []
    # 1: Monday 09:00 UTC, acknowledged by the responder after 2 minutes.
    clock.set(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
    made.append(_declare(db, clock, service_id))
    _tick(db, clock)
    clock.advance(minutes=2)
    _ack(db, clock, made[-1], responder)
    # 2: Tuesday 22:30 UTC; the manager is paged at 22:35 and acknowledges at 22:38.
    clock.set(datetime(2026, 3, 3, 22, 30, tzinfo=UTC))
    made.append(_declare(db, clock, service_id))
    _tick(db, clock)
    clock.advance(minutes=5)
    _tick(db, clock)
    clock.advance(minutes=3)
    _ack(db, clock, made[-1], manager)
    # 3: Saturday 12:00 UTC, both paged, nobody acknowledges; the policy runs out at 12:15.
    clock.set(datetime(2026, 3, 7, 12, 0, tzinfo=UTC))
    made.append(_declare(db, clock, service_id))
    _tick(db, clock)
    clock.advance(minutes=5)
    _tick(db, clock)
    clock.advance(minutes=10)
    _tick(db, clock)
    # 4: Sunday 23:30 UTC (Monday 00:30 in Berlin), acknowledged by the responder after a minute.
    clock.set(datetime(2026, 3, 8, 23, 30, tzinfo=UTC))
    made.append(_declare(db, clock, service_id))
    _tick(db, clock)
    clock.advance(minutes=1)
    _ack(db, clock, made[-1], responder)
    clock.set(datetime(2026, 3, 12, 9, 0, tzinfo=UTC))
    return World(team_id, other_id, responder.user.id, manager.user.id, made)


def _report(db: Database, tz: str = BERLIN, **kw: Any) -> dict[str, Any]:
    with db.session() as s:
        return load.load_report(s, start=START, end=END, tz=tz, **kw)


def _person(report: dict[str, Any], user_id: int) -> dict[str, Any]:
    (row,) = [p for p in report["people"] if p["user_id"] == user_id]
    return row


def _hours(row: dict[str, Any]) -> dict[int, int]:
    return {h: n for h, n in enumerate(row["by_hour"]) if n}


# --- the numbers ---------------------------------------------------------------------------------


def test_per_person_counts_hours_night_weekend_and_mtta_in_the_time_zone(db: Database, world: World) -> None:
    r = _report(db)
    assert [p["user_id"] for p in r["people"]] == [world.responder, world.manager]  # most pages first
    resp, mgr = _person(r, world.responder), _person(r, world.manager)
    assert _hours(resp) == {0: 1, 10: 1, 13: 1, 23: 1}
    assert (resp["pages"], resp["night"], resp["weekend"], resp["off_hours"]) == (4, 2, 1, 3)
    assert (resp["incidents"], resp["acknowledged"]) == (4, 2)
    # 120 s (inc 1), 480 s (inc 2, acked by the manager), 60 s (inc 4); inc 3 was never acked
    assert (resp["mtta_mean_seconds"], resp["mtta_median_seconds"], resp["mtta_count"]) == (220.0, 120.0, 3)
    assert resp["oncall_hours"] == 184.0  # 2 Mar 09:00 Berlin to the end of the period
    assert resp["teams"] == ["ops"]
    assert _hours(mgr) == {13: 1, 23: 1}
    assert (mgr["pages"], mgr["night"], mgr["weekend"], mgr["off_hours"]) == (2, 1, 1, 2)
    assert (mgr["incidents"], mgr["acknowledged"]) == (2, 1)
    assert (mgr["mtta_mean_seconds"], mgr["mtta_median_seconds"], mgr["mtta_count"]) == (180.0, 180.0, 1)
    assert mgr["oncall_hours"] == 0.0


def test_the_same_pages_counted_in_utc(db: Database, world: World) -> None:
    resp = _person(_report(db, tz="UTC"), world.responder)
    assert _hours(resp) == {9: 1, 12: 1, 22: 1, 23: 1}
    assert (resp["night"], resp["weekend"], resp["off_hours"]) == (2, 2, 3)  # Sunday 23:30 is weekend too


def test_totals_teams_and_days(db: Database, world: World) -> None:
    r = _report(db)
    t = r["totals"]
    assert (t["pages"], t["people"], t["incidents"], t["acknowledged"]) == (6, 2, 4, 3)
    assert (t["night"], t["weekend"], t["off_hours"]) == (3, 2, 5)
    # per incident, from its first page to anyone: 120, 480, 60
    assert (t["mtta_mean_seconds"], t["mtta_median_seconds"], t["mtta_count"]) == (220.0, 120.0, 3)
    (team,) = r["teams"]
    assert (team["team_id"], team["name"], team["pages"], team["people"]) == (world.team_id, "ops", 6, 2)
    assert team["oncall_hours"] == 184.0
    days = {d["day"].isoformat(): (d["pages"], d["off_hours"]) for d in r["days"] if d["pages"]}
    assert days == {"2026-03-02": (1, 0), "2026-03-03": (2, 2), "2026-03-07": (2, 2), "2026-03-09": (1, 1)}
    assert (
        r["days"][0]["day"].isoformat() == "2026-03-01" and r["days"][-1]["day"].isoformat() == "2026-03-10"
    )
    assert r["time_zone"] == BERLIN and r["night"] == "22:00-07:00"


def test_filters_by_person_and_team_and_period(db: Database, world: World) -> None:
    only = _report(db, user_id=world.manager)
    assert [p["user_id"] for p in only["people"]] == [world.manager]
    assert only["totals"]["pages"] == 2
    quiet = _report(db, team_id=world.other_team_id)
    assert quiet["totals"]["pages"] == 0 and quiet["people"] == [] and quiet["teams"] == []
    ops = _report(db, team_id=world.team_id)
    assert ops["totals"]["pages"] == 6
    with db.session() as s:  # the first week only: incidents 1 and 2
        week = load.load_report(s, start=START, end=datetime(2026, 3, 5, tzinfo=UTC), tz=BERLIN)
    assert week["totals"]["pages"] == 3 and week["totals"]["incidents"] == 2
    with db.session() as s:  # a period ending now counts on-call hours only up to now
        partial = load.load_report(
            s, start=START, end=END, tz=BERLIN, now=datetime(2026, 3, 3, 8, 0, tzinfo=UTC)
        )
    assert _person(partial, world.responder)["oncall_hours"] == 24.0


def test_ack_delay_takes_the_first_page_of_the_acknowledged_run() -> None:
    t0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    at = [t0, t0 + timedelta(minutes=15)]  # paged twice in run 1 (two rounds)
    assert load.ack_delay([(at[0], 1), (at[1], 1)], t0 + timedelta(minutes=20)) == 1200.0
    assert load.ack_delay([(at[0], 1)], None) is None  # never acknowledged
    assert load.ack_delay([(at[1], 1)], t0 + timedelta(minutes=1)) is None  # paged after the ack
    assert load.ack_delay([(at[0], 1)], at[0]) == 0.0
    # reopened: run 2 paged at +2h, acknowledged at +2h05: measured from the run-2 page
    reopened = [(at[0], 1), (t0 + timedelta(hours=2), 2), (t0 + timedelta(hours=3), 2)]
    assert load.ack_delay(reopened, t0 + timedelta(hours=2, minutes=5)) == 300.0


def test_bad_input_to_the_report_names_the_field(db: Database) -> None:
    def field(**kw: Any) -> str:
        args = {"start": START, "end": END, "tz": "UTC"} | kw
        with db.session() as s, pytest.raises(OpsdeskError) as e:
            load.load_report(s, **args)
        return e.value.errors[0].field

    assert field(tz="Mars/Olympus") == "tz"
    assert field(end=START) == "end"
    assert field(end=START + timedelta(days=367)) == "end"
    assert field(start=datetime(2026, 3, 1)) == "start"
    assert field(team_id=99999) == "team_id"
    assert field(user_id=99999) == "user_id"


def test_duration_text() -> None:
    assert [duration(v) for v in (None, 45, 245, 7380, 100000)] == [
        "\u2013",
        "45s",
        "4m 05s",
        "2h 03m",
        "1d 3h",
    ]


# --- the API -------------------------------------------------------------------------------------

PARAMS = {"start": "2026-03-01T00:00:00Z", "end": "2026-03-10T00:00:00+00:00", "tz": BERLIN}


def test_api_report_and_csv(client: TestClient, accounts: dict[str, Account], world: World) -> None:
    viewer = accounts["viewer"].headers
    r = client.get("/api/v1/oncall/load", params=PARAMS, headers=viewer)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["totals"]["pages"] == 6 and body["time_zone"] == BERLIN
    resp = _person(body, world.responder)
    assert resp["by_hour"][23] == 1 and resp["mtta_median_seconds"] == 120.0
    assert body["days"][1] == {"day": "2026-03-02", "pages": 1, "off_hours": 0}

    r = client.get("/api/v1/oncall/load.csv", params=PARAMS, headers=viewer)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/csv")
    assert 'filename="oncall-load-20260301-20260310.csv"' in r.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert list(rows[0]) == load.CSV_COLUMNS
    assert load.CSV_COLUMNS[-24:] == [f"h{h:02d}" for h in range(24)]
    first, second = rows
    assert (first["email"], first["pages"], first["night"], first["weekend"], first["off_hours"]) == (
        "responder@example.org",
        "4",
        "2",
        "1",
        "3",
    )
    assert (first["mtta_mean_seconds"], first["mtta_median_seconds"], first["acknowledged"]) == (
        "220.0",
        "120.0",
        "2",
    )
    assert [first[f"h{h:02d}"] for h in (0, 10, 13, 23, 9)] == ["1", "1", "1", "1", "0"]
    assert (second["email"], second["pages"], second["h13"], second["h23"]) == (
        "manager@example.org",
        "2",
        "1",
        "1",
    )

    mgr = client.get("/api/v1/oncall/load.csv", params=PARAMS | {"user_id": world.manager}, headers=viewer)
    assert [row["email"] for row in csv.DictReader(io.StringIO(mgr.text))] == ["manager@example.org"]


def test_api_defaults_to_the_last_30_days_in_utc(
    client: TestClient, accounts: dict[str, Account], world: World, clock: ManualClock
) -> None:
    body = client.get("/api/v1/oncall/load", headers=accounts["viewer"].headers).json()
    assert body["time_zone"] == "UTC"
    assert body["end"].startswith("2026-03-12T09:00") and body["start"].startswith("2026-02-10T09:00")
    assert body["totals"]["pages"] == 6


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"tz": "Mars/Olympus"}, "tz"),
        ({"tz": "../../etc/passwd"}, "tz"),
        ({"start": "2026-03-01T00:00:00"}, "start"),
        ({"end": "2026-03-10T00:00"}, "end"),
        ({"start": "yesterday"}, "start"),
        ({"start": "2026-03-10T00:00Z", "end": "2026-03-10T00:00Z"}, "end"),
        ({"start": "2026-03-10T00:00Z", "end": "2026-03-01T00:00Z"}, "end"),
        ({"start": "2025-01-01T00:00Z", "end": "2026-03-01T00:00Z"}, "end"),
        ({"team_id": "99999"}, "team_id"),
        ({"user_id": "99999"}, "user_id"),
        ({"team_id": "0"}, "query.team_id"),
    ],
)
def test_api_bad_input_is_422_naming_the_field(
    client: TestClient, accounts: dict[str, Account], params: dict[str, str], field: str
) -> None:
    for path in ("/api/v1/oncall/load", "/api/v1/oncall/load.csv"):
        r = client.get(path, params=params, headers=accounts["viewer"].headers)
        assert r.status_code == 422, r.text
        assert r.headers["content-type"].startswith(PROBLEM)
        assert [e["field"] for e in r.json()["errors"]] == [field]


def test_api_needs_a_login(client: TestClient, accounts: dict[str, Account]) -> None:
    for path in ("/api/v1/oncall/load", "/api/v1/oncall/load.csv"):
        r = client.get(path)
        assert r.status_code == 401 and r.headers["content-type"].startswith(PROBLEM)
        r = client.get(path, headers={"Authorization": "Bearer nope"})
        assert r.status_code == 401
    for role in ("viewer", "responder", "manager", "admin"):
        assert client.get("/api/v1/oncall/load", headers=accounts[role].headers).status_code == 200


# --- the page ------------------------------------------------------------------------------------


def test_page_shows_charts_tables_and_the_csv_link(
    client: TestClient, accounts: dict[str, Account], world: World
) -> None:
    login(client, accounts["viewer"].email, PASSWORD)
    r = client.get("/oncall/load", params={"days": 30, "tz": BERLIN}, headers={"accept": "text/html"})
    assert r.status_code == 200, r.text
    html = r.text
    for marker in (
        'id="hours-chart"',
        'id="days-chart"',
        'id="hours-data"',
        'id="days-data"',
        'id="load-people"',
    ):
        assert marker in html
    assert f'data-user="{world.responder}"' in html and f'data-user="{world.manager}"' in html
    assert f'data-team="{world.team_id}"' in html
    assert 'href="/api/v1/oncall/load.csv?start=2026-02-10T09%3A00%3A00%2B00%3A00' in html
    assert "tz=Europe%2FBerlin" in html
    assert '<option value="Europe/Berlin" selected>' in html
    assert "2m 00s" in html  # the responder's median MTTA
    # the CSV link works with the session cookie
    csv_path = html.split('id="load-csv"')[0].rsplit('href="', 1)[1].split('"')[0].replace("&amp;", "&")
    got = client.get(csv_path)
    assert got.status_code == 200 and got.text.startswith("user_id,name,email,pages")


def test_page_filters_and_the_empty_case(
    client: TestClient, accounts: dict[str, Account], world: World
) -> None:
    login(client, accounts["viewer"].email, PASSWORD)
    one = client.get("/oncall/load", params={"user_id": world.manager}, headers={"accept": "text/html"}).text
    assert f'data-user="{world.manager}"' in one and f'data-user="{world.responder}"' not in one
    quiet = client.get("/oncall/load", params={"team_id": world.other_team_id, "days": 7}).text
    assert 'id="load-empty"' in quiet and 'id="hours-chart"' not in quiet
    bad = client.get("/oncall/load", params={"tz": "Mars/Olympus", "team_id": 99999})
    assert bad.status_code == 200 and 'id="load-error"' in bad.text
    assert client.get("/oncall/load", params={"days": 0}, headers={"accept": "text/html"}).status_code == 422
    listing = client.get("/oncall", headers={"accept": "text/html"}).text
    assert 'href="/oncall/load"' in listing


def test_page_needs_a_login(client: TestClient) -> None:
    r = client.get("/oncall/load", headers={"accept": "text/html"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/login?next=/oncall/load")


# --- the CLI -------------------------------------------------------------------------------------

runner = CliRunner()


@pytest.fixture
def cli(
    db: Database, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clock: ManualClock
) -> Any:
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


def test_cli_table_csv_and_errors(cli: Any, world: World) -> None:
    out = cli("oncall-load", "--tz", BERLIN).output
    assert "Responder" in out and "Manager" in out and "2/4" in out
    assert "6 page(s) to 2 person(s) for 4 incident(s); 5 at night or on a weekend; median MTTA 2m 00s" in out
    rows = list(
        csv.DictReader(io.StringIO(cli("oncall-load", "--tz", BERLIN, "--csv", "--team", "ops").output))
    )
    assert [(r["email"], r["pages"], r["night"], r["weekend"], r["h23"]) for r in rows] == [
        ("responder@example.org", "4", "2", "1", "1"),
        ("manager@example.org", "2", "1", "1", "1"),
    ]
    assert "nobody was paged" in cli("oncall-load", "--team", "quiet").output
    for args, message in [
        (["--team", "nope"], "--team: no team 'nope'"),
        (["--tz", "Mars/Olympus"], "--tz:"),
        (["--days", "0"], "--days:"),
        (["--csv", "--json"], "--csv:"),
    ]:
        result = cli("oncall-load", *args, ok=False)
        assert result.exit_code == 1 and message in result.output, result.output
