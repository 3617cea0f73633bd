"""Delivery: claim due outbox messages, send each through its channel, record the outcome.

Claiming takes a lease on each row (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so several notify
workers share the outbox). A page whose incident was acknowledged or resolved meanwhile is cancelled
instead of sent. A channel with a rate limit sends at most that many a minute (per worker); the rest
wait for the next free slot without counting an attempt. Every attempt, sent or failed, is on the
incident's timeline. A crash between a send and its record means the message is sent again with
the same idempotency key (``webhook-id``, ``Message-ID``), which receivers use to drop the repeat.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from datetime import datetime, timedelta

from sqlalchemy import insert, select

from opsdesk.core import metrics
from opsdesk.core.clock import Clock
from opsdesk.core.db import Database
from opsdesk.core.settings import Settings
from opsdesk.notify import service
from opsdesk.notify.channels.apprise import AppriseChannel
from opsdesk.notify.channels.base import Channel, DeliveryError
from opsdesk.notify.channels.email import EmailChannel
from opsdesk.notify.channels.webhook import WebhookChannel
from opsdesk.notify.models import NotifyChannel, OutboxMessage, OutboxStatus

log = logging.getLogger("opsdesk.notify")

_WHAT = {"email": "E-mail", "apprise": "Message", "webhook": "Webhook"}


class _Limiter:
    """Sends per minute per channel, in this process."""

    def __init__(self) -> None:
        self.sent: dict[int, deque[datetime]] = {}

    def wait(self, channel_id: int, limit: int, now: datetime) -> float:
        """0 if a send may go now (and counts it), else seconds until a slot frees."""
        q = self.sent.setdefault(channel_id, deque())
        horizon = now - timedelta(minutes=1)
        while q and q[0] <= horizon:
            q.popleft()
        if len(q) < limit:
            q.append(now)
            return 0.0
        return max((q[0] - horizon).total_seconds(), 0.05)


class Notifier:
    def __init__(self, db: Database, clock: Clock, settings: Settings, channels: list[Channel] | None = None):
        self.db = db
        self.clock = clock
        self.settings = settings
        timeout = settings.notify_timeout_seconds
        chans: list[Channel] = (
            channels
            if channels is not None
            else [EmailChannel(settings), AppriseChannel(timeout), WebhookChannel(timeout)]
        )
        self.channels = {c.name: c for c in chans}
        self.limiter = _Limiter()

    async def close(self) -> None:
        for c in self.channels.values():
            closer = getattr(c, "close", None)
            if closer is not None:
                await closer()

    async def deliver_due(self, limit: int = 200) -> int:
        """Send what is due now. Returns how many messages were attempted."""
        claimed = await asyncio.to_thread(self._claim, limit)
        if not claimed:
            return 0
        results = await asyncio.gather(*(self._send(m) for m in claimed))
        await asyncio.to_thread(self._record, list(zip(claimed, results, strict=True)))
        return len(claimed)

    def _claim(self, limit: int) -> list[service.Claimed]:
        from opsdesk.incidents.models import Incident, IncidentStatus
        from opsdesk.notify.rules import config_of

        now = self.clock.now()
        with self.db.session() as s:
            claimed = service.claim_due(
                s, now=now, limit=limit, lease_seconds=self.settings.notify_lease_seconds
            )
            if not claimed:
                return []
            page_incidents = {m.incident_id for m in claimed if m.page_id is not None and m.incident_id}
            moot = set()
            if page_incidents:
                moot = set(
                    s.scalars(
                        select(Incident.id).where(
                            Incident.id.in_(page_incidents),
                            (Incident.status != IncidentStatus.triggered.value)
                            | Incident.merged_into_id.is_not(None),
                        )
                    )
                )
            channel_ids = {m.channel_id for m in claimed if m.channel_id is not None}
            chans = {
                c.id: c for c in s.scalars(select(NotifyChannel).where(NotifyChannel.id.in_(channel_ids)))
            }
            out = []
            for m in claimed:
                row = s.get(OutboxMessage, m.id)
                assert row is not None
                if m.page_id is not None and m.incident_id in moot:
                    row.status = OutboxStatus.cancelled.value
                    row.last_error = "cancelled: acknowledged or resolved before it was sent"
                    row.lease_until = None
                    continue
                ch = chans.get(m.channel_id) if m.channel_id is not None else None
                if ch is not None and ch.rate_per_minute:
                    wait = self.limiter.wait(ch.id, ch.rate_per_minute, now)
                    if wait:
                        row.next_attempt_at = now + timedelta(seconds=wait)
                        row.lease_until = None
                        continue
                target = None
                if m.channel_id is not None:
                    if ch is None:
                        target = {}
                    else:
                        try:
                            target = config_of(ch)
                        except Exception as exc:  # the secret key changed: a clear failure, retried
                            log.warning("channel %s cannot be read: %s", ch.id, exc)
                            target = {}
                out.append(_with_target(m, target))
            return out

    async def _send(self, m: service.Claimed) -> str | None:
        channel = self.channels.get(m.channel)
        if channel is None:
            return f"no channel {m.channel!r} is configured"
        if m.channel == "email" and m.target and m.target.get("address"):
            m = _with_recipient(m, m.target["address"])
        try:
            await channel.send(m)
        except DeliveryError as exc:
            return str(exc)
        except Exception as exc:  # a channel bug must not stop delivery of the others
            log.exception("channel %s failed", m.channel)
            return f"{type(exc).__name__}: {exc}"
        return None

    def _record(self, outcomes: list[tuple[service.Claimed, str | None]]) -> None:
        from opsdesk.incidents.models import TimelineEntry

        now = self.clock.now()
        timeline: list[dict[str, object]] = []
        with self.db.session() as s:
            sent = [m.id for m, error in outcomes if error is None]
            if sent:
                service.mark_all_sent(s, sent, now=now)
            for m, error in outcomes:
                what = _WHAT.get(m.channel, m.channel)
                if error is None:
                    metrics.NOTIFICATIONS.labels(m.channel, "sent").inc()
                    text = f"{what} sent to {m.recipient}: {m.subject}"
                else:
                    row = service.mark_failed(
                        s,
                        m.id,
                        error,
                        now=now,
                        max_attempts=self.settings.notify_max_attempts,
                        backoff_seconds=self.settings.notify_backoff_seconds,
                        backoff_max_seconds=self.settings.notify_backoff_max_seconds,
                    )
                    metrics.NOTIFICATIONS.labels(m.channel, "failed").inc()
                    log.warning(
                        "delivery failed",
                        extra={"recipient": m.recipient, "error": error, "attempt": row.attempts},
                    )
                    text = f"{what} to {m.recipient} failed (attempt {row.attempts}): {error}"
                    if row.status == "dead":
                        text += "; gave up (dead letter: retry it from the notifications page)"
                if m.incident_id is not None:
                    timeline.append(
                        {
                            "incident_id": m.incident_id,
                            "at": now,
                            "kind": "notification",
                            "actor": "opsdesk",
                            "message": text,
                            "data": {"outbox_id": m.id, "channel": m.channel, "ok": error is None},
                        }
                    )
            if timeline:
                s.execute(insert(TimelineEntry), timeline)
            metrics.OUTBOX_PENDING.set(service.pending_count(s))


def _with_target(m: service.Claimed, target: dict[str, object] | None) -> service.Claimed:
    from dataclasses import replace

    return replace(m, target=target)


def _with_recipient(m: service.Claimed, recipient: str) -> service.Claimed:
    from dataclasses import replace

    return replace(m, recipient=recipient)
