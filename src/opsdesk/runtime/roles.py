"""The long-running roles of ``opsdesk serve``: probes, pipeline, notify (web is the HTTP app).

Each role is a loop over the database, so roles can run in one process (the default, on SQLite)
or in several processes and machines sharing one PostgreSQL database.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta

from opsdesk.alerts.processing import PipelineConfig
from opsdesk.core.clock import Clock
from opsdesk.core.db import Database
from opsdesk.core.settings import Settings
from opsdesk.metrics.store import make_store
from opsdesk.monitoring.scheduler import Scheduler
from opsdesk.monitoring.selfcheck import NetworkCheck
from opsdesk.notify.delivery import Notifier
from opsdesk.runtime.pipeline import Pipeline

log = logging.getLogger("opsdesk.runtime")

BACKGROUND_ROLES = ("probes", "pipeline", "notify")
# How often the notify role looks for escalations that are due: the most a level is late.
ESCALATE_EVERY = 0.25
# Escalations stepped per transaction.
ESCALATE_BATCH = 500


class Runtime:
    def __init__(self, settings: Settings, db: Database, clock: Clock, roles: set[str]):
        unknown = roles - {"web", *BACKGROUND_ROLES}
        if unknown:
            raise ValueError(f"unknown role(s): {', '.join(sorted(unknown))}")
        self.settings = settings
        self.db = db
        self.clock = clock
        self.roles = roles
        self.stop_event = asyncio.Event()
        self.pipeline = Pipeline(db, clock, config=PipelineConfig.from_settings(settings))
        self.store = make_store(settings, db, clock=clock)
        self.scheduler = Scheduler(
            db,
            clock,
            concurrency=settings.probe_concurrency,
            store=self.store,
            network=NetworkCheck(settings.canaries),
        )
        self.notifier = Notifier(db, clock, settings)
        self.notify_wake = asyncio.Event()
        self.scheduler.on_events = self.pipeline.wake.set
        self._tasks: list[asyncio.Task[None]] = []

    def wake_pipeline(self) -> None:
        """Thread-safe: called by the ingestion writer after a commit."""
        loop = self._loop
        if loop is not None and "pipeline" in self.roles:  # (else no pipeline here to wake)
            loop.call_soon_threadsafe(self.pipeline.wake.set)

    _loop: asyncio.AbstractEventLoop | None = None

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        if "probes" in self.roles:
            self._tasks.append(asyncio.create_task(self.scheduler.run(self.stop_event), name="probes"))
        if "pipeline" in self.roles:
            self._tasks.append(
                asyncio.create_task(
                    self.pipeline.run(self.stop_event, after=self.notify_wake), name="pipeline"
                )
            )
        if "notify" in self.roles:
            self._tasks.append(asyncio.create_task(self._notify_loop(), name="notify"))
            self._tasks.append(asyncio.create_task(self._escalate_loop(), name="escalate"))
        if "pipeline" in self.roles:
            # The watchdog lives with the pipeline, not the prober: it must run when probes stop.
            self._tasks.append(asyncio.create_task(self._watchdog_loop(), name="watchdog"))
            # So does housekeeping: one process does it, whatever the number of probers.
            self._tasks.append(asyncio.create_task(self._maintenance_loop(), name="maintenance"))
        log.info("roles started", extra={"roles": sorted(self.roles)})

    async def _notify_loop(self, batch: int = 500) -> None:
        while not self.stop_event.is_set():
            sent = 0
            try:
                sent = await self.notifier.deliver_due(batch)
            except Exception:
                log.exception("notify step failed; retrying")
            if sent >= batch:
                continue  # more are due: no pause
            self.notify_wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.notify_wake.wait(), 1.0)

    def escalate_once(self, limit: int = ESCALATE_BATCH) -> tuple[int, float | None]:
        """Step up to ``limit`` due escalations in one transaction. Returns how many were stepped
        and the seconds until the next one is due (None when none is scheduled, or when the limit
        was reached: more may be due now)."""
        from opsdesk.oncall import escalation

        with self.db.session() as s:
            now = self.clock.now()
            stepped = len(escalation.run_due(s, now=now, base_url=self.settings.base_url, limit=limit))
            if stepped >= limit:
                return stepped, None
            nxt = escalation.next_due(s)
        return stepped, None if nxt is None else (nxt - now).total_seconds()

    async def _escalate_loop(self, every: float = ESCALATE_EVERY, limit: int = ESCALATE_BATCH) -> None:
        """Step the escalations that are due; their pages go to the outbox, which is woken.

        The loop sleeps until the next escalation is due when that is sooner than ``every`` (so a
        level fires on time, not up to ``every`` late), and looks again at least every ``every``
        for escalations that other processes made due. When many are due at once (a storm), all
        of them are stepped, ``limit`` per transaction, before the outbox is woken: the steps are
        what must be on time, and sending competes with them for this process's CPU."""
        backlog = False
        while not self.stop_event.is_set():
            stepped, wait = 0, None
            try:
                stepped, wait = await asyncio.to_thread(self.escalate_once, limit)
            except Exception:
                log.exception("escalation step failed; retrying")
            if stepped >= limit:
                backlog = True
                continue  # more are due now
            if backlog or stepped:
                self.notify_wake.set()
                backlog = False
            # Nothing scheduled, or what is due is being stepped elsewhere (locked rows): look again
            # in ``every``; else when the next is due, if sooner.
            pause = every if wait is None or (wait <= 0 and not stepped) else min(max(wait, 0.0), every)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop_event.wait(), pause)

    async def _watchdog_loop(self, every: float = 30.0) -> None:
        from opsdesk.monitoring import service as monitoring

        def step() -> list[str]:
            with self.db.session() as s:
                return monitoring.watch(s, self.clock.now())

        # Wait a round first: after a restart every monitor is overdue until the prober's first
        # checks come in, and a restart must page nobody.
        while not self.stop_event.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop_event.wait(), every)
            if self.stop_event.is_set():
                break
            try:
                if await asyncio.to_thread(step):
                    self.pipeline.wake.set()
            except Exception:
                log.exception("watchdog step failed; retrying")

    async def _maintenance_loop(self, every: float = 60.0) -> None:
        """Metrics rollups and retention, and old raw check results deleted in bounded batches."""
        from opsdesk.monitoring import service as monitoring

        def step() -> dict[str, int]:
            now = self.clock.now()
            done = dict(self.store.maintain(now))
            cutoff = now - timedelta(days=self.settings.results_retention_days)
            with self.db.session() as s:
                done["deleted_results"] = monitoring.delete_results_before(s, cutoff)
            return done

        while not self.stop_event.is_set():
            try:
                done = await asyncio.to_thread(step)
                if any(done.values()):
                    log.info("maintenance", extra=done)
            except Exception:
                log.exception("maintenance step failed; retrying")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop_event.wait(), every)

    async def stop(self) -> None:
        self.stop_event.set()
        self.pipeline.wake.set()
        self.notify_wake.set()
        for t in self._tasks:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(t), 10)
        for t in self._tasks:
            if not t.done():
                t.cancel()
        self._tasks.clear()
        await self.notifier.close()
        self.store.close()
