"""Event ingestion with wrk as the client: ``python bench/ingest_wrk.py``.

    python bench/ingest_wrk.py [--seconds 8] [--connections 32] [--db sqlite|postgresql|both]

A cross-check of ``bench/ingest.py`` with another client: that bench's loopback clients are
Python (aiohttp), which share the two cores with the servers and pace them; wrk (C, one thread;
``apt-get install wrk``) drives each server as hard as it can take it. For each database a web
process and a pipeline process of ``opsdesk serve`` (the split layout of ``bench/ingest.py``)
take single events and batches of 100 for ``--seconds`` each, cycling over the same 2,000 alerts;
then Debian's ``prometheus-alertmanager`` takes the same alerts on ``/api/v2/alerts``. Reported:
requests answered per second, each server process's CPU seconds (user + system, from /proc) over
the run, and events per CPU-second; for opsdesk also that every event answered 202 was stored
(wrk stops mid-request at the end, so stored may exceed answered, never the reverse).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shutil
import subprocess
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ingest import ALERTS, PG_URL, Opsdesk, alertmanager, am_alert, cpu_seconds, event
from sqlalchemy import func, select

from opsdesk.alerts.models import Event

# Cycles over the request bodies given in a file, one per line.
LUA = """
local bodies, n, i, hdrs = {}, 0, 0, {}
function init(args)
  for line in io.lines(args[1]) do n = n + 1; bodies[n] = line end
  hdrs["Content-Type"] = "application/json"
  if args[2] then hdrs["Authorization"] = "Bearer " .. args[2] end
end
function request()
  i = i % n + 1
  return wrk.format("POST", nil, hdrs, bodies[i])
end
"""


def wrk(url: str, bodies: list[Any], token: str | None, seconds: int, connections: int) -> tuple[int, int]:
    """Runs wrk; returns (requests answered 2xx, requests answered otherwise or failed)."""
    with tempfile.TemporaryDirectory(prefix="wrk-bench-") as tmp:
        (Path(tmp) / "bodies").write_text("\n".join(json.dumps(b) for b in bodies))
        (Path(tmp) / "post.lua").write_text(LUA)
        args = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "-s", f"{tmp}/post.lua", url]
        args += ["--", f"{tmp}/bodies", *([token] if token else [])]
        out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    found = re.search(r"(\d+) requests in", out)
    if found is None:
        raise RuntimeError(f"wrk said: {out}")
    total = int(found.group(1))
    bad = sum(int(x) for x in re.findall(r"Non-2xx or 3xx responses: (\d+)", out))
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    failed = sum(int(x) for x in errors.groups()) if errors else 0
    return total - bad, bad + failed


def stored_events(o: Opsdesk) -> int:
    with o.db.session() as s:
        return s.scalar(select(func.count()).select_from(Event)) or 0


def bodies_for(per: int, make: Any) -> list[Any]:
    if per == 1:
        return [make(i) for i in range(ALERTS)]
    return [[make(b * per + j) for j in range(per)] for b in range(ALERTS // per)]


def bench_opsdesk(db: str, seconds: int, connections: int) -> dict[str, float]:
    o = Opsdesk(PG_URL if db == "postgresql" else None, split=True)
    o.start()
    out: dict[str, float] = {}
    try:
        url = f"{o.base}/api/v1/events"
        wrk(url, bodies_for(1, event)[:50], o.token, 1, 2)  # the token and names into the caches
        asyncio.run(o.drained())
        print(f"opsdesk on {db}, web + pipeline processes: wrk, {connections} connections, {seconds} s each")
        for label, per in (("single", 1), ("batch100", 100)):
            before = stored_events(o)
            (web0, pipe0), t0 = o.cpu(), time.perf_counter()
            ok, bad = wrk(url, bodies_for(per, event), o.token, seconds, connections)
            took = time.perf_counter() - t0
            web = o.cpu()[0] - web0
            asyncio.run(o.drained())
            pipe = o.cpu()[1] - pipe0
            stored = stored_events(o) - before
            n = ok * per
            out[label] = n / web
            check = "OK" if stored >= n else "LOST EVENTS"
            print(
                f"  {label:8s} {n / took:8.0f} events/s answered 202  {n / web:8.0f} events/CPU-s in the web"
                f" process, {n / pipe:8.0f} in the pipeline  ({bad} not 2xx; {stored} stored: {check})"
            )
    finally:
        o.stop()
    return out


def bench_alertmanager(seconds: int, connections: int) -> dict[str, float]:
    out: dict[str, float] = {}
    with alertmanager() as (proc, port):
        url = f"http://127.0.0.1:{port}/api/v2/alerts"
        ends = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
        print(f"alertmanager: wrk, {connections} connections, {seconds} s each (in memory only)")
        for label, per in (("single", 1), ("batch100", 100)):
            alerts = bodies_for(per, lambda i: {**am_alert(i), "endsAt": ends})
            cpu0, t0 = cpu_seconds(proc.pid), time.perf_counter()
            ok, bad = wrk(url, [[a] for a in alerts] if per == 1 else alerts, None, seconds, connections)
            took = time.perf_counter() - t0
            cpu = cpu_seconds(proc.pid) - cpu0
            n = ok * per
            out[label] = n / cpu
            print(
                f"  {label:8s} {n / took:8.0f} alerts/s answered  {n / cpu:8.0f} alerts/CPU-s"
                f"  ({bad} not 2xx)"
            )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is not installed: apt-get install wrk")
    dbs = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    ours = {db: bench_opsdesk(db, args.seconds, args.connections) for db in dbs}
    am = bench_alertmanager(args.seconds, args.connections)
    print("web process per CPU-second against alertmanager's (targets: single 1x, batch100 4x):")
    for db, figures in ours.items():
        print("  " + db + ": " + ", ".join(f"{k} {v / am[k]:.2f}x" for k, v in figures.items()))


if __name__ == "__main__":
    main()
