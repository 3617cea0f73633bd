"""Apprise: Slack, Microsoft Teams, Telegram, Discord, Mattermost and the rest apprise supports,
each addressed by an apprise URL (``tgram://…``, ``slack://…``, ``msteams://…``, ``json://…``)."""

from __future__ import annotations

import asyncio
from typing import ClassVar

import apprise

from opsdesk.notify.channels.base import DeliveryError
from opsdesk.notify.service import Claimed


class AppriseChannel:
    name: ClassVar[str] = "apprise"

    def __init__(self, timeout: float = 10.0) -> None:
        self.timeout = timeout

    async def send(self, message: Claimed) -> None:
        url = (message.target or {}).get("url")
        if not url:
            raise DeliveryError("the apprise channel has no URL (was it deleted?)")
        try:
            ok = await asyncio.wait_for(asyncio.to_thread(self._send_sync, url, message), self.timeout + 5)
        except TimeoutError:
            raise DeliveryError(
                f"apprise {message.recipient}: no answer in {self.timeout + 5:.0f} s"
            ) from None
        if not ok:
            raise DeliveryError(f"apprise could not deliver to {message.recipient} (see opsdesk's log)")

    def _send_sync(self, url: str, message: Claimed) -> bool:
        asset = apprise.AppriseAsset(app_id="opsdesk", app_desc="opsdesk", async_mode=False)
        ap = apprise.Apprise(asset=asset)
        if not ap.add(url):
            return False
        # apprise 2: notify() returns a result object; its truth is whether every target took it.
        return bool(ap.notify(title=message.subject, body=message.body))
