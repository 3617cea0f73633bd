"""The escalation and notification pages, driven through their HTML forms: escalation policies
(levels typed one per line), the outbox with retry of dead letters, a person's contact methods and
rules, shared channels, the escalation box on the incident page and the policy select on a service;
roles, bad input (422, nothing saved) and unknown ids; on SQLite and PostgreSQL."""

from __future__ import annotations

import html
import re
from datetime import timedelta

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from opsdesk.audit.models import AuditEntry
from opsdesk.cmdb import service as cmdb
from opsdesk.cmdb.schemas import ServiceIn
from opsdesk.core.actor import SYSTEM
from opsdesk.core.clock import ManualClock
from opsdesk.core.db import Database
from opsdesk.core.settings import Settings
from opsdesk.incidents import service as incidents
from opsdesk.notify import service as outbox
from opsdesk.notify.models import NotificationRule, NotifyChannel, OutboxMessage
from opsdesk.oncall import escalation
from opsdesk.oncall import service as schedules
from opsdesk.oncall.models import EscalationLevel, EscalationPolicy
from opsdesk.oncall.schemas import PolicyIn, ScheduleIn
from tests.conftest import PASSWORD, Account
from tests.support import login

HTML = {"accept": "text/html"}
ARROW = "\u2192"


@pytest.fixture(autouse=True)
def _secrets(settings: Settings) -> None:
    settings.configure_secrets()


def text(page: str) -> str:
    """The words of a page, without tags, as a person reads them."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


def post(client: TestClient, path: str, csrf: str, /, **fields: object) -> httpx.Response:
    return client.post(path, data={"csrf_token": csrf, **fields}, headers=HTML, follow_redirects=False)


def counts(db: Database) -> dict[str, int]:
    with db.session() as s:
        return {
            m.__name__: s.scalar(select(func.count()).select_from(m)) or 0
            for m in (EscalationPolicy, EscalationLevel, NotifyChannel, NotificationRule, AuditEntry)
        }


def primary(db: Database, clock: ManualClock, accounts: dict[str, Account]) -> None:
    """Schedule "Primary": the responder, weekly."""
    with db.session() as s:
        schedules.create(
            s,
            ScheduleIn.model_validate(
                {
                    "name": "Primary",
                    "time_zone": "Europe/Berlin",
                    "layers": [
                        {
                            "participants": [accounts["responder"].email],
                            "rotation_start": "2026-03-02T09:00:00",
                        }
                    ],
                }
            ),
            actor=SYSTEM,
            now=clock.now(),
        )


def policy(db: Database, clock: ManualClock, accounts: dict[str, Account], name: str = "Default") -> int:
    """Level 1: schedule Primary, 5 min; level 2: the manager, 10 min."""
    with db.session() as s:
        return escalation.create(
            s,
            PolicyIn.model_validate(
                {
                    "name": name,
                    "levels": [
                        {"timeout_minutes": 5, "targets": [{"type": "schedule", "ref": "Primary"}]},
                        {
                            "timeout_minutes": 10,
                            "targets": [{"type": "user", "ref": accounts["manager"].email}],
                        },
                    ],
                }
            ),
            actor=SYSTEM,
            now=clock.now(),
        ).id


def levels_of(db: Database, policy_id: int) -> list[tuple[int, list[dict[str, object]]]]:
    with db.session() as s:
        p = escalation.get(s, policy_id)
        return [(lv.timeout_minutes, list(lv.targets)) for lv in p.levels]


# --- policies ------------------------------------------------------------------------------------


def test_manager_creates_a_policy_from_typed_levels_and_the_list_summarises_it(
    client: TestClient, accounts: dict[str, Account], db: Database, clock: ManualClock
) -> None:
    primary(db, clock, accounts)
    manager = accounts["manager"].email
    csrf = login(client, manager, PASSWORD)
    page = client.get("/escalation-policies", headers=HTML)
    assert page.status_code == 200 and 'id="policy-form"' in page.text
    assert "schedule Primary" in text(page.text)  # the form's help lists what may be paged
    r = post(
        client,
        "/escalation-policies",
        csrf,
        name="Database",
        repeat="1",
        description="DBA first",
        levels=f"5: schedule Primary, user {accounts['responder'].email}\n\n10 min: {manager}\n",
    )
    assert r.status_code == 303, r.text
    pid = int(re.search(r"/escalation-policies/(\d+)", r.headers["location"]).group(1))  # type: ignore[union-attr]
    assert levels_of(db, pid)[0][0] == 5 and levels_of(db, pid)[1][0] == 10
    listed = text(client.get("/escalation-policies", headers=HTML).text)
    assert "Database" in listed and "1 more time" in listed
    detail = client.get(r.headers["location"], headers=HTML)
    words = text(detail.text)
    assert f"1: schedule Primary, user {accounts['responder'].email} {ARROW} 5 min {ARROW} 2: user " in words
    assert "created" in words  # the flash message
    assert "no service yet" in words
    # The edit form starts with the levels as typed.
    assert (
        f"5: schedule Primary, user {accounts['responder'].email}\n10: user {accounts['manager'].email}"
        in (html.unescape(detail.text))
    )


@pytest.mark.parametrize(
    ("levels", "message"),
    [
        ("", "give at least one level"),
        ("five: schedule Primary", "level 1"),
        ("5 schedule Primary", "minutes to wait"),
        ("0: schedule Primary", "from 1 to 1440"),
        ("5:", "no targets"),
        ("5: robot R2", "is not a target"),
        ("5: schedule Primary\n10: user ghost@example.org", "level 2, target 1: no user"),
        ("5: schedule Nope", "no schedule 'Nope'"),
    ],
)
def test_bad_levels_re_render_with_422_and_save_nothing(
    client: TestClient,
    accounts: dict[str, Account],
    db: Database,
    clock: ManualClock,
    levels: str,
    message: str,
) -> None:
    primary(db, clock, accounts)
    csrf = login(client, accounts["manager"].email, PASSWORD)
    before = counts(db)
    r = post(client, "/escalation-policies", csrf, name="Broken", repeat="0", levels=levels)
    assert r.status_code == 422, r.text
    assert message in text(r.text), text(r.text)
    assert "Nothing was saved" in r.text and 'value="Broken"' in r.text  # the form keeps what was typed
    assert counts(db) == before


def test_bad_name_and_repeat_and_a_taken_name(
    client: TestClient, accounts: dict[str, Account], db: Database, clock: ManualClock
) -> None:
    primary(db, clock, accounts)
    policy(db, clock, accounts)
    csrf = login(client, accounts["manager"].email, PASSWORD)
    before = counts(db)
    r = post(client, "/escalation-policies", csrf, name="X", repeat="many", levels="5: schedule Primary")
    assert r.status_code == 422 and "a whole number" in r.text
    r = post(client, "/escalation-policies", csrf, name="X", repeat="10", levels="5: schedule Primary")
    assert r.status_code == 422 and "less than or equal to 9" in r.text
    r = post(client, "/escalation-policies", csrf, name="", repeat="0", levels="5: schedule Primary")
    assert r.status_code == 422
    r = post(client, "/escalation-policies", csrf, name="Default", repeat="0", levels="5: schedule Primary")
    assert r.status_code == 409 and "named 'Default' exists" in html.unescape(r.text)
    assert counts(db) == before


def test_edit_replaces_levels_and_bad_edits_change_nothing(
    client: TestClient, accounts: dict[str, Account], db: Database, clock: ManualClock
) -> None:
    primary(db, clock, accounts)
    pid = policy(db, clock, accounts)
    manager = accounts["manager"].email
    csrf = login(client, manager, PASSWORD)
    url = f"/escalation-policies/{pid}"
    r = post(client, url, csrf, name="Default", repeat="2", description="", levels="3: team-less@x.org")
    assert r.status_code == 422 and "no user" in r.text
    assert len(levels_of(db, pid)) == 2
    r = post(
        client,
        url,
        csrf,
        name="Renamed",
        repeat="2",
        description="d",
        levels=f"3: user {accounts['admin'].email}\n4: schedule Primary\n20: schedule Primary, {manager}",
    )
    assert r.status_code == 303, r.text
    assert [m for m, _ in levels_of(db, pid)] == [3, 4, 20]
    words = text(client.get(url, headers=HTML).text)
    assert "Renamed" in words and "2 more times" in words
    # A missing policy is a 404, not a form error.
    assert (
        post(client, "/escalation-policies/9999", csrf, name="x", levels="5: schedule Primary").status_code
        == 404
    )
    assert client.get("/escalation-policies/9999", headers=HTML).status_code == 404


def test_delete_is_refused_while_a_service_uses_the_policy(
    client: TestClient, accounts: dict[str, Account], db: Database, clock: ManualClock
) -> None:
    primary(db, clock, accounts)
    pid = policy(db, clock, accounts)
    with db.session() as s:
        cmdb.create_service(
            s, ServiceIn(name="shop", escalation_policy_id=pid), actor=SYSTEM, now=clock.now()
        )
    csrf = login(client, accounts["manager"].email, PASSWORD)
    assert "shop" in text(client.get(f"/escalation-policies/{pid}", headers=HTML).text)
    r = post(client, f"/escalation-policies/{pid}/delete", csrf)
    assert r.status_code == 409
    assert "is used by service(s) shop" in html.unescape(r.text)
    assert counts(db)["EscalationPolicy"] == 1
    other = policy(db, clock, accounts, "Unused")
    r = post(client, f"/escalation-policies/{other}/delete", csrf)
    assert r.status_code == 303 and r.headers["location"].startswith("/escalation-policies?")
    assert counts(db)["EscalationPolicy"] == 1


@pytest.mark.parametrize("role", ["viewer", "responder"])
def test_only_managers_change_policies(
    client: TestClient, accounts: dict[str, Account], db: Database, clock: ManualClock, role: str
) -> None:
    primary(db, clock, accounts)
    pid = policy(db, clock, accounts)
    csrf = login(client, accounts[role].email, PASSWORD)
    page = client.get(f"/escalation-policies/{pid}", headers=HTML)
    assert (
        page.status_code == 200 and 'id="policy-form"' not in page.text and "Delete policy" not in page.text
    )
    assert 'id="policy-form"' not in client.get("/escalation-policies", headers=HTML).text
    before = counts(db)
    for url in ("/escalation-policies", f"/escalation-policies/{pid}", f"/escalation-policies/{pid}/delete"):
        r = post(client, url, csrf, name="Hijack", repeat="0", levels="1: schedule Primary")
        assert r.status_code == 403, url
    assert counts(db) == before


# --- the outbox ----------------------------------------------------------------------------------


def dead_letter(db: Database, clock: ManualClock, key: str = "t1", incident_id: int | None = None) -> int:
    with db.session() as s:
        m = outbox.enqueue(
            s,
            channel="email",
            recipient="ann@example.org",
            subject="[opsdesk] INC-1 P1 CRITICAL: db down",
            body="secret links",
            idempotency_key=key,
            incident_id=incident_id,
            now=clock.now(),
        )
        outbox.mark_failed(
            s, m.id, "SMTP 554 mailbox unavailable", now=clock.now(), max_attempts=1, backoff_seconds=5
        )
        return m.id


def status_of(db: Database, message_id: int) -> str:
    with db.session() as s:
        m = s.get(OutboxMessage, message_id)
        assert m is not None
        return m.status


def test_outbox_lists_newest_first_with_counts_and_filters_by_status(
    client: TestClient, accounts: dict[str, Account], db: Database, clock: ManualClock
) -> None:
    with db.session() as s:
        inc = incidents.declare(s, title="db down", severity="critical", actor=SYSTEM, now=clock.now())
        iid = inc.id
        sent = outbox.enqueue(
            s, channel="webhook", recipient="https://hooks.example.org/x", subject="s", body="b",
            idempotency_key="sent", incident_id=iid, now=clock.now(),
        )  # fmt: skip
        outbox.mark_sent(s, sent.id, now=clock.now())
        pending = outbox.enqueue(
            s, channel="email", recipient="bob@example.org", subject="later", body="b",
            idempotency_key="later", now=clock.now(), not_before=clock.now() + timedelta(minutes=5),
        ).id  # fmt: skip
    dead = dead_letter(db, clock, incident_id=iid)
    login(client, accounts["viewer"].email, PASSWORD)
    page = client.get("/notifications", headers=HTML)
    assert page.status_code == 200
    words = text(page.text)
    assert "1 pending 1 sent 1 dead 0 cancelled" in words
    ids = [int(x) for x in re.findall(r'data-message="(\d+)"', page.text)]
    assert ids == sorted(ids, reverse=True) and set(ids) >= {sent.id, pending, dead}
    assert f'href="/incidents/{iid}"' in page.text and "SMTP 554 mailbox unavailable" in words
    assert 'class="esc-dead"' in page.text
    assert "5 min from now" in words  # the pending one's next attempt
    assert "Retry" not in re.sub(r"Retry all dead|retry it", "", words)  # a viewer cannot retry
    only_dead = client.get("/notifications?status=dead", headers=HTML).text
    assert re.findall(r'data-message="(\d+)"', only_dead) == [str(dead)]
    bad = client.get("/notifications?status=lost", headers=HTML)
    assert bad.status_code == 200 and "is not one of" in html.unescape(bad.text)


def test_responder_retries_a_dead_letter_and_it_is_pending_again(
    client: TestClient, accounts: dict[str, Account], db: Database, clock: ManualClock
) -> None:
    dead = dead_letter(db, clock)
    other = dead_letter(db, clock, "t2")
    viewer_csrf = login(client, accounts["viewer"].email, PASSWORD)
    assert post(client, f"/notifications/{dead}/retry", viewer_csrf).status_code == 403
    assert status_of(db, dead) == "dead"
    client.cookies.clear()
    csrf = login(client, accounts["responder"].email, PASSWORD)
    page = client.get("/notifications?status=dead", headers=HTML).text
    assert f'action="/notifications/{dead}/retry"' in page
    assert 'id="retry-all"' not in page  # retrying every dead letter is for managers
    r = post(client, f"/notifications/{dead}/retry", csrf, status="dead")
    assert r.status_code == 303 and r.headers["location"].startswith("/notifications?status=dead")
    assert status_of(db, dead) == "pending" and status_of(db, other) == "dead"
    # A message that is not dead is not retried: said on the page, nothing changes.
    r = post(client, f"/notifications/{dead}/retry", csrf)
    assert r.status_code == 303 and "only+dead+messages" in r.headers["location"]
    assert status_of(db, dead) == "pending"
    assert post(client, "/notifications/9999/retry", csrf).status_code == 404
    assert post(client, "/notifications/retry-dead", csrf).status_code == 403
    assert status_of(db, other) == "dead"


def test_manager_retries_every_dead_letter(
    client: TestClient, accounts: dict[str, Account], db: Database, clock: ManualClock
) -> None:
    ids = [dead_letter(db, clock, f"k{i}") for i in range(3)]
    csrf = login(client, accounts["manager"].email, PASSWORD)
    assert 'id="retry-all"' in client.get("/notifications", headers=HTML).text
    r = post(client, "/notifications/retry-dead", csrf)
    assert r.status_code == 303 and "3+dead+message" in r.headers["location"]
    assert [status_of(db, i) for i in ids] == ["pending"] * 3
    r = post(client, "/notifications/retry-dead", csrf)
    assert "No+dead+messages" in r.headers["location"]


# --- contact methods, rules, shared channels -----------------------------------------------------


def test_a_viewer_manages_own_contact_methods_and_rules(
    client: TestClient, accounts: dict[str, Account], db: Database
) -> None:
    csrf = login(client, accounts["viewer"].email, PASSWORD)
    page = client.get("/me/notifications", headers=HTML)
    assert page.status_code == 200
    assert "With no rule, you get an e-mail at your account address (viewer@example.org) at once" in text(
        page.text
    )
    r = post(client, "/me/channels", csrf, name="Phone", kind="email", address="Pager@Example.org")
    assert r.status_code == 303, r.text
    # A webhook without a secret gets one, shown in this answer only.
    r = post(client, "/me/channels", csrf, name="Hook", kind="webhook", url="https://hooks.example.org/me")
    assert r.status_code == 200 and 'id="created-secret"' in r.text
    secret = re.search(r"(whsec_[A-Za-z0-9+/=]+)", r.text)
    assert secret is not None
    again = client.get("/me/notifications", headers=HTML).text
    assert secret.group(1) not in again and "https://hooks.example.org/me" in again
    with db.session() as s:
        mine = {c.name: c.id for c in s.scalars(select(NotifyChannel))}
    r = post(client, "/me/rules", csrf, urgency="high", delay_minutes="5", channel_id=str(mine["Phone"]))
    assert r.status_code == 303, r.text
    r = post(client, "/me/rules", csrf, urgency="any", delay_minutes="0", channel_id="")
    assert r.status_code == 303
    words = text(client.get("/me/notifications", headers=HTML).text)
    assert "high 5 min Phone (email pager@example.org)" in words and "any at once account e-mail" in words
    with db.session() as s:
        rule_ids = list(s.scalars(select(NotificationRule.id).order_by(NotificationRule.id)))
    assert post(client, f"/me/rules/{rule_ids[1]}/delete", csrf).status_code == 303
    assert post(client, f"/me/channels/{mine['Phone']}/delete", csrf).status_code == 303
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(NotificationRule)) == 0  # its rule went with it
        assert [c.name for c in s.scalars(select(NotifyChannel))] == ["Hook"]


@pytest.mark.parametrize(
    ("fields", "where"),
    [
        ({"name": "x", "kind": "email", "address": "not-an-address"}, "address"),
        ({"name": "x", "kind": "webhook", "url": "ftp://files.example.org"}, "http:// or https://"),
        ({"name": "x", "kind": "webhook", "url": "https://h.example.org", "secret": "whsec_short"}, "secret"),
        ({"name": "x", "kind": "apprise", "url": "nonsense"}, "apprise does not recognise"),
        ({"name": "x", "kind": "sms", "address": "a@b.c"}, "kind"),
        ({"name": "", "kind": "email", "address": "a@b.c"}, "name"),
    ],
)
def test_bad_contact_methods_re_render_with_422(
    client: TestClient, accounts: dict[str, Account], db: Database, fields: dict[str, str], where: str
) -> None:
    csrf = login(client, accounts["viewer"].email, PASSWORD)
    before = counts(db)
    r = post(client, "/me/channels", csrf, **fields)
    assert r.status_code == 422, r.text
    assert "Nothing was added" in r.text and where in html.unescape(r.text)
    assert counts(db) == before


def test_bad_rules_and_other_peoples_channels(
    client: TestClient, accounts: dict[str, Account], db: Database
) -> None:
    csrf = login(client, accounts["manager"].email, PASSWORD)
    assert (
        post(client, "/me/channels", csrf, name="Mine", kind="email", address="m@example.org").status_code
        == 303
    )
    with db.session() as s:
        managers = s.scalars(select(NotifyChannel.id)).one()
    client.cookies.clear()
    csrf = login(client, accounts["viewer"].email, PASSWORD)
    before = counts(db)
    for fields in (
        {"urgency": "urgent", "delay_minutes": "0"},
        {"urgency": "any", "delay_minutes": "-1"},
        {"urgency": "any", "delay_minutes": "soon"},
        {"urgency": "any", "delay_minutes": "0", "channel_id": str(managers)},  # someone else's
    ):
        r = post(client, "/me/rules", csrf, **fields)
        assert r.status_code == 422, (fields, r.text)
        assert "Nothing was added" in r.text
    # Someone else's channel cannot be deleted from one's own page.
    assert post(client, f"/me/channels/{managers}/delete", csrf).status_code == 404
    assert post(client, "/me/rules/9999/delete", csrf).status_code == 404
    assert counts(db) == before


def test_shared_channels_are_for_managers(
    client: TestClient, accounts: dict[str, Account], db: Database
) -> None:
    csrf = login(client, accounts["responder"].email, PASSWORD)
    assert client.get("/channels", headers=HTML).status_code == 403
    assert (
        post(client, "/channels", csrf, name="DBA", kind="webhook", url="https://h.example.org").status_code
        == 403
    )
    client.cookies.clear()
    csrf = login(client, accounts["manager"].email, PASSWORD)
    r = post(client, "/channels", csrf, name="DBA chat", kind="webhook", url="https://h.example.org/dba")
    secret = re.search(r"<code>(whsec_[A-Za-z0-9+/=]+)</code>", r.text)
    assert r.status_code == 200 and secret is not None and "DBA chat" in r.text
    assert secret.group(1) not in client.get("/channels", headers=HTML).text
    r = post(client, "/channels", csrf, name="DBA chat", kind="email", address="dba@example.org")
    assert r.status_code == 409 and "exists" in r.text
    with db.session() as s:
        cid = s.scalars(select(NotifyChannel.id)).one()
    assert post(client, f"/channels/{cid}/delete", csrf).status_code == 303
    assert counts(db)["NotifyChannel"] == 0


# --- the incident page and the service form ------------------------------------------------------


def test_incident_page_shows_where_the_escalation_is(
    client: TestClient, accounts: dict[str, Account], db: Database, clock: ManualClock
) -> None:
    primary(db, clock, accounts)
    pid = policy(db, clock, accounts)
    with db.session() as s:
        svc = cmdb.create_service(
            s, ServiceIn(name="db", escalation_policy_id=pid), actor=SYSTEM, now=clock.now()
        )
        plain = cmdb.create_service(s, ServiceIn(name="plain"), actor=SYSTEM, now=clock.now())
        iid = incidents.declare(
            s,
            title="db down",
            service_id=svc.id,
            severity="critical",
            urgency="high",
            actor=SYSTEM,
            now=clock.now(),
        ).id
        quiet = incidents.declare(
            s, title="meh", service_id=plain.id, severity="info", actor=SYSTEM, now=clock.now()
        ).id
    with db.session() as s:
        escalation.run_due(s, now=clock.now())  # level 1 pages; level 2 is due in 5 minutes
    login(client, accounts["viewer"].email, PASSWORD)
    page = client.get(f"/incidents/{iid}", headers=HTML)
    assert page.status_code == 200
    box = re.search(r'<article id="inc-escalation" data-live>(.*?)</article>', page.text, re.S)
    assert box is not None
    words = text(box.group(1))
    assert "Policy Default" in words and "State active" in words
    assert "Next step level 2 at 2026-03-02 09:05:00 UTC (5 min from now)" in words
    assert f'href="/escalation-policies/{pid}"' in box.group(1)
    assert 'id="inc-escalation"' in client.get(f"/incidents/{iid}/live", headers=HTML).text
    assert 'id="inc-escalation"' not in client.get(f"/incidents/{quiet}", headers=HTML).text
    # Acknowledged: stopped, with the reason.
    with db.session() as s:
        incidents.acknowledge(s, iid, actor=SYSTEM, now=clock.now())
    words = text(client.get(f"/incidents/{iid}", headers=HTML).text)
    assert "State acknowledged" in words and "Next step" not in words and "acknowledged by" in words


def test_service_form_chooses_the_escalation_policy(
    client: TestClient, accounts: dict[str, Account], db: Database, clock: ManualClock
) -> None:
    primary(db, clock, accounts)
    pid = policy(db, clock, accounts)
    with db.session() as s:
        sid = cmdb.create_service(s, ServiceIn(name="shop"), actor=SYSTEM, now=clock.now()).id

    def current() -> int | None:
        with db.session() as s:
            return cmdb.get_service(s, sid).escalation_policy_id

    csrf = login(client, accounts["manager"].email, PASSWORD)
    page = client.get(f"/services/{sid}", headers=HTML).text
    assert 'name="escalation_policy_id"' in page and f'<option value="{pid}" >Default</option>' in page
    base = {"name": "shop", "description": "", "owner_team_id": "", "attributes": ""}
    r = post(client, f"/services/{sid}", csrf, **base, escalation_policy_id=str(pid))
    assert r.status_code == 303, r.text
    assert current() == pid
    page = client.get(f"/services/{sid}", headers=HTML).text
    assert f'<option value="{pid}" selected>Default</option>' in page
    assert f'<a href="/escalation-policies/{pid}">Default</a>' in page
    # A form without the field (an older page) keeps the policy; choosing "none" clears it.
    assert post(client, f"/services/{sid}", csrf, **base).status_code == 303
    assert current() == pid
    r = post(client, f"/services/{sid}", csrf, **base, escalation_policy_id="9999")
    assert r.status_code == 422 and "no escalation policy with id 9999" in r.text
    assert current() == pid
    assert post(client, f"/services/{sid}", csrf, **base, escalation_policy_id="none").status_code == 303
    assert current() is None
