"""Heartbeat pings through the real server: ``python bench/heartbeat.py [--pings N] [--monitors M]
[--concurrency C]``.

Starts ``opsdesk serve --roles web`` on a fresh SQLite database (or OPSDESK_DATABASE_URL), creates M
heartbeat monitors, then sends N pings (GET /ping/<key>, keys round-robin) from C concurrent
keep-alive loopback connections, and prints pings/s acknowledged, the server's CPU per ping and
latency percentiles. Every acknowledged ping must be committed: the benchmark then counts the
recorded results in the database and fails if one is missing. Everything stays on 127.0.0.1 and
stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from sqlalchemy import func, select

from opsdesk.core.db import Database
from opsdesk.monitoring.models import CheckResult

OPSDESK = str(Path(sys.executable).parent / "opsdesk")
TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


async def client(port: int, paths: list[bytes], latencies: list[float]) -> None:
    """A minimal keep-alive HTTP/1.1 client: the load generator must cost less than the server."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for path in paths:
            started = time.perf_counter()
            writer.write(b"GET " + path + b" HTTP/1.1\r\nHost: bench\r\n\r\n")
            head = await reader.readuntil(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 200"):
                raise RuntimeError(head.decode(errors="replace"))
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
    finally:
        writer.close()


def pct(values: list[float], p: float) -> float:
    return sorted(values)[min(len(values) - 1, int(len(values) * p))] * 1000


async def run(pings: int, monitors: int, concurrency: int) -> int:
    tmp = Path(tempfile.mkdtemp(prefix="opsdesk-bench-hb-"))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPSDESK_")}
    env.update(OPSDESK_DATA_DIR=str(tmp), OPSDESK_PORT=str(port), OPSDESK_LOG_LEVEL="WARNING")
    if os.environ.get("OPSDESK_DATABASE_URL"):
        env["OPSDESK_DATABASE_URL"] = os.environ["OPSDESK_DATABASE_URL"]
    subprocess.run([OPSDESK, "db", "upgrade"], env=env, check=True, capture_output=True)
    server = subprocess.Popen(
        [OPSDESK, "serve", "--roles", "web"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    db = Database(env.get("OPSDESK_DATABASE_URL") or f"sqlite:///{tmp / 'opsdesk.db'}")
    try:
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base, timeout=30) as http:
            for _ in range(200):
                try:
                    if http.get("/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.1)
            token = (
                subprocess.run(
                    [OPSDESK, "token", "create", "--user", "admin@localhost", "--name", "bench"],
                    env=env,
                    check=True,
                    capture_output=True,
                    text=True,
                )
                .stdout.strip()
                .splitlines()[-1]
            )
            h = {"Authorization": f"Bearer {token}"}
            keys = []
            for i in range(monitors):
                r = http.post(
                    "/api/v1/monitors",
                    headers=h,
                    json={"name": f"job-{i}", "type": "heartbeat", "interval_seconds": 3600},
                )
                r.raise_for_status()
                keys.append(r.json()["ping_key"])
        with db.session() as s:
            before = s.scalar(select(func.count()).select_from(CheckResult)) or 0
        paths = [f"/ping/{keys[i % len(keys)]}".encode() for i in range(pings)]
        shares = [paths[i::concurrency] for i in range(concurrency)]
        latencies: list[float] = []
        cpu0 = cpu_seconds(server.pid)
        started = time.perf_counter()
        await asyncio.gather(*(client(port, share, latencies) for share in shares))
        took = time.perf_counter() - started
        cpu = cpu_seconds(server.pid) - cpu0
        with db.session() as s:
            recorded = (s.scalar(select(func.count()).select_from(CheckResult)) or 0) - before
        print(
            f"opsdesk heartbeat benchmark: {pings} pings over {monitors} monitors, "
            f"{concurrency} connections, "
            f"database {db.engine.dialect.name}, python {sys.version.split()[0]}"
        )
        print(f"  acknowledged     {pings / took:9.0f} pings/s   ({took:.1f} s)")
        print(
            f"  server CPU       {cpu / pings * 1e6:9.0f} µs per ping   "
            f"({pings / cpu:.0f} pings per CPU-second)"
        )
        print(f"  latency          p50 {pct(latencies, 0.5):.1f} ms, p99 {pct(latencies, 0.99):.1f} ms")
        print(f"  recorded         {recorded} of {pings} acknowledged pings are in the database")
        return 0 if recorded == pings else 1
    finally:
        server.terminate()
        server.wait(timeout=30)
        db.dispose()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pings", type=int, default=50_000)
    p.add_argument("--monitors", type=int, default=500)
    p.add_argument("--concurrency", type=int, default=64)
    a = p.parse_args()
    sys.exit(asyncio.run(run(a.pings, a.monitors, a.concurrency)))


if __name__ == "__main__":
    main()
