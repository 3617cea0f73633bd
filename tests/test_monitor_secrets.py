"""Check credentials are encrypted at rest, never returned, kept on edits, and fail clearly when
they cannot be read."""

from __future__ import annotations

import json

from sqlalchemy import text

from opsdesk.core import crypto
from opsdesk.monitoring import service as monitoring

BODY = {
    "name": "admin-ui",
    "target": "http://127.0.0.1:9/admin",
    "config": {"username": "ops", "password": "hunter2-secret", "keyword": "Dashboard"},
}


def _create(client, accounts) -> dict:  # type: ignore[no-untyped-def]
    r = client.post("/api/v1/monitors", json=BODY, headers=accounts["manager"].headers)
    assert r.status_code == 201, r.text
    return r.json()


def test_the_api_never_returns_a_secret(client, accounts):
    out = _create(client, accounts)
    assert "password" not in out["config"] and out["secrets_set"] == ["password"]
    assert out["config"]["username"] == "ops" and out["config"]["keyword"] == "Dashboard"
    again = client.get(f"/api/v1/monitors/{out['id']}", headers=accounts["viewer"].headers).json()
    assert "hunter2-secret" not in json.dumps(again)


def test_secrets_are_encrypted_in_the_database_and_the_audit_log(client, accounts, db):
    _create(client, accounts)
    with db.engine.connect() as conn:
        dump = " ".join(str(r) for r in conn.execute(text("SELECT * FROM monitors")))
        audit = " ".join(str(r) for r in conn.execute(text("SELECT * FROM audit_log")))
    assert "hunter2-secret" not in dump and "hunter2-secret" not in audit
    assert "secrets_set" in audit


def test_the_prober_gets_the_decrypted_secret(client, accounts, db, clock):
    _create(client, accounts)
    with db.session() as s:
        (due,) = monitoring.claim_due(s, clock.now())
    assert due.config["password"] == "hunter2-secret" and due.error is None


def test_an_edit_without_the_secret_keeps_it_and_null_clears_it(client, accounts, db, clock):
    mid = _create(client, accounts)["id"]
    h = accounts["manager"].headers
    r = client.patch(
        f"/api/v1/monitors/{mid}", json={"config": {"username": "ops", "keyword": "Home"}}, headers=h
    )
    assert r.status_code == 200 and r.json()["secrets_set"] == ["password"]
    with db.session() as s:
        (due,) = monitoring.claim_due(s, clock.now())
        assert due.config["password"] == "hunter2-secret" and due.config["keyword"] == "Home"
    r = client.patch(
        f"/api/v1/monitors/{mid}", json={"config": {"username": "ops", "password": None}}, headers=h
    )
    assert r.status_code == 200 and r.json()["secrets_set"] == []


def test_a_changed_secret_key_makes_the_check_fail_with_a_clear_reason(client, accounts, db, clock, settings):
    _create(client, accounts)
    crypto.configure("another key entirely")
    try:
        with db.session() as s:
            (due,) = monitoring.claim_due(s, clock.now())
    finally:
        settings.configure_secrets()
    assert due.error is not None and "OPSDESK_SECRET_KEY" in due.error
