"""A generic webhook signed the Standard Webhooks way (standardwebhooks.com).

Each delivery is a POST of a JSON body with three headers: ``webhook-id`` (the message's
idempotency key: the same on every retry, so the receiver can drop a repeat), ``webhook-timestamp``
(Unix seconds when sent) and ``webhook-signature``: ``v1,<base64 HMAC-SHA256>`` over
``"{id}.{timestamp}.{body}"``, once per secret, space-separated, so a receiver can move to a new
secret while the old one still verifies. Any answer but a 2xx is a failed attempt, retried by the
outbox with backoff.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Any, ClassVar

import aiohttp
import orjson

from opsdesk.notify.channels.base import DeliveryError
from opsdesk.notify.rules import secret_bytes
from opsdesk.notify.service import Claimed


def sign(secrets: list[str], msg_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{msg_id}.{timestamp}.".encode() + body
    sigs = []
    for secret in secrets:
        mac = hmac.new(secret_bytes(secret), signed, hashlib.sha256).digest()
        sigs.append("v1," + base64.b64encode(mac).decode())
    return " ".join(sigs)


def payload(message: Claimed) -> bytes:
    data: dict[str, Any] = dict(message.data)
    kind = data.pop("type", "notification")
    if not data:
        data = {"subject": message.subject, "body": message.body, "incident_id": message.incident_id}
    return orjson.dumps({"type": kind, "timestamp": _iso_now(), "data": data})


def _iso_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class WebhookChannel:
    name: ClassVar[str] = "webhook"

    def __init__(self, timeout: float = 10.0) -> None:
        self.timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    async def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                connector=aiohttp.TCPConnector(limit=64),
                headers={"user-agent": "opsdesk-webhook/1"},
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def send(self, message: Claimed) -> None:
        target = message.target or {}
        url, secrets = target.get("url"), target.get("secrets") or []
        if not url:
            raise DeliveryError("the webhook channel has no URL (was it deleted?)")
        body = payload(message)
        ts = int(time.time())
        headers = {
            "content-type": "application/json",
            "webhook-id": message.idempotency_key,
            "webhook-timestamp": str(ts),
            "webhook-signature": sign(secrets, message.idempotency_key, ts, body),
        }
        session = await self._client()
        try:
            async with session.post(url, data=body, headers=headers, allow_redirects=False) as r:
                if not 200 <= r.status < 300:
                    text = (await r.text(errors="replace"))[:200]
                    raise DeliveryError(f"webhook {message.recipient} answered {r.status}: {text}")
                await r.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise DeliveryError(f"webhook {message.recipient}: {type(exc).__name__}: {exc}") from exc
