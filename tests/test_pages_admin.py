"""The admin pages (users, API tokens, audit log), driven through their HTML forms.

Every test runs on SQLite and PostgreSQL through the shared ``db`` fixture.
"""

from __future__ import annotations

import html
import re

import httpx
import pytest
from fastapi.testclient import TestClient

from opsdesk.audit import service as audit
from opsdesk.auth import service as auth
from opsdesk.auth.schemas import TeamIn
from opsdesk.core.actor import SYSTEM
from opsdesk.core.clock import ManualClock
from opsdesk.core.db import Database
from tests.conftest import PASSWORD, Account

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
AUDIT_ROW = re.compile(r'<tr id="audit-(\d+)">')


@pytest.fixture
def db_url(sqlite_url: str) -> str:
    """SQLite only: see ``sqlite_url`` in conftest."""
    return sqlite_url


def login(client: TestClient, email: str, password: str = PASSWORD) -> str:
    """Sign in through the form and return the CSRF token of the session."""
    r = client.post("/login", data={"email": email, "password": password})
    assert r.status_code == 200 and r.url.path == "/", r.text  # the redirect to the dashboard was followed
    token = CSRF.search(r.text)
    assert token is not None
    return token.group(1)


def post(client: TestClient, url: str, csrf: str, **fields: object) -> httpx.Response:
    return client.post(url, data={"csrf_token": csrf, **fields}, follow_redirects=False)


def text(page: str) -> str:
    """The words of a page, without tags, as a person reads them."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


def shown_secret(page: str, box_id: str) -> str:
    box = re.search(rf'id="{box_id}-value" value="([^"]+)"', page)
    assert box is not None, f"no #{box_id} on the page"
    return box.group(1)


def user_count(db: Database) -> int:
    with db.session() as s:
        return len(auth.list_users(s))


def token_state(db: Database) -> list[tuple[int, bool]]:
    with db.session() as s:
        return [(t.id, t.revoked_at is None) for t in auth.list_tokens(s)]


# --- users -------------------------------------------------------------------------------------


def test_generated_password_is_shown_once_and_signs_the_new_user_in(
    client: TestClient, accounts: dict[str, Account]
) -> None:
    csrf = login(client, "admin@example.org")
    r = post(client, "/users", csrf, email="Dana@Example.org", name="Dana", role="responder", password="")

    assert r.status_code == 201 and r.headers["cache-control"] == "no-store"
    password = shown_secret(r.text, "new-password")
    user_id = re.search(r'action="/users/(\d+)"', r.text)
    assert user_id is not None
    again = client.get(f"/users/{user_id.group(1)}")
    assert again.status_code == 200 and "dana@example.org" in again.text and password not in again.text
    assert password not in client.get("/users").text

    with TestClient(client.app) as other:
        login(other, "dana@example.org", password)
        assert "dana@example.org (responder)" in other.get("/").text


def test_duplicate_email_is_shown_next_to_the_field_and_creates_nothing(
    client: TestClient, accounts: dict[str, Account], db: Database
) -> None:
    csrf = login(client, "admin@example.org")
    before = user_count(db)
    r = post(client, "/users", csrf, email="Viewer@Example.org", name="Twin", role="viewer", password="")

    assert r.status_code == 409
    assert "a user with e-mail viewer@example.org already exists" in r.text
    assert re.search(r'name="email" value="Viewer@Example.org"[^>]*aria-invalid="true"', r.text)
    assert user_count(db) == before


def test_short_password_is_refused_next_to_the_field(
    client: TestClient, accounts: dict[str, Account], db: Database
) -> None:
    csrf = login(client, "admin@example.org")
    before = user_count(db)
    r = post(client, "/users", csrf, email="eve@example.org", name="Eve", role="viewer", password="short")

    assert r.status_code == 422 and "at least 8 characters" in r.text
    assert "short" not in re.findall(r'name="password"[^>]*>', r.text)[0]  # never sent back
    assert user_count(db) == before


def test_role_change_is_saved_and_shows_in_the_audit_log(
    client: TestClient, accounts: dict[str, Account], db: Database
) -> None:
    viewer_id = accounts["viewer"].user.id
    csrf = login(client, "admin@example.org")
    r = post(client, f"/users/{viewer_id}", csrf, name="Viewer", role="responder", active="1", password="")

    assert r.status_code == 303 and r.headers["location"].startswith(f"/users/{viewer_id}?")
    with db.session() as s:
        assert auth.get_user(s, viewer_id).role == "responder"
    log = client.get(f"/audit?entity_type=user&entity_id={viewer_id}")
    assert log.status_code == 200 and "role: viewer → responder" in text(log.text)


def test_last_admin_cannot_be_demoted(client: TestClient, accounts: dict[str, Account], db: Database) -> None:
    admin_id = accounts["admin"].user.id
    csrf = login(client, "admin@example.org")
    r = client.post(
        f"/users/{admin_id}", data={"csrf_token": csrf, "name": "Admin", "role": "manager", "active": "1"}
    )

    assert r.status_code == 200 and r.url.path == f"/users/{admin_id}"
    assert 'class="flash bad"' in r.text and "this is the last active admin" in r.text
    with db.session() as s:
        assert auth.get_user(s, admin_id).role == "admin"


def test_manager_is_refused_the_users_pages(
    client: TestClient, accounts: dict[str, Account], db: Database
) -> None:
    csrf = login(client, "manager@example.org")
    before = user_count(db)

    assert client.get("/users").status_code == 403
    r = post(client, "/users", csrf, email="sneaky@example.org", name="Sneaky", role="admin", password="")
    assert r.status_code == 403
    assert user_count(db) == before


# --- API tokens --------------------------------------------------------------------------------


def test_responder_creates_a_token_that_is_shown_once_and_works(
    client: TestClient, accounts: dict[str, Account]
) -> None:
    csrf = login(client, "responder@example.org")
    r = post(client, "/tokens", csrf, name="grafana")

    assert r.status_code == 201 and r.headers["cache-control"] == "no-store"
    token = shown_secret(r.text, "new-token")
    assert token.startswith("odk_") and "shown only once" in r.text
    assert token not in client.get("/tokens").text
    with TestClient(client.app) as api:
        me = api.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200 and me.json()["email"] == "responder@example.org"


def test_revoked_token_gets_401(client: TestClient, accounts: dict[str, Account], db: Database) -> None:
    csrf = login(client, "responder@example.org")
    token = shown_secret(post(client, "/tokens", csrf, name="ci-deploy").text, "new-token")
    with db.session() as s:
        token_id = auth.list_tokens(s, user_id=accounts["responder"].user.id)[-1].id

    r = client.post(f"/tokens/{token_id}/revoke", data={"csrf_token": csrf})
    assert r.status_code == 200 and r.url.path == "/tokens" and "Token ci-deploy revoked" in r.text
    with TestClient(client.app) as api:
        assert api.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).status_code == 401


def test_viewer_sees_tokens_but_cannot_create_one(
    client: TestClient, accounts: dict[str, Account], db: Database
) -> None:
    csrf = login(client, "viewer@example.org")
    before = token_state(db)

    page = client.get("/tokens")
    assert page.status_code == 200 and "Create a token" not in page.text
    assert post(client, "/tokens", csrf, name="sneaky").status_code == 403
    assert token_state(db) == before


def test_responder_cannot_revoke_someone_elses_token(
    client: TestClient, accounts: dict[str, Account], db: Database
) -> None:
    manager = accounts["manager"]
    with db.session() as s:
        (theirs,) = auth.list_tokens(s, user_id=manager.user.id)
    csrf = login(client, "responder@example.org")

    assert post(client, f"/tokens/{theirs.id}/revoke", csrf).status_code == 403
    with TestClient(client.app) as api:
        assert api.get("/api/v1/me", headers=manager.headers).status_code == 200


# --- audit log ---------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["viewer", "responder"])
def test_audit_log_needs_the_manager_role(
    client: TestClient, accounts: dict[str, Account], role: str
) -> None:
    login(client, f"{role}@example.org")
    assert client.get("/audit").status_code == 403
    assert 'href="/audit"' not in client.get("/").text


def test_audit_log_filters_by_entity_type(
    client: TestClient, accounts: dict[str, Account], db: Database, clock: ManualClock
) -> None:
    with db.session() as s:
        team_id = auth.create_team(s, TeamIn(name="Platform"), actor=SYSTEM, now=clock.now()).id
    login(client, "manager@example.org")

    everything = text(client.get("/audit").text)
    assert f"team #{team_id}" in everything and "user #" in everything
    teams = client.get("/audit?entity_type=team")
    assert teams.status_code == 200
    assert '<option value="team" selected>' in teams.text
    rows = text(teams.text.split("<tbody>")[1])
    assert f"team #{team_id}" in rows and "name: Platform" in rows and "user #" not in rows


def test_older_link_pages_through_the_audit_log(
    client: TestClient, accounts: dict[str, Account], db: Database, clock: ManualClock
) -> None:
    with db.session() as s:
        for n in range(60):
            audit.record(
                s,
                actor=SYSTEM,
                action="update",
                entity_type="probe",
                entity_id=n,
                before={"n": n},
                after={"n": n + 1},
                at=clock.now(),
            )
    login(client, "manager@example.org")

    first = client.get("/audit?entity_type=probe")
    newest = [int(i) for i in AUDIT_ROW.findall(first.text)]
    assert len(newest) == 50 and newest == sorted(newest, reverse=True)
    older = re.search(r'<a href="([^"]+)" rel="next">Older', first.text)
    assert older is not None
    older_url = html.unescape(older.group(1))
    assert older_url == f"/audit?entity_type=probe&before_id={newest[-1]}"

    second = client.get(older_url)
    rest = [int(i) for i in AUDIT_ROW.findall(second.text)]
    assert len(rest) == 10 and max(rest) < min(newest)
    assert 'rel="next"' not in second.text and "← Newest" in second.text
    assert "n: 0 → 1" in text(second.text)
