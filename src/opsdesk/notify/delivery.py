"""Delivery: claim due outbox messages, send each through its channel, record the outcome."""

from __future__ import annotations

import asyncio
import logging

from opsdesk.core import metrics
from opsdesk.core.clock import Clock
from opsdesk.core.db import Database
from opsdesk.core.settings import Settings
from opsdesk.notify import service
from opsdesk.notify.channels.base import Channel, DeliveryError
from opsdesk.notify.channels.email import EmailChannel

log = logging.getLogger("opsdesk.notify")


class Notifier:
    def __init__(self, db: Database, clock: Clock, settings: Settings, channels: list[Channel] | None = None):
        self.db = db
        self.clock = clock
        self.settings = settings
        chans: list[Channel] = channels if channels is not None else [EmailChannel(settings)]
        self.channels = {c.name: c for c in chans}

    async def deliver_due(self, limit: int = 100) -> int:
        """Send what is due now. Returns how many messages were attempted."""
        claimed = await asyncio.to_thread(self._claim, limit)
        if not claimed:
            return 0
        results = await asyncio.gather(*(self._send(m) for m in claimed))
        await asyncio.to_thread(self._record, list(zip(claimed, results, strict=True)))
        return len(claimed)

    def _claim(self, limit: int) -> list[service.Claimed]:
        with self.db.session() as s:
            return service.claim_due(s, now=self.clock.now(), limit=limit)

    async def _send(self, m: service.Claimed) -> str | None:
        channel = self.channels.get(m.channel)
        if channel is None:
            return f"no channel {m.channel!r} is configured"
        try:
            await channel.send(m)
        except DeliveryError as exc:
            return str(exc)
        except Exception as exc:  # a channel bug must not stop delivery of the others
            log.exception("channel %s failed", m.channel)
            return f"{type(exc).__name__}: {exc}"
        return None

    def _record(self, outcomes: list[tuple[service.Claimed, str | None]]) -> None:
        from opsdesk.incidents import service as incidents

        now = self.clock.now()
        with self.db.session() as s:
            for m, error in outcomes:
                if error is None:
                    service.mark_sent(s, m.id, now=now)
                    metrics.NOTIFICATIONS.labels(m.channel, "sent").inc()
                    text = f"E-mail sent to {m.recipient}: {m.subject}"
                else:
                    row = service.mark_failed(
                        s,
                        m.id,
                        error,
                        now=now,
                        max_attempts=self.settings.notify_max_attempts,
                        backoff_seconds=self.settings.notify_backoff_seconds,
                    )
                    metrics.NOTIFICATIONS.labels(m.channel, "failed").inc()
                    log.warning(
                        "delivery failed",
                        extra={"recipient": m.recipient, "error": error, "attempt": row.attempts},
                    )
                    text = f"Delivery to {m.recipient} failed (attempt {row.attempts}): {error}"
                    if row.status == "dead":
                        text += "; gave up"
                if m.incident_id is not None:
                    incidents.add_timeline(
                        s,
                        m.incident_id,
                        kind="notification",
                        at=now,
                        message=text,
                        data={"outbox_id": m.id, "channel": m.channel},
                    )
            metrics.OUTBOX_PENDING.set(service.pending_count(s))
