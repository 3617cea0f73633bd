"""The prober: runs due checks concurrently and writes their results in batches.

``tick()`` claims what is due, runs it and writes the results: tests call it after moving the
clock. ``run()`` is the long-running loop used by ``opsdesk serve``: it starts due checks as they
come due and flushes results every fraction of a second, so a slow check never holds others back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

import aiohttp

from opsdesk.core import metrics
from opsdesk.core.clock import Clock
from opsdesk.core.db import Database
from opsdesk.metrics.samples import Labels, Sample
from opsdesk.monitoring import heartbeat, service
from opsdesk.monitoring.checks import CheckOutcome, CheckType, ProbeContext, get_check_type
from opsdesk.monitoring.selfcheck import NetworkCheck
from opsdesk.monitoring.service import DueCheck

if TYPE_CHECKING:
    from opsdesk.metrics.store import MetricsStore

log = logging.getLogger("opsdesk.probes")
MAX_BUFFERED = 200_000  # results kept in memory while the database cannot take them


class Scheduler:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        *,
        concurrency: int = 256,
        flush_interval: float = 0.5,
        claim_interval: float = 0.1,
        store: MetricsStore | None = None,
        network: NetworkCheck | None = None,
    ):
        self.db = db
        self.clock = clock
        self.sem = asyncio.Semaphore(concurrency)
        self.flush_interval = flush_interval
        self.claim_interval = claim_interval
        self.store = store
        self.network = network or NetworkCheck()
        self._buffer: list[tuple[DueCheck, datetime, CheckOutcome]] = []
        self._definitions: service.DefinitionCache = {}
        # Validated configs, reused while the monitor's definition (the same dict) is unchanged.
        self._configs: dict[int, tuple[dict[str, Any], Any]] = {}
        self._http: aiohttp.ClientSession | None = None
        self._inflight: set[asyncio.Task[None]] = set()
        # Set by the runtime: called after results produced events, to wake the pipeline.
        self.on_events: Callable[[], None] | None = None

    async def _ctx(self) -> ProbeContext:
        if self._http is None or self._http.closed:
            connector = aiohttp.TCPConnector(force_close=True, limit=0, ttl_dns_cache=60)
            self._http = aiohttp.ClientSession(connector=connector)
        return ProbeContext(http=self._http)

    async def close(self) -> None:
        for t in list(self._inflight):
            t.cancel()
        if self._inflight:
            await asyncio.gather(*self._inflight, return_exceptions=True)
        await self.flush()
        if self._http is not None:
            await self._http.close()

    def _claim(self) -> list[DueCheck]:
        with self.db.session() as s:
            return service.claim_due(s, self.clock.now(), cache=self._definitions)

    def _overdue_heartbeats(self) -> list[service.Transition]:
        with self.db.session() as s:
            return heartbeat.find_overdue(s, self.clock.now())

    async def _check(self, due: DueCheck) -> None:
        async with self.sem:
            check = get_check_type(due.type)
            started = time.perf_counter()
            if due.due_at is not None:
                metrics.CHECK_LAG.observe(max(0.0, (self.clock.now() - due.due_at).total_seconds()))
            if due.error is not None:
                outcome = CheckOutcome(False, due.error)
            elif check is None:
                outcome = CheckOutcome(False, f"unknown check type {due.type!r}")
            else:
                hit = self._configs.get(due.monitor_id)
                cfg = hit[1] if hit is not None and hit[0] is due.config else None
                outcome, cfg = await run_check(
                    check, due.monitor_id, due.target, due.config, due.timeout_seconds, await self._ctx(), cfg
                )
                if cfg is not None:
                    self._configs[due.monitor_id] = (due.config, cfg)
            metrics.CHECKS_RUN.labels(due.type, "up" if outcome.ok else "down").inc()
            metrics.CHECK_SECONDS.labels(due.type).observe(time.perf_counter() - started)
            self._buffer.append((due, self.clock.now(), outcome))

    async def flush(self) -> list[service.Transition]:
        if not self._buffer:
            return []
        batch, self._buffer = self._buffer, []
        if any(not o.ok for _, _, o in batch):
            verdict = await self.network.ok()
            if not verdict.ok:
                # The prober itself is cut off: its failures say nothing about the monitors.
                for _, _, o in batch:
                    if not o.ok:
                        not_counted(o, verdict.reason)
                log.warning(
                    "probe network down; failures recorded as unknown", extra={"reason": verdict.reason}
                )
        try:
            transitions = await asyncio.to_thread(self._write, batch)
        except Exception:
            # Keep the results for the next flush (the database may be briefly locked or away);
            # beyond a bound, the oldest go, and the watchdog reports the gap.
            self._buffer = (batch + self._buffer)[-MAX_BUFFERED:]
            raise
        for t in transitions:
            log.info("monitor state changed", extra={"monitor": t.name, "from": t.old, "to": t.new})
        if transitions and self.on_events is not None:
            self.on_events()
        return transitions

    def _write(self, batch: list[tuple[DueCheck, datetime, CheckOutcome]]) -> list[service.Transition]:
        with self.db.session() as s:
            transitions = service.record_results(
                s, [service.Result(d.monitor_id, at, o) for d, at, o in batch]
            )
        if self.store is not None:
            samples = [smp for d, _, o in batch if o.samples for smp in with_job(o.samples, d.name)]
            if samples:
                try:
                    self.store.write(samples)
                except Exception:
                    log.exception("writing %d samples to the metrics store failed", len(samples))
        return transitions

    async def tick(self) -> list[service.Transition]:
        """Run every check that is due now, to completion, and write the results."""
        overdue = await asyncio.to_thread(self._overdue_heartbeats)
        due = await asyncio.to_thread(self._claim)
        await asyncio.gather(*(self._check(d) for d in due))
        return overdue + await self.flush()

    async def run(self, stop: asyncio.Event) -> None:
        """Claim and start due checks as they fall due, and, independently, write what finished
        every ``flush_interval``: a slow write never delays the start of the next checks."""
        writer = asyncio.create_task(self._flush_loop(stop), name="prober-writer")
        last_heartbeats = time.monotonic()
        try:
            while not stop.is_set():
                started = time.monotonic()
                try:
                    for due in await asyncio.to_thread(self._claim):
                        task = asyncio.create_task(self._check(due))
                        self._inflight.add(task)
                        task.add_done_callback(self._inflight.discard)
                    if time.monotonic() - last_heartbeats >= 1.0:
                        last_heartbeats = time.monotonic()
                        if await asyncio.to_thread(self._overdue_heartbeats) and self.on_events is not None:
                            self.on_events()
                except Exception:
                    log.exception("prober loop error; continuing")
                pause = max(0.0, self.claim_interval - (time.monotonic() - started))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), pause)
        finally:
            await writer
            await self.close()

    async def _flush_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.flush()
            except Exception:
                log.exception("writing results failed; retrying")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.flush_interval)


async def run_check(
    check: CheckType,
    monitor_id: int,
    target: str,
    config: dict[str, Any],
    timeout: float,
    ctx: ProbeContext,
    cfg: Any = None,
) -> tuple[CheckOutcome, Any]:
    """Run one check, never raising: a timeout or a crash is a failed outcome. ``cfg`` is the
    validated config when the caller has it; returns the outcome and the validated config (None
    when the config did not validate). Shared by the local prober and the remote probe."""
    try:
        if cfg is None:
            cfg = check.config_model.model_validate(config)
        # The check has its own timeout; this one guards against a check that ignores it
        # (asyncio.timeout: no extra task per check, unlike wait_for on 3.11).
        async with asyncio.timeout(timeout + 1):
            return await check.run(target, cfg, timeout, ctx), cfg
    except TimeoutError:
        return CheckOutcome(False, f"timed out after {timeout:g}s"), cfg
    except Exception as exc:
        log.exception("check %s crashed", monitor_id)
        return CheckOutcome(False, f"check error: {type(exc).__name__}: {exc}"), None


def not_counted(outcome: CheckOutcome, reason: str) -> None:
    """Mark a failure seen while the probe's own network was down: inconclusive, no findings."""
    outcome.conclusive = False
    outcome.findings = None
    outcome.message = f"not counted, the probe's network is down ({reason}): {outcome.message}"


# (id of a label set, job) -> (that label set, its relabelled form). Label sets repeat from one
# scrape to the next as the very same tuple objects (the parser and the scrape check cache them),
# so keying by identity avoids hashing every label tuple; the entry keeps the tuple alive, and the
# ``is`` check guards against a reused id.
_JOB_LABELS: dict[tuple[int, str], tuple[Labels, Labels]] = {}


def with_job(samples: list[Sample], job: str) -> list[Sample]:
    """Label every sample with the monitor that read it (``job``), as Prometheus does with scrape
    jobs; a sample's own ``job`` label is kept as ``exported_job``."""
    cache = _JOB_LABELS
    if len(cache) > 200_000:
        cache.clear()
    out: list[Sample] = []
    append = out.append
    new_sample = tuple.__new__
    for smp in samples:
        labels = smp[1]
        hit = cache.get((id(labels), job))
        if hit is not None and hit[0] is labels:
            new = hit[1]
        else:
            d = dict(labels)
            if "job" in d:
                d["exported_job"] = d["job"]
            d["job"] = job
            new = tuple(sorted(d.items()))
            cache[(id(labels), job)] = (labels, new)
        append(new_sample(Sample, (smp[0], new, smp[2], smp[3])))
    return out
