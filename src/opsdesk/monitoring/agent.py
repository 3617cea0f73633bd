"""The remote probe: ``opsdesk probe --server URL --token T``.

It runs in another network (a branch office, a cloud region, a DMZ) and needs nothing there but
outbound HTTPS to the server. Every ``refresh`` seconds it fetches the monitors of its location;
it schedules them itself (start times spread over the interval), runs them with the same check
types as the server, and appends every result to a disk buffer (SQLite, in ``--buffer``) before
anything is sent. A sender posts the buffer's head in order and deletes what the server
acknowledged; while the server cannot be reached, results wait on disk and are replayed in order
when it returns. Sequence numbers make a replay after a lost answer harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import sqlite3
import time
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from opsdesk import __version__
from opsdesk.monitoring.checks import CheckOutcome, ProbeContext, get_check_type
from opsdesk.monitoring.scheduler import not_counted, run_check, with_job
from opsdesk.monitoring.selfcheck import NetworkCheck

log = logging.getLogger("opsdesk.probe")
MAX_POST_BYTES = 700_000


class Buffer:
    """Results waiting to be sent, on disk, in order. ``seq`` only grows, across restarts too."""

    def __init__(self, path: Path, max_rows: int = 1_000_000):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS results (seq INTEGER PRIMARY KEY AUTOINCREMENT, body BLOB)"
        )
        self.max_rows = max_rows

    def append(self, items: list[dict[str, Any]]) -> None:
        with self.db:
            self.db.executemany("INSERT INTO results (body) VALUES (?)", [(orjson.dumps(i),) for i in items])
            over = self.count() - self.max_rows
            if over > 0:
                log.warning("probe buffer full: dropping the %d oldest results", over)
                self.db.execute(
                    "DELETE FROM results WHERE seq IN (SELECT seq FROM results ORDER BY seq LIMIT ?)", (over,)
                )

    def head(self, n: int) -> list[dict[str, Any]]:
        rows = self.db.execute("SELECT seq, body FROM results ORDER BY seq LIMIT ?", (n,)).fetchall()
        return [{**orjson.loads(body), "seq": seq} for seq, body in rows]

    def ack(self, upto: int) -> None:
        self.db.execute("DELETE FROM results WHERE seq <= ?", (upto,))

    def count(self) -> int:
        return int(self.db.execute("SELECT count(*) FROM results").fetchone()[0])

    def ensure_after(self, seq: int) -> None:
        """Make the next sequence number larger than ``seq`` (a new buffer for an old probe)."""
        row = self.db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'results'").fetchone()
        if row is None:
            self.db.execute("INSERT INTO sqlite_sequence (name, seq) VALUES ('results', ?)", (seq,))
        elif row[0] < seq:
            self.db.execute("UPDATE sqlite_sequence SET seq = ? WHERE name = 'results'", (seq,))

    def close(self) -> None:
        self.db.close()


@dataclass
class Assignment:
    id: int
    name: str
    type: str
    target: str
    config: dict[str, Any]
    interval_seconds: int
    timeout_seconds: float
    version: str


def _outcome_json(a: Assignment, at: datetime, o: CheckOutcome) -> dict[str, Any]:
    return {
        "monitor_id": a.id,
        "at": at.isoformat(),
        "ok": o.ok,
        "message": o.message[:2000],
        "latency_ms": o.latency_ms,
        "status_code": o.status_code,
        "degraded": o.degraded,
        "conclusive": o.conclusive,
        "findings": None
        if o.findings is None
        else [
            {"key": f.key, "summary": f.summary, "severity": f.severity, "labels": f.labels}
            for f in o.findings
        ],
        "unevaluated": o.unevaluated,
        "samples": [
            {"name": smp.name, "labels": dict(smp.labels), "ts_ms": smp.ts_ms, "value": smp.value}
            for smp in with_job(o.samples, a.name)
        ],
    }


class Agent:
    def __init__(
        self,
        server: str,
        token: str,
        buffer_dir: Path,
        *,
        concurrency: int = 256,
        refresh: float = 30.0,
        send_every: float = 0.5,
        canaries: list[str] | None = None,
    ):
        self.server = server.rstrip("/")
        self.token = token
        self.buffer = Buffer(buffer_dir / "probe-buffer.db")
        self.sem = asyncio.Semaphore(concurrency)
        self.refresh = refresh
        self.send_every = send_every
        self.network = NetworkCheck(canaries)
        self.location = ""
        self.monitors: dict[int, Assignment] = {}
        self._heap: list[tuple[float, int]] = []
        self._pending: list[dict[str, Any]] = []
        self._checks: aiohttp.ClientSession | None = None
        self._api: aiohttp.ClientSession | None = None
        self.sent = 0
        self.connected = False

    @property
    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", "User-Agent": f"opsdesk-probe/{__version__}"}

    async def _fetch_assignments(self) -> None:
        assert self._api is not None
        async with self._api.get(f"{self.server}/api/v1/probe/assignments", headers=self._headers) as r:
            if r.status == 401:
                raise PermissionError("the server refused the probe token (401): was the probe deleted?")
            r.raise_for_status()
            data = await r.json()
        self.location = data["location"]
        if data.get("last_seq"):
            self.buffer.ensure_after(int(data["last_seq"]))
        fresh = {m["id"]: Assignment(**m) for m in data["monitors"]}
        now = time.monotonic()
        for mid, a in fresh.items():
            old = self.monitors.get(mid)
            if old is None or old.version != a.version:
                # Spread first runs over the interval (no thundering herd), stable per monitor.
                offset = (zlib.crc32(str(mid).encode()) % 1000) / 1000 * min(a.interval_seconds, 60)
                heapq.heappush(self._heap, (now + offset, mid))
        self.monitors = fresh
        log.info("assignments", extra={"location": self.location, "monitors": len(fresh)})

    async def _run_check(self, a: Assignment) -> None:
        async with self.sem:
            check = get_check_type(a.type)
            if check is None:
                outcome = CheckOutcome(
                    False, f"this probe does not know the check type {a.type!r}: upgrade it"
                )
            else:
                assert self._checks is not None
                ctx = ProbeContext(http=self._checks)
                outcome, _ = await run_check(check, a.id, a.target, a.config, a.timeout_seconds, ctx)
            if not outcome.ok:
                verdict = await self.network.ok()
                if not verdict.ok:
                    not_counted(outcome, verdict.reason)
            self._pending.append(_outcome_json(a, datetime.now(UTC), outcome))

    async def _flush_pending(self) -> None:
        # Swap in the event loop (where checks append), write in a thread.
        if self._pending:
            batch, self._pending = self._pending, []
            await asyncio.to_thread(self.buffer.append, batch)

    async def _send(self) -> bool:
        """Post the buffer's head; True when the server took it."""
        assert self._api is not None
        head = self.buffer.head(1000)
        if not head:
            return True
        # Stay well under the server's body limit (OPSDESK_MAX_BODY_BYTES, 1 MiB by default): a
        # scrape's samples make results large. A result too large alone goes without its samples.
        parts: list[bytes] = []
        size = 0
        for item in head:
            encoded = orjson.dumps(item)
            if len(encoded) > MAX_POST_BYTES:
                encoded = orjson.dumps({**item, "samples": []})
            if parts and size + len(encoded) > MAX_POST_BYTES:
                break
            parts.append(encoded)
            size += len(encoded) + 1
        head = head[: len(parts)]
        body = b'{"version":' + orjson.dumps(__version__) + b',"results":[' + b",".join(parts) + b"]}"
        async with self._api.post(
            f"{self.server}/api/v1/probe/results",
            data=body,
            headers={**self._headers, "Content-Type": "application/json"},
        ) as r:
            if r.status != 200:
                text = (await r.text())[:300]
                raise RuntimeError(f"server answered {r.status}: {text}")
            answer = await r.json()
        self.buffer.ack(int(answer["last_seq"]))
        self.sent += len(head)
        return True

    async def run(self, stop: asyncio.Event) -> None:
        self._checks = aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True, limit=0))
        self._api = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        tasks: set[asyncio.Task[None]] = set()
        next_refresh = next_send = 0.0
        backoff = 1.0
        try:
            while not stop.is_set():
                now = time.monotonic()
                if now >= next_refresh:
                    try:
                        await self._fetch_assignments()
                        next_refresh = now + self.refresh
                    except PermissionError:
                        raise
                    except Exception as exc:
                        log.warning("cannot fetch assignments: %s (running the last known ones)", exc)
                        next_refresh = now + min(self.refresh, 5.0)
                while self._heap and self._heap[0][0] <= now:
                    _, mid = heapq.heappop(self._heap)
                    a = self.monitors.get(mid)
                    if a is None:
                        continue  # unassigned since
                    heapq.heappush(self._heap, (now + a.interval_seconds, mid))
                    t = asyncio.create_task(self._run_check(a))
                    tasks.add(t)
                    t.add_done_callback(tasks.discard)
                await self._flush_pending()
                if now >= next_send:
                    try:
                        while self.buffer.count():
                            await self._send()
                        self.connected = True
                        backoff = 1.0
                        next_send = now + self.send_every
                    except Exception as exc:
                        if self.connected:
                            log.warning("server unreachable, buffering results on disk: %s", exc)
                        self.connected = False
                        next_send = now + backoff
                        backoff = min(backoff * 2, 30.0)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 0.1)
        finally:
            for t in list(tasks):
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self._flush_pending()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._send(), 5)
            await self._checks.close()
            await self._api.close()
            self.buffer.close()
