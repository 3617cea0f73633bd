"""Group commit for the ingestion hot path.

Request handlers hand their items to :class:`BatchWriter` and await a future; one writer thread
takes everything queued, writes it in one transaction, and resolves every waiting future after
the commit. So a 2xx always means committed, and a burst of requests costs one commit, not many.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Generic, TypeVar

from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from opsdesk.core import metrics
from opsdesk.core.db import Database

log = logging.getLogger("opsdesk.writer")

T = TypeVar("T")
R = TypeVar("R")

_STOP = object()

# How long the writer may wait for the senders of the last commit to come back before it commits
# (see BatchWriter._gather). Measured on SQLite (synchronous=FULL), single-event requests from 32
# connections, the web process's CPU per request: with wrk, 58 µs without waiting (12 requests per
# commit), 39-40 µs with 1, 2 or 4 ms (22 per commit), as many answered per second; with the
# bench's Python clients, which send about 5,700 a second (32 take 5-6 ms to come back), 74 µs at
# 2 ms (16 per commit) and 56-57 µs at 5 or 10 ms (31-32 per commit), as many answered per second.
# On PostgreSQL (wrk) 48 -> 35 µs at 2 ms. One sender at a time answered as many either way.
LINGER = 0.005


class BatchWriter(Generic[T, R]):
    """``write(session, items_of_all_requests) -> results`` is called with up to ``max_batch`` items.

    With ``driver_write(dbapi_connection, items) -> results``, each batch is first written through
    the driver's connection, in the writer's transaction, without a Session: at hundreds of commits
    a second a Session and its transaction cost more than the insert. When that fails, each
    request is retried alone with ``write`` (a careful variant, in a Session).
    """

    def __init__(
        self,
        db: Database,
        write: Callable[[Session, list[T]], list[R]],
        *,
        max_batch: int = 2000,
        on_commit: Callable[[], None] | None = None,
        driver_write: Callable[[Any, list[T]], list[R]] | None = None,
        linger: float = LINGER,
    ) -> None:
        self.db = db
        self.write = write
        self.driver_write = driver_write
        self.max_batch = max_batch
        self.on_commit = on_commit
        # SimpleQueue: put and get in C, no Condition to notify (a tenth of a single event's cost).
        self._q: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._conn: Connection | None = None  # used by the writer thread only
        self.linger = linger
        self._siblings = 1  # requests the last commit took (see _gather)
        # Requests submitted during one turn of an event loop, handed to the writer together.
        self._turn: dict[asyncio.AbstractEventLoop, list[Any]] = {}

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="opsdesk-writer", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._q.put(_STOP)
            self._thread.join(timeout=10)
            self._thread = None

    async def submit(self, items: list[T]) -> list[R]:
        """Queue ``items`` and wait until they are committed; returns what ``write`` gave for them."""
        return await self.submit_nowait(items, asyncio.get_running_loop())

    def submit_nowait(self, items: list[T], loop: asyncio.AbstractEventLoop) -> asyncio.Future[list[R]]:
        """Queue ``items``; the future (of ``loop``) is done once they are committed."""
        if self._thread is None:
            raise RuntimeError("writer is not running")
        fut: asyncio.Future[list[R]] = loop.create_future()
        turn = self._turn.get(loop)
        if turn is None:
            turn = self._turn[loop] = []
            loop.call_soon(self._hand, loop)
        turn.append((items, loop, fut))
        return fut

    def _hand(self, loop: asyncio.AbstractEventLoop) -> None:
        """Everything submitted in this turn of ``loop`` goes to the writer as one wake-up: called
        after the turn's I/O callbacks, so a burst read in one turn is one group commit, not a
        commit of the first request and another of the rest."""
        jobs = self._turn.pop(loop)
        if self._thread is None:
            for _, _, fut in jobs:
                if not fut.done():
                    fut.set_exception(RuntimeError("writer is not running"))
            return
        self._q.put(jobs)

    def _connection(self) -> Connection:
        """The writer's own connection: kept open between batches, so a batch does not pay a pool
        checkout and the reset on return (a rollback) each time."""
        if self._conn is None:
            self._conn = self.db.engine.connect()
            if self.db.is_sqlite:
                # What this writer commits was acknowledged: synced to disk at each commit (WAL's
                # NORMAL, the other connections' setting, may lose the last commits on power loss).
                # One sync per group commit, not per request.
                self._conn.exec_driver_sql("PRAGMA synchronous=FULL")
                self._conn.commit()
        return self._conn

    @contextmanager
    def _session(self) -> Iterator[Session]:
        """A transaction on the writer's connection."""
        with Session(bind=self._connection(), expire_on_commit=False) as s, s.begin():
            yield s

    def _drop_connection(self) -> None:
        """After an error the connection may be broken (a database restart): the next batch opens
        a new one."""
        if self._conn is not None:
            try:
                self._conn.invalidate()
                self._conn.close()
            except Exception:
                log.debug("closing the writer's connection failed", exc_info=True)
            self._conn = None

    def _loop(self) -> None:
        try:
            self._run()
        finally:
            self._drop_connection()  # not back to the pool: it has this writer's settings

    def _run(self) -> None:
        while True:
            turn = self._q.get()  # the jobs of one turn of an event loop (see _hand)
            if turn is _STOP:
                return
            jobs, stopping = self._gather(turn)
            self._commit(jobs)
            # As many requests as this commit took are likely to be back soon: their senders
            # were waiting for this commit (see _gather).
            self._siblings = len(jobs)
            if stopping:
                return

    def _gather(self, turn: list[Any]) -> tuple[list[Any], bool]:
        """The jobs of the next group commit, starting with ``turn``; and whether the writer is to
        stop after it.

        Everything already queued is taken. Then, like PostgreSQL's ``commit_delay`` with
        ``commit_siblings``, the writer may wait up to ``linger`` seconds for more: only while
        fewer requests are gathered than the last commit took. Senders that wait for their answer
        before sending again (most clients; wrk, Alertmanager's and Grafana's senders per alert
        group) come back together, and a commit (an fsync on SQLite) then serves all of them
        instead of a part. A lone sender never waits: the last commit took one request.
        """
        jobs: list[Any] = []
        size = 0
        deadline = 0.0
        while True:
            jobs += turn
            size += sum(len(job[0]) for job in turn)
            if size >= self.max_batch:
                return jobs, False
            try:
                turn = self._q.get_nowait()
            except queue.Empty:
                if len(jobs) >= self._siblings or self.linger <= 0:
                    return jobs, False
                now = time.monotonic()
                if not deadline:
                    deadline = now + self.linger
                if now >= deadline:
                    return jobs, False
                try:
                    turn = self._q.get(timeout=deadline - now)
                except queue.Empty:
                    return jobs, False
            if turn is _STOP:
                return jobs, True

    def _driver_batch(self, items: list[T]) -> list[R]:
        assert self.driver_write is not None
        dbapi: Any = self._connection().connection.driver_connection
        try:
            results = self.driver_write(dbapi, items)
            dbapi.commit()
        except BaseException:
            try:
                dbapi.rollback()
            except Exception:  # a lost connection: the caller drops it
                log.debug("rollback after a failed batch failed", exc_info=True)
            raise
        return results

    def _commit(self, jobs: list[Any], retry: bool = False, reconnected: bool = False) -> None:
        items = [item for job in jobs for item in job[0]]
        try:
            if self.driver_write is not None and not retry:
                results = self._driver_batch(items)
            else:
                with self._session() as s:
                    results = self.write(s, items)
        except Exception as exc:
            self._drop_connection()
            if isinstance(exc, DBAPIError) and exc.connection_invalidated and not reconnected:
                # The kept connection died (a database restart): the same batch on a new one.
                log.warning("the writer's database connection was lost; reconnecting")
                self._commit(jobs, retry=retry, reconnected=True)
                return
            if not retry and (len(jobs) > 1 or self.driver_write is not None):
                log.warning("batch write failed (%s); retrying each request alone", exc)
                for job in jobs:
                    self._commit([job], retry=True)
                return
            log.exception("write failed")
            _, loop, fut = jobs[0]
            loop.call_soon_threadsafe(_set_exception, fut, exc)
            return
        metrics.WRITER_BATCH.observe(len(items))
        # One wake-up of each event loop per batch, not one per request: at thousands of requests
        # a second, waking the loop once per future costs more than the write itself.
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], Any]]] = {}
        pos = 0
        for job_items, loop, fut in jobs:
            part = results[pos : pos + len(job_items)]
            pos += len(job_items)
            by_loop.setdefault(loop, []).append((fut, part))
        for loop, done in by_loop.items():
            loop.call_soon_threadsafe(_set_results, done)
        if self.on_commit is not None:
            self.on_commit()


def _set_results(done: list[tuple[asyncio.Future[Any], Any]]) -> None:
    for fut, value in done:
        if not fut.done():
            fut.set_result(value)


def _set_exception(fut: asyncio.Future[Any], exc: BaseException) -> None:
    if not fut.done():
        fut.set_exception(exc)
