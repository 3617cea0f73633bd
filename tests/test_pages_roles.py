"""Every HTML route under every role: below its role a page is 403 and a form post changes
nothing; at its role it is served. A route missing from the table fails the test, so a new page
cannot escape the check (the API has the same matrix in test_api_roles.py)."""

from __future__ import annotations

import pytest
from fastapi.routing import APIRoute, iter_route_contexts
from sqlalchemy import func, select

from opsdesk.alerts import integrations, rules, silences
from opsdesk.alerts import service as alerts
from opsdesk.alerts.admin_schemas import RuleIn, SilenceIn, WindowIn
from opsdesk.auth import service as auth
from opsdesk.auth.schemas import TeamIn
from opsdesk.changes import maintenance
from opsdesk.cmdb import service as cmdb
from opsdesk.cmdb.schemas import CIIn, RelationshipIn, ServiceIn
from opsdesk.core.actor import SYSTEM
from opsdesk.core.models import Base
from opsdesk.incidents import postmortems
from opsdesk.incidents import service as incidents
from opsdesk.monitoring import service as monitoring
from opsdesk.monitoring.schemas import MonitorIn
from opsdesk.oncall import service as oncall
from opsdesk.oncall.schemas import LayerIn, OverrideIn, ScheduleIn
from tests.conftest import PASSWORD
from tests.support import login

ROLES = ["viewer", "responder", "manager", "admin"]
OPEN = {("GET", "/login"), ("POST", "/login"), ("GET", "/healthz"), ("GET", "/metrics")}
# Alert-source hooks: the integration key is the credential (tests/test_hooks.py).
OPEN |= {("POST", "/hooks/{key}"), ("POST", "/hooks")}
# The public status page (tests/test_statuspage.py checks that nothing private leaks).
OPEN |= {("GET", "/status"), ("GET", "/status.json")}
# On-call calendar feeds: the secret token in the URL is the credential (tests/test_oncall_api.py).
OPEN |= {("GET", "/ical/{token}.ics")}
# Acknowledge/resolve links from notifications: signed, expiring, single use (tests/test_escalation.py).
OPEN |= {("GET", "/act/{token}"), ("POST", "/act/{token}")}

# (method, path, least role). Paths use the ids of the seeded objects below.
PAGES = [
    ("GET", "/", "viewer"),
    ("GET", "/partials/dashboard", "viewer"),
    ("GET", "/incidents", "viewer"),
    ("GET", "/incidents/{incident_id}", "viewer"),
    ("GET", "/incidents/{incident_id}/timeline", "viewer"),
    ("POST", "/incidents/{incident_id}/ack", "responder"),
    ("POST", "/incidents/{incident_id}/resolve", "responder"),
    ("GET", "/incidents/{incident_id}/postmortem", "viewer"),
    ("POST", "/incidents/{incident_id}/postmortem", "responder"),
    ("POST", "/incidents/{incident_id}/postmortem/start", "responder"),
    ("POST", "/incidents/{incident_id}/postmortem/status", "responder"),
    ("POST", "/incidents/{incident_id}/postmortem/action-items", "responder"),
    ("POST", "/action-items/{action_item_id}/done", "responder"),
    ("POST", "/action-items/{action_item_id}/reopen", "responder"),
    ("POST", "/action-items/{action_item_id}/delete", "responder"),
    ("GET", "/postmortems", "viewer"),
    ("GET", "/action-items", "viewer"),
    ("GET", "/status/private", "viewer"),
    ("POST", "/incidents", "responder"),
    ("GET", "/incidents/{incident_id}/live", "viewer"),
    ("GET", "/incidents/{incident_id}/stream", "viewer"),
    ("POST", "/incidents/{incident_id}/reopen", "responder"),
    ("POST", "/incidents/{incident_id}/close", "responder"),
    ("POST", "/incidents/{incident_id}/comment", "responder"),
    ("POST", "/incidents/{incident_id}/updates", "responder"),
    ("POST", "/incidents/{incident_id}/edit", "responder"),
    ("POST", "/incidents/{incident_id}/related", "responder"),
    ("POST", "/incidents/{incident_id}/unrelate", "responder"),
    ("POST", "/incidents/{incident_id}/merge", "responder"),
    ("POST", "/incidents/{incident_id}/split", "responder"),
    ("GET", "/alerts", "viewer"),
    ("GET", "/alerts/noise", "viewer"),
    ("GET", "/alerts/{alert_id}", "viewer"),
    ("GET", "/integrations", "manager"),
    ("POST", "/integrations", "manager"),
    ("POST", "/integrations/{integration_id}/rotate", "manager"),
    ("POST", "/integrations/{integration_id}/delete", "manager"),
    ("GET", "/monitors", "viewer"),
    ("POST", "/monitors", "manager"),
    ("GET", "/monitors/new", "manager"),
    ("GET", "/monitors/new/fields", "manager"),
    ("POST", "/monitors/bulk", "manager"),
    ("GET", "/monitors/{monitor_id}", "viewer"),
    ("POST", "/monitors/{monitor_id}", "manager"),
    ("POST", "/monitors/{monitor_id}/pause", "manager"),
    ("POST", "/monitors/{monitor_id}/resume", "manager"),
    ("POST", "/monitors/{monitor_id}/delete", "manager"),
    ("GET", "/metrics/explore", "viewer"),
    ("GET", "/services", "viewer"),
    ("POST", "/services", "manager"),
    ("GET", "/services/{service_id}", "viewer"),
    ("POST", "/services/{service_id}", "manager"),
    ("POST", "/services/{service_id}/relationships", "manager"),
    ("POST", "/services/{service_id}/delete", "manager"),
    ("GET", "/cis", "viewer"),
    ("POST", "/cis", "manager"),
    ("GET", "/cis/{ci_id}", "viewer"),
    ("POST", "/cis/{ci_id}", "manager"),
    ("POST", "/cis/{ci_id}/relationships", "manager"),
    ("POST", "/cis/{ci_id}/delete", "manager"),
    ("POST", "/relationships/{rel_id}/delete", "manager"),
    ("GET", "/teams", "viewer"),
    ("POST", "/teams", "manager"),
    ("GET", "/teams/{team_id}", "viewer"),
    ("POST", "/teams/{team_id}", "manager"),
    ("POST", "/teams/{team_id}/delete", "manager"),
    ("GET", "/users", "admin"),
    ("POST", "/users", "admin"),
    ("GET", "/users/{user_id}", "admin"),
    ("POST", "/users/{user_id}", "admin"),
    ("POST", "/users/{user_id}/delete", "admin"),
    ("GET", "/tokens", "viewer"),
    ("POST", "/tokens", "responder"),
    ("POST", "/tokens/{token_id}/revoke", "responder"),
    ("GET", "/audit", "manager"),
    ("GET", "/silences", "viewer"),
    ("POST", "/silences", "responder"),
    ("POST", "/silences/preview", "responder"),
    ("POST", "/silences/{silence_id}/expire", "responder"),
    ("GET", "/maintenance", "viewer"),
    ("POST", "/maintenance", "manager"),
    ("GET", "/maintenance/{window_id}", "viewer"),
    ("POST", "/maintenance/{window_id}", "manager"),
    ("POST", "/maintenance/{window_id}/delete", "manager"),
    ("GET", "/alert-rules", "viewer"),
    ("POST", "/alert-rules", "manager"),
    ("GET", "/alert-rules/{rule_id}", "viewer"),
    ("POST", "/alert-rules/{rule_id}", "manager"),
    ("POST", "/alert-rules/{rule_id}/delete", "manager"),
    ("GET", "/oncall", "viewer"),
    ("GET", "/oncall/load", "viewer"),
    ("POST", "/oncall", "manager"),
    ("GET", "/oncall/{schedule_id}", "viewer"),
    ("POST", "/oncall/{schedule_id}/overrides", "responder"),
    ("POST", "/oncall/{schedule_id}/overrides/{override_id}/delete", "responder"),
    ("POST", "/oncall/{schedule_id}/layers", "manager"),
    ("POST", "/oncall/{schedule_id}/layers/{layer_id}/delete", "manager"),
    ("POST", "/oncall/{schedule_id}/delete", "manager"),
    ("POST", "/oncall/{schedule_id}/feed/reset", "manager"),
    ("POST", "/oncall/my-feed/reset", "viewer"),
    ("POST", "/oncall/{schedule_id}/import", "manager"),
    ("GET", "/escalation-policies", "viewer"),
    ("POST", "/escalation-policies", "manager"),
    ("GET", "/escalation-policies/{policy_id}", "viewer"),
    ("POST", "/escalation-policies/{policy_id}", "manager"),
    ("POST", "/escalation-policies/{policy_id}/delete", "manager"),
    ("GET", "/notifications", "viewer"),
    ("POST", "/notifications/{message_id}/retry", "responder"),
    ("POST", "/notifications/retry-dead", "manager"),
    ("GET", "/me/notifications", "viewer"),
    ("POST", "/me/channels", "viewer"),
    ("POST", "/me/channels/{channel_id}/delete", "viewer"),
    ("POST", "/me/rules", "viewer"),
    ("POST", "/me/rules/{rule_id}/delete", "viewer"),
    ("GET", "/channels", "manager"),
    ("POST", "/channels", "manager"),
    ("POST", "/channels/{channel_id}/delete", "manager"),
    ("POST", "/logout", "viewer"),
]


@pytest.fixture
def db_url(sqlite_url: str) -> str:
    """SQLite only: see ``sqlite_url`` in conftest."""
    return sqlite_url


@pytest.fixture
def seeded(db, clock, accounts) -> dict[str, int]:
    now = clock.now()
    with db.session() as s:
        team = auth.create_team(s, TeamIn(name="ops"), actor=SYSTEM, now=now)
        svc = cmdb.create_service(s, ServiceIn(name="shop"), actor=SYSTEM, now=now)
        ci = cmdb.create_ci(
            s, CIIn.model_validate({"name": "db1", "class": "database"}), actor=SYSTEM, now=now
        )
        rel = cmdb.create_relationship(
            s,
            RelationshipIn.model_validate(
                {
                    "type": "depends_on",
                    "source_type": "service",
                    "source_id": svc.id,
                    "target_type": "ci",
                    "target_id": ci.id,
                }
            ),
            actor=SYSTEM,
            now=now,
        )
        mon = monitoring.create_monitor(
            s, MonitorIn(name="m", target="http://127.0.0.1:9/"), actor=SYSTEM, now=now
        )
        alerts.store_events(
            s, [alerts.NormalizedEvent(source="t", status="firing", severity="error", summary="x")], now=now
        )
    with db.session() as s:
        alerts.process_pending(s, now=now)
        (inc,) = incidents.list_incidents(s)
        alert_id = alerts.list_alerts(s)[0].id
        integration, _ = integrations.create_integration(
            s, name="am", kind="alertmanager", secret=None, service_id=None, actor=SYSTEM, now=now
        )
        token_id = auth.list_tokens(s, user_id=accounts["admin"].user.id)[0].id
        silence = silences.create(
            s, SilenceIn(matchers=["alertname=Swap"], duration="1h", comment="c"), actor=SYSTEM, now=now
        )
        window = maintenance.create(
            s,
            WindowIn(name="w", service_id=svc.id, starts_at="2026-04-01T02:00Z", ends_at="2026-04-01T03:00Z"),
            actor=SYSTEM,
            now=now,
        )
        rule = rules.create(s, RuleIn(name="r"), actor=SYSTEM, now=now)
        pm = postmortems.ensure_draft(s, inc, now=now)
        item = postmortems.add_action_item(
            s, postmortems.ActionItemIn(postmortem_id=pm.id, title="follow up"), actor=SYSTEM, now=now
        )
        sched = oncall.create(
            s,
            ScheduleIn(
                name="primary",
                layers=[LayerIn(participants=[accounts["responder"].email], rotation_start=now)],
            ),
            actor=SYSTEM,
            now=now,
        )
        override = oncall.add_override(
            s,
            sched.id,
            OverrideIn(user=accounts["admin"].email, starts_at=now, ends_at="2026-04-01T00:00Z"),
            actor=SYSTEM,
            now=now,
        )
    from opsdesk.notify import service as outbox
    from opsdesk.oncall import escalation
    from opsdesk.oncall.schemas import PolicyIn

    with db.session() as s:
        levels = [{"timeout_minutes": 5, "targets": [{"type": "schedule", "ref": "primary"}]}]
        policy = escalation.create(
            s, PolicyIn.model_validate({"name": "p", "levels": levels}), actor=SYSTEM, now=now
        )
        message = outbox.enqueue(
            s, channel="email", recipient="a@example.org", subject="s", body="b", idempotency_key="k", now=now
        )
        outbox.mark_failed(s, message.id, "refused", now=now, max_attempts=1, backoff_seconds=1)
    return {
        "team_id": team.id,
        "service_id": svc.id,
        "ci_id": ci.id,
        "rel_id": rel.id,
        "monitor_id": mon.id,
        "incident_id": inc.id,
        "user_id": accounts["viewer"].user.id,
        "token_id": token_id,
        "alert_id": alert_id,
        "integration_id": integration.id,
        "silence_id": silence.id,
        "window_id": window.id,
        "rule_id": rule.id,
        "action_item_id": item.id,
        "schedule_id": sched.id,
        "layer_id": sched.layers[0].id,
        "override_id": override.id,
        "policy_id": policy.id,
        "message_id": message.id,
        "channel_id": 1,  # below manager a 403 comes first; a viewer may delete own channels only
    }


def _counts(db) -> dict[str, int]:  # type: ignore[no-untyped-def]
    with db.session() as s:
        return {
            name: s.scalar(select(func.count()).select_from(table)) or 0
            for name, table in Base.metadata.tables.items()
            if name != "web_sessions"
        }


def test_every_page_route_is_in_the_table(app):
    served = set()
    for rc in iter_route_contexts(app.routes):
        route = rc.original_route
        if isinstance(route, APIRoute) and rc.path and not rc.path.startswith("/api/"):
            served |= {(m, rc.path) for m in route.methods or () if m != "HEAD"}
    listed = {(m, p) for m, p, _ in PAGES}
    assert served - OPEN - listed == set(), "pages missing from the role table"
    assert listed - served == set(), "the table lists pages that no longer exist"


@pytest.mark.parametrize("role", ROLES)
def test_each_role_gets_exactly_the_pages_of_its_rank(client, accounts, seeded, db, role):
    csrf = login(client, accounts[role].email, PASSWORD)
    rank = ROLES.index(role)
    for method, template, least in PAGES:
        if template == "/logout":
            continue  # it would end the session the rest of the walk uses
        if template.endswith("/stream"):
            continue  # an endless event stream: tests/test_incident_pages.py checks who may open it
        path = template.format(**seeded)
        if ROLES.index(least) > rank:
            before = _counts(db)
            r = client.request(
                method,
                path,
                data={"csrf_token": csrf} if method == "POST" else None,
                headers={"accept": "text/html"},
                follow_redirects=False,
            )
            assert r.status_code == 403, f"{role} {method} {path}: {r.status_code}"
            assert _counts(db) == before, f"{role} {method} {path} changed something"
        elif method == "GET":
            r = client.get(path, headers={"accept": "text/html"}, follow_redirects=False)
            assert r.status_code == 200, f"{role} GET {path}: {r.status_code}"
