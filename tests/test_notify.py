"""The outbox: at-least-once delivery with leases, idempotent enqueue, backoff and dead letters."""

from __future__ import annotations

from typing import ClassVar

from opsdesk.notify import service as notify
from opsdesk.notify.channels.base import DeliveryError
from opsdesk.notify.delivery import Notifier


class Recorder:
    """A channel that records what it was asked to send, or fails while ``down`` is set."""

    name: ClassVar[str] = "email"

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.down = False

    async def send(self, message: notify.Claimed) -> None:
        if self.down:
            raise DeliveryError("receiver down")
        self.sent.append(message.idempotency_key)


def _enqueue(db, clock, key: str = "k1") -> int:
    with db.session() as s:
        return notify.enqueue(
            s,
            channel="email",
            recipient="a@example.org",
            subject="s",
            body="b",
            idempotency_key=key,
            now=clock.now(),
        ).id


def test_enqueue_with_the_same_key_returns_the_first_message(db, clock):
    assert _enqueue(db, clock) == _enqueue(db, clock)
    with db.session() as s:
        assert len(notify.list_messages(s)) == 1


async def test_a_message_claimed_by_a_crashed_worker_is_sent_after_its_lease(db, clock, settings):
    _enqueue(db, clock)
    with db.session() as s:  # a worker claims it, then dies before sending
        assert len(notify.claim_due(s, now=clock.now(), lease_seconds=60)) == 1
    channel = Recorder()
    notifier = Notifier(db, clock, settings, channels=[channel])
    assert await notifier.deliver_due() == 0  # still leased: nobody else takes it
    clock.advance(61)
    assert await notifier.deliver_due() == 1
    assert channel.sent == ["k1"]
    clock.advance(3600)
    assert await notifier.deliver_due() == 0
    assert channel.sent == ["k1"]


async def test_failures_back_off_exponentially_then_dead_letter(db, clock, settings):
    settings.notify_max_attempts = 3
    settings.notify_backoff_seconds = 10
    _enqueue(db, clock)
    channel = Recorder()
    channel.down = True
    notifier = Notifier(db, clock, settings, channels=[channel])
    assert await notifier.deliver_due() == 1
    with db.session() as s:
        (m,) = notify.list_messages(s)
        first_wait = (m.next_attempt_at - clock.now()).total_seconds()
    assert 8 <= first_wait <= 12  # 10 s ± 20 % jitter
    assert await notifier.deliver_due() == 0  # not due yet
    clock.advance(13)
    assert await notifier.deliver_due() == 1
    with db.session() as s:
        (m,) = notify.list_messages(s)
        assert m.attempts == 2 and 16 <= (m.next_attempt_at - clock.now()).total_seconds() <= 24
    clock.advance(25)
    await notifier.deliver_due()
    with db.session() as s:
        (m,) = notify.list_messages(s)
        assert (m.status, m.attempts, m.last_error) == ("dead", 3, "receiver down")
    clock.advance(3600)
    assert await notifier.deliver_due() == 0


async def test_a_dead_letter_can_be_retried(db, clock, settings):
    settings.notify_max_attempts = 1
    mid = _enqueue(db, clock)
    channel = Recorder()
    channel.down = True
    notifier = Notifier(db, clock, settings, channels=[channel])
    await notifier.deliver_due()
    channel.down = False
    with db.session() as s:
        notify.retry(s, mid, now=clock.now())
    await notifier.deliver_due()
    assert channel.sent == ["k1"]
    with db.session() as s:
        assert notify.list_messages(s)[0].status == "sent"


async def test_a_message_for_an_unconfigured_channel_fails_visibly(db, clock, settings):
    with db.session() as s:
        notify.enqueue(
            s, channel="pager", recipient="x", subject="s", body="b", idempotency_key="p", now=clock.now()
        )
    await Notifier(db, clock, settings, channels=[Recorder()]).deliver_due()
    with db.session() as s:
        (m,) = notify.list_messages(s)
        assert m.status == "pending" and "no channel 'pager'" in m.last_error
