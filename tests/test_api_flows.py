"""The happy paths through the JSON API, and what each one leaves in the audit log and timelines.

The app under test runs no background roles, so tests that need alerts and incidents post events
and then run the pipeline themselves (``run_pipeline``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from opsdesk.alerts.service import process_pending
from opsdesk.core.clock import ManualClock
from opsdesk.core.db import Database
from tests.conftest import Account
from tests.support import stored_event_ids

# --- helpers -------------------------------------------------------------------------------------


def run_pipeline(db: Database, clock: ManualClock) -> int:
    with db.session() as s:
        return process_pending(s, now=clock.now())


def ok(r: Any, status: int = 200) -> Any:
    assert r.status_code == status, r.text
    return r.json() if r.content else None


def audit_trail(
    client: TestClient, who: Account, entity_type: str, entity_id: object
) -> list[dict[str, Any]]:
    """The audit entries of one object, oldest first, read as ``who``."""
    page = ok(
        client.get(
            "/api/v1/audit",
            params={"entity_type": entity_type, "entity_id": str(entity_id)},
            headers=who.headers,
        )
    )
    return list(reversed(page["items"]))


def post_events(client: TestClient, who: Account, body: Any) -> dict[str, Any]:
    return ok(client.post("/api/v1/events", json=body, headers=who.headers), 202)


def without(d: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in d.items() if k not in keys}


# --- CRUD, with the audit log --------------------------------------------------------------------


@dataclass(frozen=True)
class Kind:
    collection: str
    entity_type: str
    role: str  # the least role that manages it
    create: dict[str, Any]
    update: dict[str, Any]

    def __str__(self) -> str:
        return self.collection


KINDS = [
    Kind("services", "service", "manager", {"name": "checkout", "attributes": {"tier": 1}},
         {"description": "takes payments"}),
    Kind("cis", "ci", "manager", {"name": "db-1", "class": "database"}, {"description": "primary"}),
    Kind("teams", "team", "manager", {"name": "payments"}, {"description": "owns checkout"}),
    Kind("monitors", "monitor", "manager", {"name": "checkout-http", "target": "https://checkout.example.org/"},
         {"interval_seconds": 30}),
    Kind("users", "user", "admin", {"email": "new@example.org", "name": "New Person", "role": "responder"},
         {"name": "Renamed Person"}),
]  # fmt: skip


def create(client: TestClient, kind: Kind, who: Account) -> dict[str, Any]:
    return ok(client.post(f"/api/v1/{kind.collection}", json=kind.create, headers=who.headers), 201)


def listed_ids(client: TestClient, collection: str, who: Account) -> list[int]:
    page = ok(client.get(f"/api/v1/{collection}", params={"limit": 500}, headers=who.headers))
    return [item["id"] for item in page["items"]]


@pytest.mark.parametrize("kind", KINDS, ids=str)
def test_created_object_reads_back_and_is_listed(
    client: TestClient, accounts: dict[str, Account], kind: Kind
) -> None:
    who = accounts[kind.role]

    created = create(client, kind, who)

    fetched = ok(client.get(f"/api/v1/{kind.collection}/{created['id']}", headers=who.headers))
    assert fetched == created
    assert {k: fetched[k] for k in kind.create} == kind.create
    assert created["id"] in listed_ids(client, kind.collection, accounts["viewer"])


@pytest.mark.parametrize("kind", KINDS, ids=str)
def test_update_changes_only_the_given_fields(
    client: TestClient, accounts: dict[str, Account], kind: Kind
) -> None:
    who = accounts[kind.role]
    created = create(client, kind, who)
    url = f"/api/v1/{kind.collection}/{created['id']}"

    updated = ok(client.patch(url, json=kind.update, headers=who.headers))

    assert {k: updated[k] for k in kind.update} == kind.update
    untouched = [*kind.update, "updated_at", "next_check_at"]
    assert without(updated, *untouched) == without(created, *untouched)
    assert ok(client.get(url, headers=who.headers)) == updated


@pytest.mark.parametrize("kind", KINDS, ids=str)
def test_deleted_object_is_gone(client: TestClient, accounts: dict[str, Account], kind: Kind) -> None:
    who = accounts[kind.role]
    created = create(client, kind, who)
    url = f"/api/v1/{kind.collection}/{created['id']}"

    r = client.delete(url, headers=who.headers)

    assert r.status_code == 204
    assert r.content == b""
    assert client.get(url, headers=who.headers).status_code == 404
    assert created["id"] not in listed_ids(client, kind.collection, who)


@pytest.mark.parametrize("kind", KINDS, ids=str)
def test_create_update_delete_are_audited_with_who_before_and_after(
    client: TestClient, accounts: dict[str, Account], kind: Kind
) -> None:
    who = accounts[kind.role]
    created = create(client, kind, who)
    url = f"/api/v1/{kind.collection}/{created['id']}"
    ok(client.patch(url, json=kind.update, headers=who.headers))
    assert client.delete(url, headers=who.headers).status_code == 204

    trail = audit_trail(client, accounts["manager"], kind.entity_type, created["id"])

    assert [e["action"] for e in trail] == ["create", "update", "delete"]
    assert {e["actor"] for e in trail} == {who.email}
    made, changed, deleted = trail
    assert made["before"] is None
    assert made["after"]["name"] == created["name"]
    assert made["after"] == changed["before"]
    assert {k: changed["after"][k] for k in kind.update} == kind.update
    assert without(changed["after"], *kind.update) == without(changed["before"], *kind.update)
    assert deleted["before"] == changed["after"]
    assert deleted["after"] is None


def test_password_change_is_audited_without_the_password(
    client: TestClient, accounts: dict[str, Account]
) -> None:
    admin, viewer = accounts["admin"], accounts["viewer"]
    secret = "a brand new passphrase"

    ok(client.patch(f"/api/v1/users/{viewer.user.id}", json={"password": secret}, headers=admin.headers))

    (entry,) = [e for e in audit_trail(client, admin, "user", viewer.user.id) if e["action"] == "update"]
    assert entry["after"]["password"] == "***"
    assert secret not in orjson.dumps(entry).decode()


def test_team_members_are_set_and_audited(client: TestClient, accounts: dict[str, Account]) -> None:
    manager, responder = accounts["manager"], accounts["responder"]
    team = ok(client.post("/api/v1/teams", json={"name": "sre"}, headers=manager.headers), 201)

    updated = ok(
        client.patch(
            f"/api/v1/teams/{team['id']}", json={"member_ids": [responder.user.id]}, headers=manager.headers
        )
    )

    assert updated["member_ids"] == [responder.user.id]
    change = audit_trail(client, manager, "team", team["id"])[-1]
    assert (change["before"]["member_ids"], change["after"]["member_ids"]) == ([], [responder.user.id])


def test_relationship_create_list_and_delete_are_audited(
    client: TestClient, accounts: dict[str, Account]
) -> None:
    m = accounts["manager"]
    svc = ok(client.post("/api/v1/services", json={"name": "checkout"}, headers=m.headers), 201)
    ci = ok(client.post("/api/v1/cis", json={"name": "db-1", "class": "database"}, headers=m.headers), 201)
    edge = {"type": "depends_on", "source_type": "service", "source_id": svc["id"],
            "target_type": "ci", "target_id": ci["id"]}  # fmt: skip

    rel = ok(client.post("/api/v1/relationships", json=edge, headers=m.headers), 201)
    touching = ok(
        client.get(
            "/api/v1/relationships", params={"node_type": "ci", "node_id": ci["id"]}, headers=m.headers
        )
    )
    assert client.delete(f"/api/v1/relationships/{rel['id']}", headers=m.headers).status_code == 204

    assert (rel["source_name"], rel["target_name"]) == ("checkout", "db-1")
    assert [r["id"] for r in touching["items"]] == [rel["id"]]
    assert client.get(f"/api/v1/relationships/{rel['id']}", headers=m.headers).status_code == 404
    trail = audit_trail(client, m, "relationship", rel["id"])
    assert [(e["action"], e["actor"]) for e in trail] == [("create", m.email), ("delete", m.email)]
    assert trail[0]["after"]["target_name"] == "db-1"
    assert trail[1]["before"]["source_name"] == "checkout"


# --- tokens --------------------------------------------------------------------------------------


def test_new_token_is_shown_once_then_listed_only_by_prefix(
    client: TestClient, accounts: dict[str, Account]
) -> None:
    responder = accounts["responder"]

    created = ok(client.post("/api/v1/tokens", json={"name": "ci"}, headers=responder.headers), 201)

    listed = ok(client.get("/api/v1/tokens", headers=responder.headers))
    (item,) = [t for t in listed if t["id"] == created["id"]]
    assert created["token"].startswith(item["prefix"])
    assert len(item["prefix"]) < len(created["token"])
    assert all("token" not in t for t in listed)
    assert created["token"] not in orjson.dumps(listed).decode()


def test_new_token_authenticates_as_its_owner(client: TestClient, accounts: dict[str, Account]) -> None:
    responder = accounts["responder"]
    created = ok(client.post("/api/v1/tokens", json={"name": "ci"}, headers=responder.headers), 201)

    me = ok(client.get("/api/v1/me", headers={"Authorization": f"Bearer {created['token']}"}))

    assert me["email"] == responder.email


def test_token_creation_is_audited_without_the_secret(
    client: TestClient, accounts: dict[str, Account]
) -> None:
    responder = accounts["responder"]

    created = ok(client.post("/api/v1/tokens", json={"name": "ci"}, headers=responder.headers), 201)

    (entry,) = audit_trail(client, accounts["manager"], "api_token", created["id"])
    assert (entry["action"], entry["actor"], entry["after"]["prefix"]) == (
        "create",
        responder.email,
        created["prefix"],
    )
    assert created["token"] not in orjson.dumps(entry).decode()


def test_revoked_token_is_refused_and_listed_as_revoked(
    client: TestClient, accounts: dict[str, Account], clock: ManualClock
) -> None:
    responder = accounts["responder"]
    created = ok(client.post("/api/v1/tokens", json={"name": "ci"}, headers=responder.headers), 201)

    r = client.delete(f"/api/v1/tokens/{created['id']}", headers=responder.headers)

    assert r.status_code == 204
    assert (
        client.get("/api/v1/me", headers={"Authorization": f"Bearer {created['token']}"}).status_code == 401
    )
    (item,) = [
        t for t in ok(client.get("/api/v1/tokens", headers=responder.headers)) if t["id"] == created["id"]
    ]
    assert item["revoked_at"] is not None
    assert [e["action"] for e in audit_trail(client, accounts["manager"], "api_token", created["id"])] == [
        "create",
        "revoke",
    ]


def test_revoking_twice_is_idempotent(client: TestClient, accounts: dict[str, Account]) -> None:
    responder = accounts["responder"]
    created = ok(client.post("/api/v1/tokens", json={"name": "ci"}, headers=responder.headers), 201)
    assert client.delete(f"/api/v1/tokens/{created['id']}", headers=responder.headers).status_code == 204

    r = client.delete(f"/api/v1/tokens/{created['id']}", headers=responder.headers)

    assert r.status_code == 204
    actions = [e["action"] for e in audit_trail(client, accounts["manager"], "api_token", created["id"])]
    assert actions.count("revoke") == 1


# --- pagination ----------------------------------------------------------------------------------


def test_cursor_pagination_returns_every_service_exactly_once(
    client: TestClient, accounts: dict[str, Account]
) -> None:
    manager, viewer = accounts["manager"], accounts["viewer"]
    names = {f"service-{i}" for i in range(7)}
    for name in sorted(names):
        ok(client.post("/api/v1/services", json={"name": name}, headers=manager.headers), 201)

    seen: list[str] = []
    sizes: list[int] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = ok(client.get("/api/v1/services", params=params, headers=viewer.headers))
        seen += [s["name"] for s in page["items"]]
        sizes.append(len(page["items"]))
        cursor = page["next_cursor"]
        if cursor is None:
            break

    assert sizes == [3, 3, 1]
    assert sorted(seen) == sorted(names)


def test_alert_pages_run_newest_first_and_cover_every_alert(
    client: TestClient, accounts: dict[str, Account], db: Database, clock: ManualClock
) -> None:
    responder = accounts["responder"]
    post_events(client, responder, [{"summary": f"alert {i}", "labels": {"n": str(i)}} for i in range(5)])
    run_pipeline(db, clock)

    ids: list[int] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = ok(client.get("/api/v1/alerts", params=params, headers=responder.headers))
        ids += [a["id"] for a in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break

    assert len(ids) == 5
    assert ids == sorted(ids, reverse=True)
    assert len(set(ids)) == 5


# --- events --------------------------------------------------------------------------------------


def test_single_event_is_accepted_with_its_id(
    client: TestClient, accounts: dict[str, Account], db: Database
) -> None:
    answer = post_events(client, accounts["responder"], {"summary": "disk full"})

    assert answer["accepted"] == 1
    assert answer["ids"] == stored_event_ids(db)


def test_json_array_of_events_is_accepted(
    client: TestClient, accounts: dict[str, Account], db: Database
) -> None:
    answer = post_events(
        client, accounts["responder"], [{"summary": "a"}, {"summary": "b"}, {"summary": "c"}]
    )

    assert answer["accepted"] == 3
    assert sorted(answer["ids"]) == stored_event_ids(db)


def test_events_object_is_accepted(client: TestClient, accounts: dict[str, Account], db: Database) -> None:
    answer = post_events(client, accounts["responder"], {"events": [{"summary": "a"}, {"summary": "b"}]})

    assert answer["accepted"] == 2
    assert sorted(answer["ids"]) == stored_event_ids(db)


def test_batch_of_1000_events_is_accepted(
    client: TestClient, accounts: dict[str, Account], db: Database
) -> None:
    answer = post_events(client, accounts["responder"], [{"summary": f"event {i}"} for i in range(1000)])

    assert answer["accepted"] == 1000
    assert len(stored_event_ids(db)) == 1000


def test_same_fingerprint_twice_gives_one_alert_with_event_count_2(
    client: TestClient, accounts: dict[str, Account], db: Database, clock: ManualClock
) -> None:
    responder = accounts["responder"]
    post_events(client, responder, {"summary": "disk 91% full", "fingerprint": "disk:db-1"})
    post_events(client, responder, {"summary": "disk 95% full", "fingerprint": "disk:db-1"})

    assert run_pipeline(db, clock) == 2

    (alert,) = ok(client.get("/api/v1/alerts", headers=responder.headers))["items"]
    assert (alert["fingerprint"], alert["event_count"], alert["status"]) == ("disk:db-1", 2, "firing")
    assert alert["summary"] == "disk 95% full"


def test_same_labels_without_fingerprint_give_one_alert(
    client: TestClient, accounts: dict[str, Account], db: Database, clock: ManualClock
) -> None:
    responder = accounts["responder"]
    post_events(client, responder, [{"summary": "first", "labels": {"host": "db-1", "check": "disk"}}])
    post_events(client, responder, [{"summary": "second", "labels": {"check": "disk", "host": "db-1"}}])

    run_pipeline(db, clock)

    (alert,) = ok(client.get("/api/v1/alerts", headers=responder.headers))["items"]
    assert alert["event_count"] == 2


@pytest.fixture
def checkout(client: TestClient, accounts: dict[str, Account]) -> dict[str, Any]:
    return ok(
        client.post("/api/v1/services", json={"name": "checkout"}, headers=accounts["manager"].headers), 201
    )


@pytest.fixture
def incident(
    client: TestClient,
    accounts: dict[str, Account],
    db: Database,
    clock: ManualClock,
    checkout: dict[str, Any],
) -> dict[str, Any]:
    """A triggered incident on service checkout, opened by one firing alert (fingerprint ``cpu``)."""
    post_events(
        client, accounts["responder"], {"summary": "CPU high", "fingerprint": "cpu", "service": "checkout"}
    )
    assert run_pipeline(db, clock) == 1
    clock.advance(60)
    (inc,) = ok(client.get("/api/v1/incidents", headers=accounts["viewer"].headers))["items"]
    return ok(client.get(f"/api/v1/incidents/{inc['id']}", headers=accounts["viewer"].headers))


def test_firing_event_opens_an_incident_for_its_service(
    incident: dict[str, Any], checkout: dict[str, Any]
) -> None:
    assert (incident["status"], incident["service_id"]) == ("triggered", checkout["id"])
    assert incident["key"] == f"INC-{incident['id']}"
    assert len(incident["alert_ids"]) == 1
    assert incident["timeline"][0]["kind"] == "opened"


def test_resolved_event_resolves_the_alert_and_auto_resolves_the_incident(
    client: TestClient,
    accounts: dict[str, Account],
    db: Database,
    clock: ManualClock,
    incident: dict[str, Any],
) -> None:
    viewer = accounts["viewer"]
    post_events(
        client, accounts["responder"], {"summary": "CPU normal", "fingerprint": "cpu", "status": "resolved"}
    )

    run_pipeline(db, clock)

    (alert_id,) = incident["alert_ids"]
    alert = ok(client.get(f"/api/v1/alerts/{alert_id}", headers=viewer.headers))
    assert (alert["status"], alert["event_count"]) == ("resolved", 2)
    after = ok(client.get(f"/api/v1/incidents/{incident['id']}", headers=viewer.headers))
    assert (after["status"], after["resolved_by_id"]) == ("resolved", None)
    assert after["resolved_at"] is not None
    kinds = [e["kind"] for e in after["timeline"]]
    assert kinds.index("alert_resolved") < kinds.index("resolved")


def test_incident_stays_open_while_another_alert_fires(
    client: TestClient,
    accounts: dict[str, Account],
    db: Database,
    clock: ManualClock,
    incident: dict[str, Any],
) -> None:
    responder = accounts["responder"]
    post_events(client, responder, {"summary": "Memory high", "fingerprint": "mem", "service": "checkout"})
    run_pipeline(db, clock)
    post_events(client, responder, {"summary": "CPU normal", "fingerprint": "cpu", "status": "resolved"})

    run_pipeline(db, clock)

    after = ok(client.get(f"/api/v1/incidents/{incident['id']}", headers=responder.headers))
    assert after["status"] == "triggered"
    assert len(after["alert_ids"]) == 2


# --- acting on incidents -------------------------------------------------------------------------


def act(client: TestClient, who: Account, ref: object, action: str, note: str | None = None) -> Any:
    body = {"note": note} if note is not None else None
    return client.post(f"/api/v1/incidents/{ref}/{action}", json=body, headers=who.headers)


def test_ack_records_who_and_when_with_a_timeline_entry(
    client: TestClient, accounts: dict[str, Account], clock: ManualClock, incident: dict[str, Any]
) -> None:
    responder = accounts["responder"]

    acked = ok(act(client, responder, incident["id"], "ack", "looking"))

    assert acked["status"] == "acknowledged"
    assert acked["acknowledged_by_id"] == responder.user.id
    assert acked["acknowledged_at"] == clock.now().isoformat().replace("+00:00", "Z")
    last = acked["timeline"][-1]
    assert (last["kind"], last["actor"]) == ("acknowledged", responder.email)
    assert "looking" in last["message"]


def test_ack_by_key(client: TestClient, accounts: dict[str, Account], incident: dict[str, Any]) -> None:
    acked = ok(act(client, accounts["responder"], incident["key"], "ack"))

    assert (acked["id"], acked["status"]) == (incident["id"], "acknowledged")


def test_resolve_by_key_closes_its_alerts_with_a_timeline_entry(
    client: TestClient, accounts: dict[str, Account], incident: dict[str, Any]
) -> None:
    responder = accounts["responder"]

    resolved = ok(act(client, responder, incident["key"], "resolve", "restarted the pod"))

    assert (resolved["status"], resolved["resolved_by_id"]) == ("resolved", responder.user.id)
    entry = next(e for e in resolved["timeline"] if e["kind"] == "resolved")
    assert entry["actor"] == responder.email
    assert "restarted the pod" in entry["message"]
    (alert_id,) = resolved["alert_ids"]
    assert ok(client.get(f"/api/v1/alerts/{alert_id}", headers=responder.headers))["status"] == "resolved"


def test_get_incident_by_key_is_the_same_as_by_id(
    client: TestClient, accounts: dict[str, Account], incident: dict[str, Any]
) -> None:
    viewer = accounts["viewer"]
    lower = incident["key"].lower()

    by_key = ok(client.get(f"/api/v1/incidents/{incident['key']}", headers=viewer.headers))

    assert by_key == incident
    assert ok(client.get(f"/api/v1/incidents/{lower}", headers=viewer.headers)) == incident


def test_resolving_a_resolved_incident_is_idempotent(
    client: TestClient, accounts: dict[str, Account], clock: ManualClock, incident: dict[str, Any]
) -> None:
    responder, manager = accounts["responder"], accounts["manager"]
    first = ok(act(client, responder, incident["id"], "resolve"))
    clock.advance(300)

    again = ok(act(client, manager, incident["id"], "resolve"))

    assert again == first
    assert [e["kind"] for e in again["timeline"]].count("resolved") == 1


def test_acking_a_resolved_incident_is_409(
    client: TestClient, accounts: dict[str, Account], incident: dict[str, Any]
) -> None:
    responder = accounts["responder"]
    resolved = ok(act(client, responder, incident["id"], "resolve"))

    r = act(client, responder, incident["id"], "ack")

    assert r.status_code == 409
    assert r.headers["content-type"].startswith("application/problem+json")
    assert incident["key"] in r.json()["detail"]
    assert ok(client.get(f"/api/v1/incidents/{incident['id']}", headers=responder.headers)) == resolved


def test_acking_twice_keeps_the_first_acknowledgement(
    client: TestClient, accounts: dict[str, Account], clock: ManualClock, incident: dict[str, Any]
) -> None:
    responder, manager = accounts["responder"], accounts["manager"]
    first = ok(act(client, responder, incident["id"], "ack"))
    clock.advance(60)

    again = ok(act(client, manager, incident["id"], "ack"))

    assert again == first


def test_open_filter_lists_triggered_and_acknowledged_incidents(
    client: TestClient,
    accounts: dict[str, Account],
    db: Database,
    clock: ManualClock,
    incident: dict[str, Any],
) -> None:
    responder = accounts["responder"]
    post_events(client, responder, {"summary": "unrelated", "fingerprint": "other"})
    run_pipeline(db, clock)
    ok(act(client, responder, incident["id"], "ack"))
    everything = ok(client.get("/api/v1/incidents", headers=responder.headers))["items"]
    other = next(i for i in everything if i["id"] != incident["id"])
    ok(act(client, responder, other["id"], "resolve"))

    page = ok(client.get("/api/v1/incidents", params={"status": "open"}, headers=responder.headers))

    assert [i["id"] for i in page["items"]] == [incident["id"]]


# --- metrics -------------------------------------------------------------------------------------


def test_metrics_need_a_token(client: TestClient) -> None:
    r = client.get("/metrics")

    assert r.status_code == 401
    assert "www-authenticate" in r.headers


def ingested(text: str, source: str) -> float:
    m = re.search(rf'^opsdesk_events_ingested_total{{source="{source}"}} (\S+)$', text, re.M)
    return float(m.group(1)) if m else 0.0


def test_metrics_count_ingested_events_in_prometheus_text(
    client: TestClient, accounts: dict[str, Account]
) -> None:
    viewer = accounts["viewer"]
    before = ingested(client.get("/metrics", headers=viewer.headers).text, "flows-test")
    post_events(client, accounts["responder"], [{"summary": "a", "source": "flows-test"}] * 2)

    r = client.get("/metrics", headers=viewer.headers)

    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    assert "opsdesk_events_ingested_total" in r.text
    assert ingested(r.text, "flows-test") == before + 2


def test_metrics_report_backlog_and_state_from_the_database(
    client: TestClient, accounts: dict[str, Account], db: Database, clock: ManualClock
) -> None:
    from opsdesk.alerts import service as alerts

    post_events(client, accounts["responder"], [{"summary": "disk full"}, {"summary": "cpu hot"}])
    clock.advance(90)
    text = client.get("/metrics", headers=accounts["viewer"].headers).text
    assert "opsdesk_events_pending 2.0" in text
    assert "opsdesk_events_pending_oldest_seconds 90.0" in text
    assert 'opsdesk_incidents{status="triggered"} 0.0' in text

    with db.session() as s:
        alerts.process_pending(s, now=clock.now())
    text = client.get("/metrics", headers=accounts["viewer"].headers).text
    assert "opsdesk_events_pending 0.0" in text
    assert 'opsdesk_incidents{status="triggered"} 2.0' in text
    assert 'opsdesk_monitors{status="down"} 0.0' in text
