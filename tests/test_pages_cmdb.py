"""The CMDB and team pages, driven through their HTML forms."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from opsdesk.auth import service as auth
from opsdesk.auth.schemas import TeamIn, UserIn
from opsdesk.cmdb import service as cmdb
from opsdesk.cmdb.schemas import CIIn
from opsdesk.core.actor import SYSTEM, Role
from opsdesk.core.db import Database
from opsdesk.core.settings import Settings
from opsdesk.web.app import create_app

PASSWORD = "correct-horse-battery"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass
class Env:
    db: Database
    client: TestClient
    user_ids: dict[str, int]


@pytest.fixture
def db_url(sqlite_url: str) -> str:
    """SQLite only: see ``sqlite_url`` in conftest."""
    return sqlite_url


@pytest.fixture
def env(db: Database, tmp_path: Path) -> Iterator[Env]:
    """Runs on SQLite and PostgreSQL through the shared ``db`` fixture."""
    ids = {}
    with db.session() as s:
        for role in (Role.admin, Role.manager, Role.viewer):
            user = auth.create_user(
                s,
                UserIn(
                    email=f"{role.value}@example.org",
                    name=f"{role.value.title()} User",
                    role=role,
                    password=PASSWORD,
                ),
                actor=SYSTEM,
                now=datetime.now(UTC),
            )
            ids[role.value] = user.id
    app = create_app(Settings(data_dir=tmp_path), db=db, roles=set())
    with TestClient(app, headers={"accept": "text/html"}) as client:
        yield Env(db, client, ids)


def login(client: TestClient, role: str) -> str:
    """Sign in as ``<role>@example.org`` and return the CSRF token of the session."""
    r = client.post("/login", data={"email": f"{role}@example.org", "password": PASSWORD})
    assert r.status_code == 200, r.text  # the redirect to the dashboard was followed
    token = CSRF.search(client.get("/services").text)
    assert token is not None
    return token.group(1)


def post(client: TestClient, url: str, csrf: str, **fields: object) -> httpx.Response:
    return client.post(url, data={"csrf_token": csrf, **fields}, follow_redirects=False)


def create_service(client: TestClient, csrf: str, name: str, **fields: object) -> int:
    r = client.post("/services", data={"csrf_token": csrf, "name": name, **fields}, follow_redirects=False)
    assert r.status_code == 303, r.text
    return int(r.headers["location"].split("?")[0].rsplit("/", 1)[1])


def create_ci(client: TestClient, csrf: str, name: str, ci_class: str = "server") -> int:
    r = client.post(
        "/cis", data={"csrf_token": csrf, "name": name, "ci_class": ci_class}, follow_redirects=False
    )
    assert r.status_code == 303, r.text
    return int(r.headers["location"].split("?")[0].rsplit("/", 1)[1])


def count(db: Database) -> tuple[int, int, int]:
    with db.session() as s:
        return (
            len(cmdb.list_services(s, limit=500)),
            len(cmdb.list_cis(s, limit=500)),
            len(cmdb.list_relationships(s, limit=500)),
        )


# --- services and CIs --------------------------------------------------------------------------


def test_manager_creates_service_and_ci_and_sees_them_listed(env: Env) -> None:
    csrf = login(env.client, "manager")
    sid = create_service(env.client, csrf, "checkout", description="Takes the money")
    cid = create_ci(env.client, csrf, "db01", "database")

    services = env.client.get("/services")
    assert f'href="/services/{sid}"' in services.text and "Takes the money" in services.text
    cis = env.client.get("/cis?class=database")
    assert f'href="/cis/{cid}"' in cis.text and "db01" in cis.text
    assert "db01" not in env.client.get("/cis?class=server").text.split("<main")[1].split("</table>")[0]
    detail = env.client.get(f"/services/{sid}")
    assert detail.status_code == 200 and "<h1>checkout</h1>" in detail.text


def test_search_box_filters_services(env: Env) -> None:
    csrf = login(env.client, "manager")
    create_service(env.client, csrf, "checkout")
    create_service(env.client, csrf, "search-api")
    page = env.client.get("/services?q=check").text
    assert "checkout" in page and "search-api" not in page


def test_edit_form_saves_owner_and_attributes(env: Env) -> None:
    csrf = login(env.client, "manager")
    sid = create_service(env.client, csrf, "checkout")
    with env.db.session() as s:
        team_id = auth.create_team(s, TeamIn(name="Payments"), actor=SYSTEM, now=datetime.now(UTC)).id
    r = post(
        env.client,
        f"/services/{sid}",
        csrf,
        name="checkout-v2",
        description="new",
        owner_team_id=team_id,
        attributes="tier=1\nregion = eu-west\n",
    )
    assert r.status_code == 303
    with env.db.session() as s:
        svc = cmdb.get_service(s, sid)
        assert (svc.name, svc.owner_team_id, svc.attributes) == (
            "checkout-v2",
            team_id,
            {"tier": "1", "region": "eu-west"},
        )
    assert "Payments" in env.client.get(f"/services/{sid}").text


def test_bad_attribute_line_is_shown_and_nothing_changes(env: Env) -> None:
    csrf = login(env.client, "manager")
    sid = create_service(env.client, csrf, "checkout")
    r = post(env.client, f"/services/{sid}", csrf, name="renamed", attributes="no equals sign")
    assert r.status_code == 422
    assert "line 1: expected key=value" in r.text
    with env.db.session() as s:
        assert cmdb.get_service(s, sid).name == "checkout"


def test_relationship_added_through_the_form_shows_on_both_ends(env: Env) -> None:
    csrf = login(env.client, "manager")
    sid = create_service(env.client, csrf, "checkout")
    cid = create_ci(env.client, csrf, "db01")
    r = post(
        env.client,
        f"/services/{sid}/relationships",
        csrf,
        type="depends_on",
        direction="out",
        other=f"ci:{cid}",
    )
    assert r.status_code == 303

    service_page = env.client.get(f"/services/{sid}").text
    assert "depends on" in service_page and f'href="/cis/{cid}"' in service_page
    ci_page = env.client.get(f"/cis/{cid}").text
    assert f'href="/services/{sid}">checkout</a>' in ci_page and "depends on <strong>db01</strong>" in ci_page
    with env.db.session() as s:
        (rel,) = cmdb.list_relationships(s)
        assert (rel.type, rel.source_service_id, rel.target_ci_id) == ("depends_on", sid, cid)


def test_duplicate_relationship_is_refused_on_the_page(env: Env) -> None:
    csrf = login(env.client, "manager")
    sid = create_service(env.client, csrf, "checkout")
    cid = create_ci(env.client, csrf, "db01")
    fields = {"type": "depends_on", "direction": "out", "other": f"ci:{cid}"}
    post(env.client, f"/services/{sid}/relationships", csrf, **fields)
    r = post(env.client, f"/services/{sid}/relationships", csrf, **fields)
    assert r.status_code == 409 and "already exists" in r.text
    assert count(env.db)[2] == 1


def test_deleting_a_needed_ci_is_refused_with_the_dependent_named(env: Env) -> None:
    csrf = login(env.client, "manager")
    sid = create_service(env.client, csrf, "checkout")
    cid = create_ci(env.client, csrf, "db01")
    post(env.client, f"/services/{sid}/relationships", csrf, type="depends_on", other=f"ci:{cid}")

    r = env.client.post(f"/cis/{cid}/delete", data={"csrf_token": csrf})
    assert r.status_code == 200 and r.url.path == f"/cis/{cid}"
    assert 'class="flash bad"' in r.text and "cannot be deleted" in r.text and "service checkout" in r.text
    with env.db.session() as s:
        assert cmdb.get_ci(s, cid).name == "db01"


def test_deleting_the_relationship_then_the_ci_works(env: Env) -> None:
    csrf = login(env.client, "manager")
    sid = create_service(env.client, csrf, "checkout")
    cid = create_ci(env.client, csrf, "db01")
    post(env.client, f"/services/{sid}/relationships", csrf, type="depends_on", other=f"ci:{cid}")
    with env.db.session() as s:
        (rel,) = cmdb.list_relationships(s)
        rel_id = rel.id

    r = env.client.post(f"/relationships/{rel_id}/delete", data={"csrf_token": csrf, "next": f"/cis/{cid}"})
    assert r.status_code == 200 and r.url.path == f"/cis/{cid}" and "No relationships yet." in r.text
    r = env.client.post(f"/cis/{cid}/delete", data={"csrf_token": csrf})
    assert r.status_code == 200 and r.url.path == "/cis" and "CI db01 deleted" in r.text
    assert count(env.db) == (1, 0, 0)


def test_relationship_delete_ignores_an_offsite_next(env: Env) -> None:
    csrf = login(env.client, "manager")
    sid = create_service(env.client, csrf, "checkout")
    cid = create_ci(env.client, csrf, "db01")
    post(env.client, f"/services/{sid}/relationships", csrf, type="depends_on", other=f"ci:{cid}")
    with env.db.session() as s:
        rel_id = cmdb.list_relationships(s)[0].id
    r = post(env.client, f"/relationships/{rel_id}/delete", csrf, next="//evil.example/")
    assert r.headers["location"].startswith(f"/services/{sid}?")


def test_viewer_sees_no_forms_and_gets_403_on_post(env: Env) -> None:
    csrf = login(env.client, "viewer")
    assert "Add a service" not in env.client.get("/services").text
    r = post(env.client, "/services", csrf, name="sneaky")
    assert r.status_code == 403
    assert count(env.db) == (0, 0, 0)


def test_post_without_csrf_token_is_forbidden(env: Env) -> None:
    login(env.client, "manager")
    r = env.client.post("/services", data={"name": "checkout"}, follow_redirects=False)
    assert r.status_code == 403 and "CSRF" in r.text
    assert count(env.db) == (0, 0, 0)


def test_empty_name_rerenders_with_message_and_creates_nothing(env: Env) -> None:
    csrf = login(env.client, "manager")
    r = post(env.client, "/services", csrf, name="  ", description="kept")
    assert r.status_code == 422
    assert 'aria-invalid="true"' in r.text and "at least 1 character" in r.text
    assert "kept</textarea>" in r.text
    assert count(env.db) == (0, 0, 0)


def test_duplicate_name_rerenders_with_conflict_and_creates_nothing(env: Env) -> None:
    csrf = login(env.client, "manager")
    create_ci(env.client, csrf, "db01")
    r = post(env.client, "/cis", csrf, name="db01", ci_class="vm")
    assert r.status_code == 409
    assert "a CI named &#39;db01&#39; already exists" in r.text
    assert count(env.db) == (0, 1, 0)


def test_unknown_ci_class_is_an_error_next_to_the_field(env: Env) -> None:
    csrf = login(env.client, "manager")
    r = post(env.client, "/cis", csrf, name="db01", ci_class="mainframe")
    assert r.status_code == 422 and "Input should be" in r.text
    assert count(env.db) == (0, 0, 0)


def test_missing_pages_are_404(env: Env) -> None:
    login(env.client, "viewer")
    assert env.client.get("/services/999").status_code == 404
    assert env.client.get("/cis/999").status_code == 404
    assert env.client.get("/teams/999").status_code == 404


# --- teams -------------------------------------------------------------------------------------


def test_manager_creates_team_with_members(env: Env) -> None:
    csrf = login(env.client, "manager")
    members = [env.user_ids["manager"], env.user_ids["viewer"]]
    r = post(env.client, "/teams", csrf, name="Platform", description="Runs the platform", member_ids=members)
    assert r.status_code == 303
    with env.db.session() as s:
        (team,) = auth.list_teams(s)
        assert auth.team_member_ids(team) == sorted(members)
    listing = env.client.get("/teams").text
    assert "Platform" in listing and "Manager User, Viewer User" in listing


def test_team_edit_replaces_members(env: Env) -> None:
    csrf = login(env.client, "manager")
    with env.db.session() as s:
        team_id = auth.create_team(
            s,
            TeamIn(name="Platform", member_ids=[env.user_ids["viewer"]]),
            actor=SYSTEM,
            now=datetime.now(UTC),
        ).id
    r = post(env.client, f"/teams/{team_id}", csrf, name="Platform", member_ids=[env.user_ids["admin"]])
    assert r.status_code == 303
    with env.db.session() as s:
        assert auth.team_member_ids(auth.get_team(s, team_id)) == [env.user_ids["admin"]]


def test_team_owning_a_service_cannot_be_deleted(env: Env) -> None:
    csrf = login(env.client, "manager")
    post(env.client, "/teams", csrf, name="Payments")
    with env.db.session() as s:
        team_id = auth.list_teams(s)[0].id
    create_service(env.client, csrf, "checkout", owner_team_id=team_id)
    assert "checkout" in env.client.get(f"/teams/{team_id}").text
    r = env.client.post(f"/teams/{team_id}/delete", data={"csrf_token": csrf})
    assert (
        r.url.path == f"/teams/{team_id}" and 'class="flash bad"' in r.text and "service checkout" in r.text
    )
    with env.db.session() as s:
        assert auth.get_team(s, team_id).name == "Payments"


def test_viewer_sees_teams_read_only(env: Env) -> None:
    with env.db.session() as s:
        team_id = auth.create_team(s, TeamIn(name="Platform"), actor=SYSTEM, now=datetime.now(UTC)).id
    csrf = login(env.client, "viewer")
    page = env.client.get(f"/teams/{team_id}").text
    assert "Platform" in page and "Edit team" not in page and "Delete team" not in page
    r = post(env.client, f"/teams/{team_id}/delete", csrf)
    assert r.status_code == 403


def test_ci_edit_keeps_unchanged_non_string_attributes(env: Env) -> None:
    with env.db.session() as s:
        cid = cmdb.create_ci(
            s,
            CIIn.model_validate({"name": "db01", "class": "server", "attributes": {"cores": 8}}),
            actor=SYSTEM,
            now=datetime.now(UTC),
        ).id
    csrf = login(env.client, "manager")
    page = env.client.get(f"/cis/{cid}").text
    assert "cores=8</textarea>" in page
    r = post(env.client, f"/cis/{cid}", csrf, name="db01", ci_class="database", attributes="cores=8\nrack=r1")
    assert r.status_code == 303
    with env.db.session() as s:
        ci = cmdb.get_ci(s, cid)
        assert (ci.ci_class, ci.attributes) == ("database", {"cores": 8, "rack": "r1"})
