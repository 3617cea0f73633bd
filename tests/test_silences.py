"""Silences: the service functions the pipeline calls, the API, the CLI and the page."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from typer.testing import CliRunner

from opsdesk.alerts import service as alerts
from opsdesk.alerts import silences
from opsdesk.alerts.admin_schemas import SilenceIn
from opsdesk.alerts.matchers import parse_matchers
from opsdesk.alerts.models import Silence
from opsdesk.audit.models import AuditEntry
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


def count(db: Database, model: Any = Silence) -> int:
    with db.session() as s:
        return s.scalar(select(func.count()).select_from(model)) or 0


def fire(db: Database, clock: ManualClock, *events: tuple[str, dict[str, str]]) -> None:
    """Firing alerts with these summaries and labels, through the pipeline."""
    with db.session() as s:
        alerts.store_events(
            s,
            [
                alerts.NormalizedEvent(
                    source="prometheus",
                    status="firing",
                    severity="critical",
                    summary=summary,
                    labels=labels,
                    fingerprint=f"fp-{summary}",
                )
                for summary, labels in events
            ],
            now=clock.now(),
        )
    with db.session() as s:
        alerts.process_pending(s, now=clock.now())


def new(client: TestClient, who: Account, **body: Any) -> dict[str, Any]:
    body.setdefault("matchers", ['alertname="DiskFull"'])
    body.setdefault("comment", "disk swap on db hosts")
    if "ends_at" not in body:
        body.setdefault("duration", "2h")
    return ok(client.post("/api/v1/silences", json=body, headers=who.headers), 201)


# --- for the pipeline ----------------------------------------------------------------------------


def test_active_and_silencing(db: Database, clock: ManualClock) -> None:
    now = clock.now()
    with db.session() as s:

        def make(matchers: list[str], start: timedelta, length: timedelta) -> int:
            data = SilenceIn(matchers=matchers, starts_at=now + start, duration=length, comment="c")
            return silences.create(s, data, actor=SYSTEM, now=now).id

        disk = make(["alertname=DiskFull", 'instance=~"db-.*"'], timedelta(0), timedelta(hours=1))
        all_db = make(['instance=~"db-.*"'], timedelta(0), timedelta(hours=2))
        later = make(["alertname=DiskFull"], timedelta(hours=1), timedelta(hours=1))
        short = make(["job=backup"], timedelta(0), timedelta(minutes=5))
        silences.expire(s, short, actor=SYSTEM, now=now)

    with db.session() as s:
        act = silences.active(s, now)
    assert [sid for sid, _ in act] == [disk, all_db]
    assert silences.silencing(act, {"alertname": "DiskFull", "instance": "db-1"}) == [disk, all_db]
    assert silences.silencing(act, {"alertname": "CPU", "instance": "db-1"}) == [all_db]
    assert silences.silencing(act, {"alertname": "DiskFull", "instance": "web-1"}) == []
    assert silences.silencing([], {"a": "b"}) == []

    with db.session() as s:
        assert [sid for sid, _ in silences.active(s, now + timedelta(minutes=90))] == [all_db, later]
        assert silences.active(s, now + timedelta(hours=2)) == []  # ends_at is exclusive


def test_active_skips_a_stored_silence_whose_matchers_no_longer_parse(
    db: Database, clock: ManualClock
) -> None:
    now = clock.now()
    with db.session() as s:
        good = silences.create(
            s, SilenceIn(matchers=["a=b"], duration="1h", comment="c"), actor=SYSTEM, now=now
        ).id
        s.add(
            Silence(
                matchers=[{"name": "a", "op": "=~", "value": "("}],
                starts_at=now,
                ends_at=now + timedelta(hours=1),
                created_by="x",
                comment="broken by hand",
                created_at=now,
                updated_at=now,
            )
        )
    with db.session() as s:
        assert [sid for sid, _ in silences.active(s, now)] == [good]


def test_preview_counts_firing_alerts_with_source_and_severity(db: Database, clock: ManualClock) -> None:
    fire(
        db,
        clock,
        ("disk db-1", {"alertname": "DiskFull", "instance": "db-1"}),
        ("disk db-2", {"alertname": "DiskFull", "instance": "db-2"}),
        ("disk web-1", {"alertname": "DiskFull", "instance": "web-1"}),
        ("cpu db-1", {"alertname": "CPU", "instance": "db-1"}),
    )
    now = clock.now()
    with db.session() as s:
        assert silences.preview(s, parse_matchers('alertname=DiskFull, instance=~"db-.*"'), now) == 2
        assert silences.preview(s, parse_matchers("alertname=DiskFull"), now) == 3
        assert silences.preview(s, parse_matchers("source=prometheus"), now) == 4
        assert silences.preview(s, parse_matchers("severity=critical, instance=db-1"), now) == 2
        assert silences.preview(s, parse_matchers("alertname=Nothing"), now) == 0
        n, sample = silences.affected(s, parse_matchers("instance=~db-.*"), now, limit=2)
        assert n == 3 and len(sample) == 2


# --- API -----------------------------------------------------------------------------------------


def test_create_with_strings_and_objects_then_get_and_list(
    client: TestClient, accounts: dict[str, Account], clock: ManualClock
) -> None:
    responder = accounts["responder"]
    created = new(
        client,
        responder,
        matchers=['severity=~"critical|error"', {"name": "instance", "op": "=~", "value": "db-.*"}],
    )
    assert created["state"] == "active"
    assert created["created_by"] == responder.email
    assert created["matchers"] == [
        {"name": "severity", "op": "=~", "value": "critical|error"},
        {"name": "instance", "op": "=~", "value": "db-.*"},
    ]
    assert created["matchers_text"] == '{severity=~"critical|error", instance=~"db-.*"}'
    assert created["ends_at"].startswith("2026-03-02T11:00:00")

    brace = new(client, responder, matchers='{job="backup", env!="dev"}', ends_at="2026-03-03T00:00:00Z")
    assert [m["name"] for m in brace["matchers"]] == ["job", "env"]

    viewer = accounts["viewer"]
    assert ok(client.get(f"/api/v1/silences/{created['id']}", headers=viewer.headers)) == created
    listed = ok(client.get("/api/v1/silences", headers=viewer.headers))
    assert [x["id"] for x in listed["items"]] == [brace["id"], created["id"]]


def test_state_filter_follows_the_clock(
    client: TestClient, accounts: dict[str, Account], clock: ManualClock
) -> None:
    r = accounts["responder"]
    now_one = new(client, r, duration="1h")["id"]
    later = new(client, r, starts_at="2026-03-02T10:00:00Z", duration="1h")["id"]

    def ids(state: str) -> list[int]:
        page = ok(client.get("/api/v1/silences", params={"state": state}, headers=r.headers))
        return [x["id"] for x in page["items"]]

    assert (ids("active"), ids("pending"), ids("expired")) == ([now_one], [later], [])
    clock.advance(minutes=61)
    assert (ids("active"), ids("pending"), ids("expired")) == ([later], [], [now_one])
    problem(
        client.get("/api/v1/silences", params={"state": "sleeping"}, headers=r.headers), 422, "query.state"
    )


def test_expire_is_204_then_409_and_audited(
    client: TestClient, accounts: dict[str, Account], db: Database
) -> None:
    r = accounts["responder"]
    sid = new(client, r)["id"]

    assert client.delete(f"/api/v1/silences/{sid}", headers=r.headers).status_code == 204

    got = ok(client.get(f"/api/v1/silences/{sid}", headers=r.headers))
    assert got["state"] == "expired" and got["ends_at"].startswith("2026-03-02T09:00:00")
    problem(client.delete(f"/api/v1/silences/{sid}", headers=r.headers), 409)
    trail = ok(
        client.get(
            "/api/v1/audit",
            params={"entity_type": "silence", "entity_id": str(sid)},
            headers=accounts["manager"].headers,
        )
    )["items"]
    assert [e["action"] for e in reversed(trail)] == ["create", "expire"]
    assert trail[0]["actor"] == r.email


def test_expiring_a_pending_silence_means_it_never_starts(
    client: TestClient, accounts: dict[str, Account]
) -> None:
    r = accounts["responder"]
    sid = new(client, r, starts_at="2026-03-05T00:00:00Z", duration="1h")["id"]
    ok(client.delete(f"/api/v1/silences/{sid}", headers=r.headers), 204)
    got = ok(client.get(f"/api/v1/silences/{sid}", headers=r.headers))
    assert got["state"] == "expired" and got["starts_at"] == got["ends_at"]


def test_patch_comment_and_end_in_place(client: TestClient, accounts: dict[str, Account]) -> None:
    r = accounts["responder"]
    sid = new(client, r)["id"]
    body = {"comment": "longer: vendor is late", "ends_at": "2026-03-02T15:00:00Z"}
    got = ok(client.patch(f"/api/v1/silences/{sid}", json=body, headers=r.headers))
    assert got["id"] == sid and got["comment"] == body["comment"]
    assert got["ends_at"].startswith("2026-03-02T15:00:00")


def test_new_matchers_on_an_active_silence_expire_it_and_create_another(
    client: TestClient, accounts: dict[str, Account]
) -> None:
    r = accounts["responder"]
    old = new(client, r, duration="3h")
    got = ok(
        client.patch(f"/api/v1/silences/{old['id']}", json={"matchers": ["alertname=CPU"]}, headers=r.headers)
    )
    assert got["id"] != old["id"]
    assert got["matchers_text"] == '{alertname="CPU"}'
    assert got["state"] == "active" and got["ends_at"] == old["ends_at"] and got["comment"] == old["comment"]
    assert ok(client.get(f"/api/v1/silences/{old['id']}", headers=r.headers))["state"] == "expired"


def test_a_pending_silence_is_edited_in_place(client: TestClient, accounts: dict[str, Account]) -> None:
    r = accounts["responder"]
    sid = new(client, r, starts_at="2026-03-05T00:00:00Z", duration="1h")["id"]
    body = {"matchers": ["job=batch"], "starts_at": "2026-03-06T00:00:00Z", "ends_at": "2026-03-06T02:00:00Z"}
    got = ok(client.patch(f"/api/v1/silences/{sid}", json=body, headers=r.headers))
    assert got["id"] == sid and got["state"] == "pending" and got["matchers_text"] == '{job="batch"}'


def test_patch_refusals(
    client: TestClient, accounts: dict[str, Account], clock: ManualClock, db: Database
) -> None:
    r = accounts["responder"]
    sid = new(client, r, duration="1h")["id"]
    url = f"/api/v1/silences/{sid}"
    before = count(db)
    problem(
        client.patch(url, json={"starts_at": "2026-03-02T10:00:00Z"}, headers=r.headers), 422, "starts_at"
    )
    problem(client.patch(url, json={"ends_at": "2026-03-02T08:00:00Z"}, headers=r.headers), 422, "ends_at")
    problem(client.patch(url, json={"comment": None}, headers=r.headers), 422, "comment")
    problem(client.patch(url, json={"comment": ""}, headers=r.headers), 422, "comment")
    problem(client.patch(url, json={"matchers": ['a=~".*"']}, headers=r.headers), 422, "matchers")
    problem(client.patch(url, json={"color": "red"}, headers=r.headers), 422)
    problem(client.patch("/api/v1/silences/999999", json={"comment": "x"}, headers=r.headers), 404)
    assert count(db) == before
    clock.advance(hours=2)
    problem(client.patch(url, json={"comment": "too late"}, headers=r.headers), 409)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"comment": "c", "duration": "1h"}, "matchers"),
        ({"matchers": [], "comment": "c", "duration": "1h"}, "matchers"),
        ({"matchers": ['team=""', 'job=~".*"'], "comment": "c", "duration": "1h"}, "matchers"),
        ({"matchers": ['instance=~"(db"'], "comment": "c", "duration": "1h"}, "matchers"),
        ({"matchers": ["1bad=x"], "comment": "c", "duration": "1h"}, "matchers"),
        (
            {"matchers": [{"name": "a", "op": "~", "value": "b"}], "comment": "c", "duration": "1h"},
            "matchers.0.op",
        ),
        (
            {"matchers": [{"name": "a", "op": "=~", "value": "("}], "comment": "c", "duration": "1h"},
            "matchers.0",
        ),
        ({"matchers": [42], "comment": "c", "duration": "1h"}, "matchers"),
        ({"matchers": "a=b", "duration": "1h"}, "comment"),
        ({"matchers": "a=b", "comment": "  ", "duration": "1h"}, "comment"),
        ({"matchers": "a=b", "comment": "c"}, "body"),
        ({"matchers": "a=b", "comment": "c", "duration": "1h", "ends_at": "2026-03-02T12:00:00Z"}, "body"),
        ({"matchers": "a=b", "comment": "c", "duration": "soon"}, "duration"),
        ({"matchers": "a=b", "comment": "c", "duration": "-5"}, "duration"),
        ({"matchers": "a=b", "comment": "c", "duration": 0}, "duration"),
        ({"matchers": "a=b", "comment": "c", "duration": "400d"}, "ends_at"),
        ({"matchers": "a=b", "comment": "c", "ends_at": "2026-03-02T12:00:00"}, "ends_at"),
        ({"matchers": "a=b", "comment": "c", "ends_at": "2026-03-01T12:00:00Z"}, "ends_at"),
        ({"matchers": "a=b", "comment": "c", "ends_at": "tomorrow"}, "ends_at"),
        (
            {
                "matchers": "a=b",
                "comment": "c",
                "starts_at": "2026-03-04T00:00:00Z",
                "ends_at": "2026-03-03T00:00Z",
            },
            "ends_at",
        ),
    ],
)
def test_bad_input_is_422_naming_the_field_and_changes_nothing(
    client: TestClient, accounts: dict[str, Account], db: Database, body: dict[str, Any], field: str
) -> None:
    r = client.post("/api/v1/silences", json=body, headers=accounts["responder"].headers)
    got = problem(r, 422)
    fields = {e["field"] for e in got.get("errors", [])}
    assert field in fields or any(f.startswith(field) for f in fields), got
    assert count(db) == 0


def test_malformed_json_and_unknown_ids(client: TestClient, accounts: dict[str, Account]) -> None:
    h = accounts["responder"].headers | {"content-type": "application/json"}
    problem(client.post("/api/v1/silences", content=b"{not json", headers=h), 400)
    problem(client.get("/api/v1/silences/424242", headers=h), 404)
    problem(client.delete("/api/v1/silences/424242", headers=h), 404)
    problem(client.get("/api/v1/silences/0", headers=h), 422)
    problem(client.get("/api/v1/silences/99999999999", headers=h), 422)
    problem(client.get("/api/v1/silences", params={"cursor": "x"}, headers=h), 422)


def test_viewer_may_read_and_preview_but_not_write(
    client: TestClient, accounts: dict[str, Account], db: Database
) -> None:
    sid = new(client, accounts["responder"])["id"]
    v = accounts["viewer"].headers
    problem(
        client.post(
            "/api/v1/silences", json={"matchers": "a=b", "comment": "c", "duration": "1h"}, headers=v
        ),
        403,
    )
    problem(client.patch(f"/api/v1/silences/{sid}", json={"comment": "x"}, headers=v), 403)
    problem(client.delete(f"/api/v1/silences/{sid}", headers=v), 403)
    assert count(db) == 1
    assert ok(client.get(f"/api/v1/silences/{sid}", headers=v))["state"] == "active"
    assert ok(client.post("/api/v1/silences/preview", json={"matchers": ["a=b"]}, headers=v))["count"] == 0


def test_preview_api(
    client: TestClient, accounts: dict[str, Account], db: Database, clock: ManualClock
) -> None:
    fire(
        db, clock, ("disk db-1", {"alertname": "DiskFull", "instance": "db-1"}), ("cpu", {"alertname": "CPU"})
    )
    h = accounts["viewer"].headers
    got = ok(client.post("/api/v1/silences/preview", json={"matchers": ['instance=~"db-.*"']}, headers=h))
    assert got["count"] == 1 and got["sample"][0]["summary"] == "disk db-1"
    problem(client.post("/api/v1/silences/preview", json={"matchers": ["x=~("]}, headers=h), 422, "matchers")


# --- CLI -----------------------------------------------------------------------------------------

runner = CliRunner()


@pytest.fixture
def cli(db: Database, db_url: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch, clock: ManualClock) -> Any:
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


def test_cli_add_list_expire(cli: Any, db: Database) -> None:
    out = cli(
        "silence", "add", "alertname=DiskFull", 'instance=~"db-.*"', "--duration", "2h", "--comment", "swap"
    )
    assert (
        'silence 1 active until 2026-03-02 11:00 UTC: {alertname="DiskFull", instance=~"db-.*"}' in out.output
    )
    cli(
        "silence",
        "add",
        "job=backup",
        "--until",
        "2026-03-04T00:00",
        "--start",
        "2026-03-03T00:00",
        "--comment",
        "x",
    )

    listed = json.loads(cli("silence", "list", "--json").output)
    assert [(x["id"], x["state"]) for x in listed] == [(2, "pending"), (1, "active")]
    assert [x["id"] for x in json.loads(cli("silence", "list", "--state", "pending", "--json").output)] == [2]
    assert "swap" in cli("silence", "list").output

    assert "silence 1 expired" in cli("silence", "expire", "1").output
    assert json.loads(cli("silence", "list", "--state", "expired", "--json").output)[0]["id"] == 1
    with db.session() as s:
        assert s.scalar(select(AuditEntry.actor).where(AuditEntry.entity_type == "silence")) == "cli"


def test_cli_bad_input_exits_1_and_changes_nothing(cli: Any, db: Database) -> None:
    for args in [
        ("silence", "add", 'team=""', "--duration", "1h", "--comment", "x"),
        ("silence", "add", "a=~(", "--duration", "1h", "--comment", "x"),
        ("silence", "add", "a=b", "--comment", "x"),
        ("silence", "add", "a=b", "--duration", "forever", "--comment", "x"),
        ("silence", "add", "a=b", "--until", "next week", "--comment", "x"),
        ("silence", "add", "a=b", "--duration", "1h", "--comment", ""),
        ("silence", "expire", "77"),
        ("silence", "list", "--state", "gone"),
    ]:
        result = cli(*args, ok=False)
        assert result.exit_code == 1, (args, result.output)
        assert "error:" in result.output
    assert count(db) == 0


# --- page ----------------------------------------------------------------------------------------


def test_page_tabs_create_preview_and_expire(
    client: TestClient, accounts: dict[str, Account], db: Database, clock: ManualClock
) -> None:
    fire(db, clock, ("disk db-1", {"alertname": "DiskFull", "instance": "db-1"}))
    csrf = login(client, accounts["responder"].email, PASSWORD)

    page = client.get("/silences", headers=HTML)
    assert page.status_code == 200 and "No active silences." in page.text and 'id="silence-form"' in page.text

    preview = client.post(
        "/silences/preview", data={"matchers": 'alertname="DiskFull"\ninstance=~"db-.*"', "csrf_token": csrf}
    )
    assert preview.status_code == 200 and 'data-count="1"' in preview.text and "disk db-1" in preview.text
    bad = client.post("/silences/preview", data={"matchers": "x=~(", "csrf_token": csrf})
    assert "invalid regular expression" in bad.text
    everything = client.post("/silences/preview", data={"matchers": 'x=~".*"', "csrf_token": csrf})
    assert "would match every alert" in everything.text

    r = client.post(
        "/silences",
        data={
            "matchers": "alertname=DiskFull\n",
            "duration": "4h",
            "comment": "disk swap",
            "csrf_token": csrf,
        },
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"].startswith("/silences?state=active")
    listed = client.get("/silences?state=active", headers=HTML).text
    assert "alertname=&#34;DiskFull&#34;" in listed and "disk swap" in listed

    sid = count(db)
    r = client.post(
        f"/silences/{sid}/expire", data={"csrf_token": csrf, "state": "active"}, follow_redirects=False
    )
    assert r.status_code == 303
    expired = client.get("/silences?state=expired", headers=HTML).text
    assert "Recreate" in expired and "matcher=alertname%3D%22DiskFull%22" in expired
    again = client.post(f"/silences/{sid}/expire", data={"csrf_token": csrf}, follow_redirects=False)
    assert again.status_code == 303 and "already+expired" in again.headers["location"]


def test_page_form_errors_are_shown_and_nothing_is_saved(
    client: TestClient, accounts: dict[str, Account], db: Database
) -> None:
    csrf = login(client, accounts["responder"].email, PASSWORD)
    for data, message in [
        ({"matchers": "x=~(", "duration": "1h", "comment": "c"}, "invalid regular expression"),
        ({"matchers": 'team=""', "duration": "1h", "comment": "c"}, "must not match the empty string"),
        ({"matchers": "a=b", "duration": "", "comment": "c"}, "give a duration or an end time"),
        ({"matchers": "a=b", "duration": "soon", "comment": "c"}, "is not a duration"),
        ({"matchers": "a=b", "duration": "1h", "comment": ""}, "comment"),
        ({"matchers": "a=b", "until": "2026-03-01T10:00", "comment": "c"}, "must be in the future"),
        ({"matchers": "a=b", "until": "whenever", "comment": "c"}, "not a date and time"),
    ]:
        r = client.post("/silences", data={**data, "csrf_token": csrf}, headers=HTML)
        assert r.status_code == 422, (data, r.status_code)
        assert message in r.text, (data, message)
    assert count(db) == 0


def test_page_prefill_from_matcher_query(client: TestClient, accounts: dict[str, Account]) -> None:
    login(client, accounts["responder"].email, PASSWORD)
    r = client.get("/silences", params={"matcher": ['alertname="DiskFull"', "instance=db-1"]}, headers=HTML)
    assert r.status_code == 200
    assert '<details id="new" open>' in r.text
    assert "alertname=&#34;DiskFull&#34;\ninstance=db-1</textarea>" in r.text


def test_viewer_sees_no_form_and_cannot_post(
    client: TestClient, accounts: dict[str, Account], db: Database
) -> None:
    csrf = login(client, accounts["viewer"].email, PASSWORD)
    page = client.get("/silences", headers=HTML)
    assert page.status_code == 200 and 'id="silence-form"' not in page.text
    r = client.post(
        "/silences",
        data={"matchers": "a=b", "duration": "1h", "comment": "c", "csrf_token": csrf},
        headers=HTML,
    )
    assert r.status_code == 403
    assert count(db) == 0
