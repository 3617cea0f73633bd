"""Event ingestion against Debian's prometheus-alertmanager: ``python bench/ingest.py``.

    python bench/ingest.py [--events 20000] [--batched-events 10x --events] [--concurrency 32]
                           [--db sqlite|postgresql|both] [--layout one|split|both]
                           [--client wrk|python]

For each database and layout, starts real ``opsdesk serve`` processes on a fresh database: one
process with roles web and pipeline (the default install), or a web process and a pipeline
process (the scale-out shape, which shows what taking events costs apart from what processing
them costs). It measures, with ``--concurrency`` loopback clients:

1. **single**: ``--events`` events, one per ``POST /api/v1/events``; **batched**:
   ``--batched-events`` in batches of 100 (ten times as many by default: a batched event costs so
   little CPU that fewer would be measured in a handful of /proc's 10 ms ticks). Each server first
   gets 1,000 single events, not measured, so it is measured warm. Events cycle over 2,000 alerts
   on 20 services, so the pipeline deduplicates as it would in a storm. Reported: events
   acknowledged per second (a 202 means committed), the servers' CPU seconds (user + system, from
   /proc) while they took them and until the pipeline had processed them, and events per
   CPU-second of each opsdesk process.
2. **latency**: 2,000 events with new fingerprints at 200/s; for each, the time from its 202 to
   the moment a poller sees it processed into an alert in an incident: p50, p99, max.
3. **ack/resolve**: with 10,000 more alerts firing (14,000 in all, in one incident per service), each
   incident acknowledged and then resolved over the API: p50 and p95 answer times.
4. **count check**: the events in the database equal the events acknowledged, and every one of
   them was processed.

Then Debian's ``prometheus-alertmanager`` gets the same alerts on ``/api/v2/alerts`` (single and
batches of 100), with its CPU seconds. Everything stays on 127.0.0.1 and stops by itself.

The client of the single and batched phases (1.) is ``--client``: **wrk** (the default when it is
installed, ``apt-get install wrk``), C, one thread, sending each request body exactly once over
``--concurrency`` keep-alive connections and counting the answers by status; or **python**
(aiohttp), whose clients take about as much CPU as the server they drive and share the machine's
two cores with it, so they pace it (fewer requests arrive per wake-up of the server). The issue's
reference figures for Alertmanager (18,000 single-alert requests a second on 1.7-1.9 cores) need
a client like wrk; with the Python clients Alertmanager answered 7,700-12,000 a second here. The other
phases use the Python clients either way.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from sqlalchemy import create_engine, func, select, text

from opsdesk.alerts import service as alerts
from opsdesk.alerts.models import Alert, Event
from opsdesk.core.db import Database

OPSDESK = str(Path(sys.executable).parent / "opsdesk")
ALERTMANAGER = "/usr/bin/prometheus-alertmanager"
PG_URL = os.environ.get("BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
TICK = os.sysconf("SC_CLK_TCK")
SERVICES = 20
WARM_UP = 1000  # single events sent to each server before it is measured
ALERTS = 2000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its reaped children, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:15]) / TICK


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))] * 1000


def cli(env: dict[str, str], *args: str) -> str:
    return subprocess.run([OPSDESK, *args], env=env, check=True, capture_output=True, text=True).stdout


async def post_all(
    url: str,
    headers: dict[str, str],
    bodies: list[Any],
    concurrency: int,
    ok: int,
    on_ok: Callable[[Any], None],
) -> list[float]:
    latencies: list[float] = []
    it = iter(bodies)

    async def worker(session: aiohttp.ClientSession) -> None:
        for body in it:
            started = time.perf_counter()
            async with session.post(url, json=body, headers=headers) as r:
                if r.status != ok:
                    raise RuntimeError(f"{url}: {r.status}: {await r.text()}")
                on_ok(await r.json(content_type=None) if r.content_length else None)
            latencies.append(time.perf_counter() - started)

    conn = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=conn) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    return latencies


# Sends each body of a file (one per line) exactly once: wrk has no request count, so a connection
# waits (delay) once every body is on its way, and the answer to the last one stops the thread and
# says DONE on stdout; wrk_post then interrupts wrk's timer (SIGINT: wrk reports as at the end of
# its duration). wrk calls delay() before each request it sends, and request() when the request is
# written (other connections' delay() may come between); and request() once more before any
# connection, to check it: that call takes bodies[0], a copy of the first. Answers are counted by
# status; done() prints the totals.
WRK_LUA = """
bodies, n, due, taken, ok, bad, hdrs, want, threads = {}, 0, 0, 0, 0, 0, {}, 0, {}
function setup(thread) table.insert(threads, thread) end
function init(args)
  for line in io.lines(args[1]) do n = n + 1; bodies[n] = line end
  bodies[0] = bodies[1]
  want = tonumber(args[2])
  hdrs["Content-Type"] = "application/json"
  if args[3] then hdrs["Authorization"] = args[3] end
end
function delay()
  if due >= n then return 3600000 end
  due = due + 1
  return 0
end
function request()
  local body = bodies[taken]
  taken = taken + 1
  return wrk.format("POST", nil, hdrs, body)
end
function response(status, headers, body)
  if status == want then ok = ok + 1 else bad = bad + 1 end
  if ok + bad == n then wrk.thread:stop(); io.write("DONE\\n"); io.stdout:flush() end
end
function done(summary, latency, requests)
  local o, b = 0, 0
  for _, t in ipairs(threads) do o = o + t:get("ok"); b = b + t:get("bad") end
  io.write(string.format("RESULT %d %d %d %d\\n", o, b, latency:percentile(50), latency:percentile(99)))
end
"""


def wrk_post(
    url: str, headers: dict[str, str], bodies: list[Any], concurrency: int, ok: int
) -> tuple[float, float]:
    """Each body POSTed once with wrk; (request p50, p99) in ms. Raises unless every answer was ``ok``."""
    with tempfile.TemporaryDirectory(prefix="wrk-bench-") as tmp:
        (Path(tmp) / "bodies").write_bytes(b"\n".join(orjson.dumps(b) for b in bodies))
        (Path(tmp) / "post.lua").write_text(WRK_LUA)
        args = ["wrk", "-t1", f"-c{min(concurrency, len(bodies))}", "-d600s", "--timeout", "60s"]
        args += ["-s", f"{tmp}/post.lua", url, "--", f"{tmp}/bodies", str(ok)]
        args += [headers["Authorization"]] if "Authorization" in headers else []
        with subprocess.Popen(args, stdout=subprocess.PIPE, text=True) as proc:
            assert proc.stdout is not None
            for line in proc.stdout:  # nothing before DONE, unless wrk stops by itself
                if line == "DONE\n":
                    proc.send_signal(signal.SIGINT)
                    break
            out = proc.communicate()[0]
    found = re.search(r"^RESULT (\d+) (\d+) (\d+) (\d+)$", out, re.MULTILINE)
    if found is None:
        raise RuntimeError(f"wrk said: {out}")
    answered, bad, p50, p99 = (int(x) for x in found.groups())
    if bad or answered != len(bodies):
        raise RuntimeError(f"{url}: {answered} of {len(bodies)} answered {ok}, {bad} otherwise: {out}")
    return p50 / 1000, p99 / 1000


async def send(
    client: str, url: str, headers: dict[str, str], bodies: list[Any], concurrency: int, ok: int
) -> tuple[float, float]:
    """Each body POSTed once by ``client``; (request p50, p99) in ms. Raises on any other answer."""
    if client == "wrk":
        return await asyncio.to_thread(wrk_post, url, headers, bodies, concurrency, ok)
    lat = await post_all(url, headers, bodies, concurrency, ok, lambda _: None)
    return pct(lat, 0.5), pct(lat, 0.99)


def event(i: int, *, fresh: bool = False) -> dict[str, Any]:
    n = i if fresh else i % ALERTS
    return {
        "source": "bench",
        "summary": f"disk almost full on host{n}",
        "severity": "warning",
        "service": f"svc{n % SERVICES}",
        "labels": {"alertname": "DiskFull", "instance": f"host{n}", "run": "fresh" if fresh else "storm"},
    }


def am_alert(i: int) -> dict[str, Any]:
    n = i % ALERTS
    return {
        "labels": {"alertname": "DiskFull", "instance": f"host{n}", "service": f"svc{n % SERVICES}"},
        "annotations": {"summary": f"disk almost full on host{n}"},
        "generatorURL": "http://bench.invalid/",
    }


class Opsdesk:
    def __init__(self, db_url: str | None, split: bool = False) -> None:
        self.split = split
        self.pipeline_proc: subprocess.Popen[bytes] | None = None
        self.tmp = Path(tempfile.mkdtemp(prefix="opsdesk-bench-"))
        self.port = free_port()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("OPSDESK_")}
        self.env.update(
            OPSDESK_DATA_DIR=str(self.tmp),
            OPSDESK_PORT=str(self.port),
            OPSDESK_LOG_LEVEL="WARNING",
            OPSDESK_ROLES="web" if split else "web,pipeline",
        )
        self.schema = None
        if db_url:
            self.schema = f"bench_{uuid.uuid4().hex[:10]}"
            with create_engine(db_url).begin() as c:
                c.execute(text(f"CREATE SCHEMA {self.schema}"))
            sep = "&" if "?" in db_url else "?"
            self.env["OPSDESK_DATABASE_URL"] = f"{db_url}{sep}options=-csearch_path%3D{self.schema}"
        self.db_url = self.env.get("OPSDESK_DATABASE_URL") or f"sqlite:///{self.tmp / 'opsdesk.db'}"
        self.base = f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        cli(self.env, "db", "upgrade")
        cli(
            self.env,
            "user",
            "create",
            "--email",
            "bench@example.org",
            "--name",
            "Bench",
            "--role",
            "responder",
        )
        for i in range(SERVICES):
            cli(self.env, "service", "add", f"svc{i}")
        out = cli(self.env, "token", "create", "--user", "bench@example.org", "--name", "bench")
        self.token = out.strip().splitlines()[-1]
        self.proc = subprocess.Popen(
            [OPSDESK, "serve"], env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        if self.split:
            self.pipeline_proc = subprocess.Popen(
                [OPSDESK, "serve"],
                env={**self.env, "OPSDESK_ROLES": "pipeline"},
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        self.db = Database(self.db_url)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("opsdesk did not start")

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def cpu(self) -> tuple[float, float]:
        """CPU seconds of the process taking events, and of the pipeline process (0 in one process)."""
        pipe = cpu_seconds(self.pipeline_proc.pid) if self.pipeline_proc else 0.0
        return cpu_seconds(self.proc.pid), pipe

    @property
    def layout(self) -> str:
        return "web + pipeline processes" if self.split else "one process"

    def pending(self) -> int:
        with self.db.session() as s:
            return alerts.pending_count(s)  # pending rows and the events of batches not yet read

    async def drained(self) -> None:
        while self.pending():
            await asyncio.sleep(0.05)

    def stop(self) -> None:
        for proc in (self.proc, self.pipeline_proc):
            if proc is not None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=30)
        self.db.dispose()
        if self.schema:
            with create_engine(PG_URL).begin() as c:
                c.execute(text(f"DROP SCHEMA {self.schema} CASCADE"))
        shutil.rmtree(self.tmp, ignore_errors=True)


async def throughput(o: Opsdesk, label: str, bodies: list[Any], per: int, conc: int, client: str) -> int:
    url = f"{o.base}/api/v1/events"
    (web0, pipe0), t0 = o.cpu(), time.perf_counter()
    p50, p99 = await send(client, url, o.headers, bodies, conc, 202)
    took = time.perf_counter() - t0
    web_ack = o.cpu()[0] - web0
    await o.drained()
    drained = time.perf_counter() - t0
    web1, pipe1 = o.cpu()
    web_all, pipe_all = web1 - web0, pipe1 - pipe0
    n = len(bodies) * per
    if o.split:
        cpu = (
            f"{n / web_all:8.0f} events/CPU-s in the web process, {n / pipe_all:8.0f} in the pipeline,"
            f" {n / (web_all + pipe_all):8.0f} in both"
        )
    else:
        cpu = f"{n / web_ack:8.0f} events/CPU-s while acking, {n / web_all:8.0f} incl. the pipeline"
    print(
        f"  {label:8s} {n / took:8.0f} events/s acked  {cpu}"
        f"  (drained {drained - took:.2f} s after the last ack)"
        f"  request p50 {p50:.1f} ms p99 {p99:.1f} ms"
    )
    return n  # every request was answered 202, which accepts all its events


async def latency(o: Opsdesk, n: int = 2000, rate: float = 200.0) -> int:
    """Time from each 202 to the event being processed into an alert that is in an incident."""
    acked: dict[int, float] = {}
    seen: dict[int, float] = {}
    stop = threading.Event()
    engine = create_engine(o.db_url)
    with engine.connect() as c:
        # Everything sent before is processed: the poller looks only past it (a scan of the 100,000
        # events before would slow the poll, and the pipeline, and so the figures).
        start_after = c.scalar(select(func.coalesce(func.max(Event.id), 0)))

    def poll() -> None:
        last = start_after
        while not stop.is_set():
            with engine.connect() as c:
                rows = c.execute(
                    select(Event.id)
                    .join(Alert, Alert.id == Event.alert_id)
                    .where(Event.id > last, Event.processed_at.is_not(None), Alert.incident_id.is_not(None))
                ).all()
            now = time.perf_counter()
            for (eid,) in rows:
                seen.setdefault(eid, now)
            if rows:
                last = max(r[0] for r in rows) if len(seen) == len(acked) else last
            time.sleep(0.005)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    url = f"{o.base}/api/v1/events"
    start = time.perf_counter()
    async with aiohttp.ClientSession() as session:

        async def one(i: int) -> None:
            await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
            async with session.post(url, json=event(1_000_000 + i, fresh=True), headers=o.headers) as r:
                assert r.status == 202, await r.text()
                (eid,) = (await r.json())["ids"]
            acked[eid] = time.perf_counter()

        await asyncio.gather(*(one(i) for i in range(n)))
    deadline = time.monotonic() + 60
    while len(seen.keys() & acked.keys()) < len(acked) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    stop.set()
    poller.join()
    engine.dispose()
    lat = [seen[e] - acked[e] for e in acked if e in seen]
    print(
        f"  latency  {n} new alerts at {rate:.0f}/s: accepted event -> in an incident "
        f"p50 {pct(lat, 0.5):.0f} ms, p99 {pct(lat, 0.99):.0f} ms, max {max(lat) * 1000:.0f} ms"
        f" ({len(lat)}/{len(acked)} seen)"
    )
    return len(acked)


async def ack_resolve(o: Opsdesk, conc: int) -> int:
    """10,000 more firing alerts (in the services' incidents); each open incident acknowledged, then
    resolved (resolving closes its alerts)."""
    sent = 0

    def ok(answer: Any) -> None:
        nonlocal sent
        sent += answer["accepted"]

    bodies = [
        [
            {
                "source": "bench",
                "summary": f"open alert {b * 100 + j}",
                "service": f"svc{(b * 100 + j) % SERVICES}",
                "labels": {"alertname": "Open", "n": str(b * 100 + j)},
            }
            for j in range(100)
        ]
        for b in range(100)
    ]
    await post_all(f"{o.base}/api/v1/events", o.headers, bodies, conc, 202, ok)
    await o.drained()
    with o.db.session() as s:
        firing = s.scalar(select(func.count()).select_from(Alert).where(Alert.status == "firing")) or 0
        incidents = [
            i
            for (i,) in s.execute(
                select(Alert.incident_id).where(Alert.status == "firing").group_by(Alert.incident_id)
            )
        ]
    times: dict[str, list[float]] = {"ack": [], "resolve": []}
    async with aiohttp.ClientSession() as session:
        for action in ("ack", "resolve"):
            for inc in incidents:
                t0 = time.perf_counter()
                async with session.post(f"{o.base}/api/v1/incidents/{inc}/{action}", headers=o.headers) as r:
                    assert r.status == 200, await r.text()
                    await r.read()
                times[action].append(time.perf_counter() - t0)
    print(
        f"  ack/resolve with {firing} alerts firing in {len(incidents)} incidents: "
        f"ack p50 {pct(times['ack'], 0.5):.0f} ms p95 {pct(times['ack'], 0.95):.0f} ms; "
        f"resolve p50 {pct(times['resolve'], 0.5):.0f} ms p95 {pct(times['resolve'], 0.95):.0f} ms"
    )
    return sent


async def warm_up(o: Opsdesk, conc: int) -> int:
    """WARM_UP single events, not measured: a server is measured in its steady state, with its
    caches filled and its code paths run once (Alertmanager gets the same)."""
    accepted = 0

    def ok(answer: Any) -> None:
        nonlocal accepted
        accepted += answer["accepted"]

    await post_all(f"{o.base}/api/v1/events", o.headers, [event(i) for i in range(WARM_UP)], conc, 202, ok)
    await o.drained()
    return accepted


async def bench_opsdesk(db: str, events: int, batched: int, conc: int, split: bool, client: str) -> None:
    o = Opsdesk(PG_URL if db == "postgresql" else None, split=split)
    o.start()
    try:
        print(
            f"opsdesk on {db}, {o.layout}: {events} single events, {batched} in batches,"
            f" {conc} concurrent clients ({client}),"
            f" python {sys.version.split()[0]}"
        )
        acked = await warm_up(o, conc)
        acked += await throughput(o, "single", [event(i) for i in range(events)], 1, conc, client)
        batches = [[event(events + b * 100 + j) for j in range(100)] for b in range(batched // 100)]
        acked += await throughput(o, "batch100", batches, 100, conc, client)
        acked += await latency(o)
        acked += await ack_resolve(o, conc)
        await o.drained()
        with o.db.session() as s:
            stored = s.scalar(select(func.count()).select_from(Event)) or 0
            processed = (
                s.scalar(select(func.count()).select_from(Event).where(Event.processed_at.is_not(None))) or 0
            )
        verdict = "OK" if stored == acked == processed else "MISMATCH"
        print(f"  count    {acked} acknowledged, {stored} stored, {processed} processed: {verdict}")
    finally:
        o.stop()


@contextmanager
def alertmanager() -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """Debian's alertmanager on a free loopback port, with a route to nowhere; stopped after."""
    tmp = Path(tempfile.mkdtemp(prefix="am-bench-"))
    port = free_port()
    (tmp / "am.yml").write_text("route:\n  receiver: none\nreceivers:\n  - name: none\n")
    proc = subprocess.Popen(
        [
            ALERTMANAGER,
            f"--config.file={tmp / 'am.yml'}",
            f"--storage.path={tmp}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                time.sleep(0.1)
        yield proc, port
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
        shutil.rmtree(tmp, ignore_errors=True)


async def bench_alertmanager(events: int, batched: int, conc: int, client: str) -> None:
    if not shutil.which(ALERTMANAGER):
        print("alertmanager: not installed (apt-get install prometheus-alertmanager)")
        return
    with alertmanager() as (proc, port):
        out = subprocess.run([ALERTMANAGER, "--version"], capture_output=True, text=True)
        version = (out.stdout or out.stderr).split("\n")[0]
        print(
            f"alertmanager ({version}): {events} single alerts, {batched} in batches,"
            f" {conc} concurrent clients ({client})"
        )
        url = f"http://127.0.0.1:{port}/api/v2/alerts"
        ends = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
        warm = [[{**am_alert(i), "endsAt": ends}] for i in range(WARM_UP)]
        await post_all(url, {}, warm, conc, 200, lambda _: None)
        for label, bodies, per in (
            ("single", [[{**am_alert(i), "endsAt": ends}] for i in range(events)], 1),
            (
                "batch100",
                [
                    [{**am_alert(b * 100 + j), "endsAt": ends} for j in range(100)]
                    for b in range(batched // 100)
                ],
                100,
            ),
        ):
            cpu0, t0 = cpu_seconds(proc.pid), time.perf_counter()
            p50, p99 = await send(client, url, {}, bodies, conc, 200)
            took = time.perf_counter() - t0
            cpu = cpu_seconds(proc.pid) - cpu0
            n = len(bodies) * per
            print(
                f"  {label:8s} {n / took:8.0f} alerts/s  {n / cpu:8.0f} alerts/CPU-s"
                f"  request p50 {p50:.1f} ms p99 {p99:.1f} ms (in memory only)"
            )


async def main_async(args: argparse.Namespace) -> None:
    dbs = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    batched = args.batched_events or 10 * args.events
    layouts = [False, True] if args.layout == "both" else [args.layout == "split"]
    for db in dbs:
        for split in layouts:
            await bench_opsdesk(db, args.events, batched, args.concurrency, split, args.client)
    await bench_alertmanager(args.events, batched, args.concurrency, args.client)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument(
        "--batched-events",
        type=int,
        default=0,
        help="events sent in batches of 100 (default: 10x --events; a batch costs so little CPU that"
        " fewer would be measured in a few of /proc's 10 ms ticks)",
    )
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument(
        "--layout",
        choices=["one", "split", "both"],
        default="both",
        help="one process with roles web and pipeline, or a web process and a pipeline process",
    )
    parser.add_argument(
        "--client",
        choices=["wrk", "python"],
        default="wrk" if shutil.which("wrk") else "python",
        help="what sends the single and batched phases: wrk (the default when installed) or Python"
        " clients (aiohttp), which share the two cores with the servers and pace them",
    )
    args = parser.parse_args()
    if args.client == "wrk" and not shutil.which("wrk"):
        parser.error("wrk is not installed: apt-get install wrk, or --client python")
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
