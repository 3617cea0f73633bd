"""Bad input gets a 4xx problem+json that says what is wrong, and changes nothing.

Every refused write is checked against a snapshot of every table taken just before it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

import opsdesk.notify.models  # noqa: F401  (registers the outbox table for the snapshots)
from opsdesk.alerts.models import Event
from opsdesk.alerts.service import process_pending
from opsdesk.core.clock import ManualClock
from opsdesk.core.db import Base, Database
from opsdesk.core.settings import Settings
from tests.conftest import Account, make_accounts

PROBLEM = "application/problem+json"

# --- helpers -------------------------------------------------------------------------------------


def db_state(db: Database) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table in primary-key order, minus the token stamp that reads write."""
    out = {}
    with db.engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            cols = [c for c in table.c if c.name != "last_used_at"]
            out[table.name] = [tuple(r) for r in conn.execute(select(*cols).order_by(*table.primary_key))]
    return out


def event_count(db: Database) -> int:
    with db.session() as s:
        return s.scalar(select(func.count()).select_from(Event)) or 0


def run_pipeline(db: Database, clock: ManualClock) -> int:
    with db.session() as s:
        return process_pending(s, now=clock.now())


def problem(r: Any, status: int) -> dict[str, Any]:
    """Assert an RFC 9457 answer with ``status``; return its body."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(PROBLEM), r.headers["content-type"]
    body = r.json()
    assert body["status"] == status
    assert isinstance(body["title"], str) and body["title"]
    assert isinstance(body["detail"], str) and body["detail"]
    return body


def field_problem(r: Any, status: int, field: str) -> dict[str, Any]:
    """A problem whose ``errors`` list names ``field``."""
    body = problem(r, status)
    fields = [e["field"] for e in body.get("errors", [])]
    assert field in fields, f"{field!r} not in {fields}"
    assert all(e["message"] for e in body["errors"])
    return body


class Api:
    """The client with the admin's token, so that only the input can be wrong."""

    def __init__(self, client: TestClient, admin: Account) -> None:
        self.client = client
        self.headers = admin.headers

    def request(self, method: str, url: str, **kw: Any) -> Any:
        return self.client.request(method, url, headers={**self.headers, **kw.pop("headers", {})}, **kw)

    def post(self, url: str, **kw: Any) -> Any:
        return self.request("POST", url, **kw)

    def get(self, url: str, **kw: Any) -> Any:
        return self.request("GET", url, **kw)

    def create(self, url: str, body: dict[str, Any]) -> int:
        r = self.post(url, json=body)
        assert r.status_code == 201, r.text
        return int(r.json()["id"])


@pytest.fixture
def db_url(sqlite_url: str) -> str:
    """SQLite only: see ``sqlite_url`` in conftest."""
    return sqlite_url


@pytest.fixture
def accounts(db: Database, clock: ManualClock) -> dict[str, Account]:
    """conftest's ``accounts`` without passwords: only tokens are used here, and hashing four
    passwords with argon2 for each of the many cases below would double the run time."""
    return make_accounts(db, clock.now(), passwords=False)


@pytest.fixture
def api(client: TestClient, accounts: dict[str, Account]) -> Api:
    return Api(client, accounts["admin"])


@pytest.fixture
def seeded(api: Api) -> dict[str, int]:
    """A team owning service ``checkout``, which depends on CI ``db-1``; a monitor on checkout."""
    ids = {"team": api.create("/api/v1/teams", {"name": "payments"})}
    ids["service"] = api.create("/api/v1/services", {"name": "checkout", "owner_team_id": ids["team"]})
    ids["ci"] = api.create("/api/v1/cis", {"name": "db-1", "class": "database"})
    ids["relationship"] = api.create(
        "/api/v1/relationships",
        {
            "type": "depends_on",
            "source_type": "service",
            "source_id": ids["service"],
            "target_type": "ci",
            "target_id": ids["ci"],
        },
    )
    ids["monitor"] = api.create(
        "/api/v1/monitors",
        {"name": "checkout-http", "target": "https://checkout.example.org/", "service_id": ids["service"]},
    )
    return ids


@pytest.fixture
def unchanged(db: Database, seeded: dict[str, int]) -> Iterator[None]:
    """Asserts, after the test body, that no table changed while it ran."""
    before = db_state(db)
    yield
    assert db_state(db) == before, "a refused request changed the database"


# --- malformed JSON ------------------------------------------------------------------------------


def test_malformed_json_event_is_400(api: Api, db: Database, unchanged: None) -> None:
    r = api.post(
        "/api/v1/events", content=b'{"summary": "disk full",', headers={"content-type": "application/json"}
    )

    assert problem(r, 400)["title"] == "Malformed JSON"
    assert event_count(db) == 0


def test_malformed_json_service_is_400(api: Api, unchanged: None) -> None:
    r = api.post(
        "/api/v1/services", content=b'{"name": "search"', headers={"content-type": "application/json"}
    )

    assert problem(r, 400)["title"] == "Malformed JSON"


def test_empty_event_body_is_400(api: Api, db: Database, unchanged: None) -> None:
    r = api.post("/api/v1/events", content=b"", headers={"content-type": "application/json"})

    problem(r, 400)


# --- wrong types and values ----------------------------------------------------------------------

WRONG_TYPES = [
    (
        "/api/v1/monitors",
        {"name": "m", "target": "https://example.org/", "interval_seconds": "often"},
        "interval_seconds",
    ),
    (
        "/api/v1/monitors",
        {"name": "m", "target": "https://example.org/", "timeout_seconds": 0},
        "timeout_seconds",
    ),
    ("/api/v1/events", {"summary": "x", "labels": [1]}, "labels"),
    ("/api/v1/events", {"summary": "x", "labels": {"k": 1}}, "labels.k"),
    ("/api/v1/events", {"summary": "x", "status": "bogus"}, "status"),
    ("/api/v1/events", {"summary": "x", "severity": "apocalyptic"}, "severity"),
    ("/api/v1/events", {"summary": "   "}, "summary"),
    ("/api/v1/events", {"source": "nagios"}, "summary"),
    ("/api/v1/events", "just a string", "body"),
    ("/api/v1/services", {"name": "search", "attributes": "big"}, "attributes"),
    ("/api/v1/services", {"name": ""}, "name"),
    ("/api/v1/cis", {"name": "web-1", "class": "spaceship"}, "class"),
    ("/api/v1/cis", {"name": "web-1"}, "class"),
    ("/api/v1/teams", {"name": "sre", "member_ids": "everyone"}, "member_ids"),
    ("/api/v1/users", {"email": "not-an-address", "name": "X"}, "email"),
    ("/api/v1/users", {"email": "x@example.org", "name": "X", "role": "overlord"}, "role"),
    ("/api/v1/users", {"email": "x@example.org", "name": "X", "password": "short"}, "password"),
    (
        "/api/v1/relationships",
        {"type": "likes", "source_type": "service", "source_id": 1, "target_type": "ci", "target_id": 1},
        "type",
    ),
]


@pytest.mark.parametrize(
    ("path", "body", "field"), WRONG_TYPES, ids=lambda v: v if isinstance(v, str) else None
)
def test_wrong_type_is_422_naming_the_field(
    api: Api, unchanged: None, path: str, body: Any, field: str
) -> None:
    r = api.post(path, json=body)

    assert field_problem(r, 422, field)["title"] == "Invalid input"


def test_event_with_wrong_type_stores_nothing(api: Api, db: Database) -> None:
    api.post("/api/v1/events", json={"summary": "x", "status": "bogus"})

    assert event_count(db) == 0


# --- unknown fields ------------------------------------------------------------------------------

UNKNOWN_FIELDS = [
    ("POST", "/api/v1/services", {"name": "search", "colour": "red"}, "colour"),
    ("PATCH", "/api/v1/services/{service}", {"colour": "red"}, "colour"),
    ("POST", "/api/v1/cis", {"name": "web-1", "class": "vm", "colour": "red"}, "colour"),
    ("POST", "/api/v1/teams", {"name": "sre", "colour": "red"}, "colour"),
    ("POST", "/api/v1/monitors", {"name": "m", "target": "https://example.org/", "colour": "red"}, "colour"),
    ("POST", "/api/v1/users", {"email": "x@example.org", "name": "X", "colour": "red"}, "colour"),
    ("POST", "/api/v1/tokens", {"name": "ci", "scope": "all"}, "scope"),
    ("POST", "/api/v1/events", {"summary": "x", "colour": "red"}, "colour"),
    ("POST", "/api/v1/events", [{"summary": "a"}, {"summary": "b", "colour": "red"}], "events[1].colour"),
    (
        "POST",
        "/api/v1/events",
        {"events": [{"summary": "a"}, {"summary": "b", "colour": "red"}]},
        "events[1].colour",
    ),
    ("POST", "/api/v1/events", {"events": [{"summary": "a"}], "colour": "red"}, "colour"),
]


@pytest.mark.parametrize(
    ("method", "path", "body", "field"), UNKNOWN_FIELDS, ids=lambda v: v if isinstance(v, str) else None
)
def test_unknown_field_is_422_naming_it(
    api: Api, seeded: dict[str, int], unchanged: None, method: str, path: str, body: Any, field: str
) -> None:
    r = api.request(method, path.format(**seeded), json=body)

    field_problem(r, 422, field)


# --- events for services that do not exist -------------------------------------------------------


def test_event_for_unknown_service_is_422_naming_service(api: Api, db: Database, unchanged: None) -> None:
    r = api.post("/api/v1/events", json={"summary": "x", "service": "no-such-service"})

    body = field_problem(r, 422, "service")
    assert "no-such-service" in body["detail"]


@pytest.mark.parametrize("envelope", [False, True], ids=["array", "events-object"])
def test_batch_with_one_unknown_service_is_refused_whole(
    api: Api, db: Database, clock: ManualClock, envelope: bool
) -> None:
    batch = [
        {"summary": "fine", "service": "checkout"},
        {"summary": "not fine", "service": "no-such-service"},
        {"summary": "fine too"},
    ]
    api.create("/api/v1/services", {"name": "checkout"})

    r = api.post("/api/v1/events", json={"events": batch} if envelope else batch)

    field_problem(r, 422, "events[1].service")
    assert event_count(db) == 0
    assert run_pipeline(db, clock) == 0
    assert api.get("/api/v1/alerts").json()["items"] == []


# --- oversized bodies ----------------------------------------------------------------------------

# Bodies that would be accepted were they not too large: only the size can be the reason.
VALID_BODIES = {"/api/v1/events": b'{"summary": "padded"', "/api/v1/services": b'{"name": "padded"'}


def padded(path: str, size: int) -> bytes:
    head = VALID_BODIES[path]
    return head + b" " * (size - len(head) - 1) + b"}"


def chunks(data: bytes, size: int = 64 * 1024) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


def test_body_at_the_limit_is_accepted(api: Api, settings: Settings) -> None:
    r = api.post(
        "/api/v1/services",
        content=padded("/api/v1/services", settings.max_body_bytes),
        headers={"content-type": "application/json"},
    )

    assert r.status_code == 201, r.text


@pytest.mark.parametrize("path", list(VALID_BODIES))
def test_oversized_body_with_content_length_is_413(
    api: Api, settings: Settings, unchanged: None, path: str
) -> None:
    r = api.post(
        path, content=padded(path, settings.max_body_bytes + 1), headers={"content-type": "application/json"}
    )

    assert r.request.headers["content-length"] == str(settings.max_body_bytes + 1)
    problem(r, 413)


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/events",
        # A route with a typed body: FastAPI reads that body itself.
        "/api/v1/services",
    ],
)
def test_oversized_chunked_body_is_413(api: Api, settings: Settings, unchanged: None, path: str) -> None:
    r = api.post(
        path,
        content=chunks(padded(path, settings.max_body_bytes + 1)),
        headers={"content-type": "application/json"},
    )

    assert "content-length" not in r.request.headers
    assert r.request.headers["transfer-encoding"] == "chunked"
    problem(r, 413)


# --- unknown ids ---------------------------------------------------------------------------------

MISSING = [
    ("GET", "/api/v1/services/999"),
    ("PATCH", "/api/v1/services/999"),
    ("DELETE", "/api/v1/services/999"),
    ("GET", "/api/v1/cis/999"),
    ("PATCH", "/api/v1/cis/999"),
    ("DELETE", "/api/v1/cis/999"),
    ("GET", "/api/v1/relationships/999"),
    ("DELETE", "/api/v1/relationships/999"),
    ("GET", "/api/v1/monitors/999"),
    ("PATCH", "/api/v1/monitors/999"),
    ("DELETE", "/api/v1/monitors/999"),
    ("GET", "/api/v1/monitors/999/results"),
    ("GET", "/api/v1/teams/999"),
    ("PATCH", "/api/v1/teams/999"),
    ("DELETE", "/api/v1/teams/999"),
    ("GET", "/api/v1/users/999"),
    ("PATCH", "/api/v1/users/999"),
    ("DELETE", "/api/v1/users/999"),
    ("DELETE", "/api/v1/tokens/999"),
    ("GET", "/api/v1/alerts/999"),
    ("GET", "/api/v1/incidents/999"),
    ("GET", "/api/v1/incidents/INC-999"),
    ("POST", "/api/v1/incidents/INC-999/ack"),
    ("POST", "/api/v1/incidents/999/resolve"),
    ("GET", "/api/v1/incidents/not-a-key"),
]


@pytest.mark.parametrize(("method", "path"), MISSING, ids=[f"{m} {p}" for m, p in MISSING])
def test_unknown_id_is_404(api: Api, unchanged: None, method: str, path: str) -> None:
    r = api.request(method, path, json={} if method == "PATCH" else None)

    assert problem(r, 404)["title"] == "Not found"


def test_non_numeric_id_is_422_naming_the_path_parameter(api: Api) -> None:
    r = api.get("/api/v1/services/abc")

    field_problem(r, 422, "path.service_id")


def test_out_of_range_id_is_422_naming_the_path_parameter(api: Api) -> None:
    r = api.get(f"/api/v1/services/{10**20}")

    field_problem(r, 422, "path.service_id")


def test_superscript_incident_ref_is_404(api: Api) -> None:
    problem(api.get("/api/v1/incidents/²"), 404)


# --- batches -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"), [([], "events"), ({"events": []}, "events")], ids=["array", "object"]
)
def test_empty_batch_is_422(api: Api, db: Database, body: Any, field: str) -> None:
    r = api.post("/api/v1/events", json=body)

    field_problem(r, 422, field)
    assert event_count(db) == 0


@pytest.mark.parametrize("envelope", [False, True], ids=["array", "events-object"])
def test_batch_over_1000_events_is_422(api: Api, db: Database, envelope: bool) -> None:
    batch = [{"summary": f"event {i}"} for i in range(1001)]

    r = api.post("/api/v1/events", json={"events": batch} if envelope else batch)

    field_problem(r, 422, "events")
    assert event_count(db) == 0


# --- conflicts -----------------------------------------------------------------------------------

DUPLICATES = [
    ("POST", "/api/v1/services", {"name": "checkout"}),
    ("POST", "/api/v1/cis", {"name": "db-1", "class": "vm"}),
    ("POST", "/api/v1/teams", {"name": "payments"}),
    ("POST", "/api/v1/monitors", {"name": "checkout-http", "target": "https://example.org/"}),
    ("POST", "/api/v1/users", {"email": "Viewer@Example.org", "name": "Same address, other case"}),
    (
        "POST",
        "/api/v1/relationships",
        {
            "type": "depends_on",
            "source_type": "service",
            "source_id": "{service}",
            "target_type": "ci",
            "target_id": "{ci}",
        },
    ),
    ("PATCH", "/api/v1/services/{spare_service}", {"name": "checkout"}),
    ("PATCH", "/api/v1/cis/{spare_ci}", {"name": "db-1"}),
    ("PATCH", "/api/v1/teams/{spare_team}", {"name": "payments"}),
    ("PATCH", "/api/v1/monitors/{spare_monitor}", {"name": "checkout-http"}),
]


def _fill(value: Any, ids: dict[str, int]) -> Any:
    if isinstance(value, dict):
        return {k: _fill(v, ids) for k, v in value.items()}
    if isinstance(value, str) and value.startswith("{") and value.endswith("}"):
        return ids[value[1:-1]]
    return value


@pytest.mark.parametrize(("method", "path", "body"), DUPLICATES, ids=[f"{m} {p}" for m, p, _ in DUPLICATES])
def test_duplicate_is_409(
    api: Api, db: Database, seeded: dict[str, int], method: str, path: str, body: dict[str, Any]
) -> None:
    ids = {
        **seeded,
        "spare_service": api.create("/api/v1/services", {"name": "spare"}),
        "spare_ci": api.create("/api/v1/cis", {"name": "spare", "class": "vm"}),
        "spare_team": api.create("/api/v1/teams", {"name": "spare"}),
        "spare_monitor": api.create("/api/v1/monitors", {"name": "spare", "target": "https://example.org/"}),
    }
    before = db_state(db)

    r = api.request(method, path.format(**ids), json=_fill(body, ids))

    assert problem(r, 409)["title"] == "Conflict"
    assert db_state(db) == before


def test_deleting_a_ci_a_service_depends_on_is_409_naming_it(
    api: Api, seeded: dict[str, int], unchanged: None
) -> None:
    r = api.request("DELETE", f"/api/v1/cis/{seeded['ci']}")

    body = problem(r, 409)
    assert "checkout" in body["detail"]
    assert [d for d in body["dependents"] if "checkout" in d] != []
    assert api.get(f"/api/v1/cis/{seeded['ci']}").status_code == 200


def test_deleting_a_service_a_monitor_watches_is_409_naming_it(
    api: Api, seeded: dict[str, int], unchanged: None
) -> None:
    r = api.request("DELETE", f"/api/v1/services/{seeded['service']}")

    body = problem(r, 409)
    assert "checkout-http" in body["detail"]
    assert [d for d in body["dependents"] if "checkout-http" in d] != []


def test_deleting_a_team_that_owns_a_service_is_409_naming_it(
    api: Api, seeded: dict[str, int], unchanged: None
) -> None:
    r = api.request("DELETE", f"/api/v1/teams/{seeded['team']}")

    body = problem(r, 409)
    assert "checkout" in body["detail"]
    assert [o for o in body["owned"] if "checkout" in o] != []


def test_deleting_the_last_admin_is_409(api: Api, accounts: dict[str, Account], unchanged: None) -> None:
    r = api.request("DELETE", f"/api/v1/users/{accounts['admin'].user.id}")

    problem(r, 409)


def test_demoting_the_last_admin_is_409(api: Api, accounts: dict[str, Account], unchanged: None) -> None:
    r = api.request("PATCH", f"/api/v1/users/{accounts['admin'].user.id}", json={"role": "viewer"})

    problem(r, 409)


# --- references that do not resolve --------------------------------------------------------------


@pytest.mark.parametrize("end", ["source_id", "target_id"])
def test_relationship_to_missing_end_is_422_naming_it(
    api: Api, seeded: dict[str, int], unchanged: None, end: str
) -> None:
    body = {
        "type": "connects_to",
        "source_type": "service",
        "source_id": seeded["service"],
        "target_type": "ci",
        "target_id": seeded["ci"],
        end: 999,
    }

    r = api.post("/api/v1/relationships", json=body)

    field_problem(r, 422, end)


def test_relationship_to_itself_is_422(api: Api, seeded: dict[str, int], unchanged: None) -> None:
    body = {
        "type": "connects_to",
        "source_type": "ci",
        "source_id": seeded["ci"],
        "target_type": "ci",
        "target_id": seeded["ci"],
    }

    field_problem(api.post("/api/v1/relationships", json=body), 422, "target_id")


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/v1/services", {"name": "search", "owner_team_id": 999}, "owner_team_id"),
        ("/api/v1/cis", {"name": "web-1", "class": "vm", "owner_team_id": 999}, "owner_team_id"),
        ("/api/v1/teams", {"name": "sre", "member_ids": [999]}, "member_ids"),
        (
            "/api/v1/monitors",
            {"name": "m", "target": "https://example.org/", "service_id": 999},
            "service_id",
        ),
        ("/api/v1/monitors", {"name": "m", "target": "https://example.org/", "ci_id": 999}, "ci_id"),
    ],
    ids=["service-team", "ci-team", "team-member", "monitor-service", "monitor-ci"],
)
def test_reference_to_missing_object_is_422_naming_it(
    api: Api, unchanged: None, path: str, body: dict[str, Any], field: str
) -> None:
    field_problem(api.post(path, json=body), 422, field)


# --- monitors ------------------------------------------------------------------------------------


@pytest.mark.parametrize("target", ["ftp://example.org/", "example.org", "http://", "javascript:alert(1)"])
def test_monitor_with_non_http_url_is_422_naming_target(api: Api, unchanged: None, target: str) -> None:
    r = api.post("/api/v1/monitors", json={"name": "m", "target": target})

    field_problem(r, 422, "target")


def test_monitor_update_to_non_http_url_is_422_naming_target(
    api: Api, seeded: dict[str, int], unchanged: None
) -> None:
    r = api.request("PATCH", f"/api/v1/monitors/{seeded['monitor']}", json={"target": "ftp://example.org/"})

    field_problem(r, 422, "target")


def test_monitor_of_unknown_type_is_422_naming_type(api: Api, unchanged: None) -> None:
    r = api.post("/api/v1/monitors", json={"name": "m", "type": "icmp", "target": "https://example.org/"})

    field_problem(r, 422, "type")


def test_monitor_with_bad_config_is_422_naming_the_config_key(api: Api, unchanged: None) -> None:
    body = {"name": "m", "target": "https://example.org/", "config": {"expected_status": 42}}

    field_problem(api.post("/api/v1/monitors", json=body), 422, "config.expected_status")


@pytest.mark.parametrize("field", ["name", "target", "interval_seconds", "enabled"])
def test_monitor_update_to_null_is_422(api: Api, seeded: dict[str, int], unchanged: None, field: str) -> None:
    r = api.request("PATCH", f"/api/v1/monitors/{seeded['monitor']}", json={field: None})

    field_problem(r, 422, field)


# --- nulls in updates ----------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["name", "class"])
def test_ci_update_to_null_required_field_is_422(
    api: Api, seeded: dict[str, int], unchanged: None, field: str
) -> None:
    r = api.request("PATCH", f"/api/v1/cis/{seeded['ci']}", json={field: None})

    field_problem(r, 422, field)


@pytest.mark.parametrize("path", ["/api/v1/cis/{ci}", "/api/v1/services/{service}"], ids=["ci", "service"])
@pytest.mark.parametrize("field", ["description", "attributes"])
def test_update_to_null_optional_field_is_refused_or_ignored(
    api: Api, db: Database, seeded: dict[str, int], path: str, field: str
) -> None:
    url = path.format(**seeded)
    before = api.get(url).json()

    r = api.request("PATCH", url, json={field: None})

    if r.status_code == 422:
        field_problem(r, 422, field)
    else:
        assert r.status_code == 200, r.text
    after = api.get(url)
    assert after.status_code == 200, after.text
    assert after.json()[field] == before[field]


def test_service_update_to_null_name_is_422(api: Api, seeded: dict[str, int], unchanged: None) -> None:
    r = api.request("PATCH", f"/api/v1/services/{seeded['service']}", json={"name": None})

    field_problem(r, 422, "name")


# --- query parameters ----------------------------------------------------------------------------

LISTS = ["services", "cis", "relationships", "monitors", "users", "teams", "alerts", "incidents", "audit"]


@pytest.mark.parametrize("name", LISTS)
def test_garbage_cursor_is_422_naming_cursor(api: Api, name: str) -> None:
    for cursor in ["abc", "-1", "1.5", "0x10", " 1"]:
        r = api.get(f"/api/v1/{name}", params={"cursor": cursor})

        field_problem(r, 422, "cursor")


def test_superscript_digit_cursor_is_422(api: Api) -> None:
    field_problem(api.get("/api/v1/services", params={"cursor": "²"}), 422, "cursor")


@pytest.mark.parametrize("limit", [0, 501, "many"])
def test_limit_out_of_range_is_422_naming_limit(api: Api, limit: object) -> None:
    field_problem(api.get("/api/v1/services", params={"limit": limit}), 422, "query.limit")


def test_relationship_filter_needs_both_node_type_and_node_id(api: Api) -> None:
    field_problem(api.get("/api/v1/relationships", params={"node_type": "service"}), 422, "node_id")


# --- lengths: the schema must refuse what the column cannot hold --------------------------------

# (path, body builder, field, the column's length)
LENGTHS = [
    ("/api/v1/services", lambda n, ids: {"name": "s" * n}, "name", 100),
    ("/api/v1/teams", lambda n, ids: {"name": "t" * n}, "name", 100),
    ("/api/v1/tokens", lambda n, ids: {"name": "k" * n}, "name", 100),
    ("/api/v1/cis", lambda n, ids: {"name": "c" * n, "class": "vm"}, "name", 200),
    ("/api/v1/monitors", lambda n, ids: {"name": "m" * n, "target": "https://example.org/"}, "name", 200),
    (
        "/api/v1/relationships",
        lambda n, ids: {
            "type": "connects_to",
            "source_type": "service",
            "source_id": ids["service"],
            "target_type": "ci",
            "target_id": ids["ci"],
            "description": "d" * n,
        },
        "description",
        500,
    ),
]
LENGTH_IDS = [
    "service-name",
    "team-name",
    "token-name",
    "ci-name",
    "monitor-name",
    "relationship-description",
]


@pytest.mark.parametrize(("path", "make", "field", "size"), LENGTHS, ids=LENGTH_IDS)
def test_value_longer_than_its_column_is_422_naming_the_field(
    api: Api, seeded: dict[str, int], unchanged: None, path: str, make: Any, field: str, size: int
) -> None:
    r = api.post(path, json=make(size + 1, seeded))

    field_problem(r, 422, field)


@pytest.mark.parametrize(("path", "make", "field", "size"), LENGTHS, ids=LENGTH_IDS)
def test_value_as_long_as_its_column_is_stored_whole(
    api: Api, seeded: dict[str, int], path: str, make: Any, field: str, size: int
) -> None:
    body = make(size, seeded)

    r = api.post(path, json=body)

    assert r.status_code == 201, r.text
    assert r.json()[field] == body[field]
