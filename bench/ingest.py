"""Event ingestion through the real server: ``python bench/ingest.py [--events N] [--concurrency C]``.

Starts ``opsdesk serve`` on a fresh SQLite database (or OPSDESK_DATABASE_URL), posts N single
events from C concurrent loopback clients, then the same N as batches of 100, and prints the
acknowledged rate, request latency percentiles, and how long the pipeline took to turn every
event into alerts and incidents. Everything stays on 127.0.0.1 and stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from sqlalchemy import func, select

from opsdesk.alerts.models import Event
from opsdesk.core.db import Database

OPSDESK = str(Path(sys.executable).parent / "opsdesk")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cli(env: dict[str, str], *args: str) -> str:
    return subprocess.run([OPSDESK, *args], env=env, check=True, capture_output=True, text=True).stdout


async def post_all(url: str, token: str, bodies: list[object], concurrency: int) -> list[float]:
    latencies: list[float] = []
    queue: asyncio.Queue[object] = asyncio.Queue()
    for b in bodies:
        queue.put_nowait(b)
    headers = {"Authorization": f"Bearer {token}"}

    async def worker(session: aiohttp.ClientSession) -> None:
        while not queue.empty():
            body = queue.get_nowait()
            started = time.perf_counter()
            async with session.post(url, json=body, headers=headers) as r:
                if r.status != 202:
                    raise RuntimeError(f"{r.status}: {await r.text()}")
                await r.read()
            latencies.append(time.perf_counter() - started)

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    return latencies


def pct(values: list[float], p: float) -> float:
    return sorted(values)[min(len(values) - 1, int(len(values) * p))] * 1000


async def run(events: int, concurrency: int) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="opsdesk-bench-"))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPSDESK_")}
    env.update(
        OPSDESK_DATA_DIR=str(tmp),
        OPSDESK_PORT=str(port),
        OPSDESK_LOG_LEVEL="WARNING",
        OPSDESK_ROLES=os.environ.get("BENCH_ROLES", "web,pipeline"),
    )
    if os.environ.get("OPSDESK_DATABASE_URL"):
        env["OPSDESK_DATABASE_URL"] = os.environ["OPSDESK_DATABASE_URL"]
    cli(env, "db", "upgrade")
    cli(env, "user", "create", "--email", "bench@example.org", "--name", "Bench", "--role", "responder")
    cli(env, "service", "add", "shop")
    token = (
        cli(env, "token", "create", "--user", "bench@example.org", "--name", "bench").strip().splitlines()[-1]
    )
    server = subprocess.Popen(
        [OPSDESK, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}/api/v1/events"
    db = Database(env.get("OPSDESK_DATABASE_URL") or f"sqlite:///{tmp / 'opsdesk.db'}")
    try:
        async with aiohttp.ClientSession() as s:
            for _ in range(100):
                try:
                    async with s.get(f"http://127.0.0.1:{port}/healthz") as r:
                        if r.status == 200:
                            break
                except aiohttp.ClientError:
                    await asyncio.sleep(0.1)
        print(
            f"opsdesk ingestion benchmark: {events} events, {concurrency} concurrent clients, "
            f"database {db.engine.dialect.name}, python {sys.version.split()[0]}"
        )
        for label, bodies, per_request in (
            (
                "single events",
                [{"summary": f"e{i}", "service": "shop", "labels": {"n": str(i)}} for i in range(events)],
                1,
            ),
            (
                "batches of 100",
                [
                    [
                        {"summary": f"b{i}-{j}", "service": "shop", "labels": {"b": str(i), "j": str(j)}}
                        for j in range(100)
                    ]
                    for i in range(events // 100)
                ],
                100,
            ),
        ):
            started = time.perf_counter()
            lat = await post_all(url, token, bodies, concurrency)
            took = time.perf_counter() - started
            n = len(bodies) * per_request
            print(
                f"  {label:15s} {n / took:9.0f} events/s acknowledged  "
                f"(requests p50 {pct(lat, 0.5):.1f} ms, p99 {pct(lat, 0.99):.1f} ms, "
                f"mean {statistics.mean(lat) * 1000:.1f} ms)"
            )
            if "pipeline" not in env["OPSDESK_ROLES"]:
                continue
            started = time.perf_counter()
            while True:
                with db.session() as sess:
                    pending = sess.scalar(
                        select(func.count()).select_from(Event).where(Event.processed_at.is_(None))
                    )
                if not pending:
                    break
                await asyncio.sleep(0.05)
            print(
                f"  {'':15s} pipeline drained {time.perf_counter() - started:.2f} s "
                "after the last acknowledgement"
            )
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=20)
        db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    asyncio.run(run(args.events, args.concurrency))


if __name__ == "__main__":
    main()
