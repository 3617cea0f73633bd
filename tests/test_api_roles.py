"""Who may call what: every API route against every role, in the NetBox style.

``ROUTES`` lists each route once, with the least role that may call it and a recipe for a valid
request (path ids and body) built from the seeded ``World``. For every route and every role:

* below the minimum role the answer is 403 problem+json and nothing in the database changed
  (every table is compared row by row, and the audit log is counted through the API as admin);
* at or above it the answer is 2xx.

``test_every_api_route_is_in_the_matrix`` fails when a route is added under /api/v1 without a row
here, so no future route escapes the check.
"""

from __future__ import annotations

import itertools
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy import select

import opsdesk.notify.models  # noqa: F401  (registers the outbox table for the snapshots)
from opsdesk.alerts.service import process_pending
from opsdesk.auth import service as auth
from opsdesk.auth.schemas import UserUpdate
from opsdesk.core.actor import SYSTEM, Role
from opsdesk.core.clock import ManualClock
from opsdesk.core.db import Base, Database
from opsdesk.core.settings import Settings
from opsdesk.web.app import create_app
from tests.conftest import CLOCK_START, Account, app_settings, make_accounts

V, R, M, A = Role.viewer, Role.responder, Role.manager, Role.admin
ROLES = [V, R, M, A]
PROBLEM = "application/problem+json"


@pytest.fixture
def db_url(sqlite_url: str) -> str:
    """SQLite only: see ``sqlite_url`` in conftest."""
    return sqlite_url


# --- the seeded world ----------------------------------------------------------------------------


@dataclass
class World:
    """Objects every route can act on, created through the API as admin, plus spares on demand."""

    client: TestClient
    db: Database
    clock: ManualClock
    accounts: dict[str, Account]
    ids: dict[str, int] = field(default_factory=dict)
    actor: Account | None = None

    @property
    def admin(self) -> dict[str, str]:
        return self.accounts["admin"].headers

    def create(self, path: str, body: dict[str, Any]) -> int:
        r = self.client.post(path, json=body, headers=self.admin)
        assert r.status_code == 201, r.text
        return int(r.json()["id"])

    def __getattr__(self, name: str) -> int:
        if name == "ids":
            raise AttributeError(name)
        if name in ONCALL_IDS and name not in self.ids:
            self.seed_oncall()
        try:
            return self.ids[name]
        except KeyError:
            raise AttributeError(name) from None

    def seed_oncall(self) -> None:
        """A schedule with an override, a policy paging it, and an incident escalating by it: made
        only for the routes that use them (the matrix runs hundreds of cases)."""
        self.ids["schedule_id"] = self.create("/api/v1/schedules", SCHEDULE | {"name": "primary"})
        self.ids["override_id"] = self.create(f"/api/v1/schedules/{self.schedule_id}/overrides", OVERRIDE)
        self.ids["policy_id"] = self.create("/api/v1/escalation-policies", POLICY | {"name": "default"})
        paged = self.create("/api/v1/services", {"name": "paged", "escalation_policy_id": self.policy_id})
        self.ids["paged_incident_id"] = self.create(
            "/api/v1/incidents", {"title": "paging", "service_id": paged}
        )

    # Spares: routes that delete need something nothing else depends on.
    def spare_service(self) -> int:
        return self.create("/api/v1/services", {"name": "spare-service"})

    def spare_ci(self) -> int:
        return self.create("/api/v1/cis", {"name": "spare-ci", "class": "vm"})

    def spare_team(self) -> int:
        return self.create("/api/v1/teams", {"name": "spare-team"})

    def own_token(self) -> int:
        """A token of the acting user (revoking your own token is a responder's right)."""
        assert self.actor is not None
        return self.create("/api/v1/tokens", {"name": "spare", "user_id": self.actor.user.id})


def run_pipeline(db: Database, clock: ManualClock) -> int:
    with db.session() as s:
        return process_pending(s, now=clock.now())


def build_world(w: World) -> None:
    client, accounts = w.client, w.accounts
    w.ids["team_id"] = w.create(
        "/api/v1/teams", {"name": "payments", "member_ids": [accounts["responder"].user.id]}
    )
    w.ids["service_id"] = w.create("/api/v1/services", {"name": "checkout", "owner_team_id": w.team_id})
    w.ids["ci_id"] = w.create("/api/v1/cis", {"name": "db-1", "class": "database"})
    w.ids["rel_id"] = w.create(
        "/api/v1/relationships",
        {
            "type": "depends_on",
            "source_type": "service",
            "source_id": w.service_id,
            "target_type": "ci",
            "target_id": w.ci_id,
        },
    )
    w.ids["monitor_id"] = w.create(
        "/api/v1/monitors",
        {
            "name": "checkout-http",
            "target": "https://checkout.example.org/health",
            "service_id": w.service_id,
        },
    )
    w.ids["user_id"] = w.create("/api/v1/users", {"email": "bystander@example.org", "name": "Bystander"})
    w.ids["probe_id"] = w.create("/api/v1/probes", {"location": "branch"})
    w.ids["integration_id"] = w.create("/api/v1/integrations", {"name": "am", "kind": "alertmanager"})
    r = w.client.post(
        "/api/v1/events", json={"summary": "checkout is down", "service": "checkout"}, headers=w.admin
    )
    assert r.status_code == 202, r.text
    assert run_pipeline(w.db, w.clock) == 1
    w.ids["alert_id"] = client.get("/api/v1/alerts", headers=w.admin).json()["items"][0]["id"]
    w.ids["incident_id"] = client.get("/api/v1/incidents", headers=w.admin).json()["items"][0]["id"]
    # After the pipeline ran, and matching nothing seeded, so they mute nothing.
    w.ids["silence_id"] = w.create(
        "/api/v1/silences", {"matchers": ['alertname="DiskFull"'], "duration": "2h", "comment": "swap"}
    )
    w.ids["window_id"] = w.create("/api/v1/maintenance-windows", WINDOW | {"service_id": w.service_id})
    w.ids["rule_id"] = w.create("/api/v1/alert-rules", {"name": "disk", "matchers": ["alertname=DiskFull"]})


@dataclass
class Seeded:
    """The world as built once for the module: its database file, data directory, ids and users.
    Each case starts from a copy of the file (the matrix runs hundreds of cases; building the world
    through the API for each was most of its time)."""

    db_file: Path
    data_dir: Path
    ids: dict[str, int]
    accounts: dict[str, Account]


@pytest.fixture(scope="module")
def seeded_world(tmp_path_factory: pytest.TempPathFactory, _templates: Any) -> Seeded:
    root = tmp_path_factory.mktemp("world")
    db_file, data_dir = root / "opsdesk.db", root / "var"
    shutil.copyfile(_templates.sqlite(), db_file)
    db = Database(f"sqlite:///{db_file}")
    clock = ManualClock(CLOCK_START)
    accounts = make_accounts(db, clock.now(), passwords=False)  # the matrix only uses tokens
    app = create_app(app_settings(data_dir), db=db, clock=clock, roles=set())
    with TestClient(app, raise_server_exceptions=False) as client:
        w = World(client, db, clock, accounts)
        build_world(w)
    db.dispose()
    return Seeded(db_file, data_dir, dict(w.ids), accounts)


@pytest.fixture
def db(sqlite_url: str, seeded_world: Seeded) -> Iterator[Database]:
    shutil.copyfile(seeded_world.db_file, sqlite_url.split("///", 1)[1])
    database = Database(sqlite_url)
    yield database
    database.dispose()


@pytest.fixture
def settings(tmp_path: Path, seeded_world: Seeded) -> Settings:
    data_dir = tmp_path / "var"
    shutil.copytree(seeded_world.data_dir, data_dir)
    return app_settings(data_dir)


@pytest.fixture
def accounts(seeded_world: Seeded) -> dict[str, Account]:
    return seeded_world.accounts


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(CLOCK_START)


@pytest.fixture
def world(client: TestClient, db: Database, clock: ManualClock, seeded_world: Seeded) -> World:
    return World(client, db, clock, seeded_world.accounts, dict(seeded_world.ids))


# --- the matrix ----------------------------------------------------------------------------------

Build = Callable[[World], Any]


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    role: Role
    ids: Build = lambda w: {}
    body: Build | None = None

    def __str__(self) -> str:
        return f"{self.method} {self.path}"

    def prepare(self, w: World) -> tuple[str, Any]:
        """The URL and JSON body of a valid request (may create spares in ``w``)."""
        return self.path.format(**self.ids(w)), self.body(w) if self.body else None


def seeded(*names: str) -> Build:
    """Path ids taken from the seeded world: ``seeded("service_id")``."""
    return lambda w: {n: getattr(w, n) for n in names}


def const(value: Any) -> Build:
    return lambda w: value


def incident(w: World) -> dict[str, int]:
    return {"ref": w.incident_id}


def declared(w: World) -> int:
    """A second incident, declared by hand as admin."""
    return w.create("/api/v1/incidents", {"title": f"declared {next(_SEQ)}", "service": "checkout"})


def resolved_incident(w: World) -> dict[str, int]:
    """The seeded incident at P4 (no postmortem needed to close it), resolved."""
    url = f"/api/v1/incidents/{w.incident_id}"
    assert w.client.patch(url, json={"impact": "low", "urgency": "medium"}, headers=w.admin).is_success
    assert w.client.post(f"{url}/resolve", headers=w.admin).is_success
    return {"ref": w.incident_id}


def with_other(w: World) -> dict[str, int]:
    return {"ref": w.incident_id, "other": declared(w)}


def with_related(w: World) -> dict[str, int]:
    ids = with_other(w)
    r = w.client.post(f"/api/v1/incidents/{ids['ref']}/related/{ids['other']}", headers=w.admin)
    assert r.is_success, r.text
    return ids


def new_edge(w: World) -> dict[str, Any]:
    return {
        "type": "runs_on",
        "source_type": "service",
        "source_id": w.service_id,
        "target_type": "ci",
        "target_id": w.ci_id,
    }


def postmortem(w: World) -> dict[str, int]:
    """The seeded incident, with its postmortem started as admin."""
    r = w.client.post(f"/api/v1/incidents/{w.incident_id}/postmortem", headers=w.admin)
    assert r.is_success, r.text
    return {"ref": w.incident_id}


def new_action_item(w: World) -> dict[str, Any]:
    postmortem(w)
    pm = w.client.get(f"/api/v1/incidents/{w.incident_id}/postmortem", headers=w.admin).json()
    return {"postmortem_id": pm["id"], "title": f"follow-up {next(_SEQ)}"}


def action_item(w: World) -> dict[str, int]:
    return {"item_id": w.create("/api/v1/action-items", new_action_item(w))}


EDIT = const({"description": "changed"})
ONCALL_IDS = {"schedule_id", "override_id", "policy_id", "paged_incident_id"}
SCHEDULE = {
    "time_zone": "Europe/Berlin",
    "layers": [{"participants": ["responder@example.org"], "rotation_start": "2026-03-02T09:00:00"}],
}
OVERRIDE = {
    "user": "manager@example.org",
    "starts_at": "2026-03-03T09:00:00Z",
    "ends_at": "2026-03-03T17:00:00Z",
}
POLICY = {"levels": [{"timeout_minutes": 5, "targets": [{"type": "schedule", "ref": "primary"}]}]}
ICS = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VEVENT\r\nUID:1\r\nSUMMARY:responder@example.org"
    "\r\nDTSTART:20260310T080000Z\r\nDTEND:20260310T200000Z\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
)


def spare_schedule(w: World) -> dict[str, int]:
    return {"schedule_id": w.create("/api/v1/schedules", SCHEDULE | {"name": f"s-{next(_SEQ)}"})}


def spare_override(w: World) -> dict[str, int]:
    o = w.create(f"/api/v1/schedules/{w.schedule_id}/overrides", OVERRIDE)
    return {"schedule_id": w.schedule_id, "override_id": o}


def new_policy(w: World) -> dict[str, Any]:
    assert w.schedule_id  # the schedule it pages exists
    return POLICY | {"name": f"p-{next(_SEQ)}"}


def spare_policy(w: World) -> dict[str, int]:
    return {"policy_id": w.create("/api/v1/escalation-policies", new_policy(w))}


def own_channel(w: World) -> dict[str, int]:
    """A contact method of the caller (its owner may change it, whatever the role)."""
    assert w.actor is not None
    r = w.client.post(
        "/api/v1/me/channels",
        json={"name": f"c-{next(_SEQ)}", "kind": "email", "address": "me@example.org"},
        headers=w.actor.headers,
    )
    assert r.status_code == 201, r.text
    return {"channel_id": r.json()["id"]}


def own_rule(w: World) -> dict[str, int]:
    assert w.actor is not None
    r = w.client.post("/api/v1/me/notification-rules", json={"delay_minutes": 1}, headers=w.actor.headers)
    assert r.status_code == 201, r.text
    return {"rule_id": r.json()["id"]}


WINDOW = {"name": "patching", "starts_at": "2026-04-01T02:00:00Z", "ends_at": "2026-04-01T04:00:00Z"}
_SEQ = itertools.count(1)

ROUTES = [
    # users, teams, tokens
    Route("GET", "/api/v1/me", V),
    Route("GET", "/api/v1/users", V),
    Route("POST", "/api/v1/users", A, body=const({"email": "new@example.org", "name": "New"})),
    Route("GET", "/api/v1/users/{user_id}", V, seeded("user_id")),
    Route("PATCH", "/api/v1/users/{user_id}", A, seeded("user_id"), const({"name": "Renamed"})),
    Route("DELETE", "/api/v1/users/{user_id}", A, seeded("user_id")),
    Route("GET", "/api/v1/teams", V),
    Route("POST", "/api/v1/teams", M, body=const({"name": "sre"})),
    Route("GET", "/api/v1/teams/{team_id}", V, seeded("team_id")),
    Route("PATCH", "/api/v1/teams/{team_id}", M, seeded("team_id"), EDIT),
    Route("DELETE", "/api/v1/teams/{team_id}", M, lambda w: {"team_id": w.spare_team()}),
    Route("GET", "/api/v1/tokens", V),
    Route("POST", "/api/v1/tokens", R, body=const({"name": "ci"})),
    Route("DELETE", "/api/v1/tokens/{token_id}", R, lambda w: {"token_id": w.own_token()}),
    # CMDB
    Route("GET", "/api/v1/services", V),
    Route("POST", "/api/v1/services", M, body=const({"name": "search"})),
    Route("GET", "/api/v1/services/{service_id}", V, seeded("service_id")),
    Route("PATCH", "/api/v1/services/{service_id}", M, seeded("service_id"), EDIT),
    Route("DELETE", "/api/v1/services/{service_id}", M, lambda w: {"service_id": w.spare_service()}),
    Route("GET", "/api/v1/cis", V),
    Route("POST", "/api/v1/cis", M, body=const({"name": "web-1", "class": "server"})),
    Route("GET", "/api/v1/cis/{ci_id}", V, seeded("ci_id")),
    Route("PATCH", "/api/v1/cis/{ci_id}", M, seeded("ci_id"), EDIT),
    Route("DELETE", "/api/v1/cis/{ci_id}", M, lambda w: {"ci_id": w.spare_ci()}),
    Route("GET", "/api/v1/relationships", V),
    Route("POST", "/api/v1/relationships", M, body=new_edge),
    Route("GET", "/api/v1/relationships/{rel_id}", V, seeded("rel_id")),
    Route("DELETE", "/api/v1/relationships/{rel_id}", M, seeded("rel_id")),
    # monitoring
    Route("GET", "/api/v1/monitors", V),
    Route("POST", "/api/v1/monitors", M, body=const({"name": "home", "target": "https://example.org/"})),
    Route("GET", "/api/v1/monitors/{monitor_id}", V, seeded("monitor_id")),
    Route("PATCH", "/api/v1/monitors/{monitor_id}", M, seeded("monitor_id"), const({"interval_seconds": 30})),
    Route("DELETE", "/api/v1/monitors/{monitor_id}", M, seeded("monitor_id")),
    Route("GET", "/api/v1/monitors/{monitor_id}/results", V, seeded("monitor_id")),
    Route("GET", "/api/v1/monitors/{monitor_id}/uptime", V, seeded("monitor_id")),
    Route("GET", "/api/v1/monitors/{monitor_id}/history", V, seeded("monitor_id")),
    Route("GET", "/api/v1/monitors/{monitor_id}/daily", V, seeded("monitor_id")),
    Route("GET", "/api/v1/services/{service_id}/uptime", V, seeded("service_id")),
    # remote probes (their own routes take probe tokens only: see PROBE_ROUTES)
    Route("GET", "/api/v1/probes", V),
    Route("POST", "/api/v1/probes", A, body=lambda w: {"location": f"site-{next(_SEQ)}"}),
    Route("DELETE", "/api/v1/probes/{probe_id}", A, seeded("probe_id")),
    # alert-source integrations (their /hooks/<key> route is outside /api/v1: tests/test_hooks.py)
    Route("GET", "/api/v1/integrations", M),
    Route("POST", "/api/v1/integrations", M, body=lambda w: {"name": f"src-{next(_SEQ)}", "kind": "grafana"}),
    Route("POST", "/api/v1/integrations/{integration_id}/rotate", M, seeded("integration_id")),
    Route("DELETE", "/api/v1/integrations/{integration_id}", M, seeded("integration_id")),
    # metrics store
    Route("GET", "/api/v1/metrics/series", V),
    Route("GET", "/api/v1/metrics/query_range", V),
    # events, alerts, incidents
    Route("POST", "/api/v1/events", R, body=const({"summary": "disk full", "service": "checkout"})),
    Route("GET", "/api/v1/alerts", V),
    Route("GET", "/api/v1/alerts/{alert_id}", V, seeded("alert_id")),
    Route("GET", "/api/v1/alerts/noise", V),
    Route("GET", "/api/v1/oncall/load", V),
    Route("GET", "/api/v1/oncall/load.csv", V),
    Route("GET", "/api/v1/incidents", V),
    Route("GET", "/api/v1/incidents/{ref}", V, incident),
    Route("POST", "/api/v1/incidents/{ref}/ack", R, incident, const({"note": "on it"})),
    Route("POST", "/api/v1/incidents/{ref}/resolve", R, incident),
    Route("POST", "/api/v1/incidents", R, body=const({"title": "printers offline", "service": "checkout"})),
    Route("PATCH", "/api/v1/incidents/{ref}", R, incident, const({"impact": "high", "tags": ["db"]})),
    Route("POST", "/api/v1/incidents/{ref}/reopen", R, resolved_incident),
    Route("POST", "/api/v1/incidents/{ref}/close", R, resolved_incident),
    Route("POST", "/api/v1/incidents/{ref}/comment", R, incident, const({"text": "looking at the db"})),
    Route(
        "POST",
        "/api/v1/incidents/{ref}/updates",
        R,
        incident,
        const({"status": "investigating", "message": "checkout is slow"}),
    ),
    Route("POST", "/api/v1/incidents/{ref}/merge", R, incident, lambda w: {"incident_ids": [declared(w)]}),
    Route("POST", "/api/v1/incidents/{ref}/split", R, incident, lambda w: {"alert_ids": [w.alert_id]}),
    Route("POST", "/api/v1/incidents/{ref}/related/{other}", R, with_other),
    Route("DELETE", "/api/v1/incidents/{ref}/related/{other}", R, with_related),
    # postmortems and their action items
    Route("GET", "/api/v1/incidents/{ref}/postmortem", V, postmortem),
    Route("POST", "/api/v1/incidents/{ref}/postmortem", R, incident),
    Route("PATCH", "/api/v1/incidents/{ref}/postmortem", R, postmortem, const({"root_cause": "pool"})),
    Route("POST", "/api/v1/incidents/{ref}/postmortem/status", R, postmortem, const({"status": "in_review"})),
    Route("GET", "/api/v1/action-items", V),
    Route("POST", "/api/v1/action-items", R, body=new_action_item),
    Route("PATCH", "/api/v1/action-items/{item_id}", R, action_item, const({"status": "done"})),
    Route("DELETE", "/api/v1/action-items/{item_id}", R, action_item),
    # silences, maintenance windows, dedup/grouping rules
    Route("GET", "/api/v1/silences", V),
    Route("POST", "/api/v1/silences", R, body=const({"matchers": ["a=b"], "duration": "1h", "comment": "x"})),
    Route("POST", "/api/v1/silences/preview", V, body=const({"matchers": ['alertname="Swap"']})),
    Route("GET", "/api/v1/silences/{silence_id}", V, seeded("silence_id")),
    Route("PATCH", "/api/v1/silences/{silence_id}", R, seeded("silence_id"), const({"comment": "still"})),
    Route("DELETE", "/api/v1/silences/{silence_id}", R, seeded("silence_id")),
    Route("GET", "/api/v1/maintenance-windows", V),
    Route("POST", "/api/v1/maintenance-windows", M, body=lambda w: WINDOW | {"ci_id": w.ci_id}),
    Route("GET", "/api/v1/maintenance-windows/{window_id}", V, seeded("window_id")),
    Route("PATCH", "/api/v1/maintenance-windows/{window_id}", M, seeded("window_id"), const({"name": "x"})),
    Route("DELETE", "/api/v1/maintenance-windows/{window_id}", M, seeded("window_id")),
    Route("GET", "/api/v1/alert-rules", V),
    Route("POST", "/api/v1/alert-rules", M, body=lambda w: {"name": f"r-{next(_SEQ)}", "group_by": ["job"]}),
    Route("GET", "/api/v1/alert-rules/{rule_id}", V, seeded("rule_id")),
    Route("PATCH", "/api/v1/alert-rules/{rule_id}", M, seeded("rule_id"), const({"position": 5})),
    Route("DELETE", "/api/v1/alert-rules/{rule_id}", M, seeded("rule_id")),
    # config as code
    Route("POST", "/api/v1/apply", M, body=const({"services": [{"name": "from-a-document"}]})),
    Route("GET", "/api/v1/export", V),
    # on-call schedules
    Route("GET", "/api/v1/schedules", V),
    Route("POST", "/api/v1/schedules", M, body=lambda w: SCHEDULE | {"name": f"s-{next(_SEQ)}"}),
    Route("GET", "/api/v1/schedules/{schedule_id}", V, seeded("schedule_id")),
    Route("PATCH", "/api/v1/schedules/{schedule_id}", M, seeded("schedule_id"), EDIT),
    Route("DELETE", "/api/v1/schedules/{schedule_id}", M, spare_schedule),
    Route("GET", "/api/v1/schedules/{schedule_id}/on-call", V, seeded("schedule_id")),
    Route("GET", "/api/v1/schedules/{schedule_id}/shifts", V, seeded("schedule_id")),
    Route("GET", "/api/v1/schedules/{schedule_id}/gaps", V, seeded("schedule_id")),
    Route("GET", "/api/v1/schedules/{schedule_id}/overrides", V, seeded("schedule_id")),
    Route("POST", "/api/v1/schedules/{schedule_id}/overrides", R, seeded("schedule_id"), const(OVERRIDE)),
    Route("DELETE", "/api/v1/schedules/{schedule_id}/overrides/{override_id}", R, spare_override),
    Route("POST", "/api/v1/schedules/{schedule_id}/import", M, spare_schedule, const({"ics": ICS})),
    Route("GET", "/api/v1/schedules/{schedule_id}/feed", V, seeded("schedule_id")),
    Route("POST", "/api/v1/schedules/{schedule_id}/feed/reset", M, seeded("schedule_id")),
    Route("GET", "/api/v1/me/oncall-feed", V),
    Route("POST", "/api/v1/me/oncall-feed/reset", V),
    # escalation, channels and notification rules
    Route("GET", "/api/v1/escalation-policies", V),
    Route("POST", "/api/v1/escalation-policies", M, body=new_policy),
    Route("GET", "/api/v1/escalation-policies/{policy_id}", V, seeded("policy_id")),
    Route("PATCH", "/api/v1/escalation-policies/{policy_id}", M, seeded("policy_id"), const({"repeat": 2})),
    Route("DELETE", "/api/v1/escalation-policies/{policy_id}", M, spare_policy),
    Route(
        "GET", "/api/v1/incidents/{incident_id}/escalation", V, lambda w: {"incident_id": w.paged_incident_id}
    ),
    Route("GET", "/api/v1/channels", V),
    Route(
        "POST",
        "/api/v1/channels",
        M,
        body=lambda w: {"name": f"w-{next(_SEQ)}", "kind": "webhook", "url": "http://x/y"},
    ),
    Route("PATCH", "/api/v1/channels/{channel_id}", V, own_channel, const({"rate_per_minute": 10})),
    Route("DELETE", "/api/v1/channels/{channel_id}", V, own_channel),
    Route("GET", "/api/v1/me/channels", V),
    Route(
        "POST",
        "/api/v1/me/channels",
        V,
        body=lambda w: {"name": f"m-{next(_SEQ)}", "kind": "email", "address": "a@b.c"},
    ),
    Route("GET", "/api/v1/me/notification-rules", V),
    Route("POST", "/api/v1/me/notification-rules", V, body=const({"urgency": "high", "delay_minutes": 2})),
    Route("DELETE", "/api/v1/me/notification-rules/{rule_id}", V, own_rule),
    Route("GET", "/api/v1/users/{user_id}/notification-rules", M, seeded("user_id")),
    # audit, and the metrics endpoint outside /api/v1
    Route("GET", "/api/v1/audit", M),
    Route("GET", "/metrics", V),
]

# Routes a remote probe calls with its own token ("odp_..."): every user token is refused.
PROBE_ROUTES = [("GET", "/api/v1/probe/assignments"), ("POST", "/api/v1/probe/results")]

ALLOWED = [(route, role) for route in ROUTES for role in ROLES if role.at_least(route.role)]
REFUSED = [(route, role) for route in ROUTES for role in ROLES if not role.at_least(route.role)]


def case_id(case: Any) -> str:
    return str(case) if isinstance(case, Route) else f"as-{case}"


# --- snapshots -----------------------------------------------------------------------------------

# Reading through the API stamps the caller's token; that write is expected and not a change.
VOLATILE = {"last_used_at"}


def db_state(db: Database) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table (without ``VOLATILE`` columns), in primary-key order."""
    out = {}
    with db.engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            cols = [c for c in table.c if c.name not in VOLATILE]
            rows = conn.execute(select(*cols).order_by(*table.primary_key.columns))
            out[table.name] = [tuple(row) for row in rows]
    return out


def audit_count(w: World) -> int:
    r = w.client.get("/api/v1/audit", params={"limit": 500}, headers=w.admin)
    assert r.status_code == 200, r.text
    return len(r.json()["items"])


def assert_problem(r: Any, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(PROBLEM)
    body = r.json()
    assert body["status"] == status
    assert body["title"]
    assert body["detail"]
    return body


# --- the matrix tests ----------------------------------------------------------------------------


@pytest.mark.parametrize(("route", "role"), REFUSED, ids=case_id)
def test_role_below_minimum_is_refused_and_changes_nothing(world: World, route: Route, role: Role) -> None:
    account = world.accounts[role.value]
    world.actor = account
    url, body = route.prepare(world)
    before, audit_before = db_state(world.db), audit_count(world)

    r = world.client.request(route.method, url, json=body, headers=account.headers)

    problem = assert_problem(r, 403)
    assert problem["title"] == "Forbidden"
    assert audit_count(world) == audit_before
    assert db_state(world.db) == before


@pytest.mark.parametrize(("route", "role"), ALLOWED, ids=case_id)
def test_role_at_or_above_minimum_is_allowed(world: World, route: Route, role: Role) -> None:
    account = world.accounts[role.value]
    world.actor = account

    url, body = route.prepare(world)

    r = world.client.request(route.method, url, json=body, headers=account.headers)

    assert 200 <= r.status_code < 300, r.text


def _registered_api_routes(app: Any) -> set[tuple[str, str]]:
    """(method, path) of every route the app serves, hidden from the OpenAPI document or not."""
    pairs: list[tuple[set[str], str]] = []
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # older FastAPI: included routers are flattened into app.routes
        pairs = [(r.methods or set(), r.path) for r in app.routes if isinstance(r, APIRoute)]
    else:
        for rc in iter_route_contexts(app.routes):
            if isinstance(rc.original_route, APIRoute) and rc.path:
                pairs.append((rc.original_route.methods or set(), rc.path))
    return {(m, path) for methods, path in pairs for m in methods if m != "HEAD"}


def test_every_api_route_is_in_the_matrix(client: TestClient, accounts: dict[str, Account]) -> None:
    doc = client.get("/api/openapi.json", headers=accounts["viewer"].headers).json()
    documented = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    served = documented | _registered_api_routes(client.app)
    api_routes = {(m, p) for m, p in served if p.startswith("/api/v1/")}
    in_matrix = {(r.method, r.path) for r in ROUTES} | set(PROBE_ROUTES)

    assert api_routes, "no /api/v1 route found: the route walk is broken"
    assert sorted(api_routes - in_matrix) == [], "add these routes to ROUTES in tests/test_api_roles.py"


def test_every_matrix_route_exists(client: TestClient) -> None:
    served = _registered_api_routes(client.app)
    stale = [str(r) for r in ROUTES if (r.method, r.path) not in served]

    assert stale == []


def test_probe_routes_refuse_every_user_token(world: World) -> None:
    before = db_state(world.db)
    for method, path in PROBE_ROUTES:
        for role in ROLES:
            r = world.client.request(
                method, path, json={"results": []}, headers=world.accounts[role.value].headers
            )
            assert_problem(r, 401)
        assert_problem(world.client.request(method, path, json={"results": []}), 401)
    assert db_state(world.db) == before


def test_matrix_lists_each_route_once() -> None:
    keys = [(r.method, r.path) for r in ROUTES]

    assert len(keys) == len(set(keys))


# --- authentication failures ---------------------------------------------------------------------


def _all_requests(w: World) -> list[tuple[Route, str, Any]]:
    w.actor = w.accounts["admin"]
    return [(r, *r.prepare(w)) for r in ROUTES]


def _assert_every_route_answers_401(w: World, headers: dict[str, str]) -> None:
    requests = _all_requests(w)
    before = db_state(w.db)
    for route, url, body in requests:
        r = w.client.request(route.method, url, json=body, headers=headers)
        assert r.status_code == 401, f"{route}: {r.status_code} {r.text}"
        assert r.headers["content-type"].startswith(PROBLEM), str(route)
        assert r.headers["www-authenticate"].startswith("Bearer"), str(route)
    assert db_state(w.db) == before


def test_no_token_is_401_with_www_authenticate_on_every_route(world: World) -> None:
    _assert_every_route_answers_401(world, {})


def test_wrong_token_is_401_on_every_route(world: World) -> None:
    _assert_every_route_answers_401(world, {"Authorization": "Bearer odk_not-a-real-token"})


def test_basic_auth_is_401_on_every_route(world: World) -> None:
    _assert_every_route_answers_401(world, {"Authorization": "Basic x"})


def test_empty_bearer_is_401(world: World) -> None:
    r = world.client.get("/api/v1/me", headers={"Authorization": "Bearer "})

    assert_problem(r, 401)
    assert "www-authenticate" in r.headers


def test_revoked_token_is_401(world: World) -> None:
    admin = world.accounts["admin"]
    with world.db.session() as s:
        token, plain = auth.create_token(s, admin.user, "soon revoked", actor=SYSTEM, now=world.clock.now())
        auth.revoke_token(s, token.id, actor=SYSTEM, now=world.clock.now())

    r = world.client.get("/api/v1/me", headers={"Authorization": f"Bearer {plain}"})

    assert_problem(r, 401)
    assert "www-authenticate" in r.headers


def test_token_of_deactivated_user_is_401(world: World) -> None:
    manager = world.accounts["manager"]
    with world.db.session() as s:
        auth.update_user(s, manager.user.id, UserUpdate(active=False), actor=SYSTEM, now=world.clock.now())

    r = world.client.get("/api/v1/me", headers=manager.headers)

    assert_problem(r, 401)


# --- the finer rules inside routes ---------------------------------------------------------------


@pytest.mark.parametrize("role", ROLES, ids=case_id)
def test_any_role_may_rename_itself(world: World, role: Role) -> None:
    account = world.accounts[role.value]

    r = world.client.patch(f"/api/v1/users/{account.user.id}", json={"name": "Me"}, headers=account.headers)

    assert r.status_code == 200, r.text
    assert r.json()["name"] == "Me"


@pytest.mark.parametrize("role", [V, R, M], ids=case_id)
def test_non_admin_cannot_change_own_role(world: World, role: Role) -> None:
    account = world.accounts[role.value]
    before = db_state(world.db)

    r = world.client.patch(
        f"/api/v1/users/{account.user.id}", json={"role": "admin"}, headers=account.headers
    )

    assert_problem(r, 403)
    assert db_state(world.db) == before


def test_responder_cannot_create_a_token_for_another_user(world: World) -> None:
    responder = world.accounts["responder"]
    before = db_state(world.db)

    r = world.client.post(
        "/api/v1/tokens", json={"name": "x", "user_id": world.user_id}, headers=responder.headers
    )

    assert_problem(r, 403)
    assert db_state(world.db) == before


def test_admin_can_create_a_token_for_another_user(world: World) -> None:
    r = world.client.post("/api/v1/tokens", json={"name": "x", "user_id": world.user_id}, headers=world.admin)

    assert r.status_code == 201, r.text
    assert r.json()["user_id"] == world.user_id


def test_manager_cannot_revoke_another_users_token(world: World) -> None:
    world.actor = world.accounts["responder"]
    token_id = world.own_token()
    before = db_state(world.db)

    r = world.client.delete(f"/api/v1/tokens/{token_id}", headers=world.accounts["manager"].headers)

    assert_problem(r, 403)
    assert db_state(world.db) == before


def test_admin_can_revoke_another_users_token(world: World) -> None:
    responder = world.accounts["responder"]
    mine = {t["id"] for t in world.client.get("/api/v1/tokens", headers=responder.headers).json()}
    (token_id,) = mine

    r = world.client.delete(f"/api/v1/tokens/{token_id}", headers=world.admin)

    assert r.status_code == 204
    assert world.client.get("/api/v1/me", headers=responder.headers).status_code == 401


def test_non_admin_lists_only_own_tokens(world: World) -> None:
    viewer = world.accounts["viewer"]

    tokens = world.client.get("/api/v1/tokens", headers=viewer.headers).json()

    assert {t["user_id"] for t in tokens} == {viewer.user.id}


def test_admin_lists_everyones_tokens(world: World) -> None:
    tokens = world.client.get("/api/v1/tokens", headers=world.admin).json()

    assert {t["user_id"] for t in tokens} >= {a.user.id for a in world.accounts.values()}


def test_api_docs_and_schema_need_a_login(client: TestClient, accounts: dict[str, Account]) -> None:
    assert client.get("/api/openapi.json").status_code == 401
    r = client.get("/api/docs", headers={"accept": "text/html"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/login")
    assert (
        client.get("/api/openapi.json", headers=accounts["viewer"].headers).json()["info"]["title"]
        == "opsdesk"
    )
