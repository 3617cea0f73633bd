"""Each alert source maps its tool's payloads (tests/data) to the events opsdesk stores."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from opsdesk.alerts.sources import REGISTRY, get_source
from opsdesk.alerts.sources.base import labels_fingerprint, map_severity
from opsdesk.core.errors import OpsdeskError

DATA = Path(__file__).parent / "data"


def load(name: str) -> dict[str, Any]:
    return dict(json.loads((DATA / name).read_text()))


def parse(kind: str, payload: Any) -> list[Any]:
    source = get_source(kind)
    assert source is not None
    return source.parse(payload)


def refused(kind: str, payload: Any) -> list[str]:
    with pytest.raises(OpsdeskError) as exc:
        parse(kind, payload)
    assert exc.value.status == 422
    return [e.field for e in exc.value.errors]


def test_every_kind_is_registered() -> None:
    assert set(REGISTRY) >= {"alertmanager", "grafana", "generic"}


def test_alertmanager_firing() -> None:
    (ev,) = parse("alertmanager", load("alertmanager_firing.json"))

    assert ev.source == "alertmanager"
    assert ev.fingerprint == "alertmanager:5f2c1a7b9e3d4c60"
    assert ev.status.value == "firing"
    assert ev.severity.value == "critical"
    assert ev.summary == "checkout is returning errors"
    assert ev.service == "checkout"
    assert ev.labels["alertname"] == "HighErrorRate"
    assert ev.labels["instance"] == "checkout-1:9100"
    assert ev.labels["annotation_runbook_url"] == "https://runbooks.example.org/checkout/errors"
    assert ev.labels["generator_url"].startswith("http://prometheus:9090/graph")
    assert ev.labels["receiver"] == "opsdesk"


def test_alertmanager_resolved_has_the_same_fingerprint() -> None:
    (fired,) = parse("alertmanager", load("alertmanager_firing.json"))
    (resolved,) = parse("alertmanager", load("alertmanager_resolved.json"))

    assert resolved.status.value == "resolved"
    assert resolved.fingerprint == fired.fingerprint


def test_alertmanager_group_of_three_gives_three_events() -> None:
    events = parse("alertmanager", load("alertmanager_grouped.json"))

    assert [e.status.value for e in events] == ["firing", "firing", "resolved"]
    assert [e.severity.value for e in events] == ["warning", "critical", "warning"]  # "bogus" → warning
    assert [e.summary for e in events] == ["/var on db-1 is 93% full", "/var on db-2 is 99% full", "DiskFull"]
    assert len({e.fingerprint for e in events}) == 3
    assert all(e.service is None for e in events)


def test_alertmanager_fingerprint_from_labels_when_absent() -> None:
    payload = load("alertmanager_firing.json")
    del payload["alerts"][0]["fingerprint"]
    (ev,) = parse("alertmanager", payload)
    again = copy.deepcopy(payload)
    again["alerts"][0]["annotations"] = {}

    assert ev.fingerprint == "alertmanager:" + labels_fingerprint(payload["alerts"][0]["labels"])
    assert parse("alertmanager", again)[0].fingerprint == ev.fingerprint


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda p: p.pop("version"), "version"),
        (lambda p: p.update(version="3"), "version"),
        (lambda p: p.pop("alerts"), "alerts"),
        (lambda p: p.update(alerts=[]), "alerts"),
        (lambda p: p["alerts"][0].pop("status"), "alerts[0].status"),
        (lambda p: p["alerts"][0].pop("labels"), "alerts[0].labels"),
        (lambda p: p["alerts"][0]["labels"].update(severity=3), "alerts[0].labels.severity"),
        (lambda p: p.pop("groupKey"), "groupKey"),
    ],
)
def test_alertmanager_missing_or_wrong_fields_are_named(mutate: Any, field: str) -> None:
    payload = load("alertmanager_firing.json")
    mutate(payload)

    assert field in refused("alertmanager", payload)


def test_a_payload_that_is_not_an_object_is_refused() -> None:
    assert refused("alertmanager", [1, 2]) == ["body"]
    assert refused("grafana", "text") == ["body"]


def test_grafana_firing() -> None:
    (ev,) = parse("grafana", load("grafana_firing.json"))

    assert ev.source == "grafana"
    assert ev.fingerprint == "grafana:8e4f5c3b2a1d0e9f"
    assert ev.status.value == "firing"
    assert ev.severity.value == "warning"
    assert ev.summary == "CPU on web-1 above 90% for 10m"
    assert ev.labels["grafana_folder"] == "Infrastructure"
    assert ev.labels["dashboard_url"] == "https://grafana.example.org/d/node01?orgId=1"
    assert ev.labels["panel_url"].endswith("viewPanel=4")
    assert ev.labels["silence_url"].startswith("https://grafana.example.org/alerting/silence/new")
    assert "value=93.2" in ev.labels["value"]


def test_grafana_resolved() -> None:
    (fired,) = parse("grafana", load("grafana_firing.json"))
    (resolved,) = parse("grafana", load("grafana_resolved.json"))

    assert resolved.status.value == "resolved"
    assert resolved.fingerprint == fired.fingerprint


def test_grafana_missing_alert_status_is_named() -> None:
    payload = load("grafana_firing.json")
    del payload["alerts"][0]["status"]

    assert refused("grafana", payload) == ["alerts[0].status"]


def test_generic_takes_the_events_api_body() -> None:
    assert parse("generic", {"summary": "disk full"})[0].summary == "disk full"
    assert len(parse("generic", [{"summary": "a"}, {"summary": "b"}])) == 2
    assert len(parse("generic", {"events": [{"summary": "a"}]})) == 1
    assert refused("generic", [{"summary": "a"}, {"severity": "loud"}]) == [
        "events[1].severity",
        "events[1].summary",
    ]
    assert refused("generic", []) == ["events"]


@pytest.mark.parametrize(
    ("word", "severity"),
    [
        ("critical", "critical"),
        ("PAGE", "critical"),
        ("error", "error"),
        ("high", "error"),
        ("warning", "warning"),
        ("info", "info"),
        ("none", "info"),
        ("whatever", "warning"),
        (None, "warning"),
    ],
)
def test_severity_words(word: str | None, severity: str) -> None:
    assert map_severity(word).value == severity
