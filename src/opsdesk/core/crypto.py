"""Secrets at rest: Fernet (AES-128-CBC + HMAC-SHA256) with a key derived from the secret key.

The box is configured once per process from ``Settings.ensure_secret_key()`` (the app factory and
the CLI do it). Changing the secret key makes stored secrets unreadable: they must be entered again.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from cryptography.fernet import Fernet, InvalidToken

_fernet: Fernet | None = None
_signing_key: bytes | None = None


class SecretUnreadable(Exception):
    """A stored secret cannot be decrypted (the secret key changed, or the value was tampered with)."""


def configure(secret_key: str) -> None:
    global _fernet, _signing_key
    digest = hashlib.sha256(b"opsdesk secrets v1\x00" + secret_key.encode()).digest()
    _fernet = Fernet(base64.urlsafe_b64encode(digest))
    _signing_key = hashlib.sha256(b"opsdesk signing v1\x00" + secret_key.encode()).digest()


def sign(data: bytes) -> bytes:
    """HMAC-SHA256 of ``data`` with a key derived from the secret key (not the encryption key)."""
    if _signing_key is None:
        raise RuntimeError("secrets are not configured: call opsdesk.core.crypto.configure(secret_key) first")
    return hmac.new(_signing_key, data, hashlib.sha256).digest()


def _box() -> Fernet:
    if _fernet is None:
        raise RuntimeError("secrets are not configured: call opsdesk.core.crypto.configure(secret_key) first")
    return _fernet


def encrypt(plain: str) -> str:
    return _box().encrypt(plain.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return _box().decrypt(token.encode()).decode()
    except InvalidToken:
        raise SecretUnreadable(
            "a stored secret cannot be decrypted: was OPSDESK_SECRET_KEY changed?"
        ) from None
