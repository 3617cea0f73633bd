"""On-call schedules through the API: layers, who is on call as time moves (across a DST change),
overrides, gaps, the secret iCal feeds, iCal import, roles and bad input."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import icalendar
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from opsdesk.audit.models import AuditEntry
from opsdesk.core.clock import ManualClock
from opsdesk.core.db import Database
from opsdesk.oncall.models import Schedule, ScheduleOverride
from tests.conftest import Account

BERLIN = ZoneInfo("Europe/Berlin")
PROBLEM = "application/problem+json"


def ok(r: Any, status: int = 200) -> Any:
    assert r.status_code == status, r.text
    return r.json() if r.content else None


def problem(r: Any, status: int, field: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(PROBLEM)
    body = r.json()
    if field is not None:
        assert any(field in e["field"] for e in body.get("errors", [])), body
    return body


def count(db: Database, model: Any) -> int:
    with db.session() as s:
        return s.scalar(select(func.count()).select_from(model)) or 0


@pytest.fixture
def people(client: TestClient, accounts: dict[str, Account]) -> list[str]:
    """Three more responders: ann, bob and cem."""
    admin = accounts["admin"].headers
    out = []
    for name in ("ann", "bob", "cem"):
        ok(
            client.post(
                "/api/v1/users",
                json={"email": f"{name}@example.org", "name": name.title() + " Doe", "role": "responder"},
                headers=admin,
            ),
            201,
        )
        out.append(f"{name}@example.org")
    return out


def weekly(people: list[str], **extra: Any) -> dict[str, Any]:
    return {
        "name": "Primary",
        "time_zone": "Europe/Berlin",
        "layers": [
            {
                "name": "weekly",
                "participants": people,
                "rotation_start": "2026-03-16T09:00:00",  # a Monday, local time
                "turn_unit": "weeks",
            }
        ],
        **extra,
    }


def who(client: TestClient, sid: int, headers: dict[str, str], at: datetime | None = None) -> str | None:
    params = {"at": at.isoformat()} if at else {}
    shift = ok(client.get(f"/api/v1/schedules/{sid}/on-call", params=params, headers=headers))
    return shift["user"]["email"] if shift["user"] else None


def test_rotation_follows_local_handoff_across_dst_as_the_clock_moves(
    client: TestClient, accounts: dict[str, Account], people: list[str], clock: ManualClock
) -> None:
    mgr, viewer = accounts["manager"].headers, accounts["viewer"].headers
    sched = ok(client.post("/api/v1/schedules", json=weekly(people[:2]), headers=mgr), 201)
    sid = sched["id"]
    assert sched["layers"][0]["rotation_start"].startswith("2026-03-16T08:00:00")  # 09:00 CET in UTC
    # Berlin springs forward on 2026-03-29: the handoff on Monday 30th is still 09:00 local (07:00 UTC).
    clock.set(datetime(2026, 3, 30, 6, 59, tzinfo=UTC))
    assert who(client, sid, viewer) == people[1]
    clock.set(datetime(2026, 3, 30, 7, 0, tzinfo=UTC))
    assert who(client, sid, viewer) == people[0]
    now = ok(client.get(f"/api/v1/schedules/{sid}", headers=viewer))["on_call_now"]
    assert now["start"].startswith("2026-03-30T07:00:00") and now["end"].startswith("2026-04-06T07:00:00")
    # Any time T, asked with an offset.
    assert who(client, sid, viewer, datetime(2026, 3, 23, 9, 0, tzinfo=BERLIN)) == people[1]
    assert who(client, sid, viewer, datetime(2026, 3, 23, 8, 59, tzinfo=BERLIN)) == people[0]


def test_layers_restrictions_overrides_and_gaps(
    client: TestClient, accounts: dict[str, Account], people: list[str], clock: ManualClock, db: Database
) -> None:
    mgr, resp, viewer = accounts["manager"].headers, accounts["responder"].headers, accounts["viewer"].headers
    body = {
        "name": "Ops",
        "time_zone": "Europe/Berlin",
        "layers": [
            {
                "name": "nights",
                "participants": [people[2]],
                "rotation_start": "2026-03-02T00:00:00",
                "turn_unit": "days",
                "restrictions": [{"start": "20:00", "end": "08:00"}],
            },
            {
                "name": "business hours",
                "participants": [people[0], people[1]],
                "rotation_start": "2026-03-02T08:00:00",
                "turn_length": 1,
                "turn_unit": "days",
                "restrictions": [
                    {"days": ["mon", "tue", "wed", "thu", "fri"], "start": "08:00", "end": "18:00"}
                ],
            },
        ],
    }
    sid = ok(client.post("/api/v1/schedules", json=body, headers=mgr), 201)["id"]
    clock.set(datetime(2026, 3, 3, 10, 0, tzinfo=BERLIN))  # Tuesday 10:00
    assert who(client, sid, viewer) == people[1]
    # 18:00-20:00 local is covered by nobody, on weekdays and all weekend day-time: flagged ahead.
    sched = ok(client.get(f"/api/v1/schedules/{sid}", headers=viewer))
    gap = sched["next_gap"]
    assert gap is not None and gap["user"] is None
    assert datetime.fromisoformat(gap["start"]).astimezone(BERLIN).hour == 18
    gaps = ok(client.get(f"/api/v1/schedules/{sid}/gaps", params={"days": 7}, headers=viewer))
    assert len(gaps) == 7  # every evening; weekend days run 08:00 to 20:00 uncovered
    weekend = [g for g in gaps if datetime.fromisoformat(g["start"]).astimezone(BERLIN).weekday() >= 5]
    assert {datetime.fromisoformat(g["start"]).astimezone(BERLIN).hour for g in weekend} == {8}

    # A responder covers Tuesday evening with an override (times in the schedule's zone).
    o = ok(
        client.post(
            f"/api/v1/schedules/{sid}/overrides",
            json={"user": people[2], "starts_at": "2026-03-03T17:00:00", "ends_at": "2026-03-03T20:00:00"},
            headers=resp,
        ),
        201,
    )
    assert o["user"]["email"] == people[2] and o["created_by"] == "responder@example.org"
    assert who(client, sid, viewer, datetime(2026, 3, 3, 18, 30, tzinfo=BERLIN)) == people[2]
    shifts = ok(
        client.get(
            f"/api/v1/schedules/{sid}/shifts",
            params={"start": "2026-03-03T00:00:00+01:00", "end": "2026-03-04T00:00:00+01:00"},
            headers=viewer,
        )
    )
    final = [(s["user"]["email"] if s["user"] else None, s["source"]) for s in shifts["final"]]
    assert final == [
        (people[2], "nights"),
        (people[1], "business hours"),
        (people[2], "override"),
        (people[2], "nights"),
    ]
    assert [layer["name"] for layer in shifts["layers"]] == ["nights", "business hours"]
    assert shifts["gaps"] == []
    # The override is listed, and can be removed; a viewer can do neither.
    listed = ok(client.get(f"/api/v1/schedules/{sid}/overrides", headers=viewer))
    assert [x["id"] for x in listed] == [o["id"]]
    problem(client.delete(f"/api/v1/schedules/{sid}/overrides/{o['id']}", headers=viewer), 403)
    ok(client.delete(f"/api/v1/schedules/{sid}/overrides/{o['id']}", headers=resp), 204)
    assert count(db, ScheduleOverride) == 0
    problem(client.delete(f"/api/v1/schedules/{sid}/overrides/{o['id']}", headers=resp), 404)
    with db.session() as s:
        kinds = {(e.entity_type, e.action) for e in s.scalars(select(AuditEntry))}
    assert {("schedule", "create"), ("schedule_override", "create"), ("schedule_override", "delete")} <= kinds


def test_update_replaces_layers_and_delete(
    client: TestClient, accounts: dict[str, Account], people: list[str], db: Database
) -> None:
    mgr = accounts["manager"].headers
    sid = ok(client.post("/api/v1/schedules", json=weekly(people), headers=mgr), 201)["id"]
    got = ok(
        client.patch(
            f"/api/v1/schedules/{sid}",
            json={
                "name": "Primary 2",
                "layers": [
                    {
                        "participants": [people[2]],
                        "rotation_start": "2026-03-01T00:00:00Z",
                        "turn_unit": "days",
                    }
                ],
            },
            headers=mgr,
        )
    )
    assert got["name"] == "Primary 2"
    assert [p["email"] for p in got["layers"][0]["participants"]] == [people[2]]
    assert got["on_call_now"]["user"]["email"] == people[2]
    problem(client.post("/api/v1/schedules", json={**weekly(people), "name": "Primary 2"}, headers=mgr), 409)
    ok(client.delete(f"/api/v1/schedules/{sid}", headers=mgr), 204)
    assert count(db, Schedule) == 0
    problem(client.get(f"/api/v1/schedules/{sid}", headers=mgr), 404)


def _events(ics: bytes) -> list[icalendar.Event]:
    return list(icalendar.Calendar.from_ical(ics).walk("VEVENT"))


def test_ical_feeds_are_secret_urls_and_reset_kills_the_old_one(
    client: TestClient, accounts: dict[str, Account], people: list[str], clock: ManualClock
) -> None:
    mgr, viewer = accounts["manager"].headers, accounts["viewer"].headers
    sid = ok(client.post("/api/v1/schedules", json=weekly(people[:2]), headers=mgr), 201)["id"]
    feed = ok(client.get(f"/api/v1/schedules/{sid}/feed", headers=viewer))
    assert feed["path"].startswith("/ical/") and feed["url"].endswith(feed["path"])
    assert ok(client.get(f"/api/v1/schedules/{sid}/feed", headers=viewer)) == feed  # stable
    r = client.get(feed["path"])  # no login
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/calendar")
    events = _events(r.content)
    # From 14 days back (the rotation starts on 16 March) to 90 days ahead: eleven weekly shifts.
    assert len(events) == 11
    first = events[0]
    assert "Ann Doe" in str(first["summary"]) or "Bob Doe" in str(first["summary"])
    assert str(first["attendee"]).lower().startswith("mailto:")
    starts = [e["dtstart"].dt for e in events]
    assert all(d.tzinfo is not None and d.utcoffset() == timedelta(0) for d in starts)
    # Handoffs are 09:00 Berlin on both sides of the DST change.
    assert {d.astimezone(BERLIN).hour for d in starts[1:]} == {9}
    # A manager resets the URL: the old one is refused, the new one works.
    problem(client.post(f"/api/v1/schedules/{sid}/feed/reset", headers=viewer), 403)
    new = ok(client.post(f"/api/v1/schedules/{sid}/feed/reset", headers=mgr))
    assert new["path"] != feed["path"]
    assert client.get(feed["path"]).status_code == 404
    assert client.get(new["path"]).status_code == 200
    assert client.get("/ical/not-a-token.ics").status_code == 404
    # A person's own feed: their shifts on every schedule, and nobody else's.
    responder = accounts["responder"]
    mine = ok(client.get("/api/v1/me/oncall-feed", headers=responder.headers))
    assert _events(client.get(mine["path"]).content) == []  # on no schedule yet
    both = [responder.email, people[1]]
    ok(client.post("/api/v1/schedules", json={**weekly(both), "name": "Secondary"}, headers=mgr), 201)
    own = _events(client.get(mine["path"]).content)
    assert len(own) == 6  # every other week of the eleven
    assert all(str(e["attendee"]) == f"mailto:{responder.email}" for e in own)
    assert all("(Secondary)" in str(e["summary"]) for e in own)


def test_import_a_pagerduty_style_export_as_a_rotation(
    client: TestClient, accounts: dict[str, Account], people: list[str]
) -> None:
    mgr = accounts["manager"].headers
    sid = ok(
        client.post(
            "/api/v1/schedules", json={"name": "Imported", "time_zone": "Europe/Berlin"}, headers=mgr
        ),
        201,
    )["id"]
    # Weekly shifts Monday 09:00 Berlin over the spring DST change; people named, one by e-mail.
    cal = icalendar.Calendar()
    cal.add("prodid", "-//PagerDuty Inc.//Schedule//EN")
    cal.add("version", "2.0")
    names = ["Ann Doe", "Bob Doe", "Cem Doe"]
    t = datetime(2026, 3, 9, 9, 0, tzinfo=BERLIN)
    for i in range(9):
        nxt = t + timedelta(days=7)
        ev = icalendar.Event()
        ev.add("uid", f"shift-{i}@pagerduty")
        ev.add("summary", f"On Call - {names[i % 3]} - Primary")
        ev.add("dtstart", t.astimezone(UTC))
        ev.add("dtend", nxt.replace(tzinfo=BERLIN).astimezone(UTC))
        if i % 3 == 1:
            ev.add("attendee", "mailto:bob@example.org")
        cal.add_component(ev)
        t = nxt
    out = ok(
        client.post(
            f"/api/v1/schedules/{sid}/import",
            content=cal.to_ical(),
            headers={**mgr, "content-type": "text/calendar"},
        )
    )
    assert out["mode"] == "layer" and out["events"] == 9 and out["unmatched"] == []
    layer = out["layer"]
    assert [p["email"] for p in layer["participants"]] == people
    assert (layer["turn_length"], layer["turn_unit"]) == (1, "weeks")
    # The imported rotation reproduces the export, after the DST change too.
    assert who(client, sid, mgr, datetime(2026, 3, 30, 9, 0, tzinfo=BERLIN)) == people[0]
    assert who(client, sid, mgr, datetime(2026, 4, 6, 8, 59, tzinfo=BERLIN)) == people[0]
    assert who(client, sid, mgr, datetime(2026, 4, 6, 9, 0, tzinfo=BERLIN)) == people[1]


def ics_file(*events: tuple[str, str, str]) -> str:
    """A hand-written iCal file, one event per (summary, start, end)."""
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//test//EN"]
    for i, (summary, start, end) in enumerate(events):
        lines += [
            "BEGIN:VEVENT",
            f"UID:{i}",
            f"SUMMARY:{summary}",
            f"DTSTART:{start}",
            f"DTEND:{end}",
            "END:VEVENT",
        ]
    return "\r\n".join([*lines, "END:VCALENDAR", ""])


def test_import_irregular_shifts_as_overrides_and_report_strangers(
    client: TestClient, accounts: dict[str, Account], people: list[str], db: Database, clock: ManualClock
) -> None:
    mgr = accounts["manager"].headers
    sid = ok(client.post("/api/v1/schedules", json={"name": "Team cal"}, headers=mgr), 201)["id"]
    ics = ics_file(
        ("ann@example.org", "20260303T080000Z", "20260303T200000Z"),
        ("[L1] Bob Doe", "20260304T080000Z", "20260304T130000Z"),
        ("Zed Nobody", "20260305T080000Z", "20260305T200000Z"),
    )
    out = ok(client.post(f"/api/v1/schedules/{sid}/import", content=ics, headers=mgr))
    assert out["mode"] == "overrides" and out["overrides"] == 2 and out["unmatched"] == ["Zed Nobody"]
    assert who(client, sid, mgr, datetime(2026, 3, 4, 9, 0, tzinfo=UTC)) == people[1]
    assert who(client, sid, mgr, datetime(2026, 3, 4, 14, 0, tzinfo=UTC)) is None
    # Not iCalendar, empty, nobody matched: a clear 422, nothing imported.
    before = count(db, ScheduleOverride)
    problem(client.post(f"/api/v1/schedules/{sid}/import", content=b"hello", headers=mgr), 422, "file")
    problem(client.post(f"/api/v1/schedules/{sid}/import", content=b"", headers=mgr), 422, "file")
    stranger = ics.replace("ann@example.org", "x@y.z").replace("Bob Doe", "Q")
    problem(client.post(f"/api/v1/schedules/{sid}/import", content=stranger, headers=mgr), 422, "file")
    problem(
        client.post(f"/api/v1/schedules/{sid}/import", content=ics, headers=accounts["responder"].headers),
        403,
    )
    assert count(db, ScheduleOverride) == before


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"time_zone": "Mars/Olympus"}, "time_zone"),
        (
            {"layers": [{"participants": ["nobody@example.org"], "rotation_start": "2026-03-01T00:00:00"}]},
            "participants",
        ),
        ({"layers": [{"participants": [], "rotation_start": "2026-03-01T00:00:00"}]}, "participants"),
        (
            {
                "layers": [
                    {"participants": [1], "rotation_start": "2026-03-01T00:00:00", "turn_unit": "months"}
                ]
            },
            "turn_unit",
        ),
        (
            {"layers": [{"participants": [1], "rotation_start": "2026-03-01T00:00:00", "turn_length": 0}]},
            "turn_length",
        ),
        (
            {
                "layers": [
                    {
                        "participants": [1],
                        "rotation_start": "2026-03-01",
                        "restrictions": [{"start": "9", "end": "17:00"}],
                    }
                ]
            },
            "restrictions",
        ),
        ({"layers": [{"participants": [1], "rotation_start": "yesterday"}]}, "rotation_start"),
        (
            {
                "layers": [
                    {
                        "participants": [1],
                        "rotation_start": "2026-03-01T00:00:00",
                        "ends_at": "2026-02-01T00:00:00",
                    }
                ]
            },
            "ends_at",
        ),
        ({"team_id": 999}, "team_id"),
        ({"surprise": 1}, "surprise"),
        ({"name": ""}, "name"),
    ],
)
def test_bad_schedules_are_refused_and_nothing_is_saved(
    client: TestClient, accounts: dict[str, Account], db: Database, change: dict[str, Any], field: str
) -> None:
    body = {"name": "Bad", "time_zone": "UTC", **change}
    problem(client.post("/api/v1/schedules", json=body, headers=accounts["manager"].headers), 422, field)
    assert count(db, Schedule) == 0


def test_roles_auth_and_bad_queries(
    client: TestClient, accounts: dict[str, Account], people: list[str]
) -> None:
    mgr, resp, viewer = accounts["manager"].headers, accounts["responder"].headers, accounts["viewer"].headers
    problem(client.get("/api/v1/schedules"), 401)
    problem(client.post("/api/v1/schedules", json=weekly(people), headers=resp), 403)
    sid = ok(client.post("/api/v1/schedules", json=weekly(people), headers=mgr), 201)["id"]
    problem(client.patch(f"/api/v1/schedules/{sid}", json={"name": "x"}, headers=resp), 403)
    problem(client.delete(f"/api/v1/schedules/{sid}", headers=viewer), 403)
    problem(client.get("/api/v1/schedules/999/on-call", headers=viewer), 404)
    problem(
        client.get(f"/api/v1/schedules/{sid}/on-call", params={"at": "2026-03-01T09:00:00"}, headers=viewer),
        422,
        "at",
    )
    problem(client.get(f"/api/v1/schedules/{sid}/on-call", params={"at": "soon"}, headers=viewer), 422, "at")
    problem(
        client.get(
            f"/api/v1/schedules/{sid}/shifts",
            params={"start": "2026-01-01T00:00:00Z", "end": "2028-01-01T00:00:00Z"},
            headers=viewer,
        ),
        422,
        "end",
    )
    problem(client.get(f"/api/v1/schedules/{sid}/gaps", params={"days": 0}, headers=viewer), 422, "days")
    for bad, field in [
        (
            {
                "user": "zed@example.org",
                "starts_at": "2026-03-02T10:00:00Z",
                "ends_at": "2026-03-02T11:00:00Z",
            },
            "user",
        ),
        (
            {"user": people[0], "starts_at": "2026-03-02T12:00:00Z", "ends_at": "2026-03-02T11:00:00Z"},
            "ends_at",
        ),
        (
            {"user": people[0], "starts_at": "2026-03-01T08:00:00Z", "ends_at": "2026-03-01T09:00:00Z"},
            "ends_at",
        ),
        ({"user": people[0], "starts_at": "2026-03-02T10:00:00Z"}, "ends_at"),
    ]:
        problem(client.post(f"/api/v1/schedules/{sid}/overrides", json=bad, headers=resp), 422, field)


def test_removed_participants_leave_flagged_gaps_and_long_turns_show_true_ends(
    client: TestClient, accounts: dict[str, Account], people: list[str], clock: ManualClock, db: Database
) -> None:
    mgr, admin = accounts["manager"].headers, accounts["admin"].headers
    body = weekly(people[:2])
    body["layers"][0].update(turn_length=2, rotation_start="2026-02-23T09:00:00")  # fortnightly
    sid = ok(client.post("/api/v1/schedules", json=body, headers=mgr), 201)["id"]
    now = ok(client.get(f"/api/v1/schedules/{sid}", headers=mgr))["on_call_now"]
    # Not clipped to a window around now: the fortnight's real handoffs.
    assert now["user"]["email"] == people[0]
    assert now["start"].startswith("2026-02-23T08:00:00") and now["end"].startswith("2026-03-09T08:00:00")
    # Bob is deleted: his fortnight is nobody's, flagged as a gap, not silently skipped.
    bob = next(u for u in ok(client.get("/api/v1/users", headers=admin))["items"] if u["email"] == people[1])
    ok(client.delete(f"/api/v1/users/{bob['id']}", headers=admin), 204)
    sched = ok(client.get(f"/api/v1/schedules/{sid}", headers=mgr))
    assert sched["next_gap"]["start"].startswith("2026-03-09T08:00:00")
    assert sched["layers"][0]["participants"][1]["name"] == f"(deleted user {bob['id']})"
    assert who(client, sid, mgr, datetime(2026, 3, 10, tzinfo=UTC)) is None
    # Moving the schedule to another zone keeps the local handoff time (09:00, now in London).
    ok(client.patch(f"/api/v1/schedules/{sid}", json={"time_zone": "Europe/London"}, headers=mgr))
    shifts = ok(
        client.get(
            f"/api/v1/schedules/{sid}/shifts",
            params={"start": "2026-03-01T00:00:00Z", "end": "2026-04-01T00:00:00Z"},
            headers=mgr,
        )
    )
    london = ZoneInfo("Europe/London")
    starts = [datetime.fromisoformat(sh["start"]).astimezone(london) for sh in shifts["final"][1:]]
    assert {(d.hour, d.minute) for d in starts} == {(9, 0)}
    # A feed reset is in the audit log.
    ok(client.post(f"/api/v1/schedules/{sid}/feed/reset", headers=mgr))
    with db.session() as s:
        assert s.scalar(select(AuditEntry).where(AuditEntry.entity_type == "calendar_feed")) is not None
