"""Acknowledge and resolve links in notifications: signed, expiring, usable once, no login.

A link is ``/act/<token>``; the token is the base64url JSON claims (incident, action, person,
expiry, a random nonce) and an HMAC-SHA256 of them with a key derived from the secret key. Opening
the link shows what it will do and one button; the action happens on that button's POST, so mail
scanners and chat unfurlers that fetch every link do not acknowledge anything (decision 0015).
A used link is refused (its nonce is recorded); an altered or foreign one is refused as forged.
"""

from __future__ import annotations

import base64
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import orjson
from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from opsdesk.core import crypto
from opsdesk.notify.models import UsedActionLink

ACTIONS = ("acknowledge", "resolve")
DEFAULT_TTL = timedelta(hours=24)


class LinkError(Exception):
    def __init__(self, status: int, title: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail = status, title, detail


@dataclass(frozen=True)
class Claims:
    incident_id: int
    action: str
    user_id: int
    expires_at: datetime
    nonce: str


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def make(incident_id: int, action: str, user_id: int, *, now: datetime, ttl: timedelta = DEFAULT_TTL) -> str:
    if action not in ACTIONS:
        raise ValueError(f"action must be one of {ACTIONS}")
    claims = {
        "i": incident_id,
        "a": action,
        "u": user_id,
        "e": int((now + ttl).timestamp()),
        "n": secrets.token_urlsafe(12),
    }
    body = orjson.dumps(claims)
    return f"{_b64(body)}.{_b64(crypto.sign(body))}"


def verify(token: str, *, now: datetime) -> Claims:
    """The claims of a genuine, unexpired link; LinkError otherwise (use is checked by :func:`use`)."""
    forged = LinkError(
        403, "Link not valid", "This link is not valid: it was altered, or it was not made by this opsdesk."
    )
    if len(token) > 600 or token.count(".") != 1:
        raise forged
    body_b64, sig_b64 = token.split(".")
    try:
        body, sig = _unb64(body_b64), _unb64(sig_b64)
    except ValueError:
        raise forged from None
    if not hmac.compare_digest(sig, crypto.sign(body)):
        raise forged
    try:
        c = orjson.loads(body)
        claims = Claims(
            int(c["i"]), str(c["a"]), int(c["u"]), datetime.fromtimestamp(int(c["e"]), UTC), str(c["n"])
        )
    except (ValueError, KeyError, TypeError):
        raise forged from None
    if claims.action not in ACTIONS:
        raise forged
    if claims.expires_at <= now:
        raise LinkError(
            410,
            "Link expired",
            f"This link expired at {claims.expires_at:%Y-%m-%d %H:%M} UTC."
            " Open the incident in opsdesk instead.",
        )
    return claims


def use(s: Session, claims: Claims, *, now: datetime) -> None:
    """Record the link as used, in the caller's transaction; LinkError if it was used before."""
    s.add(
        UsedActionLink(
            nonce=claims.nonce, incident_id=claims.incident_id, used_at=now, expires_at=claims.expires_at
        )
    )
    try:
        s.flush()
    except IntegrityError:
        s.rollback()
        raise LinkError(
            409, "Link already used", "This link was already used; each link works once."
        ) from None


def used(s: Session, claims: Claims) -> bool:
    return s.get(UsedActionLink, claims.nonce) is not None


def forget_expired(s: Session, *, now: datetime) -> int:
    """Used links past their expiry need no record (they are refused as expired)."""
    res = s.execute(delete(UsedActionLink).where(UsedActionLink.expires_at < now))
    return int(getattr(res, "rowcount", 0) or 0)
