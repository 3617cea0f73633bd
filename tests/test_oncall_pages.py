"""The on-call pages, driven through their HTML forms: the schedule list (who is on call, the next
gap), the calendar (layer rows, the final row, gaps, a daylight-saving week labelled in local time),
overrides, layers, the iCal URLs and import, roles, bad input and unknown ids; on SQLite and
PostgreSQL."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from opsdesk.audit.models import AuditEntry
from opsdesk.auth import service as auth
from opsdesk.auth.schemas import UserIn
from opsdesk.core.actor import SYSTEM, Role
from opsdesk.core.clock import ManualClock
from opsdesk.core.db import Database
from opsdesk.oncall import rotation, service
from opsdesk.oncall.models import CalendarFeed, Schedule, ScheduleLayer, ScheduleOverride
from opsdesk.oncall.schemas import OverrideIn, ScheduleIn
from tests.conftest import PASSWORD, Account
from tests.support import login

BERLIN = ZoneInfo("Europe/Berlin")
HTML = {"accept": "text/html"}
WEEKDAYS = [{"days": ["mon", "tue", "wed", "thu", "fri"], "start": "08:00", "end": "18:00"}]


DASH = "\u2013"  # the en dash between the ends of a range: read as "-" below


def text(page: str) -> str:
    """The words of a page, without tags, as a person reads them."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).replace(DASH, "-").split())


def post(client: TestClient, url: str, csrf: str, **fields: object) -> httpx.Response:
    return client.post(url, data={"csrf_token": csrf, **fields}, headers=HTML, follow_redirects=False)


def counts(db: Database) -> dict[str, int]:
    with db.session() as s:
        return {
            m.__name__: s.scalar(select(func.count()).select_from(m)) or 0
            for m in (Schedule, ScheduleLayer, ScheduleOverride, AuditEntry)
        }


def row(page: str, kind: str) -> str:
    """The HTML of one timeline row (``layer``, ``overrides`` or ``final``; the first of its kind)."""
    m = re.search(rf'<div class="oc-row oc-{kind}" data-row="{kind}">(.*?)\n  </div>', page, re.S)
    assert m is not None, f"no {kind} row"
    return m.group(1)


def blocks(fragment: str) -> list[tuple[str, float, float, str]]:
    """(css, left %, width %, title) of each block in a row."""
    return [
        (css, float(left), float(width), html.unescape(title).replace(DASH, "-"))
        for css, left, width, title in re.findall(
            r'<div class="oc-block ([^"]+)" style="left: ([\d.]+)%; width: ([\d.]+)%[^"]*" title="([^"]*)"',
            fragment,
        )
    ]


@pytest.fixture
def people(db: Database, clock: ManualClock, accounts: dict[str, Account]) -> dict[str, int]:
    """Three more responders: Ann, Bob and Cem Doe (ids by first name)."""
    out = {}
    with db.session() as s:
        for name in ("ann", "bob", "cem"):
            user = auth.create_user(
                s,
                UserIn(email=f"{name}@example.org", name=f"{name.title()} Doe", role=Role.responder),
                actor=SYSTEM,
                now=clock.now(),
            )
            out[name] = user.id
    return out


def schedule(db: Database, clock: ManualClock, name: str = "Ops", **fields: Any) -> int:
    with db.session() as s:
        body = {"name": name, "time_zone": "Europe/Berlin", **fields}
        return service.create(s, ScheduleIn.model_validate(body), actor=SYSTEM, now=clock.now()).id


def business_hours(people: list[str]) -> list[dict[str, Any]]:
    """Weekdays 08:00-18:00 Berlin, one person a day from Monday 2 March: gaps every night."""
    return [
        {
            "name": "Business hours",
            "participants": people,
            "rotation_start": "2026-03-02T08:00:00",
            "turn_unit": "days",
            "restrictions": WEEKDAYS,
        }
    ]


def weekly(people: list[str], name: str = "Weekly") -> list[dict[str, Any]]:
    return [{"name": name, "participants": people, "rotation_start": "2026-03-16T09:00:00"}]


# --- the list ------------------------------------------------------------------------------------


def test_list_shows_who_is_on_call_until_when_and_flags_the_next_gap(
    client: TestClient, accounts: dict[str, Account], people: dict[str, int], db: Database, clock: ManualClock
) -> None:
    gappy = schedule(db, clock, "Business", layers=business_hours(["ann@example.org", "bob@example.org"]))
    later = weekly(["cem@example.org"])
    later[0]["rotation_start"] = "2026-03-05T09:00:00"
    covered = schedule(db, clock, "Round the clock", time_zone="America/New_York", layers=later)
    login(client, accounts["viewer"].email, PASSWORD)
    page = client.get("/oncall", headers=HTML).text
    assert 'href="/oncall" aria-current="page"' in page  # the nav entry
    rows = dict(re.findall(r'<tr data-schedule="(\d+)">(.*?)</tr>', page, re.S))
    # Monday 2 March 09:00 UTC is 10:00 in Berlin: Ann's first day, until 18:00 local.
    business = text(rows[str(gappy)])
    assert "Business Europe/Berlin" in business
    assert "Ann Doe until Mon 02 Mar 18:00 CET" in business
    assert 'class="badge warn">gap</span>' in rows[str(gappy)]
    assert "Mon 02 Mar 18:00 - Tue 03 Mar 08:00 CET" in business
    assert f'href="/oncall/{gappy}"' in rows[str(gappy)]
    # Cem's weekly rotation starts on Thursday (New York): nobody until then, and a gap now.
    other = text(rows[str(covered)])
    assert "nobody until Thu 05 Mar 09:00 EST" in other
    assert "gap now" in other
    # Viewers read; the form to create a schedule is for managers.
    assert 'action="/oncall"' not in page
    login(client, accounts["manager"].email, PASSWORD)
    page = client.get("/oncall", headers=HTML).text
    assert 'action="/oncall"' in page and '<datalist id="zones">' in page and "Europe/Berlin" in page


# --- the calendar --------------------------------------------------------------------------------


def test_calendar_draws_a_row_per_layer_the_final_row_gaps_and_overrides(
    client: TestClient, accounts: dict[str, Account], people: dict[str, int], db: Database, clock: ManualClock
) -> None:
    layers = [
        *weekly(["cem@example.org"], name="Backstop"),
        *business_hours(["ann@example.org", "bob@example.org"]),
    ]
    layers[0]["rotation_start"] = "2026-03-05T00:00:00"  # Thursday: nobody before it
    sid = schedule(db, clock, layers=layers)
    with db.session() as s:
        service.add_override(
            s,
            sid,
            OverrideIn(
                user="cem@example.org", starts_at="2026-03-03T12:00:00", ends_at="2026-03-03T14:00:00"
            ),
            actor=SYSTEM,
            now=clock.now(),
        )
    login(client, accounts["viewer"].email, PASSWORD)
    page = client.get(f"/oncall/{sid}?start=2026-03-02&days=7", headers=HTML).text
    assert page.count('data-row="layer"') == 2 and page.count('data-row="final"') == 1
    assert re.findall(r'data-day="([\d-]+)"', page) == [f"2026-03-0{d}" for d in range(2, 9)]
    assert "<strong>Final</strong>" in page
    assert 'class="oc-now"' in page  # Monday 10:00 is in the week shown
    # The backstop layer: one block from Thursday 00:00 (3 of 7 days in) to the end.
    ((css, left, width, title),) = blocks(row(page, "layer"))
    assert (css, round(left, 2), round(width, 2)) == ("shift", 42.86, 57.14)
    assert title.startswith("Cem Doe · Thu 05 Mar 00:00 - Mon 09 Mar 00:00 CET")
    # Final: Ann Monday, the override on Tuesday, gaps every night until the backstop starts.
    final = blocks(row(page, "final"))
    gaps = [b for b in final if b[0] == "gap"]
    assert [g[3].split(" · ")[1].split(" (")[0] for g in gaps] == [
        "Mon 02 Mar 00:00 - 08:00 CET",
        "Mon 02 Mar 18:00 - Tue 03 Mar 08:00 CET",
        "Tue 03 Mar 18:00 - Wed 04 Mar 08:00 CET",
        "Wed 04 Mar 18:00 - Thu 05 Mar 00:00 CET",
    ]
    assert gaps[0][1:3] == (0.0, pytest.approx(8 / 168 * 100, abs=1e-3))
    assert all(g[3].startswith("Nobody on call") for g in gaps)
    overrides = [b for b in final if b[0] == "shift ov"]
    assert len(overrides) == 1 and overrides[0][3].startswith("Cem Doe · Tue 03 Mar 12:00 - 14:00 CET")
    assert overrides[0][3].endswith("override")
    assert [b[0] for b in blocks(row(page, "overrides"))] == ["shift ov"]
    # Blocks stay on the grid.
    for _css, left, width, _title in final:
        assert left >= 0 and left + width <= 100.0001
    assert sum(b[2] for b in final) == pytest.approx(100, abs=1e-2)
    # Below: who is on call now, and the gaps of the next 14 days.
    now = text(page[page.index('id="on-call-now"') : page.index('id="upcoming-gaps"')])
    assert "Ann Doe ann@example.org since Mon 02 Mar 08:00 CET, until Mon 02 Mar 18:00 CET" in now
    assert "Next: Bob Doe from Tue 03 Mar 08:00 CET" in now
    upcoming = text(page[page.index('id="upcoming-gaps"') : page.index('id="overrides"')])
    assert "Mon 02 Mar 18:00 - Tue 03 Mar 08:00 CET 14 h" in upcoming
    # Another week: prev/next links, no "now" marker; a bad range falls back with a notice.
    assert 'href="?start=2026-02-23&amp;days=7"' in page and 'href="?start=2026-03-09&amp;days=7"' in page
    later = client.get(f"/oncall/{sid}?start=2026-03-16&days=28", headers=HTML).text
    assert 'class="oc-now"' not in later and later.count("data-day=") == 28
    bad = client.get(f"/oncall/{sid}?start=yesterday&days=5", headers=HTML)
    assert bad.status_code == 200 and bad.text.count("data-day=") == 14
    assert "is not a date" in text(bad.text) and "show 7, 14 or 28 days" in text(bad.text)


def test_dst_week_is_labelled_and_sized_in_local_time(
    client: TestClient, accounts: dict[str, Account], people: dict[str, int], db: Database, clock: ManualClock
) -> None:
    sid = schedule(db, clock, layers=weekly(["ann@example.org", "bob@example.org"]))
    login(client, accounts["viewer"].email, PASSWORD)
    # Berlin springs forward on Sunday 29 March 2026: that local week is 167 hours.
    page = client.get(f"/oncall/{sid}?start=2026-03-29&days=7", headers=HTML).text
    days = re.findall(
        r'<div class="oc-day[^"]*" style="left: ([\d.]+)%; width: ([\d.]+)%" '
        r'title="([^"]*)" data-day="([\d-]+)">'
        r'<span class="wd">(\w+)</span><span class="dn">([^<]+)</span>(?:<span class="dst">([^<]+)</span>)?',
        page,
    )
    # Local days, Sunday to Saturday, though the range starts on Saturday 28 March 23:00 UTC.
    assert [(d[3], d[4], d[5]) for d in days] == [
        ("2026-03-29", "Sun", "29 Mar"),
        ("2026-03-30", "Mon", "30 Mar"),
        ("2026-03-31", "Tue", "31 Mar"),
        ("2026-04-01", "Wed", "1 Apr"),
        ("2026-04-02", "Thu", "2 Apr"),
        ("2026-04-03", "Fri", "3 Apr"),
        ("2026-04-04", "Sat", "4 Apr"),
    ]
    assert float(days[0][1]) == pytest.approx(23 / 167 * 100, abs=1e-3) and days[0][6] == "23 h"
    assert "the clocks change (CET +0100 → CEST +0200)" in html.unescape(days[0][2])
    assert all(float(d[1]) == pytest.approx(24 / 167 * 100, abs=1e-3) and not d[6] for d in days[1:])
    # The weekly handoff stays Monday 09:00 local: 23 + 9 hours into the range.
    first, second = blocks(row(page, "final"))
    assert first[3].startswith("Bob Doe · Sun 29 Mar 00:00 - Mon 30 Mar 09:00 CEST")
    assert first[2] == pytest.approx(32 / 167 * 100, abs=1e-3)
    assert second[3].startswith("Ann Doe · Mon 30 Mar 09:00 - Sun 05 Apr 00:00 CEST")
    assert "Times in <strong>Europe/Berlin</strong>" in page


# --- overrides -----------------------------------------------------------------------------------


def test_a_responder_adds_and_deletes_an_override_through_the_form(
    client: TestClient, accounts: dict[str, Account], people: dict[str, int], db: Database, clock: ManualClock
) -> None:
    sid = schedule(db, clock, layers=business_hours(["ann@example.org", "bob@example.org"]))
    csrf = login(client, accounts["responder"].email, PASSWORD)
    page = client.get(f"/oncall/{sid}", headers=HTML).text
    assert 'id="override-form"' in page and 'id="layer-form"' not in page  # layers are for managers
    # From/to are read in the schedule's zone: 08:00-20:00 Berlin is 07:00-19:00 UTC.
    r = post(
        client,
        f"/oncall/{sid}/overrides",
        csrf,
        user=str(people["cem"]),
        starts_at="2026-03-03T08:00",
        ends_at="2026-03-03T20:00",
        note="swap with Bob",
    )
    assert r.status_code == 303 and r.headers["location"].startswith(f"/oncall/{sid}?flash=")
    with db.session() as s:
        (o,) = service.overrides(s, sid)
        assert (o.user_id, o.starts_at, o.ends_at) == (
            people["cem"],
            datetime(2026, 3, 3, 7, 0, tzinfo=UTC),
            datetime(2026, 3, 3, 19, 0, tzinfo=UTC),
        )
        assert o.created_by == accounts["responder"].email and o.note == "swap with Bob"
        at = datetime(2026, 3, 3, 19, 30, tzinfo=BERLIN)  # the evening gap, now covered
        assert service.on_call(s, service.get(s, sid), at).user_id == people["cem"]
        oid = o.id
    page = client.get(f"/oncall/{sid}?start=2026-03-02&days=7", headers=HTML).text
    listed = re.search(rf'<tr data-override="{oid}">(.*?)</tr>', page, re.S)
    assert listed is not None
    assert "Cem Doe Tue 03 Mar 08:00 - 20:00 CET (12 h) swap with Bob" in text(listed.group(1))
    assert f'action="/oncall/{sid}/overrides/{oid}/delete"' in listed.group(1)
    assert any(b[0] == "shift ov" for b in blocks(row(page, "final")))
    r = post(client, f"/oncall/{sid}/overrides/{oid}/delete", csrf)
    assert r.status_code == 303
    with db.session() as s:
        assert service.overrides(s, sid) == []
    assert f'data-override="{oid}"' not in client.get(f"/oncall/{sid}", headers=HTML).text


# --- roles ---------------------------------------------------------------------------------------


def test_a_viewer_gets_403_on_every_write_and_nothing_changes(
    client: TestClient, accounts: dict[str, Account], people: dict[str, int], db: Database, clock: ManualClock
) -> None:
    sid = schedule(db, clock, layers=business_hours(["ann@example.org"]))
    with db.session() as s:
        o = service.add_override(
            s,
            sid,
            OverrideIn(user=people["bob"], starts_at="2026-03-03T08:00:00", ends_at="2026-03-03T20:00:00"),
            actor=SYSTEM,
            now=clock.now(),
        )
        layer_id = service.get(s, sid).layers[0].id
        feed = service.feed_token(s, schedule_id=sid, now=clock.now())
        oid = o.id
    csrf = login(client, accounts["viewer"].email, PASSWORD)
    page = client.get(f"/oncall/{sid}", headers=HTML).text
    for form in ("override-form", "layer-form", "import-form", "delete-form"):
        assert f'id="{form}"' not in page
    assert "/delete" not in page and f"/oncall/{sid}/feed/reset" not in page
    assert feed in page  # everyone reads the schedule's iCal URL
    before = counts(db)
    writes = {
        "/oncall": {"name": "New", "time_zone": "UTC"},
        f"/oncall/{sid}/overrides": {
            "user": str(people["ann"]),
            "starts_at": "2026-03-04T08:00",
            "ends_at": "2026-03-04T09:00",
        },
        f"/oncall/{sid}/overrides/{oid}/delete": {},
        f"/oncall/{sid}/layers": {"participants": "ann@example.org", "rotation_start": "2026-03-02T08:00"},
        f"/oncall/{sid}/layers/{layer_id}/delete": {},
        f"/oncall/{sid}/delete": {"confirm": "yes"},
        f"/oncall/{sid}/feed/reset": {},
        f"/oncall/{sid}/import": {},
    }
    for url, fields in writes.items():
        assert post(client, url, csrf, **fields).status_code == 403, url
    assert counts(db) == before
    with db.session() as s:
        assert service.feed_token(s, schedule_id=sid, now=clock.now()) == feed
    # A responder swaps shifts but does not configure the schedule.
    csrf = login(client, accounts["responder"].email, PASSWORD)
    for url in (
        f"/oncall/{sid}/layers/{layer_id}/delete",
        f"/oncall/{sid}/delete",
        f"/oncall/{sid}/feed/reset",
    ):
        assert post(client, url, csrf, confirm="yes").status_code == 403, url
    assert counts(db) == before


# --- managing schedules --------------------------------------------------------------------------

ICS = "\r\n".join(
    [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//test//EN",
        *[
            line
            for i, (summary, start, end) in enumerate(
                [
                    ("ann@example.org", "20260303T080000Z", "20260303T200000Z"),
                    ("[L1] Bob Doe", "20260304T080000Z", "20260304T130000Z"),
                    ("Zed Nobody", "20260305T080000Z", "20260305T200000Z"),
                ]
            )
            for line in (
                "BEGIN:VEVENT",
                f"UID:{i}",
                f"SUMMARY:{summary}",
                f"DTSTART:{start}",
                f"DTEND:{end}",
                "END:VEVENT",
            )
        ],
        "END:VCALENDAR",
        "",
    ]
)


def test_a_manager_creates_a_schedule_adds_and_deletes_layers_imports_ics_and_deletes_it(
    client: TestClient, accounts: dict[str, Account], people: dict[str, int], db: Database, clock: ManualClock
) -> None:
    csrf = login(client, accounts["manager"].email, PASSWORD)
    r = post(client, "/oncall", csrf, name="Primary", time_zone="Europe/Berlin", description="the shop")
    assert r.status_code == 303
    m = re.match(r"/oncall/(\d+)\?flash=", r.headers["location"])
    assert m is not None
    sid = int(m.group(1))
    r = post(
        client,
        f"/oncall/{sid}/layers",
        csrf,
        name="Day shift",
        participants="ann@example.org, bob@example.org\ncem@example.org",
        rotation_start="2026-03-02T09:00",
        turn_length="1",
        turn_unit="weeks",
        restrictions="mon-fri 08:00-18:00\nsat,sun 10:00-16:00",
    )
    assert r.status_code == 303, text(r.text)
    r = post(
        client,
        f"/oncall/{sid}/layers",
        csrf,
        name="Nights",
        participants="cem@example.org",
        rotation_start="2026-03-02T00:00",
        turn_length="12",
        turn_unit="hours",
        restrictions="20:00-08:00",
    )
    assert r.status_code == 303, text(r.text)
    with db.session() as s:
        sched = service.get(s, sid)
        day, night = sched.layers
        assert (day.name, day.participants, day.turn_length, day.turn_unit) == (
            "Day shift",
            [people["ann"], people["bob"], people["cem"]],
            1,
            "weeks",
        )
        assert day.rotation_start == datetime(2026, 3, 2, 8, 0, tzinfo=UTC)  # 09:00 CET
        assert day.restrictions == [
            {"days": ["mon", "tue", "wed", "thu", "fri"], "start": "08:00", "end": "18:00"},
            {"days": ["sat", "sun"], "start": "10:00", "end": "16:00"},
        ]
        assert (night.turn_length, night.turn_unit, night.restrictions[0]["days"]) == (
            12,
            "hours",
            list(rotation.WEEKDAYS),
        )
        day_id = day.id
    page = client.get(f"/oncall/{sid}", headers=HTML).text
    layer_text = text(page[page.index('id="layers"') : page.index('id="ical"')])
    assert (
        "1. Day shift Delete layer People, in order Ann Doe ann@example.org Bob Doe bob@example.org Cem Doe"
        in layer_text
    )
    assert "Turn 1 week, handing off from Mon 02 Mar 09:00 CET" in layer_text
    assert "mon-fri 08:00-18:00; sat, sun 10:00-16:00" in layer_text
    assert "Turn 12 hours" in layer_text and "every day 20:00-08:00" in layer_text
    assert page.count('data-row="layer"') == 2
    # Deleting the first layer keeps the other as it was.
    assert post(client, f"/oncall/{sid}/layers/{day_id}/delete", csrf).status_code == 303
    with db.session() as s:
        (left,) = service.get(s, sid).layers
        assert (left.name, left.position, left.participants, left.restrictions[0]["start"]) == (
            "Nights",
            0,
            [people["cem"]],
            "20:00",
        )
    # An iCal file of irregular shifts: overrides, and the event nobody matched is reported.
    r = client.post(
        f"/oncall/{sid}/import",
        data={"csrf_token": csrf},
        files={"file": ("team.ics", ICS.encode(), "text/calendar")},
        headers=HTML,
    )
    assert r.status_code == 200
    result = text(r.text[r.text.index('id="import-result"') : r.text.index('id="calendar"')])
    assert "Imported team.ics : 3 events read." in result
    assert "Mode overrides" in result and "(2)" in result
    assert "Zed Nobody" in result
    with db.session() as s:
        assert sorted(o.user_id for o in service.overrides(s, sid)) == [people["ann"], people["bob"]]
    # The feeds: a reset makes a new URL and the old one stops working.
    page = client.get(f"/oncall/{sid}", headers=HTML).text
    old = re.search(r'id="schedule-feed" value="[^"]*(/ical/[^"]+\.ics)"', page)
    mine = re.search(r'id="my-feed" value="[^"]*(/ical/[^"]+\.ics)"', page)
    assert old is not None and mine is not None
    assert client.get(old.group(1)).status_code == 200 and client.get(mine.group(1)).status_code == 200
    assert post(client, f"/oncall/{sid}/feed/reset", csrf).status_code == 303
    assert post(client, "/oncall/my-feed/reset", csrf, schedule_id=str(sid)).status_code == 303
    assert client.get(old.group(1)).status_code == 404 and client.get(mine.group(1)).status_code == 404
    page = client.get(f"/oncall/{sid}", headers=HTML).text
    assert old.group(1) not in page and mine.group(1) not in page
    # Deleting needs the box ticked.
    r = post(client, f"/oncall/{sid}/delete", csrf)
    assert r.status_code == 422 and "tick the box to confirm" in r.text
    r = post(client, f"/oncall/{sid}/delete", csrf, confirm="yes")
    assert r.status_code == 303 and r.headers["location"].startswith("/oncall?flash=")
    with db.session() as s:
        assert service.list_schedules(s) == []
        assert (
            s.scalar(select(func.count()).select_from(CalendarFeed).where(CalendarFeed.schedule_id == sid))
            == 0
        )


# --- bad input -----------------------------------------------------------------------------------

LAYER = {
    "name": "L",
    "participants": "ann@example.org",
    "rotation_start": "2026-03-02T09:00",
    "turn_length": "1",
    "turn_unit": "weeks",
    "restrictions": "",
}
OVERRIDE = {"starts_at": "2026-03-03T08:00", "ends_at": "2026-03-03T20:00"}


# The refusals decide nothing that differs between the databases (the same service calls run on
# PostgreSQL in the flows above and in test_oncall_api.py): SQLite only, see ``sqlite_url``.
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    ("path", "fields", "field", "message"),
    [
        ("/oncall", {"name": "X", "time_zone": "Mars/Olympus"}, "time_zone", "is not an IANA time zone"),
        ("/oncall", {"name": " ", "time_zone": "UTC"}, "name", "at least 1 character"),
        ("/oncall", {"name": "Ops", "time_zone": "UTC"}, None, "a schedule named 'Ops' exists"),
        (
            "layers",
            {**LAYER, "participants": "ann@example.org, nobody@example.org"},
            "participants",
            "no user 'nobody@example.org'",
        ),
        ("layers", {**LAYER, "participants": " "}, "participants", "give at least one person"),
        (
            "layers",
            {**LAYER, "restrictions": "mon-fri 9-17:00"},
            "restrictions",
            "line 1: '9' is not a time of day",
        ),
        (
            "layers",
            {**LAYER, "restrictions": "mon-fry 09:00-17:00"},
            "restrictions",
            "'mon-fry' is not a weekday",
        ),
        ("layers", {**LAYER, "turn_length": "0"}, "turn_length", "greater than or equal to 1"),
        ("layers", {**LAYER, "turn_length": "two"}, "turn_length", "valid integer"),
        ("layers", {**LAYER, "turn_unit": "months"}, "turn_unit", "must be one of hours, days, weeks"),
        ("layers", {**LAYER, "rotation_start": ""}, "rotation_start", "required"),
        ("layers", {**LAYER, "rotation_start": "soon"}, "rotation_start", "not a date and time"),
        ("layers", {**LAYER, "ends_at": "2026-03-01T00:00"}, "ends_at", "must be after rotation_start"),
        ("overrides", {**OVERRIDE, "ends_at": "2026-03-03T07:00"}, "ends_at", "must be after starts_at"),
        (
            "overrides",
            {"starts_at": "2026-02-01T08:00", "ends_at": "2026-02-02T08:00"},
            "ends_at",
            "must be in the future",
        ),
        ("overrides", {**OVERRIDE, "user": ""}, "user", "choose who is on call"),
        ("overrides", {**OVERRIDE, "starts_at": "tomorrow"}, "starts_at", "not a date and time"),
        ("import", {}, "file", "choose an iCal (.ics) file"),
        ("import", {"file": b"hello"}, "file", "not an iCalendar file"),
        (
            "import",
            {"file": ICS.replace("ann@example.org", "x@y.z").replace("Bob Doe", "Q").encode()},
            "file",
            "no event could be matched",
        ),
    ],
)
def test_bad_form_input_is_shown_again_with_422_and_nothing_is_saved(
    client: TestClient,
    accounts: dict[str, Account],
    people: dict[str, int],
    db: Database,
    clock: ManualClock,
    path: str,
    fields: dict[str, Any],
    field: str | None,
    message: str,
) -> None:
    sid = schedule(db, clock, layers=weekly(["bob@example.org"]))
    csrf = login(client, accounts["manager"].email, PASSWORD)
    before = counts(db)
    if path == "import":
        files = {"file": ("x.ics", fields["file"], "text/calendar")} if "file" in fields else None
        r = client.post(f"/oncall/{sid}/import", data={"csrf_token": csrf}, files=files, headers=HTML)
    elif path == "/oncall":
        r = post(client, path, csrf, **fields)
    else:
        extra = {"user": str(people["ann"])} if path == "overrides" else {}
        r = post(client, f"/oncall/{sid}/{path}", csrf, **{**extra, **fields})
    assert r.status_code == (409 if field is None else 422), text(r.text)[:500]
    page = html.unescape(r.text)
    assert message in page
    if field is not None:
        # The field is marked, and what was typed is there to correct.
        assert re.search(rf'name="{field}"[^>]*aria-invalid="true"', r.text), field
        for name, value in fields.items():
            if isinstance(value, str) and value.strip() and name not in ("turn_unit", "user"):
                assert html.escape(value) in r.text or value in page, name
    if path != "/oncall":
        assert "Nothing was changed" in page
    assert counts(db) == before


# --- unknown ids ---------------------------------------------------------------------------------


def test_unknown_ids_are_404(
    client: TestClient, accounts: dict[str, Account], people: dict[str, int], db: Database, clock: ManualClock
) -> None:
    sid = schedule(db, clock, layers=weekly(["bob@example.org"]))
    csrf = login(client, accounts["manager"].email, PASSWORD)
    r = client.get("/oncall/999999", headers=HTML)
    assert r.status_code == 404 and "schedule 999999 does not exist" in r.text
    for url, fields in {
        "/oncall/999999/overrides": {"user": str(people["ann"]), **OVERRIDE},
        "/oncall/999999/layers": LAYER,
        "/oncall/999999/delete": {"confirm": "yes"},
        "/oncall/999999/feed/reset": {},
        f"/oncall/{sid}/overrides/999999/delete": {},
        f"/oncall/{sid}/layers/999999/delete": {},
    }.items():
        assert post(client, url, csrf, **fields).status_code == 404, url
    r = client.post(
        "/oncall/999999/import", data={"csrf_token": csrf}, files={"file": ("x.ics", ICS.encode())}
    )
    assert r.status_code == 404
    assert client.get("/oncall/0", headers=HTML).status_code == 422  # not an id at all


def test_a_deleted_participant_is_shown_as_such_and_adding_a_layer_still_works(
    client: TestClient, accounts: dict[str, Account], people: dict[str, int], db: Database, clock: ManualClock
) -> None:
    sid = schedule(db, clock, layers=weekly(["ann@example.org", "bob@example.org"]))
    with db.session() as s:
        auth.delete_user(s, people["bob"], actor=SYSTEM, now=clock.now())
    csrf = login(client, accounts["manager"].email, PASSWORD)
    page = client.get(f"/oncall/{sid}?start=2026-03-16&days=14", headers=HTML).text
    assert f"deleted user #{people['bob']}" in text(page)
    r = post(
        client,
        f"/oncall/{sid}/layers",
        csrf,
        name="Nights",
        participants="cem@example.org",
        rotation_start="2026-03-02T20:00",
        turn_length="1",
        turn_unit="days",
        restrictions="20:00-08:00",
    )
    assert r.status_code == 303, text(r.text)
    with db.session() as s:
        weekly_layer, nights = service.get(s, sid).layers
        # Rebuilding the layers leaves out the person who no longer exists.
        assert weekly_layer.participants == [people["ann"]] and nights.participants == [people["cem"]]
