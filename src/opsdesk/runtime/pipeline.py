"""The pipeline role: runs stored events through dedup and correlation into incidents."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from opsdesk.alerts import processing
from opsdesk.alerts import service as alerts
from opsdesk.core.clock import Clock
from opsdesk.core.db import Database

log = logging.getLogger("opsdesk.pipeline")


class Pipeline:
    # Batches of up to 500 events: a batch has fixed costs (rules, silences, windows and topology
    # are read each time, a few queries), measured at 50 us of CPU per event in batches of 200, 39
    # in batches of 500 and 35 in batches of 1,000; 500 still keeps each transaction short (SQLite's
    # one write lock, taken only for the batch's writes at its end, while ingestion waits to commit).
    # Muted alerts are checked for ended silences and maintenance windows this often (seconds).
    UNMUTE_EVERY = 15.0

    def __init__(
        self,
        db: Database,
        clock: Clock,
        *,
        batch: int = 500,
        idle_wait: float = 0.25,
        linger: float = 0.05,
        config: processing.PipelineConfig | None = None,
    ):
        self.db = db
        self.clock = clock
        self.batch = batch
        # Woken by the ingestion writer after each commit when in the same process; polls the
        # events table this often otherwise (a pipeline process apart from the web processes).
        self.idle_wait = idle_wait
        # Once it has caught up, the pipeline waits this long after a wake-up before the next
        # batch, so a stream of single events is processed in batches of many (a batch has fixed
        # costs: rules, silences, windows and topology are read each time) instead of a few each.
        self.linger = linger
        self.config = config or processing.PipelineConfig()
        self.wake = asyncio.Event()
        self._unmuted_at = 0.0
        self._mutes: frozenset[tuple[object, ...]] | None = None  # mute_state at the last unmute pass

    def _step(self) -> int:
        # Stored batches become events rows in a short transaction of their own (on SQLite it holds
        # the write lock only for their inserts; the step holds it only for its writes at its end).
        with self.db.session() as s:
            alerts.expand_batches(s, self.batch)
        with self.db.session() as s:
            return alerts.process_pending(
                s, now=self.clock.now(), limit=self.batch, config=self.config, expand=False
            )

    def _unmute(self) -> int:
        with self.db.session() as s:
            now = self.clock.now()
            state = processing.mute_state(s, now)
            if self._mutes is not None and state >= self._mutes:
                # Every silence and window that muted alerts at the last pass still does, unchanged:
                # no muted alert can unmute, so they are not read (there may be thousands).
                self._mutes = state
                return 0
            n = processing.unmute_expired(s, now=now, config=self.config)
            self._mutes = state
            return n

    async def unmute(self) -> int:
        """Correlate the firing alerts whose silences or maintenance windows have ended."""
        self._unmuted_at = time.monotonic()
        return await asyncio.to_thread(self._unmute)

    async def drain(self) -> int:
        """Process every pending event; returns how many."""
        total = 0
        while n := await asyncio.to_thread(self._step):
            total += n
        return total

    async def run(self, stop: asyncio.Event, after: asyncio.Event | None = None) -> None:
        while not stop.is_set():
            try:
                n = await self.drain()
                if time.monotonic() - self._unmuted_at >= self.UNMUTE_EVERY:
                    n += await self.unmute()
                if n and after is not None:
                    after.set()
            except Exception:
                log.exception("pipeline step failed; retrying")
            self.wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wait(stop), self.idle_wait)
            if self.linger and not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.linger)

    async def _wait(self, stop: asyncio.Event) -> None:
        waiters = [asyncio.create_task(self.wake.wait()), asyncio.create_task(stop.wait())]
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waiters:
                w.cancel()
