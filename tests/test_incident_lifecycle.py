"""The incident lifecycle through the JSON API and the CLI (SQLite and PostgreSQL): states and the
refused transitions, priority, assignment, tags, stakeholder updates, related incidents, and
correlation by hand (merge, split) with alerts made by the real pipeline."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from opsdesk.alerts.service import process_pending
from opsdesk.auth import service as auth
from opsdesk.auth.schemas import UserUpdate
from opsdesk.cli import common
from opsdesk.cli.main import app as cli_app
from opsdesk.core.actor import SYSTEM
from opsdesk.core.clock import ManualClock
from opsdesk.core.db import Database
from tests.conftest import Account

# --- helpers -------------------------------------------------------------------------------------


def ok(r: Any, status: int = 200) -> Any:
    assert r.status_code == status, r.text
    return r.json() if r.content else None


def problem(r: Any, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    return dict(r.json())


class Api:
    def __init__(self, client: TestClient, accounts: dict[str, Account], db: Database, clock: ManualClock):
        self.client, self.accounts, self.db, self.clock = client, accounts, db, clock
        self.team_id = 0

    def h(self, role: str) -> dict[str, str]:
        return self.accounts[role].headers

    def get(self, ref: object, role: str = "viewer") -> dict[str, Any]:
        return dict(ok(self.client.get(f"/api/v1/incidents/{ref}", headers=self.h(role))))

    def post(self, ref: object, action: str, body: Any = None, role: str = "responder") -> Any:
        return self.client.post(f"/api/v1/incidents/{ref}/{action}", json=body, headers=self.h(role))

    def patch(self, ref: object, body: Any, role: str = "responder") -> Any:
        return self.client.patch(f"/api/v1/incidents/{ref}", json=body, headers=self.h(role))

    def event(self, summary: str, service: str, status: str = "firing", **extra: Any) -> None:
        body = {"summary": summary, "service": service, "status": status, **extra}
        ok(self.client.post("/api/v1/events", json=body, headers=self.h("responder")), 202)
        with self.db.session() as s:
            process_pending(s, now=self.clock.now())

    def incident_of(self, summary: str) -> dict[str, Any]:
        alerts = ok(self.client.get("/api/v1/alerts", params={"limit": 500}, headers=self.h("viewer")))
        (alert,) = [a for a in alerts["items"] if a["summary"] == summary]
        return self.get(alert["incident_id"])

    def declare(self, title: str, **body: Any) -> dict[str, Any]:
        r = self.client.post("/api/v1/incidents", json={"title": title, **body}, headers=self.h("responder"))
        return dict(ok(r, 201))

    def kinds(self, ref: object) -> list[str]:
        return [e["kind"] for e in self.get(ref)["timeline"]]


@pytest.fixture
def api(client: TestClient, accounts: dict[str, Account], db: Database, clock: ManualClock) -> Api:
    a = Api(client, accounts, db, clock)
    team = ok(
        client.post(
            "/api/v1/teams",
            json={"name": "payments", "member_ids": [accounts["responder"].user.id]},
            headers=a.h("admin"),
        ),
        201,
    )
    a.team_id = team["id"]
    for name, owner in (("checkout", team["id"]), ("search", None)):
        ok(
            client.post(
                "/api/v1/services", json={"name": name, "owner_team_id": owner}, headers=a.h("admin")
            ),
            201,
        )
    return a


@pytest.fixture
def inc(api: Api) -> dict[str, Any]:
    """A triggered incident on checkout, opened by one alert through the pipeline."""
    api.event("checkout answers 503", "checkout")
    return api.incident_of("checkout answers 503")


# --- states --------------------------------------------------------------------------------------


def test_ack_resolve_reopen_and_close(api: Api, inc: dict[str, Any]) -> None:
    ref = inc["key"]
    assert ok(api.patch(ref, {"impact": "low", "urgency": "medium"}))["priority"] == "P4"

    acked = ok(api.post(ref, "ack", {"note": "looking"}))
    resolved = ok(api.post(ref, "resolve", {"note": "restarted"}))
    reopened = ok(api.post(ref, "reopen", {"note": "back again"}))

    assert (
        acked["status"] == "acknowledged" and acked["acknowledged_by_id"] == api.accounts["responder"].user.id
    )
    assert resolved["status"] == "resolved" and resolved["resolved_at"]
    assert resolved["postmortem_id"] is not None, "resolving drafts the postmortem"
    assert (reopened["status"], reopened["reopened_count"]) == ("triggered", 1)
    assert reopened["resolved_at"] is None and reopened["acknowledged_at"] is None
    reopen_entry = [e for e in reopened["timeline"] if e["kind"] == "reopened"][-1]
    assert reopen_entry["actor"] == "responder@example.org" and "back again" in reopen_entry["message"]

    ok(api.post(ref, "resolve"))
    closed = ok(api.post(ref, "close", {"note": "done"}))

    assert closed["closed_at"] is not None and closed["status"] == "resolved"
    assert [k for k in api.kinds(ref) if k in ("acknowledged", "resolved", "reopened", "closed")] == [
        "acknowledged",
        "resolved",
        "reopened",
        "resolved",
        "closed",
    ]
    assert ok(api.post(ref, "close"))["closed_at"] == closed["closed_at"], "closing again changes nothing"


def test_closed_incident_refuses_reopen_and_changes_but_takes_comments(api: Api, inc: dict[str, Any]) -> None:
    ref = inc["id"]
    ok(api.patch(ref, {"impact": "low", "urgency": "low"}))
    ok(api.post(ref, "resolve"))
    ok(api.post(ref, "close"))
    before = api.get(ref)

    for action, body in (
        ("reopen", None),
        ("ack", None),
        ("updates", {"status": "monitoring", "message": "x"}),
    ):
        assert "closed" in problem(api.post(ref, action, body), 409)["detail"]
    problem(api.patch(ref, {"impact": "high"}), 409)

    assert api.get(ref) == before
    after = ok(api.post(ref, "comment", {"text": "follow-up in PRB-3"}))
    assert after["timeline"][-1]["message"] == "follow-up in PRB-3"
    assert ok(api.patch(ref, {"tags": ["Followed-Up"]}))["tags"] == ["followed-up"]


def test_refused_transitions_are_409_and_change_nothing(api: Api, inc: dict[str, Any]) -> None:
    ref = inc["key"]
    before = api.get(ref)

    assert "not resolved" in problem(api.post(ref, "reopen"), 409)["detail"]
    assert "resolve it before closing" in problem(api.post(ref, "close"), 409)["detail"]

    assert api.get(ref) == before


def test_close_is_refused_until_the_postmortem_of_a_p1_is_published(api: Api, inc: dict[str, Any]) -> None:
    ref = inc["key"]
    ok(api.patch(ref, {"impact": "high", "urgency": "high"}))
    ok(api.post(ref, "resolve"))
    before = api.get(ref)

    body = problem(api.post(ref, "close"), 409)

    assert "P1" in body["detail"] and "postmortem" in body["detail"]
    assert body["reason"] == body["detail"]
    assert api.get(ref) == before


def test_unknown_incident_is_404_for_every_action(api: Api) -> None:
    for action in ("ack", "resolve", "reopen", "close"):
        problem(api.post("INC-999", action), 404)
    problem(api.post(999, "comment", {"text": "x"}), 404)
    problem(api.patch(999, {"impact": "high"}), 404)


# --- declaring -----------------------------------------------------------------------------------


def test_declare_an_incident_by_hand(api: Api) -> None:
    inc = api.declare("Printers offline", service="checkout", severity="critical", description="Floor 3 too")

    assert (inc["status"], inc["severity"], inc["priority"]) == ("triggered", "critical", "P1")
    assert inc["team_id"] is not None, "the team defaults to the service's owner team"
    opened, comment = inc["timeline"][0], next(e for e in inc["timeline"] if e["kind"] == "comment")
    assert opened["kind"] == "opened" and opened["actor"] == "responder@example.org"
    assert comment["message"] == "Floor 3 too"
    assert inc["id"] in [
        i["id"] for i in ok(api.client.get("/api/v1/incidents", headers=api.h("viewer")))["items"]
    ]


def test_declare_takes_impact_and_urgency_over_the_severity(api: Api) -> None:
    inc = api.declare("VPN flaps", severity="warning", impact="high", urgency="low")

    assert (inc["impact"], inc["urgency"], inc["priority"], inc["service_id"]) == ("high", "low", "P3", None)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"title": "x", "service": "nope"}, "service"),
        ({"title": "x", "severity": "fatal"}, "severity"),
        ({"title": "x", "impact": "huge"}, "impact"),
        ({"title": ""}, "title"),
        ({"title": 42}, "title"),
        ({"title": "x", "colour": "red"}, "colour"),
        ({}, "title"),
    ],
)
def test_declare_rejects_bad_input(api: Api, body: dict[str, Any], field: str) -> None:
    r = api.client.post("/api/v1/incidents", json=body, headers=api.h("responder"))

    err = problem(r, 422)
    assert field in {e["field"] for e in err["errors"]}
    assert ok(api.client.get("/api/v1/incidents", headers=api.h("viewer")))["items"] == []


# --- priority and severity -----------------------------------------------------------------------

MATRIX = [
    ("high", "high", "P1"),
    ("high", "medium", "P2"),
    ("high", "low", "P3"),
    ("medium", "high", "P2"),
    ("medium", "medium", "P3"),
    ("medium", "low", "P4"),
    ("low", "high", "P3"),
    ("low", "medium", "P4"),
    ("low", "low", "P5"),
]


@pytest.mark.parametrize(("impact", "urgency", "priority"), MATRIX)
def test_priority_follows_impact_and_urgency(
    api: Api, inc: dict[str, Any], impact: str, urgency: str, priority: str
) -> None:
    out = ok(api.patch(inc["id"], {"impact": impact, "urgency": urgency}))

    assert (out["impact"], out["urgency"], out["priority"]) == (impact, urgency, priority)
    listed = ok(api.client.get("/api/v1/incidents", params={"priority": priority}, headers=api.h("viewer")))
    assert [i["id"] for i in listed["items"]] == [inc["id"]]


def test_priority_and_severity_changes_are_in_the_timeline(api: Api, inc: dict[str, Any]) -> None:
    ok(api.patch(inc["id"], {"impact": "high", "urgency": "high", "severity": "critical"}))
    ok(api.patch(inc["id"], {"urgency": "low"}))  # impact stays high

    out = api.get(inc["id"])
    assert (out["priority"], out["severity"]) == ("P3", "critical")
    messages = [e["message"] for e in out["timeline"] if e["kind"] in ("priority", "severity")]
    assert any("→ P1" in m for m in messages) and any("P1 → P3" in m for m in messages)
    assert any("→ critical" in m for m in messages)


def test_unchanged_values_record_nothing(api: Api, inc: dict[str, Any]) -> None:
    before = api.get(inc["id"])

    after = ok(api.patch(inc["id"], {"impact": before["impact"], "severity": before["severity"], "tags": []}))

    assert after["timeline"] == before["timeline"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"impact": "extreme"}, "impact"),
        ({"urgency": 3}, "urgency"),
        ({"severity": "fatal"}, "severity"),
        ({"title": None}, "title"),
        ({"title": ""}, "title"),
        ({"tags": None}, "tags"),
        ({"tags": "db"}, "tags"),
        ({"status": "resolved"}, "status"),
        ({"team_id": "payments"}, "team_id"),
        ({"assignee_id": 0}, "assignee_id"),
        ({"assignee_id": 2**40}, "assignee_id"),
    ],
)
def test_patch_rejects_bad_input_and_changes_nothing(
    api: Api, inc: dict[str, Any], body: dict[str, Any], field: str
) -> None:
    before = api.get(inc["id"])

    err = problem(api.patch(inc["id"], body), 422)

    assert field in {e["field"] for e in err["errors"]}
    assert api.get(inc["id"]) == before


def test_malformed_json_is_400(api: Api, inc: dict[str, Any]) -> None:
    r = api.client.patch(
        f"/api/v1/incidents/{inc['id']}",
        content=b"{not json",
        headers={**api.h("responder"), "content-type": "application/json"},
    )
    problem(r, 400)


# --- assignment ----------------------------------------------------------------------------------


def test_assign_team_person_and_roles(api: Api, inc: dict[str, Any]) -> None:
    responder, manager = api.accounts["responder"].user, api.accounts["manager"].user
    team_id = api.team_id
    ok(api.patch(inc["id"], {"team_id": None}))  # correlation may have set the service's owner team

    out = ok(
        api.patch(
            inc["id"],
            {
                "team_id": team_id,
                "assignee_id": responder.id,
                "commander_id": manager.id,
                "comms_lead_id": manager.id,
            },
        )
    )

    assert (out["team_id"], out["assignee_id"]) == (team_id, responder.id)
    assert (out["commander_id"], out["comms_lead_id"]) == (manager.id, manager.id)
    assignment = [e["message"] for e in out["timeline"] if e["kind"] == "assignment"]
    assert any("payments" in m for m in assignment)
    assert any("Incident commander: manager@example.org" in m for m in assignment)
    assert any("Communications lead: manager@example.org" in m for m in assignment)
    assert not [e for e in out["timeline"] if e["kind"] == "warning"], "the responder is in the team"
    mine = ok(
        api.client.get("/api/v1/incidents", params={"assignee_id": responder.id}, headers=api.h("viewer"))
    )
    assert [i["id"] for i in mine["items"]] == [inc["id"]]
    by_team = ok(api.client.get("/api/v1/incidents", params={"team_id": team_id}, headers=api.h("viewer")))
    assert [i["id"] for i in by_team["items"]] == [inc["id"]]


def test_assignee_outside_the_team_is_accepted_with_a_warning(api: Api, inc: dict[str, Any]) -> None:
    team_id = api.team_id
    viewer = api.accounts["viewer"].user

    out = ok(api.patch(inc["id"], {"team_id": team_id, "assignee_id": viewer.id}))

    assert out["assignee_id"] == viewer.id
    (warning,) = [e for e in out["timeline"] if e["kind"] == "warning"]
    assert "viewer@example.org is not a member of team payments" in warning["message"]


def test_clearing_the_assignee_with_null(api: Api, inc: dict[str, Any]) -> None:
    ok(api.patch(inc["id"], {"assignee_id": api.accounts["responder"].user.id}))

    out = ok(api.patch(inc["id"], {"assignee_id": None}))

    assert out["assignee_id"] is None
    assert "Assignee cleared by responder@example.org" in out["timeline"][-1]["message"]


@pytest.mark.parametrize("field", ["team_id", "assignee_id", "commander_id", "comms_lead_id"])
def test_unknown_team_or_person_is_422_and_changes_nothing(api: Api, inc: dict[str, Any], field: str) -> None:
    before = api.get(inc["id"])

    err = problem(api.patch(inc["id"], {"impact": "high", field: 9999}), 422)

    assert err["errors"][0]["field"] == field and "9999" in err["errors"][0]["message"]
    assert api.get(inc["id"]) == before, "the impact change in the same request was rolled back"


def test_deactivated_user_cannot_be_assigned(api: Api, inc: dict[str, Any]) -> None:
    manager = api.accounts["manager"].user
    with api.db.session() as s:
        auth.update_user(s, manager.id, UserUpdate(active=False), actor=SYSTEM, now=api.clock.now())

    err = problem(api.patch(inc["id"], {"assignee_id": manager.id}), 422)

    assert "deactivated" in err["detail"]


# --- tags ----------------------------------------------------------------------------------------


def test_tags_are_lowercased_deduplicated_and_filterable(api: Api, inc: dict[str, Any]) -> None:
    other = api.declare("unrelated")
    ok(api.patch(other["id"], {"tags": ["db_x"]}))

    out = ok(api.patch(inc["id"], {"tags": ["DB", "customer-facing", "db", " eu:west-1 "]}))

    assert out["tags"] == ["db", "customer-facing", "eu:west-1"]
    assert "added db, customer-facing, eu:west-1" in out["timeline"][-1]["message"]
    found = ok(api.client.get("/api/v1/incidents", params={"tag": "DB"}, headers=api.h("viewer")))
    assert [i["id"] for i in found["items"]] == [inc["id"]]
    # "_" is a character in tags, not a LIKE wildcard: "db_x" matches only itself.
    found = ok(api.client.get("/api/v1/incidents", params={"tag": "db_x"}, headers=api.h("viewer")))
    assert [i["id"] for i in found["items"]] == [other["id"]]
    removed = ok(api.patch(inc["id"], {"tags": ["db"]}))
    assert "removed customer-facing, eu:west-1" in removed["timeline"][-1]["message"]


@pytest.mark.parametrize(
    "tags",
    [["-db"], ["a b"], ["x" * 51], [""], ["café"], [f"t{i}" for i in range(21)]],
    ids=["leading-dash", "space", "too-long", "empty", "non-ascii", "too-many"],
)
def test_bad_tags_are_422(api: Api, inc: dict[str, Any], tags: list[str]) -> None:
    before = api.get(inc["id"])

    err = problem(api.patch(inc["id"], {"tags": tags}), 422)

    assert err["errors"][0]["field"] == "tags"
    assert api.get(inc["id"]) == before


def test_twenty_duplicates_of_few_tags_are_fine(api: Api, inc: dict[str, Any]) -> None:
    out = ok(api.patch(inc["id"], {"tags": ["a", "A"] * 15}))

    assert out["tags"] == ["a"]


def test_list_filters_reject_bad_values(api: Api) -> None:
    for params, field in (
        ({"priority": "P9"}, "priority"),
        ({"tag": "no tags"}, "tag"),
        ({"status": "x"}, "status"),
    ):
        err = problem(api.client.get("/api/v1/incidents", params=params, headers=api.h("viewer")), 422)
        assert err["errors"][0]["field"] == field


def test_text_search_in_titles(api: Api) -> None:
    a = api.declare("Checkout 100% down")
    api.declare("Search slow")

    found = ok(api.client.get("/api/v1/incidents", params={"q": "100%"}, headers=api.h("viewer")))

    assert [i["id"] for i in found["items"]] == [a["id"]]
    found = ok(api.client.get("/api/v1/incidents", params={"q": "CHECKOUT"}, headers=api.h("viewer")))
    assert [i["id"] for i in found["items"]] == [a["id"]]


# --- comments and status updates -----------------------------------------------------------------


def test_comment_and_status_updates(api: Api, inc: dict[str, Any]) -> None:
    ok(api.post(inc["id"], "comment", {"text": "  db failover started\nETA 5 min  "}))
    ok(api.post(inc["id"], "updates", {"status": "investigating", "message": "Checkout is failing"}))
    api.clock.advance(seconds=60)
    out = ok(
        api.post(
            inc["id"], "updates", {"status": "identified", "message": "Database failover", "public": False}
        )
    )

    comment = next(e for e in out["timeline"] if e["kind"] == "comment")
    assert (comment["message"], comment["actor"]) == (
        "db failover started\nETA 5 min",
        "responder@example.org",
    )
    assert [(u["status"], u["public"], u["author"]) for u in out["updates"]] == [
        ("identified", False, "responder@example.org"),
        ("investigating", True, "responder@example.org"),
    ]
    assert [e["kind"] for e in out["timeline"]].count("status_update") == 2


@pytest.mark.parametrize(
    ("action", "body", "field"),
    [
        ("comment", {"text": ""}, "text"),
        ("comment", {"text": "   "}, "text"),
        ("comment", {}, "text"),
        ("comment", {"text": "x" * 10_001}, "text"),
        ("updates", {"status": "fixed", "message": "x"}, "status"),
        ("updates", {"status": "monitoring", "message": ""}, "message"),
        ("updates", {"status": "monitoring", "message": "x", "public": "maybe"}, "public"),
    ],
)
def test_comments_and_updates_reject_bad_input(
    api: Api, inc: dict[str, Any], action: str, body: dict[str, Any], field: str
) -> None:
    before = api.get(inc["id"])

    err = problem(api.post(inc["id"], action, body), 422)

    assert field in {e["field"] for e in err["errors"]}
    assert api.get(inc["id"]) == before


# --- related incidents ---------------------------------------------------------------------------


def test_related_incidents_are_listed_both_ways(api: Api, inc: dict[str, Any]) -> None:
    other = api.declare("Payments slow")

    a = ok(api.post(inc["key"], f"related/{other['key']}"))
    b = api.get(other["id"])

    assert [r["id"] for r in a["related"]] == [other["id"]]
    assert [r["id"] for r in b["related"]] == [inc["id"]]
    assert a["timeline"][-1]["kind"] == b["timeline"][-1]["kind"] == "related"
    assert problem(api.post(other["id"], f"related/{inc['id']}"), 409)["detail"].endswith("already related")

    out = api.client.delete(
        f"/api/v1/incidents/{other['id']}/related/{inc['id']}", headers=api.h("responder")
    )

    assert ok(out)["related"] == [] and api.get(inc["id"])["related"] == []
    problem(
        api.client.delete(f"/api/v1/incidents/{inc['id']}/related/{other['id']}", headers=api.h("responder")),
        404,
    )


def test_related_refuses_self_and_unknown(api: Api, inc: dict[str, Any]) -> None:
    before = api.get(inc["id"])

    assert problem(api.post(inc["id"], f"related/{inc['key']}"), 422)["errors"][0]["field"] == "related"
    problem(api.post(inc["id"], "related/INC-999"), 404)
    problem(api.post(inc["id"], "related/not-a-key"), 404)

    assert api.get(inc["id"]) == before


# --- merge and split -----------------------------------------------------------------------------


def _two_incidents(api: Api) -> tuple[dict[str, Any], dict[str, Any]]:
    api.event("checkout answers 503", "checkout")
    api.event("search index stale", "search")
    a, b = api.incident_of("checkout answers 503"), api.incident_of("search index stale")
    assert a["id"] != b["id"]
    return a, b


def test_merge_moves_the_alerts_and_resolves_the_others(api: Api) -> None:
    a, b = _two_incidents(api)

    out = ok(api.post(a["id"], "merge", {"incident_ids": [b["id"]]}))

    merged = api.get(b["id"])
    assert sorted(out["alert_ids"]) == sorted(a["alert_ids"] + b["alert_ids"])
    assert merged["alert_ids"] == []
    assert (merged["status"], merged["merged_into_id"]) == ("resolved", a["id"])
    assert merged["merged_into"]["key"] == a["key"] and out["merged_from"][0]["key"] == b["key"]
    assert "merged into this incident" in out["timeline"][-1]["message"]
    assert f"Merged into {a['key']}" in merged["timeline"][-1]["message"]
    for alert_id in b["alert_ids"]:
        alert = ok(api.client.get(f"/api/v1/alerts/{alert_id}", headers=api.h("viewer")))
        assert alert["incident_id"] == a["id"]


def test_acting_on_a_merged_incident_is_409_naming_the_survivor(api: Api) -> None:
    a, b = _two_incidents(api)
    ok(api.post(a["id"], "merge", {"incident_ids": [b["id"]]}))
    before = api.get(b["id"])

    for action, body in (("ack", None), ("reopen", None), ("comment", {"text": "x"}), ("close", None)):
        err = problem(api.post(b["id"], action, body), 409)
        assert a["key"] in err["detail"] and err["merged_into"] == a["key"]
    assert a["key"] in problem(api.patch(b["id"], {"impact": "high"}), 409)["detail"]
    assert a["key"] in problem(api.post(a["id"], "merge", {"incident_ids": [b["id"]]}), 409)["detail"]

    assert api.get(b["id"]) == before


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"incident_ids": []}, 422),
        ({"incident_ids": ["INC-2"]}, 422),
        ({"incident_ids": [999]}, 422),
        ({}, 422),
    ],
)
def test_merge_rejects_bad_input(api: Api, body: dict[str, Any], status: int) -> None:
    a, b = _two_incidents(api)
    before = (api.get(a["id"]), api.get(b["id"]))

    problem(api.post(a["id"], "merge", body), status)

    assert (api.get(a["id"]), api.get(b["id"])) == before


def test_merge_into_itself_or_into_a_resolved_incident_is_refused(api: Api) -> None:
    a, b = _two_incidents(api)

    assert (
        problem(api.post(a["id"], "merge", {"incident_ids": [a["id"]]}), 422)["errors"][0]["field"]
        == "incident_ids"
    )
    ok(api.post(a["id"], "resolve"))
    assert "reopen it" in problem(api.post(a["id"], "merge", {"incident_ids": [b["id"]]}), 409)["detail"]


def test_split_opens_a_new_incident_with_the_chosen_alerts(api: Api) -> None:
    a, b = _two_incidents(api)
    ok(api.patch(a["id"], {"impact": "high", "urgency": "high", "tags": ["db"]}))
    ok(api.post(a["id"], "merge", {"incident_ids": [b["id"]]}))
    (moving,) = b["alert_ids"]

    new = ok(api.post(a["id"], "split", {"alert_ids": [moving], "title": "Search index is stale"}), 201)

    src = api.get(a["id"])
    assert new["id"] not in (a["id"], b["id"])
    assert (new["title"], new["status"], new["alert_ids"]) == ("Search index is stale", "triggered", [moving])
    assert (new["service_id"], new["priority"], new["tags"]) == (a["service_id"], "P1", ["db"])
    assert src["alert_ids"] == a["alert_ids"]
    assert f"split off into {new['key']}" in src["timeline"][-1]["message"]
    assert f"Split from {a['key']}" in new["timeline"][0]["message"]


def test_split_title_defaults_to_the_first_alerts_summary(api: Api) -> None:
    a, b = _two_incidents(api)
    ok(api.post(a["id"], "merge", {"incident_ids": [b["id"]]}))

    new = ok(api.post(a["id"], "split", {"alert_ids": b["alert_ids"]}), 201)

    assert new["title"] == "search index stale"


def test_split_refuses_alerts_of_other_incidents(api: Api) -> None:
    a, b = _two_incidents(api)
    before = (api.get(a["id"]), api.get(b["id"]))

    err = problem(api.post(a["id"], "split", {"alert_ids": b["alert_ids"]}), 422)
    assert f"is not part of {a['key']}" in err["detail"]
    problem(api.post(a["id"], "split", {"alert_ids": []}), 422)
    problem(api.post(a["id"], "split", {"alert_ids": ["x"]}), 422)

    assert (api.get(a["id"]), api.get(b["id"])) == before
    assert len(ok(api.client.get("/api/v1/incidents", headers=api.h("viewer")))["items"]) == 2


# --- the CLI -------------------------------------------------------------------------------------

runner = CliRunner()


@pytest.fixture
def cli(api: Api, db_url: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("OPSDESK_DATABASE_URL", db_url)
    monkeypatch.setenv("OPSDESK_DATA_DIR", str(tmp_path))
    common.settings.cache_clear()
    common.database.cache_clear()

    def run(*args: str, ok: bool = True):  # type: ignore[no-untyped-def]
        result = runner.invoke(cli_app, list(args))
        if ok:
            assert result.exit_code == 0, result.output
        return result

    yield run
    common.database().dispose()
    common.settings.cache_clear()
    common.database.cache_clear()


def test_cli_works_an_incident_from_declare_to_close(cli, api: Api) -> None:  # type: ignore[no-untyped-def]
    assert (
        "INC-1 triggered P2" in cli("incident", "declare", "Mail queue stuck", "--service", "checkout").output
    )
    cli("incident", "priority", "INC-1", "--impact", "low", "--urgency", "low")
    cli("incident", "assign", "INC-1", "--team", "payments", "--user", "responder@example.org")
    cli("incident", "comment", "1", "restarting postfix", "--as", "responder@example.org")
    cli("incident", "update", "INC-1", "--status", "identified", "--message", "Postfix hung", "--private")
    cli("incident", "ack", "INC-1")
    cli("incident", "resolve", "INC-1")

    listed = json.loads(cli("incident", "list", "--status", "resolved", "--priority", "P5", "--json").output)
    assert [i["key"] for i in listed] == ["INC-1"]
    assert json.loads(cli("incident", "list", "--json").output) == []
    assert "closed" in cli("incident", "close", "INC-1").output
    shown = json.loads(cli("incident", "show", "INC-1", "--json").output)
    assert (shown["priority"], shown["closed_at"] is not None) == ("P5", True)
    assert shown["assignee_id"] == api.accounts["responder"].user.id
    assert [(u["status"], u["public"]) for u in shown["updates"]] == [("identified", False)]
    assert any(e["kind"] == "comment" and e["actor"] == "responder@example.org" for e in shown["timeline"])
    text = cli("incident", "show", "INC-1").output
    assert "Mail queue stuck" in text and "P5" in text and "Postfix hung" in text
    refused = cli("incident", "reopen", "INC-1", ok=False)
    assert refused.exit_code == 1 and "INC-1 is closed" in refused.output


def test_cli_merge_and_split(cli, api: Api) -> None:  # type: ignore[no-untyped-def]
    a, b = _two_incidents(api)

    assert f"merged {b['key']} into {a['key']}" in cli("incident", "merge", a["key"], b["key"]).output
    out = cli("incident", "split", a["key"], str(b["alert_ids"][0]), "--title", "Search").output

    assert "opened with 1 alert(s)" in out
    assert api.incident_of("search index stale")["title"] == "Search"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("incident", "assign", "INC-1", "--user", "nobody@example.org"), "no user with e-mail"),
        (("incident", "assign", "INC-1", "--team", "nope"), "no team named"),
        (("incident", "assign", "INC-1"), "give --team"),
        (("incident", "priority", "INC-1", "--impact", "huge", "--urgency", "low"), "impact"),
        (("incident", "update", "INC-1", "--status", "fixed", "--message", "x"), "status"),
        (("incident", "list", "--priority", "P0"), "P0"),
        (("incident", "declare", "x", "--service", "nope"), "no service named"),
        (("incident", "comment", "INC-99", "x"), "does not exist"),
        (("incident", "close", "INC-1"), "resolve it before closing"),
    ],
)
def test_cli_errors_are_one_clear_line(cli, api: Api, args: tuple[str, ...], message: str) -> None:  # type: ignore[no-untyped-def]
    api.declare("Mail queue stuck")
    before = api.get(1)

    result = cli(*args, ok=False)

    assert result.exit_code == 1 and message in result.output
    assert api.get(1) == before
