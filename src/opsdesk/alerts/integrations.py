"""Integrations: an alert source with its own key, and optionally its own HMAC secret.

* **Key**: ``odh_`` + 256 random bits, shown once (at creation and at each rotation); only its
  SHA-256 is stored, as for API tokens. It goes in the hook URL (``POST /hooks/<key>``), because
  Alertmanager's ``webhook_configs`` and many other tools can set a URL but no header;
  ``Authorization: Bearer <key>`` on ``POST /hooks`` works as well. Rotating replaces the key at
  once: the old one answers 404 from then on.
* **Secret** (optional): stored encrypted with :mod:`opsdesk.core.crypto`. When set, a request
  must carry ``X-Opsdesk-Timestamp: <unix seconds>`` and ``X-Opsdesk-Signature: sha256=<hex>``,
  the HMAC-SHA256 under the secret of ``timestamp + "." + raw body``; a timestamp more than
  :data:`MAX_SKEW_SECONDS` from the server's clock is refused, so a captured request cannot be
  replayed later. Alertmanager cannot sign: leave its integrations without a secret.
* **Default service**: events that name no (known) service are attached to it.
* ``last_used_at`` is updated after a successful delivery, at most once a minute per integration,
  so a busy source costs no extra transaction per request.

Creating, rotating and deleting an integration is audited; the key and secret never are.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from opsdesk.alerts.models import Integration, SeenSignature
from opsdesk.alerts.sources import REGISTRY
from opsdesk.audit import service as audit
from opsdesk.core import crypto
from opsdesk.core.actor import Actor
from opsdesk.core.errors import OpsdeskError, conflict, invalid, not_found
from opsdesk.core.security import token_digest

KEY_PREFIX = "odh_"
KEY_SHAPE = re.compile(r"^odh_[A-Za-z0-9_-]{20,100}$")
MAX_SKEW_SECONDS = 300
LAST_USED_EVERY = timedelta(seconds=60)
SIGNATURE_HEADER = "x-opsdesk-signature"
TIMESTAMP_HEADER = "x-opsdesk-timestamp"


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def _facts(i: Integration) -> dict[str, object]:
    return {
        "name": i.name,
        "kind": i.kind,
        "service_id": i.service_id,
        "signed": i.secret_encrypted is not None,
    }


def create_integration(
    s: Session,
    *,
    name: str,
    kind: str,
    secret: str | None,
    service_id: int | None,
    actor: Actor,
    now: datetime,
) -> tuple[Integration, str]:
    """A new integration and its key (the only time the plain key exists)."""
    if kind not in REGISTRY:
        raise invalid("kind", f"one of {', '.join(sorted(REGISTRY))}")
    if s.scalar(select(Integration.id).where(Integration.name == name)) is not None:
        raise conflict(f"an integration named {name!r} already exists")
    if service_id is not None:
        from opsdesk.cmdb import service as cmdb

        try:
            cmdb.get_service(s, service_id)
        except OpsdeskError:
            raise invalid("service_id", f"no service {service_id}") from None
    key = new_key()
    i = Integration(
        name=name,
        kind=kind,
        key_hash=token_digest(key),
        secret_encrypted=crypto.encrypt(secret) if secret else None,
        service_id=service_id,
        created_at=now,
        last_used_at=None,
    )
    s.add(i)
    s.flush()
    audit.created(s, "integration", i.id, _facts(i), actor=actor, at=now)
    return i, key


def list_integrations(s: Session) -> list[Integration]:
    return list(s.scalars(select(Integration).order_by(Integration.name)))


def get_integration(s: Session, integration_id: int) -> Integration:
    i = s.get(Integration, integration_id)
    if i is None:
        raise not_found("integration", integration_id)
    return i


def delete_integration(s: Session, integration_id: int, *, actor: Actor, now: datetime) -> None:
    i = get_integration(s, integration_id)
    audit.deleted(s, "integration", i.id, _facts(i), actor=actor, at=now)
    s.delete(i)


def rotate_key(s: Session, integration_id: int, *, actor: Actor, now: datetime) -> tuple[Integration, str]:
    """A new key for the integration; the old one stops working at once."""
    i = get_integration(s, integration_id)
    key = new_key()
    i.key_hash = token_digest(key)
    audit.record(
        s,
        actor=actor,
        action="rotate_key",
        entity_type="integration",
        entity_id=i.id,
        before=None,
        after={"name": i.name},
        at=now,
    )
    return i, key


def integration_for_key(s: Session, key: str) -> Integration | None:
    if not KEY_SHAPE.match(key):
        return None
    return s.scalar(select(Integration).where(Integration.key_hash == token_digest(key)))


def secret_of(i: Integration) -> str | None:
    return crypto.decrypt(i.secret_encrypted) if i.secret_encrypted else None


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The ``X-Opsdesk-Signature`` value for a body sent at ``timestamp`` (unix seconds, as text)."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify_signature(
    secret: str, signature: str | None, timestamp: str | None, body: bytes, *, now: datetime
) -> str | None:
    """``None`` when the request is signed correctly and recently; otherwise why it is not."""
    if not signature:
        return f"this integration requires a signature: send {SIGNATURE_HEADER} and {TIMESTAMP_HEADER}"
    if not timestamp:
        return f"a signed request must carry {TIMESTAMP_HEADER} (unix seconds)"
    try:
        ts = int(timestamp)
    except ValueError:
        return f"{TIMESTAMP_HEADER} must be unix seconds"
    skew = abs(now.timestamp() - ts)
    if skew > MAX_SKEW_SECONDS:
        return (
            f"{TIMESTAMP_HEADER} is {int(skew)} s away from the server's clock "
            f"(at most {MAX_SKEW_SECONDS} s): a stale or replayed request"
        )
    if not hmac.compare_digest(sign(secret, timestamp, body), signature.strip()):
        return f"{SIGNATURE_HEADER} does not match the body (HMAC-SHA256 of timestamp + '.' + body)"
    return None


def mark_used(s: Session, integration_id: int, *, now: datetime) -> None:
    """Record a delivery, at most once per :data:`LAST_USED_EVERY` (one cheap conditional UPDATE)."""
    s.execute(
        update(Integration)
        .where(
            Integration.id == integration_id,
            (Integration.last_used_at.is_(None)) | (Integration.last_used_at < now - LAST_USED_EVERY),
        )
        .values(last_used_at=now)
    )


def remember_signature(s: Session, signature: str, *, now: datetime) -> bool:
    """Record an accepted signature; False when it was already seen (a replayed request). Expired
    records are swept here now and then, so the table stays as small as the tolerance window."""
    digest = hashlib.sha256(signature.strip().encode()).hexdigest()
    if secrets.randbelow(50) == 0:
        s.execute(delete(SeenSignature).where(SeenSignature.expires_at < now))
    if s.get(SeenSignature, digest) is not None:
        return False
    try:
        with s.begin_nested():
            s.add(SeenSignature(digest=digest, expires_at=now + timedelta(seconds=2 * MAX_SKEW_SECONDS)))
    except IntegrityError:  # the same signature in a concurrent request
        return False
    return True
