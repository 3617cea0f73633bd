"""The metrics API through the real app, on SQLite and PostgreSQL."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient

from opsdesk.auth import service as auth
from opsdesk.auth.schemas import UserIn
from opsdesk.core.actor import SYSTEM, Role
from opsdesk.core.clock import ManualClock
from opsdesk.core.db import Database
from opsdesk.metrics.remote import PrometheusRemoteStore
from opsdesk.metrics.samples import Sample, labels_of
from opsdesk.metrics.sqlstore import SQLMetricsStore, to_ms
from tests.conftest import free_port

PROBLEM = "application/problem+json"
MIN = 60_000


@pytest.fixture
def viewer(db: Database, clock: ManualClock) -> dict[str, str]:
    """A viewer's token (no password: argon2 hashing would dominate these tests' run time)."""
    with db.session() as s:
        user = auth.create_user(
            s,
            UserIn(email="viewer@example.org", name="Viewer", role=Role.viewer),
            actor=SYSTEM,
            now=clock.now(),
        )
        _, token = auth.create_token(s, user, "test", actor=SYSTEM, now=clock.now())
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def now_ms(clock: ManualClock) -> int:
    return to_ms(clock.now())


@pytest.fixture
def data(db: Database, clock: ManualClock, now_ms: int) -> None:
    store = SQLMetricsStore(db, clock=clock)
    store.write(
        [
            Sample("http_latency", labels_of({"host": h, "env": e}), now_ms - i * MIN, v + i)
            for h, e, v in (("web-1", "prod", 10.0), ("web-2", "prod", 20.0), ("db-1", "staging", 30.0))
            for i in range(30)
        ]
        + [
            Sample("http_requests_total", labels_of({"host": "web-1"}), now_ms, 5.0),
            Sample("odd_values", (), now_ms - MIN, math.inf),
            Sample("odd_values", (), now_ms, -math.inf),
        ]
    )


def problem(r: Any, field: str) -> dict[str, Any]:
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith(PROBLEM)
    body = r.json()
    assert body["status"] == 422
    assert field in [e["field"] for e in body["errors"]], body
    return body


def test_query_range_defaults_to_the_last_hour(
    client: TestClient, viewer: dict[str, str], data: None, now_ms: int
) -> None:
    r = client.get(
        "/api/v1/metrics/query_range", params={"name": "http_latency", "host": "web-1"}, headers=viewer
    )

    assert r.status_code == 200, r.text
    body = r.json()
    assert body["start"] == "2026-03-02T08:00:00Z" and body["end"] == "2026-03-02T09:00:00Z"
    assert body["resolution"] == "raw"
    assert [s["labels"] for s in body["series"]] == [{"env": "prod", "host": "web-1"}]
    assert body["series"][0]["name"] == "http_latency"
    assert body["series"][0]["points"] == [[now_ms - i * MIN, 10.0 + i] for i in reversed(range(30))]


def test_query_range_with_step_agg_and_matchers(
    client: TestClient, viewer: dict[str, str], data: None, now_ms: int
) -> None:
    start = datetime.fromtimestamp((now_ms - 10 * MIN) / 1000, UTC).isoformat()
    params = {
        "name": "http_latency",
        "env": "prod",
        "host": "~web-.*",
        "start": start,
        "end": str(now_ms / 1000),
    }

    r = client.get(
        "/api/v1/metrics/query_range", params={**params, "step": 300, "agg": "max"}, headers=viewer
    )

    assert r.status_code == 200, r.text
    body = r.json()
    assert body["step"] == 300 and body["agg"] == "max" and body["resolution"] == "5m"
    # 10 minutes back to now in 5-minute buckets; web-1's value i minutes ago is 10 + i.
    assert [s["labels"]["host"] for s in body["series"]] == ["web-1", "web-2"]
    assert body["series"][0]["points"] == [
        [now_ms - 10 * MIN, 10.0 + 10],  # 10..6 minutes ago
        [now_ms - 5 * MIN, 10.0 + 5],  # 5..1 minutes ago
        [now_ms, 10.0],
    ]

    r = client.get("/api/v1/metrics/query_range", params={**params, "env": "!prod"}, headers=viewer)
    assert r.json()["series"] == []


def test_unknown_metric_or_no_name_is_an_empty_result(
    client: TestClient, viewer: dict[str, str], data: None
) -> None:
    for params in ({"name": "no_such_metric"}, {}, {"name": "http_latency", "host": "nope"}):
        r = client.get("/api/v1/metrics/query_range", params=params, headers=viewer)
        assert r.status_code == 200, r.text
        assert r.json()["series"] == []


def test_non_finite_values_are_null(
    client: TestClient, viewer: dict[str, str], data: None, now_ms: int
) -> None:
    r = client.get("/api/v1/metrics/query_range", params={"name": "odd_values"}, headers=viewer)

    assert r.json()["series"][0]["points"] == [[now_ms - MIN, None], [now_ms, None]]


def test_series_by_prefix_and_labels(client: TestClient, viewer: dict[str, str], data: None) -> None:
    r = client.get("/api/v1/metrics/series", params={"match": "http_"}, headers=viewer)
    assert r.status_code == 200, r.text
    assert [(s["name"], s["labels"].get("host")) for s in r.json()["series"]] == [
        ("http_latency", "web-1"),
        ("http_latency", "web-2"),
        ("http_latency", "db-1"),
        ("http_requests_total", "web-1"),
    ]
    assert r.json()["truncated"] is False

    r = client.get("/api/v1/metrics/series", params={"host": "web-1"}, headers=viewer)
    assert [s["name"] for s in r.json()["series"]] == ["http_latency", "http_requests_total"]

    r = client.get("/api/v1/metrics/series", params={"match": "http_", "limit": 2}, headers=viewer)
    assert len(r.json()["series"]) == 2 and r.json()["truncated"] is True


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"start": "yesterday"}, "start"),
        ({"start": "2026-03-02T08:00:00"}, "start"),  # no timezone
        ({"end": "1e300"}, "end"),
        ({"start": "2026-03-02T08:00:00Z", "end": "2026-03-02T07:00:00Z"}, "end"),
        ({"start": "2024-01-01T00:00:00Z", "end": "2026-03-02T00:00:00Z"}, "start"),  # > 400 days
        ({"start": "2026-01-01T00:00:00Z", "end": "2026-03-02T00:00:00Z", "step": 60}, "step"),  # > 11,000
        ({"step": 0}, "query.step"),
        ({"agg": "median"}, "query.agg"),
        ({"resolution": "1m"}, "query.resolution"),
        ({"name": "bad{name"}, "name"),
        ({"host": "~(unclosed"}, "host"),
        ({"bad-label": "x"}, "bad-label"),
    ],
)
def test_bad_input_is_a_422_problem_naming_the_field(
    client: TestClient, viewer: dict[str, str], data: None, params: dict[str, Any], field: str
) -> None:
    r = client.get("/api/v1/metrics/query_range", params={"name": "http_latency", **params}, headers=viewer)

    problem(r, field)


def test_a_repeated_label_matcher_is_refused(client: TestClient, viewer: dict[str, str]) -> None:
    r = client.get("/api/v1/metrics/query_range?name=up&host=a&host=b", headers=viewer)
    problem(r, "host")
    r = client.get("/api/v1/metrics/series?host=~(", headers=viewer)
    problem(r, "host")


def test_too_many_series_is_a_422(
    client: TestClient, viewer: dict[str, str], db: Database, clock: ManualClock
) -> None:
    now = to_ms(clock.now())
    SQLMetricsStore(db, clock=clock).write([Sample("wide", (("i", str(i)),), now, 1.0) for i in range(2001)])

    r = client.get("/api/v1/metrics/query_range", params={"name": "wide"}, headers=viewer)

    assert "2001 series" in problem(r, "name")["detail"]


def test_reads_need_a_token(client: TestClient) -> None:
    for path in ("/api/v1/metrics/series", "/api/v1/metrics/query_range?name=up"):
        r = client.get(path)
        assert r.status_code == 401
        assert r.headers["content-type"].startswith(PROBLEM)


def test_an_unreachable_remote_store_is_a_502_problem(client: TestClient, viewer: dict[str, str]) -> None:
    port = free_port()
    client.app.state.metrics_store = PrometheusRemoteStore(  # type: ignore[attr-defined]
        f"http://127.0.0.1:{port}/api/v1/write", f"http://127.0.0.1:{port}", timeout=1, retries=0
    )

    r = client.get("/api/v1/metrics/query_range", params={"name": "up", "step": 60}, headers=viewer)

    assert r.status_code == 502, r.text
    assert r.headers["content-type"].startswith(PROBLEM)
    assert "failed after 1 attempts" in r.json()["detail"]
