"""The interface of a notification channel."""

from __future__ import annotations

from typing import ClassVar, Protocol

from opsdesk.notify.service import Claimed


class DeliveryError(Exception):
    """The channel could not deliver; the outbox will retry."""


class Channel(Protocol):
    name: ClassVar[str]

    async def send(self, message: Claimed) -> None: ...
