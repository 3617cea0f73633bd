"""``opsdesk schedule``: on-call schedules from the command line, run in-process against the test
database (SQLite and PostgreSQL) with the test clock (Monday 2026-03-02 09:00 UTC, 10:00 in Berlin)."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from opsdesk.audit.models import AuditEntry
from opsdesk.cli import common
from opsdesk.cli.main import app as cli_app
from opsdesk.core.clock import ManualClock
from opsdesk.core.db import Database
from opsdesk.oncall import service
from tests.conftest import Account

BERLIN = ZoneInfo("Europe/Berlin")
R, M, V = "responder@example.org", "manager@example.org", "viewer@example.org"

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


def weekly(cli: Any, name: str = "Primary") -> None:
    """A Berlin schedule: responder and manager take turns of a week, handing off Monday 09:00 local
    from 2 March (responder: 2, 16 and 30 March; manager: 9 and 23 March)."""
    cli("schedule", "create", name, "--tz", "Europe/Berlin")
    cli(
        "schedule",
        "add-layer",
        name,
        "--participant",
        R,
        "--participant",
        M,
        "--start",
        "2026-03-02T09:00",
        "--turn",
        "1w",
        "--name",
        "weekly",
    )


def shown(cli: Any, name: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(cli("schedule", "show", name, "--json").output)
    return result


def test_create_add_layer_and_who_is_on_call_across_the_dst_change(cli: Any, db: Database) -> None:
    out = cli("schedule", "create", "Primary", "--tz", "Europe/Berlin", "--description", "DBA first line")
    assert "created schedule 1 Primary (Europe/Berlin)" in out.output
    out = cli(
        "schedule",
        "add-layer",
        "Primary",
        "--participant",
        R,
        "-p",
        M,
        "--start",
        "2026-03-02T09:00",
        "--turn",
        "1w",
        "--name",
        "weekly",
    )
    assert "added layer 1 weekly to Primary" in out.output
    assert "1 week turns from Mon 2026-03-02 09:00 CET, no restrictions" in out.output

    now = cli("schedule", "oncall", "Primary").output
    assert now.startswith(
        f"Responder <{R}> is on call for Primary from Mon 2026-03-02 09:00 CET until Mon 2026-03-09 09:00 CET"
    )
    # Berlin springs forward on Sunday 29 March: the Monday handoff stays at 09:00 local (07:00 UTC).
    before = cli("schedule", "oncall", "Primary", "--at", "2026-03-30T08:59+02:00").output
    assert f"Manager <{M}>" in before
    assert "from Mon 2026-03-23 09:00 CET until Mon 2026-03-30 09:00 CEST (layer weekly)" in before
    after = cli("schedule", "oncall", "Primary", "--at", "2026-03-30T07:00Z").output
    assert f"Responder <{R}>" in after
    assert "from Mon 2026-03-30 09:00 CEST until Mon 2026-04-06 09:00 CEST" in after
    shift = json.loads(
        cli("schedule", "oncall", "Primary", "--at", "2026-03-30T09:00:00+02:00", "--json").output
    )
    assert (shift["start"], shift["end"]) == ("2026-03-30T07:00:00Z", "2026-04-06T07:00:00Z")
    assert (shift["user"]["email"], shift["source"]) == (R, "weekly")

    sched = shown(cli, "Primary")
    assert (sched["name"], sched["time_zone"], sched["description"]) == (
        "Primary",
        "Europe/Berlin",
        "DBA first line",
    )
    (layer,) = sched["layers"]
    assert [p["email"] for p in layer["participants"]] == [R, M]
    assert layer["rotation_start"] == "2026-03-02T08:00:00Z"  # 09:00 CET
    assert (layer["turn_length"], layer["turn_unit"], layer["restrictions"]) == (1, "weeks", [])
    assert (
        sched["on_call_now"]["user"]["email"] == R and sched["on_call_now"]["end"] == "2026-03-09T08:00:00Z"
    )
    assert sched["next_gap"] is None
    assert shown(cli, "1") == sched  # by id too
    text = cli("schedule", "show", "Primary").output
    assert "weekly" in text and "1 week" in text and "Responder" in text
    listed = json.loads(cli("schedule", "list", "--json").output)
    assert [(x["name"], x["on_call_now"]["user"]["email"]) for x in listed] == [("Primary", R)]
    assert "Primary" in cli("schedule", "list").output
    with db.session() as s:
        entries = s.scalars(
            select(AuditEntry).where(AuditEntry.entity_type == "schedule").order_by(AuditEntry.id)
        ).all()
        assert [(e.action, e.actor) for e in entries] == [("create", "cli"), ("update", "cli")]

    cli("schedule", "delete", "Primary")
    assert json.loads(cli("schedule", "list", "--json").output) == []
    assert cli("schedule", "oncall", "Primary", ok=False).exit_code == 1


def test_gaps_exit_3_until_a_layer_covers_them_and_layers_are_kept_on_add(cli: Any) -> None:
    cli("schedule", "create", "Biz", "--tz", "Europe/Berlin")
    cli(
        "schedule",
        "add-layer",
        "Biz",
        "-p",
        R,
        "--start",
        "2026-03-02T00:00",
        "--turn",
        "1d",
        "--restrict",
        "mon-fri 09:00-17:00",
        "--name",
        "business",
    )
    result = cli("schedule", "gaps", "Biz", "--days", "7", ok=False)
    assert result.exit_code == 3 and "5 gap(s)" in result.output, result.output
    result = cli("schedule", "gaps", "Biz", "--days", "7", "--json", ok=False)
    assert result.exit_code == 3
    gaps = json.loads(result.output)
    # Evenings and nights from Monday to Thursday, then Friday 17:00 to Monday 09:00.
    starts = [datetime.fromisoformat(g["start"]).astimezone(BERLIN) for g in gaps]
    assert [(d.weekday(), d.hour) for d in starts] == [(0, 17), (1, 17), (2, 17), (3, 17), (4, 17)]
    assert datetime.fromisoformat(gaps[-1]["end"]).astimezone(BERLIN) == datetime(
        2026, 3, 9, 9, tzinfo=BERLIN
    )
    assert all(g["user"] is None for g in gaps)
    # In a gap, `oncall` says nobody and exits 3.
    result = cli("schedule", "oncall", "Biz", "--at", "2026-03-02T20:00+01:00", ok=False)
    assert result.exit_code == 3
    assert (
        "nobody is on call for Biz from Mon 2026-03-02 17:00 CET until Tue 2026-03-03 09:00 CET"
        in result.output
    )
    assert shown(cli, "Biz")["next_gap"]["start"] == "2026-03-02T16:00:00Z"

    # A second layer for nights and weekends covers the rest; the first layer is kept as it was.
    cli(
        "schedule",
        "add-layer",
        "Biz",
        "-p",
        M,
        "--start",
        "2026-03-02T17:00",
        "--turn",
        "12h",
        "--restrict",
        "daily 17:00-09:00",
        "--restrict",
        "weekends 09:00-17:00",
    )
    result = cli("schedule", "gaps", "Biz")
    assert result.exit_code == 0 and "no gaps in Biz in the next 14 days" in result.output
    assert json.loads(cli("schedule", "gaps", "Biz", "--json").output) == []
    sched = shown(cli, "Biz")
    business, nights = sched["layers"]
    assert business["name"] == "business" and [p["email"] for p in business["participants"]] == [R]
    assert (business["rotation_start"], business["turn_length"], business["turn_unit"]) == (
        "2026-03-01T23:00:00Z",
        1,
        "days",
    )
    assert business["restrictions"] == [
        {"days": ["mon", "tue", "wed", "thu", "fri"], "start": "09:00", "end": "17:00"}
    ]
    assert nights["name"] == "Layer 2" and (nights["turn_length"], nights["turn_unit"]) == (12, "hours")
    assert nights["restrictions"] == [
        {"days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], "start": "17:00", "end": "09:00"},
        {"days": ["sat", "sun"], "start": "09:00", "end": "17:00"},
    ]
    assert sched["next_gap"] is None
    text = cli("schedule", "show", "Biz").output
    for part in ("mon-fri 09:00-17:00", "daily 17:00-09:00", "sat,sun 09:00-17:00"):
        assert part in text
    who = cli("schedule", "oncall", "Biz", "--at", "2026-03-02T20:00+01:00").output
    assert who.startswith(f"Manager <{M}> is on call for Biz from Mon 2026-03-02 17:00 CET")
    # A schedule without layers is one long gap.
    cli("schedule", "create", "Empty")
    result = cli("schedule", "oncall", "Empty", ok=False)
    assert result.exit_code == 3 and result.output.startswith("nobody is on call for Empty")


def test_override_list_and_remove(cli: Any, db: Database) -> None:
    weekly(cli)
    out = cli(
        "schedule",
        "override",
        "Primary",
        "--user",
        V,
        "--from",
        "2026-03-03T18:00",  # the schedule's zone
        "--to",
        "2026-03-03T20:00",
        "--note",
        "dentist swap",
    ).output
    assert (
        f"override 1 on Primary: Viewer <{V}> from Tue 2026-03-03 18:00 CET until Tue 2026-03-03 20:00 CET"
        in out
    )
    cli(
        "schedule",
        "override",
        "Primary",
        "--user",
        M,
        "--from",
        "2026-03-04T08:00Z",
        "--to",
        "2026-03-04T10:00Z",
        "--as",
        M,
    )
    covered = cli("schedule", "oncall", "Primary", "--at", "2026-03-03T19:00+01:00").output
    assert covered.startswith(f"Viewer <{V}> is on call for Primary from Tue 2026-03-03 18:00 CET")
    assert "(an override)" in covered
    listed = json.loads(cli("schedule", "overrides", "Primary", "--json").output)
    assert [(o["id"], o["user"]["email"], o["note"], o["created_by"]) for o in listed] == [
        (1, V, "dentist swap", "cli"),
        (2, M, "", M),
    ]
    assert listed[0]["starts_at"] == "2026-03-03T17:00:00Z"
    assert "dentist swap" in cli("schedule", "overrides", "Primary").output

    assert "removed override 1 from Primary" in cli("schedule", "remove-override", "Primary", "1").output
    assert [o["id"] for o in json.loads(cli("schedule", "overrides", "Primary", "--json").output)] == [2]
    again = cli("schedule", "remove-override", "Primary", "1", ok=False)
    assert again.exit_code == 1 and "override 1 does not exist" in again.output
    back = cli("schedule", "oncall", "Primary", "--at", "2026-03-03T19:00+01:00").output
    assert back.startswith(f"Responder <{R}>")
    with db.session() as s:
        kinds = [
            (e.action, e.actor)
            for e in s.scalars(
                select(AuditEntry)
                .where(AuditEntry.entity_type == "schedule_override")
                .order_by(AuditEntry.id)
            )
        ]
    assert kinds == [("create", "cli"), ("create", M), ("delete", "cli")]


def test_shifts_as_csv_json_and_table_with_gaps_marked(cli: Any) -> None:
    weekly(cli)
    out = cli(
        "schedule", "shifts", "Primary", "--from", "2026-03-02T00:00", "--to", "2026-03-16T00:00", "--csv"
    )
    rows = list(csv.reader(io.StringIO(out.output)))
    assert rows == [
        ["start", "end", "name", "email", "source"],
        ["2026-03-02T00:00:00+01:00", "2026-03-02T09:00:00+01:00", "", "", "gap"],
        ["2026-03-02T09:00:00+01:00", "2026-03-09T09:00:00+01:00", "Responder", R, "weekly"],
        ["2026-03-09T09:00:00+01:00", "2026-03-16T00:00:00+01:00", "Manager", M, "weekly"],
    ]
    # Across the DST change, in the schedule's zone (a --to with its own offset is taken as given).
    out = cli("schedule", "shifts", "Primary", "--from", "2026-03-23", "--to", "2026-03-31T22:00Z", "--csv")
    rows = list(csv.reader(io.StringIO(out.output)))[1:]
    assert [(r[0], r[1], r[3]) for r in rows] == [
        ("2026-03-23T00:00:00+01:00", "2026-03-23T09:00:00+01:00", R),
        ("2026-03-23T09:00:00+01:00", "2026-03-30T09:00:00+02:00", M),
        ("2026-03-30T09:00:00+02:00", "2026-04-01T00:00:00+02:00", R),
    ]
    got = json.loads(cli("schedule", "shifts", "Primary", "--from", "2026-03-02T00:00", "--json").output)
    assert got["time_zone"] == "Europe/Berlin" and got["end"] == "2026-03-15T23:00:00Z"  # 14 days
    assert [sh["source"] for sh in got["final"]] == ["", "weekly", "weekly"]
    assert len(got["gaps"]) == 1 and got["gaps"][0]["end"] == "2026-03-02T08:00:00Z"
    assert [layer["name"] for layer in got["layers"]] == ["weekly"]
    text = cli("schedule", "shifts", "Primary", "--from", "2026-03-02T00:00").output
    assert "GAP" in text and "1 gap(s)" in text
    # Default: from now, 14 days.
    now_rows = list(csv.reader(io.StringIO(cli("schedule", "shifts", "Primary", "--csv").output)))[1:]
    assert now_rows[0][0] == "2026-03-02T10:00:00+01:00" and now_rows[-1][1] == "2026-03-16T10:00:00+01:00"


def ics(*events: tuple[str, datetime, datetime]) -> str:
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//test//EN"]
    for i, (summary, start, end) in enumerate(events):
        lines += [
            "BEGIN:VEVENT",
            f"UID:{i}@test",
            f"SUMMARY:{summary}",
            f"DTSTART:{start.astimezone(UTC):%Y%m%dT%H%M%SZ}",
            f"DTEND:{end.astimezone(UTC):%Y%m%dT%H%M%SZ}",
            "END:VEVENT",
        ]
    return "\r\n".join([*lines, "END:VCALENDAR", ""])


def test_import_a_rotation_and_irregular_shifts(cli: Any, tmp_path: Path) -> None:
    cli("schedule", "create", "Imported", "--tz", "Europe/Berlin")
    # Weekly shifts, Monday 09:00 Berlin, over the DST change: responder, manager, responder, manager.
    t = datetime(2026, 3, 9, 9, 0, tzinfo=BERLIN)
    events = []
    for i in range(4):
        nxt = (t.replace(tzinfo=None) + timedelta(days=7)).replace(tzinfo=BERLIN)
        events.append((f"On call: {(R, M)[i % 2]}", t, nxt))
        t = nxt
    path = tmp_path / "pd.ics"
    path.write_text(ics(*events))
    out = cli("schedule", "import", "Imported", str(path)).output
    assert "read 4 event(s)" in out
    assert (
        f"a rotation: new top layer Imported 2026-03-02: Responder <{R}>, Manager <{M}>, 1 week turns" in out
    )
    assert "from Mon 2026-03-09 09:00 CET" in out and "no user found" not in out
    assert cli("schedule", "oncall", "Imported", "--at", "2026-03-30T09:00+02:00").output.startswith(
        f"Manager <{M}>"
    )
    assert cli("schedule", "oncall", "Imported", "--at", "2026-03-30T08:59+02:00").output.startswith(
        f"Responder <{R}>"
    )

    cli("schedule", "create", "Cal")
    day = datetime(2026, 3, 3, tzinfo=UTC)
    path = tmp_path / "team.ics"
    path.write_text(
        ics(
            (f"{R} on call", day + timedelta(hours=8), day + timedelta(hours=20)),
            ("[L1] Manager", day + timedelta(days=1, hours=8), day + timedelta(days=1, hours=13)),
            ("Zed Nobody", day + timedelta(days=2, hours=8), day + timedelta(days=2, hours=20)),
            (f"{R} last week", day - timedelta(days=7), day - timedelta(days=6)),  # over: skipped
        )
    )
    out = cli("schedule", "import", "Cal", str(path)).output
    assert "read 4 event(s)" in out and "not a regular rotation: 2 override(s) added" in out
    assert "not imported, no user found for: Zed Nobody" in out
    listed = json.loads(cli("schedule", "overrides", "Cal", "--json").output)
    assert [(o["user"]["email"], o["note"]) for o in listed] == [
        (R, "imported from iCal"),
        (M, "imported from iCal"),
    ]

    (tmp_path / "hello.ics").write_text("hello")
    (tmp_path / "empty.ics").write_text("")
    for name, message in [
        ("hello.ics", "not an iCalendar file"),
        ("empty.ics", "is empty"),
        ("missing.ics", "cannot read"),
    ]:
        result = cli("schedule", "import", "Cal", str(tmp_path / name), ok=False)
        assert result.exit_code == 1 and message in result.output, result.output
    assert len(json.loads(cli("schedule", "overrides", "Cal", "--json").output)) == 2


def test_feed_prints_a_stable_secret_url_and_reset_replaces_it(cli: Any, db: Database) -> None:
    weekly(cli)
    out = cli("schedule", "feed", "Primary").output
    url = out.strip().splitlines()[-1]
    assert url.startswith("http") and "/ical/" in url and url.endswith(".ics") and " " not in url
    assert cli("schedule", "feed", "Primary").output.strip().splitlines()[-1] == url
    new = cli("schedule", "feed", "Primary", "--reset").output.strip().splitlines()[-1]
    assert new != url and new.endswith(".ics")

    def token(u: str) -> str:
        return u.rsplit("/", 1)[1].removesuffix(".ics")

    with db.session() as s:
        assert service.feed_for(s, token(url)) is None
        feed = service.feed_for(s, token(new))
        assert feed is not None and feed.schedule_id == service.resolve(s, "Primary").id
        _, body = service.feed_ical(s, feed, datetime(2026, 3, 2, 9, tzinfo=UTC))
    assert b"BEGIN:VEVENT" in body and R.encode() in body


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("oncall", "Nope"), "schedule Nope does not exist"),
        (("show", "999"), "schedule 999 does not exist"),
        (("shifts", "Nope"), "schedule Nope does not exist"),
        (("delete", "Nope"), "schedule Nope does not exist"),
        (("feed", "Nope"), "schedule Nope does not exist"),
        (("add-layer", "Primary", "-p", R, "--start", "2026-03-02T09:00", "--turn", "1m"), "--turn: '1m'"),
        (("add-layer", "Primary", "-p", R, "--start", "2026-03-02T09:00", "--turn", "0w"), "--turn: '0w'"),
        (("add-layer", "Primary", "-p", R, "--start", "2026-03-02T09:00", "--turn", "weekly"), "--turn"),
        (
            ("add-layer", "Primary", "-p", R, "--start", "2026-03-02T09:00", "--restrict", "mon-fri 9-17"),
            "--restrict: 'mon-fri 9-17': give \"<days> HH:MM-HH:MM\"",
        ),
        (
            (
                "add-layer",
                "Primary",
                "-p",
                R,
                "--start",
                "2026-03-02T09:00",
                "--restrict",
                "funday 09:00-17:00",
            ),
            "'funday' is not a weekday",
        ),
        (
            ("add-layer", "Primary", "-p", R, "--start", "2026-03-02T09:00", "--restrict", "mon 09:00-25:00"),
            "not a time of day",
        ),
        (("add-layer", "Primary", "-p", R, "--start", "next monday"), "--start: 'next monday'"),
        (("add-layer", "Primary", "-p", "zed@example.org", "--start", "2026-03-02"), "no user with e-mail"),
        (("oncall", "Primary", "--at", "2026-03-30T09:00"), "--at: '2026-03-30T09:00' has no UTC offset"),
        (("oncall", "Primary", "--at", "soon"), "--at: 'soon' is not an ISO 8601 time"),
        (
            (
                "override",
                "Primary",
                "--user",
                "zed@example.org",
                "--from",
                "2026-03-03T18:00",
                "--to",
                "2026-03-03T20:00",
            ),
            "no user 'zed@example.org'",
        ),
        (
            ("override", "Primary", "--user", V, "--from", "2026-03-03T20:00", "--to", "2026-03-03T18:00"),
            "must be after starts_at",
        ),
        (("create", "Bad", "--tz", "Mars/Olympus"), "'Mars/Olympus' is not an IANA time zone"),
        (("create", "Primary"), "a schedule named 'Primary' exists"),
        (("shifts", "Primary", "--json", "--csv"), "not both"),
        (("shifts", "Primary", "--from", "2026-01-01", "--to", "2028-01-01"), "at most 400 days"),
        (("remove-override", "Primary", "99"), "override 99 does not exist"),
    ],
)
def test_bad_input_is_one_clear_line_and_changes_nothing(
    cli: Any, db: Database, args: tuple[str, ...], message: str
) -> None:
    weekly(cli)
    before = shown(cli, "Primary")
    result = cli("schedule", *args, ok=False)
    assert result.exit_code == 1, (args, result.output)
    assert isinstance(result.exception, SystemExit) and "Traceback" not in result.output
    assert result.output.startswith("error:") and message in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1
    assert shown(cli, "Primary") == before
    with db.session() as s:
        assert [x.name for x in service.list_schedules(s)] == ["Primary"]
        assert service.overrides(s, before["id"]) == []


def test_option_errors_exit_2_with_usage(cli: Any) -> None:
    weekly(cli)
    for args in [("gaps", "Primary", "--days", "0"), ("add-layer", "Primary", "--start", "2026-03-02T09:00")]:
        result = cli("schedule", *args, ok=False)
        assert result.exit_code == 2 and "Traceback" not in result.output, result.output
