"""Zabbix and Nagios/Icinga 2 sources: their payloads (tests/data) mapped to events, the hook storing
them, and the contrib senders for real: ``contrib/nagios/opsdesk-notify`` run as Nagios and Icinga 2
run it, and the Zabbix media type's script run by node against a live server."""

from __future__ import annotations

import asyncio
import copy
import json
import os
import re
import secrets
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
import yaml
from fastapi.testclient import TestClient
from sqlalchemy import select

from opsdesk.alerts.models import Alert, Event
from opsdesk.alerts.service import process_pending
from opsdesk.alerts.sources import REGISTRY, get_source
from opsdesk.alerts.sources.zabbix import field_of
from opsdesk.core.clock import ManualClock
from opsdesk.core.db import Database
from opsdesk.core.errors import OpsdeskError
from tests.conftest import Account, free_port
from tests.support import TargetServer

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).parent / "data"
NOTIFY = ROOT / "contrib" / "nagios" / "opsdesk-notify"
MEDIA_TYPE = ROOT / "contrib" / "zabbix" / "opsdesk_webhook.yaml"
SECRET = "a-long-shared-secret-for-monitoring"


def load(name: str) -> dict[str, Any]:
    return dict(json.loads((DATA / name).read_text()))


def parse(kind: str, payload: Any) -> Any:
    source = get_source(kind)
    assert source is not None
    (event,) = source.parse(payload)
    return event


def refused(kind: str, payload: Any) -> list[str]:
    source = get_source(kind)
    assert source is not None
    with pytest.raises(OpsdeskError) as exc:
        source.parse(payload)
    assert exc.value.status == 422
    return [e.field for e in exc.value.errors]


def test_the_new_kinds_are_registered() -> None:
    assert {"zabbix", "nagios", "icinga"} <= set(REGISTRY)


# --- Zabbix ----------------------------------------------------------------------------------------


def test_zabbix_problem() -> None:
    ev = parse("zabbix", load("zabbix_problem.json"))

    assert ev.source == "zabbix"
    assert ev.fingerprint == "zabbix:web-1.example.org:event:48213"
    assert ev.status.value == "firing"
    assert ev.severity.value == "error"  # High
    assert ev.summary == "High CPU utilization (over 90% for 5m)"
    assert ev.ci == "web-1.example.org"
    assert ev.service == "checkout"  # the tag "service"
    assert ev.labels == {
        "class": "os",
        "component": "cpu",
        "scope": "performance,availability",
        "service": "checkout",
        "host": "web-1.example.org",
        "host_name": "Web server 1",
        "host_ip": "10.0.4.21",
        "trigger_id": "23511",
        "event_id": "48213",
        "item_value": "97.31 %",
        "zabbix_severity": "High",
        "opdata": "Current utilization: 97.31 %",
        "event_time": "2026.03.02 09:00:12",
        "acknowledged": "No",
        "event_source": "0",
        "event_url": "https://zabbix.example.org/tr_events.php?triggerid=23511&eventid=48213",
    }


def test_zabbix_recovery_has_the_problems_fingerprint() -> None:
    fired = parse("zabbix", load("zabbix_problem.json"))
    resolved = parse("zabbix", load("zabbix_recovery.json"))

    assert resolved.status.value == "resolved"
    assert resolved.fingerprint == fired.fingerprint
    assert resolved.labels["recovery_event_id"] == "48377"


def test_zabbix_acknowledgement_of_an_open_problem_refreshes_it() -> None:
    fired = parse("zabbix", load("zabbix_problem.json"))
    ack = parse("zabbix", load("zabbix_update_ack.json"))

    assert (ack.status.value, ack.fingerprint) == ("firing", fired.fingerprint)
    assert ack.severity.value == "critical"  # the update raised it to Disaster
    assert ack.labels["update_action"].startswith("acknowledged")
    assert ack.labels["acknowledged"] == "Yes"
    assert "event_url" not in ack.labels  # {$ZABBIX.URL} was not defined


@pytest.mark.parametrize(
    "change",
    [
        {},  # as Zabbix sends it: {EVENT.VALUE} 0, {EVENT.STATUS} RESOLVED, a recovery id
        {"event_value": "1"},  # status and recovery id still say resolved
        {"event_value": "1", "event_status": "PROBLEM"},  # the recovery id says resolved
        {"event_value": "{EVENT.VALUE}", "event_recovery_id": "{EVENT.RECOVERY.ID}"},  # RESOLVED
    ],
)
def test_zabbix_update_of_a_resolved_problem_never_fires(change: dict[str, str]) -> None:
    payload = {**load("zabbix_update_resolved.json"), **change}

    ev = parse("zabbix", payload)

    assert ev.status.value == "resolved"
    assert ev.fingerprint == "zabbix:web-1.example.org:event:48213"
    assert ev.labels["update_action"] == "commented"


def test_zabbix_update_with_only_the_trigger_status_follows_it() -> None:
    payload = load("zabbix_update_ack.json")
    for key in ("event_value", "event_status"):
        del payload[key]

    assert parse("zabbix", payload).status.value == "firing"
    assert parse("zabbix", {**payload, "trigger_status": "OK"}).status.value == "resolved"


def test_zabbix_unresolved_macros_are_absent() -> None:
    payload = load("zabbix_problem.json")
    payload.update(
        host_ip="{HOST.IP}",
        item_value="*UNKNOWN*",
        event_opdata="",
        zabbix_url="{$ZABBIX.URL}",
        event_tags_json="{EVENT.TAGSJSON}",
        event_severity="{EVENT.SEVERITY}",
    )

    ev = parse("zabbix", payload)

    assert ev.status.value == "firing"  # {EVENT.RECOVERY.ID} in the problem did not mean a recovery
    assert ev.service is None
    for label in (
        "host_ip",
        "item_value",
        "opdata",
        "event_url",
        "zabbix_severity",
        "class",
        "update_action",
    ):
        assert label not in ev.labels


def test_zabbix_a_recovery_id_decides_when_the_value_is_unresolved() -> None:
    payload = {**load("zabbix_recovery.json"), "event_value": "{EVENT.VALUE}", "event_status": ""}
    del payload["trigger_status"]

    assert parse("zabbix", payload).status.value == "resolved"


def test_zabbix_without_an_event_id_keys_on_trigger_and_host() -> None:
    problem = load("zabbix_problem.json")
    recovery = load("zabbix_recovery.json")
    for p in (problem, recovery):
        p["event_id"] = "{EVENT.ID}"

    fired, resolved = parse("zabbix", problem), parse("zabbix", recovery)

    assert fired.fingerprint == resolved.fingerprint == "zabbix:web-1.example.org:trigger:23511"
    assert (fired.status.value, resolved.status.value) == ("firing", "resolved")


@pytest.mark.parametrize(
    ("nseverity", "name", "severity"),
    [
        ("0", "Not classified", "info"),
        ("1", "Information", "info"),
        ("2", "Warning", "warning"),
        ("3", "Average", "warning"),
        ("4", "High", "error"),
        ("5", "Disaster", "critical"),
    ],
)
def test_zabbix_severities(nseverity: str, name: str, severity: str) -> None:
    payload = load("zabbix_problem.json")

    assert parse("zabbix", {**payload, "event_nseverity": nseverity}).severity.value == severity
    by_name = {**payload, "event_nseverity": "{EVENT.NSEVERITY}", "event_severity": name}
    assert parse("zabbix", by_name).severity.value == severity


def test_zabbix_renamed_severities_fall_back_to_the_usual_words() -> None:
    payload = {**load("zabbix_problem.json"), "event_nseverity": ""}

    assert parse("zabbix", {**payload, "event_severity": "Major"}).severity.value == "error"
    assert parse("zabbix", {**payload, "event_severity": "Whatever"}).severity.value == "warning"
    assert parse("zabbix", {**payload, "event_severity": "5"}).severity.value == "critical"


def test_zabbix_tags_in_every_shape() -> None:
    payload = load("zabbix_problem.json")
    as_list = parse("zabbix", payload).labels
    as_string = parse("zabbix", {**payload, "event_tags_json": json.dumps(payload["event_tags_json"])}).labels
    as_text = parse(
        "zabbix",
        {
            **{k: v for k, v in payload.items() if k != "event_tags_json"},
            "event_tags": "class:os, component:cpu, scope:performance, scope:availability, service:checkout",
        },
    ).labels

    assert as_list == as_string == as_text
    assert "__zbx_ops_issuekey" not in as_list
    repeated = parse(
        "zabbix",
        {
            **payload,
            "event_tags": "",
            "event_tags_json": "["
            + ",".join(json.dumps({"tag": "scope", "value": v}) for v in ("a", "b", "a"))
            + ',{"tag": "bare"}]',
        },
    )
    assert (repeated.labels["scope"], repeated.labels["bare"]) == ("a,b", "")


def test_zabbix_opsdesk_service_parameter_wins_over_the_tag() -> None:
    payload = {**load("zabbix_problem.json"), "opsdesk_service": "payments"}

    assert parse("zabbix", payload).service == "payments"


def test_zabbix_keys_are_matched_loosely() -> None:
    """Keep's media type: macro names as keys, ``id``, ``triggerId``, ``status``, tags as a string."""
    ev = parse("zabbix", load("zabbix_keep_style.json"))

    assert ev.fingerprint == "zabbix:db-2:event:51007"
    assert (ev.status.value, ev.severity.value) == ("firing", "critical")
    assert ev.summary == "MySQL: Service is down"
    assert ev.ci == "db-2"
    assert ev.labels["component"] == "application,health"
    assert ev.labels["host_ip"] == "10.0.6.12"
    spelled = {"EVENT.ID": "7", "eventId": "7", "event-value": "1", "Event.Name": "x", "HOST.HOST": "h"}
    assert parse("zabbix", spelled).fingerprint == "zabbix:h:event:7"


def _without(*keys: str) -> Any:
    def mutate(p: dict[str, Any]) -> None:
        for k in keys:
            p.pop(k)

    return mutate


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (_without("event_value", "event_status", "trigger_status", "event_recovery_id"), "event_value"),
        (lambda p: p.update(event_value="2"), "event_value"),
        (lambda p: p.update(event_value=True), "event_value"),
        (lambda p: p.update(event_status="MAYBE"), "event_status"),
        (lambda p: p.update(event_update_status="yes"), "event_update_status"),
        (lambda p: p.update(event_nseverity="7"), "event_nseverity"),
        (lambda p: p.update(event_tags_json="[{not json"), "event_tags_json"),
        (lambda p: p.update(event_tags_json=42), "event_tags_json"),
        (lambda p: p["event_tags_json"].append({"value": "no tag"}), "event_tags_json[6]"),
        (lambda p: p["event_tags_json"].append({"tag": "t", "value": {}}), "event_tags_json[6].value"),
        (_without("event_name", "trigger_name"), "event_name"),
        (lambda p: p.update(event_id="", trigger_id="{TRIGGER.ID}"), "event_id"),
        (lambda p: p.update(event_id={"id": 1}), "event_id"),
        (lambda p: p.update(host_host=["web-1"]), "host_host"),
    ],
)
def test_zabbix_missing_or_wrong_fields_are_named(mutate: Any, field: str) -> None:
    payload = copy.deepcopy(load("zabbix_problem.json"))
    mutate(payload)

    assert refused("zabbix", payload) == [field]


def test_zabbix_wrong_fields_are_named_in_the_senders_spelling() -> None:
    assert refused("zabbix", {**load("zabbix_keep_style.json"), "EVENT.VALUE": "3"}) == ["EVENT.VALUE"]
    assert refused("zabbix", [load("zabbix_problem.json")]) == ["body"]


def _media_type() -> dict[str, Any]:
    return dict(yaml.safe_load(MEDIA_TYPE.read_text())["zabbix_export"]["media_types"][0])


# What Zabbix would put in place of each macro for the problem of tests/data/zabbix_problem.json.
MACROS = {
    "{EVENT.ACK.STATUS}": "No",
    "{EVENT.DATE}": "2026.03.02",
    "{EVENT.ID}": "48213",
    "{EVENT.NAME}": "High CPU utilization (over 90% for 5m)",
    "{EVENT.NSEVERITY}": "4",
    "{EVENT.OPDATA}": "Current utilization: 97.31 %",
    "{EVENT.SEVERITY}": "High",
    "{EVENT.SOURCE}": "0",
    "{EVENT.STATUS}": "PROBLEM",
    "{EVENT.TAGSJSON}": '[{"tag":"class","value":"os"},{"tag":"service","value":"checkout"}]',
    "{EVENT.TIME}": "09:00:12",
    "{EVENT.UPDATE.STATUS}": "0",
    "{EVENT.VALUE}": "1",
    "{HOST.HOST}": "web-1.example.org",
    "{HOST.IP}": "10.0.4.21",
    "{HOST.NAME}": "Web server 1",
    "{ITEM.VALUE}": "97.31 %",
    "{TRIGGER.ID}": "23511",
    "{TRIGGER.NAME}": "High CPU utilization (over {$CPU.UTIL.CRIT}% for 5m)",
    "{TRIGGER.STATUS}": "PROBLEM",
}
RECOVERY_MACROS = {
    **MACROS,
    "{EVENT.RECOVERY.ID}": "48377",
    "{EVENT.STATUS}": "RESOLVED",
    "{EVENT.VALUE}": "0",
    "{TRIGGER.STATUS}": "OK",
}


def _zabbix_params(macros: dict[str, str], **given: str) -> dict[str, str]:
    """The media type's parameters as Zabbix hands them to the script: macros without a value stay."""
    params = {}
    for p in _media_type()["parameters"]:
        value = str(p.get("value", ""))
        params[p["name"]] = re.sub(r"\{[^{}]+\}", lambda m: macros.get(m.group(0), m.group(0)), value)
    params.update(given)
    return params


def test_zabbix_media_type_parameters_are_the_canonical_payload() -> None:
    media = _media_type()
    names = [p["name"] for p in media["parameters"]]

    assert media["type"] == "WEBHOOK"
    assert {"opsdesk_url", "opsdesk_secret"} <= set(names)
    for name in names:
        if name not in ("opsdesk_url", "opsdesk_secret"):
            assert field_of(name) == name or (name, field_of(name)) == ("event_tags_json", "event_tags"), name
    ev = parse("zabbix", _zabbix_params(MACROS))
    assert ev.fingerprint == "zabbix:web-1.example.org:event:48213"
    assert ev.service == "checkout" and ev.severity.value == "error"
    assert "recovery_event_id" not in ev.labels
    assert parse("zabbix", _zabbix_params(RECOVERY_MACROS)).status.value == "resolved"
    # Nothing resolved at all (say, a test message): refused, naming the missing state.
    assert refused("zabbix", _zabbix_params({})) == ["event_value"]


# --- Nagios and Icinga 2 ---------------------------------------------------------------------------


def test_nagios_service_problem() -> None:
    ev = parse("nagios", load("nagios_service_problem.json"))

    assert ev.source == "nagios"
    assert ev.fingerprint == "nagios:web-1!HTTP"
    assert (ev.status.value, ev.severity.value) == ("firing", "critical")
    assert ev.summary == (
        "HTTP (shop front) on Web server 1 is CRITICAL: connect to address 10.0.4.21 and port 80: "
        "Connection refused"
    )
    assert ev.ci == "web-1"
    assert ev.service is None
    assert ev.labels == {
        "host": "web-1",
        "host_address": "10.0.4.21",
        "host_display_name": "Web server 1",
        "service_name": "HTTP",
        "service_display_name": "HTTP (shop front)",
        "state": "CRITICAL",
        "host_state": "UP",
        "notification_type": "PROBLEM",
        "output": "connect to address 10.0.4.21 and port 80: Connection refused",
        "notification_number": "1",
        "date_time": "Mon Mar 2 09:00:12 UTC 2026",
    }


def test_nagios_service_recovery_and_acknowledgement_share_the_fingerprint() -> None:
    fired = parse("nagios", load("nagios_service_problem.json"))
    ack = parse("nagios", load("nagios_service_ack.json"))
    resolved = parse("nagios", load("nagios_service_recovery.json"))

    assert fired.fingerprint == ack.fingerprint == resolved.fingerprint
    assert (ack.status.value, ack.severity.value) == ("firing", "critical")
    assert ack.labels["notification_type"] == "ACKNOWLEDGEMENT"
    assert ack.labels["notification_author"] == "nagiosadmin"
    assert ack.labels["notification_comment"] == "looking into it, nginx died"
    assert (resolved.status.value, resolved.severity.value) == ("resolved", "info")


def test_nagios_host_down_and_up() -> None:
    down = parse("nagios", load("nagios_host_down.json"))
    up = parse("nagios", load("nagios_host_recovery.json"))

    assert down.fingerprint == up.fingerprint == "nagios:db-2"
    assert (down.status.value, down.severity.value) == ("firing", "critical")
    assert down.summary == "db-2 is DOWN: PING CRITICAL - Packet loss = 100%"
    assert "service_name" not in down.labels and "host_state" not in down.labels
    assert up.status.value == "resolved"


def test_icinga_service_problem_and_recovery() -> None:
    fired = parse("icinga", load("icinga_service_problem.json"))
    resolved = parse("icinga", load("icinga_service_recovery.json"))

    assert fired.source == "icinga"
    assert fired.fingerprint == resolved.fingerprint == "icinga:app-3.example.org!disk-var"
    assert (fired.status.value, fired.severity.value) == ("firing", "warning")
    assert fired.summary.startswith("Disk /var on app-3 is WARNING: DISK WARNING")
    assert fired.ci == "app-3.example.org"
    assert resolved.status.value == "resolved"


def test_icinga_macro_names_as_keys_and_a_downtime_of_an_up_host() -> None:
    ev = parse("icinga", load("icinga_downtime_host_macros.json"))

    assert ev.fingerprint == "icinga:app-3.example.org"  # SERVICENAME empty: a host notification
    assert ev.status.value == "resolved"  # UP: a downtime cannot open an alert
    assert ev.labels["notification_type"] == "DOWNTIMESTART"
    assert ev.labels["notification_author"] == "icingaadmin"
    assert ev.labels["notification_comment"] == "kernel upgrade"


@pytest.mark.parametrize(
    ("state", "status", "severity"),
    [
        ("OK", "resolved", "info"),
        ("WARNING", "firing", "warning"),
        ("CRITICAL", "firing", "critical"),
        ("UNKNOWN", "firing", "warning"),
        ("critical", "firing", "critical"),
    ],
)
def test_nagios_service_states(state: str, status: str, severity: str) -> None:
    ev = parse("nagios", {**load("nagios_service_problem.json"), "service_state": state})

    assert (ev.status.value, ev.severity.value) == (status, severity)


@pytest.mark.parametrize(
    ("state", "status", "severity"),
    [("UP", "resolved", "info"), ("DOWN", "firing", "critical"), ("UNREACHABLE", "firing", "warning")],
)
def test_nagios_host_states(state: str, status: str, severity: str) -> None:
    ev = parse("nagios", {**load("nagios_host_down.json"), "host_state": state})

    assert (ev.status.value, ev.severity.value) == (status, severity)


@pytest.mark.parametrize(
    "ntype",
    [
        "ACKNOWLEDGEMENT",
        "FLAPPINGSTART",
        "FLAPPINGSTOP",
        "FLAPPINGEND",
        "FLAPPINGDISABLED",
        "DOWNTIMESTART",
        "DOWNTIMEEND",
        "DOWNTIMECANCELLED",
        "CUSTOM",
    ],
)
def test_non_state_notifications_follow_the_state_they_carry(ntype: str) -> None:
    critical = {**load("nagios_service_problem.json"), "notification_type": ntype}
    ok = {**critical, "service_state": "OK", "service_output": "HTTP OK"}

    fired, resolved = parse("nagios", critical), parse("nagios", ok)

    assert (fired.status.value, resolved.status.value) == ("firing", "resolved")
    assert fired.fingerprint == resolved.fingerprint == "nagios:web-1!HTTP"
    assert fired.labels["notification_type"] == resolved.labels["notification_type"] == ntype


def test_a_recovery_resolves_whatever_state_it_names() -> None:
    payload = {**load("nagios_service_problem.json"), "notification_type": "recovery"}

    assert parse("nagios", payload).status.value == "resolved"


def test_nagios_state_ids_and_unexpanded_macros() -> None:
    payload = load("nagios_host_down.json")
    del payload["host_state"]
    payload.update(host_state_id="1", service_desc="$SERVICEDESC$", service_state="$SERVICESTATE$")

    ev = parse("nagios", payload)

    assert ev.fingerprint == "nagios:db-2" and ev.labels["state"] == "DOWN"


def test_nagios_opsdesk_service_names_the_service() -> None:
    payload = {**load("nagios_service_problem.json"), "opsdesk_service": "shop"}

    assert parse("nagios", payload).service == "shop"


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda p: p.pop("notification_type"), "notification_type"),
        (lambda p: p.update(notification_type="BOGUS"), "notification_type"),
        (lambda p: p.pop("host_name"), "host_name"),
        (lambda p: p.update(host_name="$HOSTNAME$"), "host_name"),
        (lambda p: p.pop("service_state"), "service_state"),
        (lambda p: p.update(service_state="DOWN"), "service_state"),
        (lambda p: p.update(service_state=None, service_state_id="7"), "service_state_id"),
        (lambda p: p.update(service_output={"text": "x"}), "service_output"),
        (lambda p: p.update(service_desc="", host_state="CRITICAL"), "host_state"),
        (lambda p: p.update(service_desc="", host_state=""), "host_state"),
    ],
)
def test_nagios_missing_or_wrong_fields_are_named(mutate: Any, field: str) -> None:
    payload = load("nagios_service_problem.json")
    mutate(payload)

    assert refused("nagios", payload) == [field]


def test_icinga_wrong_fields_are_named_in_the_senders_spelling() -> None:
    payload = {**load("icinga_downtime_host_macros.json"), "HOSTSTATE": "SIDEWAYS"}

    assert refused("icinga", payload) == ["HOSTSTATE"]
    assert refused("icinga", "PROBLEM") == ["body"]


# --- through the hook ------------------------------------------------------------------------------


@pytest.fixture
def manager(accounts: dict[str, Account]) -> Account:
    return accounts["manager"]


def create(client: TestClient, manager: Account, **body: Any) -> dict[str, Any]:
    r = client.post("/api/v1/integrations", json=body, headers=manager.headers)
    assert r.status_code == 201, r.text
    return dict(r.json())


def post(client: TestClient, key: str, payload: Any) -> httpx.Response:
    return client.post(
        f"/hooks/{key}", content=json.dumps(payload).encode(), headers={"content-type": "application/json"}
    )


def stored(db: Database) -> list[Event]:
    """The events the hook stored, oldest first."""
    with db.session() as s:
        rows = list(s.scalars(select(Event).order_by(Event.id)))
        s.expunge_all()
    return rows


def alerts(db: Database, clock: ManualClock) -> list[Alert]:
    with db.session() as s:
        process_pending(s, now=clock.now())
    with db.session() as s:
        rows = list(s.scalars(select(Alert).order_by(Alert.id)))
        s.expunge_all()
    return rows


def test_zabbix_problem_update_recovery_through_the_hook(
    client: TestClient, manager: Account, db: Database, clock: ManualClock
) -> None:
    r = client.post("/api/v1/services", json={"name": "checkout"}, headers=manager.headers)
    assert r.status_code == 201, r.text
    checkout = r.json()["id"]
    key = create(client, manager, name="zabbix", kind="zabbix")["key"]

    assert post(client, key, load("zabbix_problem.json")).status_code == 202
    assert post(client, key, load("zabbix_update_ack.json")).status_code == 202
    (alert,) = alerts(db, clock)
    assert (alert.status, alert.severity, alert.service_id) == ("firing", "critical", checkout)
    assert alert.fingerprint == "zabbix:web-1.example.org:event:48213" and alert.event_count == 2

    assert post(client, key, load("zabbix_recovery.json")).status_code == 202
    assert post(client, key, load("zabbix_update_resolved.json")).status_code == 202  # a late comment
    (alert,) = alerts(db, clock)
    assert alert.status == "resolved"

    r = post(client, key, {**load("zabbix_problem.json"), "event_nseverity": "9"})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "event_nseverity"
    with db.session() as s:
        assert len(list(s.scalars(select(Event)))) == 4


def test_an_acknowledgement_of_an_ok_service_opens_nothing(
    client: TestClient, manager: Account, db: Database, clock: ManualClock
) -> None:
    key = create(client, manager, name="nagios", kind="nagios")["key"]
    ack_ok = {**load("nagios_service_ack.json"), "service_state": "OK", "service_output": "HTTP OK"}

    assert post(client, key, ack_ok).status_code == 202
    assert alerts(db, clock) == []
    assert post(client, key, load("nagios_service_problem.json")).status_code == 202
    assert post(client, key, load("nagios_service_ack.json")).status_code == 202
    (alert,) = alerts(db, clock)
    assert alert.status == "firing" and alert.event_count == 2


# --- the contrib senders against a live server ---------------------------------------------------


class ThreadServer:
    """The app on a loopback port, served by uvicorn in a thread."""

    def __init__(self, app: Any, port: int) -> None:
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> ThreadServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


@pytest.fixture
def live(app: Any, db: Database, clock: ManualClock, accounts: dict[str, Account]) -> Iterator[str]:
    """The server on a real port; its clock at the real time, as the senders sign with it."""
    clock.set(datetime.now(UTC))
    port = free_port()
    with ThreadServer(app, port):
        yield f"http://127.0.0.1:{port}"


def make_integration(base: str, manager: Account, kind: str, secret: str | None = SECRET) -> str:
    body: dict[str, Any] = {"name": f"{kind}-{secrets.token_hex(3)}", "kind": kind}
    if secret:
        body["secret"] = secret
    r = httpx.post(f"{base}/api/v1/integrations", json=body, headers=manager.headers, timeout=10)
    assert r.status_code == 201, r.text
    return f"{base}/hooks/{r.json()['key']}"


def notify(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """opsdesk-notify as Nagios or Icinga 2 runs it: an executable, with a bare environment."""
    base_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    return subprocess.run(
        [str(NOTIFY), *args],
        env={**base_env, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def nagios_args(payload: dict[str, str]) -> list[str]:
    """A data file's fields as command-line options."""
    out = []
    for field, value in payload.items():
        out += [f"--{field.replace('_', '-')}", value]
    return out


# The data files' fields under the names of the Nagios macros that fill them.
NAGIOS_MACROS = {
    "notification_type": "NOTIFICATIONTYPE",
    "host_name": "HOSTNAME",
    "host_display_name": "HOSTDISPLAYNAME",
    "host_address": "HOSTADDRESS",
    "host_state": "HOSTSTATE",
    "host_output": "HOSTOUTPUT",
    "service_desc": "SERVICEDESC",
    "service_display_name": "SERVICEDISPLAYNAME",
    "service_state": "SERVICESTATE",
    "service_output": "SERVICEOUTPUT",
    "notification_author": "NOTIFICATIONAUTHOR",
    "notification_comment": "NOTIFICATIONCOMMENT",
    "notification_number": "NOTIFICATIONNUMBER",
    "long_date_time": "LONGDATETIME",
}


def nagios_command(name: str, data_file: str, tmp_path: Path) -> str:
    """The command_line of contrib/nagios/commands.cfg with its macros expanded as Nagios does
    (a macro without a value becomes empty), and the install paths pointed at test files."""
    config = (ROOT / "contrib" / "nagios" / "commands.cfg").read_text()
    found = re.search(rf"command_name\s+{name}\s*\n\s*command_line\s+(.+)", config)
    assert found is not None, name
    macros = {NAGIOS_MACROS[k]: v for k, v in load(data_file).items()}
    line = (
        found.group(1)
        .strip()
        .replace("/usr/local/bin/opsdesk-notify", str(NOTIFY))
        .replace("/etc/opsdesk-hook-url", str(tmp_path / "hook-url"))
        .replace("/etc/opsdesk-hook-secret", str(tmp_path / "hook-secret"))
    )
    return re.sub(r"\$([A-Z]+)\$", lambda m: macros.get(m.group(1), ""), line)


def test_notify_script_as_a_nagios_command_signs_and_delivers(
    live: str, manager: Account, db: Database, tmp_path: Path
) -> None:
    url = make_integration(live, manager, "nagios")
    (tmp_path / "hook-url").write_text(url + "\n")
    (tmp_path / "hook-secret").write_text(SECRET + "\n")
    sent = [
        ("notify-service-by-opsdesk", "nagios_service_problem.json"),
        ("notify-service-by-opsdesk", "nagios_service_ack.json"),
        ("notify-host-by-opsdesk", "nagios_host_down.json"),
    ]

    for command, data_file in sent:
        done = subprocess.run(
            ["/bin/sh", "-c", nagios_command(command, data_file, tmp_path)],
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr

    events = stored(db)
    for event, (_, data_file) in zip(events, sent, strict=True):
        expected = parse("nagios", load(data_file))
        assert (event.source, event.fingerprint, event.status, event.severity, event.summary) == (
            "nagios",
            expected.fingerprint,
            expected.status.value,
            expected.severity.value,
            expected.summary,
        )
        assert expected.labels.items() <= event.labels.items()  # every macro of the command line arrived
    assert events[0].fingerprint == events[1].fingerprint == "nagios:web-1!HTTP"

    done = notify(
        *nagios_args(load("nagios_service_recovery.json")),
        env={"OPSDESK_HOOK_URL": url, "OPSDESK_HOOK_SECRET_FILE": str(tmp_path / "hook-secret")},
    )
    assert done.returncode == 0, done.stderr
    recovery = stored(db)[-1]
    assert (recovery.status, recovery.fingerprint) == ("resolved", "nagios:web-1!HTTP")


def test_notify_script_reads_nagios_environment_macros(
    live: str, manager: Account, db: Database, clock: ManualClock
) -> None:
    url = make_integration(live, manager, "nagios", secret=None)
    env = {
        "NAGIOS_NOTIFICATIONTYPE": "PROBLEM",
        "NAGIOS_HOSTNAME": "db-2",
        "NAGIOS_HOSTADDRESS": "10.0.6.12",
        "NAGIOS_HOSTSTATE": "DOWN",
        "NAGIOS_HOSTOUTPUT": "PING CRITICAL - Packet loss = 100%",
        "NAGIOS_SERVICEDESC": "",  # Nagios sets every macro; empty in a host notification
        "HOSTNAME": "the-nagios-server",  # a shell's own variable must not win over NAGIOS_HOSTNAME
    }

    done = notify("--url", url, env=env)

    assert done.returncode == 0, done.stderr
    (event,) = stored(db)
    assert (event.fingerprint, event.status, event.severity) == ("nagios:db-2", "firing", "critical")
    assert event.labels["host_address"] == "10.0.6.12"


# What Icinga 2 puts in place of the runtime macros for tests/data/icinga_service_*.json.
ICINGA_PROBLEM = {
    "notification.type": "PROBLEM",
    "notification.author": "",
    "notification.comment": "",
    "host.name": "app-3.example.org",
    "host.display_name": "app-3",
    "address": "10.0.8.3",
    "host.state": "UP",
    "host.output": "PING OK - Packet loss = 0%, RTA = 0.52 ms",
    "service.name": "disk-var",
    "service.display_name": "Disk /var",
    "service.state": "WARNING",
    "service.output": "DISK WARNING - free space: /var 1843 MB (9% inode=91%);",
    "icinga.long_date_time": "2026-03-02 11:20:03 +0000",
    "opsdesk_service": "",
}
ICINGA_RECOVERY = {
    **ICINGA_PROBLEM,
    "notification.type": "RECOVERY",
    "service.state": "OK",
    "service.output": "DISK OK - free space: /var 6021 MB (31% inode=91%);",
    "icinga.long_date_time": "2026-03-02 11:47:19 +0000",
}


def icinga_env(command: str, macros: dict[str, str]) -> dict[str, str]:
    """The env of a NotificationCommand of contrib/icinga2/opsdesk.conf, its macros resolved."""
    config = (ROOT / "contrib" / "icinga2" / "opsdesk.conf").read_text()
    block = config.split(f'object NotificationCommand "{command}"')[1].split("\n}")[0]
    env_block = block.split("env = {")[1].split("}")[0]
    pairs = re.findall(r'^\s*(\w+) = "\$([\w.]+)\$"', env_block, re.MULTILINE)
    assert pairs, command
    return {name: macros[macro] for name, macro in pairs}


def test_notify_script_as_an_icinga2_notification_command(
    live: str, manager: Account, db: Database, tmp_path: Path
) -> None:
    url = make_integration(live, manager, "icinga")
    (tmp_path / "hook-url").write_text(url + "\n")
    (tmp_path / "hook-secret").write_text(SECRET + "\n")
    files = {
        "opsdesk_url_file": str(tmp_path / "hook-url"),
        "opsdesk_secret_file": str(tmp_path / "hook-secret"),
    }

    for macros in (ICINGA_PROBLEM, ICINGA_RECOVERY):
        done = notify(env=icinga_env("opsdesk-service-notification", {**macros, **files}))
        assert done.returncode == 0, done.stderr

    problem, recovery = stored(db)
    for event, data_file in (
        (problem, "icinga_service_problem.json"),
        (recovery, "icinga_service_recovery.json"),
    ):
        expected = parse("icinga", load(data_file))
        assert (event.source, event.fingerprint, event.status, event.severity, event.summary) == (
            "icinga",
            expected.fingerprint,
            expected.status.value,
            expected.severity.value,
            expected.summary,
        )
        assert expected.labels.items() <= event.labels.items()
    assert problem.fingerprint == recovery.fingerprint == "icinga:app-3.example.org!disk-var"
    assert problem.labels["host_state"] == "UP"


def test_icinga2_host_notification_command(live: str, manager: Account, db: Database, tmp_path: Path) -> None:
    url = make_integration(live, manager, "icinga", secret=None)
    (tmp_path / "hook-url").write_text(url + "\n")
    down = {**ICINGA_PROBLEM, "host.state": "DOWN", "host.output": "PING CRITICAL - Packet loss = 100%"}
    files = {"opsdesk_url_file": str(tmp_path / "hook-url"), "opsdesk_secret_file": ""}

    done = notify(env=icinga_env("opsdesk-host-notification", {**down, **files}))

    assert done.returncode == 0, done.stderr
    (event,) = stored(db)
    assert (event.fingerprint, event.status, event.severity) == (
        "icinga:app-3.example.org",
        "firing",
        "critical",
    )
    assert event.summary == "app-3 is DOWN: PING CRITICAL - Packet loss = 100%"


def test_notify_script_fails_clearly_on_a_bad_key(live: str) -> None:
    done = notify(
        "--url",
        f"{live}/hooks/odh_{'x' * 43}",
        *nagios_args(load("nagios_host_down.json")),
    )

    assert done.returncode != 0
    assert "HTTP 404" in done.stderr and "no integration has this key" in done.stderr
    assert "retrying" not in done.stderr  # a 404 is final
    assert "x" * 43 not in done.stderr  # the key is a credential


def test_notify_script_fails_clearly_on_a_wrong_secret(live: str, manager: Account, db: Database) -> None:
    url = make_integration(live, manager, "nagios")

    done = notify(
        "--url", url, *nagios_args(load("nagios_host_down.json")), env={"OPSDESK_HOOK_SECRET": "wrong" * 5}
    )

    assert done.returncode == 1
    assert "HTTP 401" in done.stderr and "X-Opsdesk-Signature".lower() in done.stderr.lower()
    with db.session() as s:
        assert list(s.scalars(select(Event))) == []


async def test_notify_script_retries_server_errors_then_gives_up() -> None:
    target = TargetServer(status=503)
    await target.start()
    try:
        proc = await asyncio.create_subprocess_exec(
            str(NOTIFY),
            "--url",
            f"http://127.0.0.1:{target.port}/hooks/odh_{'y' * 43}",
            "--retries",
            "2",
            "--retry-delay",
            "0",
            "--notification-type",
            "PROBLEM",
            "--host-name",
            "db-2",
            "--host-state",
            "DOWN",
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        _, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    finally:
        await target.stop()

    assert proc.returncode == 1
    assert target.hits == 3
    assert "HTTP 503" in err.decode() and "gave up after 3 attempts" in err.decode()


def test_notify_script_needs_a_notification_and_a_url() -> None:
    nothing = notify()
    no_url = notify("--notification-type", "PROBLEM", "--host-name", "db-2", "--host-state", "DOWN")

    assert nothing.returncode == 1 and "--notification-type" in nothing.stderr
    assert no_url.returncode == 1 and "no hook URL" in no_url.stderr


# The Zabbix media type's script under node, with Zabbix's HttpRequest, Zabbix.log and hmac().
HARNESS = r"""
const fs = require('fs'), crypto = require('crypto'), cp = require('child_process');
const script = fs.readFileSync(process.argv[2], 'utf8');
const value = fs.readFileSync(0, 'utf8');
const CHILD = `
  const input = JSON.parse(require('fs').readFileSync(0, 'utf8'));
  const headers = {};
  for (const h of input.headers) { const i = h.indexOf(':'); headers[h.slice(0, i)] = h.slice(i + 1).trim(); }
  fetch(input.url, {method: 'POST', headers, body: input.body})
    .then(async r => process.stdout.write(JSON.stringify({status: r.status, body: await r.text()})))
    .catch(e => { process.stderr.write(String(e)); process.exit(1); });
`;
function HttpRequest() { this.headers = []; this.status = 0; }
HttpRequest.prototype.addHeader = function (h) { this.headers.push(h); };
HttpRequest.prototype.setProxy = function () {};
HttpRequest.prototype.getStatus = function () { return this.status; };
HttpRequest.prototype.post = function (url, body) {
  const out = cp.execFileSync(process.execPath, ['-e', CHILD],
    {input: JSON.stringify({url: url, headers: this.headers, body: body})});
  const r = JSON.parse(out);
  this.status = r.status;
  return r.body;
};
const Zabbix = {log: function () {}};
function hmac(type, key, data) { return crypto.createHmac(type, key).update(data, 'utf8').digest('hex'); }
try {
  const run = new Function('value', 'HttpRequest', 'Zabbix', 'hmac', script);
  console.log(run(value, HttpRequest, Zabbix, hmac));
} catch (e) {
  console.error(String(e));
  process.exit(1);
}
"""


def run_media_type(tmp_path: Path, params: dict[str, str]) -> subprocess.CompletedProcess[str]:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the media type's script cannot run")
    (tmp_path / "harness.js").write_text(HARNESS)
    (tmp_path / "media.js").write_text(_media_type()["script"])
    return subprocess.run(
        [node, str(tmp_path / "harness.js"), str(tmp_path / "media.js")],
        input=json.dumps(params),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_zabbix_media_type_script_posts_signed_problem_and_recovery(
    live: str, manager: Account, db: Database, clock: ManualClock, tmp_path: Path
) -> None:
    r = httpx.post(f"{live}/api/v1/services", json={"name": "checkout"}, headers=manager.headers, timeout=10)
    assert r.status_code == 201, r.text
    url = make_integration(live, manager, "zabbix")

    done = run_media_type(tmp_path, _zabbix_params(MACROS, opsdesk_url=url, opsdesk_secret=SECRET))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "OK"
    (event,) = stored(db)
    assert (event.fingerprint, event.status, event.severity) == (
        "zabbix:web-1.example.org:event:48213",
        "firing",
        "error",
    )
    assert event.service_id == r.json()["id"]
    assert event.labels["class"] == "os" and event.labels["host_ip"] == "10.0.4.21"
    assert not {"opsdesk_url", "opsdesk_secret", "recovery_event_id"} & set(event.labels)

    done = run_media_type(tmp_path, _zabbix_params(RECOVERY_MACROS, opsdesk_url=url, opsdesk_secret=SECRET))
    assert done.returncode == 0, done.stderr
    problem, recovery = stored(db)
    assert (recovery.status, recovery.fingerprint) == ("resolved", problem.fingerprint)
    assert recovery.labels["recovery_event_id"] == "48377"


def test_zabbix_media_type_script_reports_refusals(
    live: str, manager: Account, db: Database, tmp_path: Path
) -> None:
    url = make_integration(live, manager, "zabbix")

    unsigned = run_media_type(tmp_path, _zabbix_params(MACROS, opsdesk_url=url))  # {$OPSDESK.SECRET} unset
    bad_key = run_media_type(tmp_path, _zabbix_params(MACROS, opsdesk_url=f"{live}/hooks/odh_{'z' * 43}"))
    no_url = run_media_type(tmp_path, _zabbix_params(MACROS))  # {$OPSDESK.URL} unset

    assert unsigned.returncode == 1 and "HTTP 401" in unsigned.stderr
    assert bad_key.returncode == 1 and "HTTP 404" in bad_key.stderr
    assert no_url.returncode == 1 and "opsdesk_url" in no_url.stderr
    with db.session() as s:
        assert list(s.scalars(select(Event))) == []
