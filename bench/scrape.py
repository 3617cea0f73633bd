"""Scrape path, parse and store: ``python bench/scrape.py [--targets N] [--rounds R] [--url DB]``.

Starts Debian's real ``prometheus-node-exporter`` on a free loopback port and saves one of its
pages (about 500 samples). Then, as the prober does for ``prometheus`` monitors, it runs N
targets' scrapes per round through the check's own page processing (our exposition parser,
instance relabelling, synthetic ``up``/``scrape_*`` samples, two threshold rules), labels every
sample with its monitor (``job``), and writes each round to the SQL metrics store on a fresh
SQLite database (or ``--url``) in one batch, like the prober's flush, with the garbage collector
tuned as ``opsdesk serve`` tunes it (opsdesk.runtime.tuning). Prints samples/s parsed and
stored (wall and per CPU-second), and the same parse with prometheus-client's parser for
comparison. Everything stays on 127.0.0.1 and stops by itself.
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from opsdesk.core import migrate
from opsdesk.core.db import Database
from opsdesk.metrics.sqlstore import SQLMetricsStore
from opsdesk.monitoring.checks.prometheus import PrometheusConfig, process
from opsdesk.monitoring.scheduler import with_job
from opsdesk.runtime.tuning import tune_gc

NODE_EXPORTER = "/usr/bin/prometheus-node-exporter"
RULES = [
    {
        "name": "disk_low",
        "expr": 'node_filesystem_avail_bytes{fstype!~"tmpfs|ramfs"} / node_filesystem_size_bytes * 100 < 10',
    },
    {"name": "load_high", "expr": "node_load1 > 64"},
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fetch_page() -> bytes:
    port = free_port()
    proc = subprocess.Popen(
        [NODE_EXPORTER, f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
                    return bytes(r.read())
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("node_exporter did not answer")
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--targets", type=int, default=200, help="scrape targets (monitors) per round")
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--url", default="", help="database URL (default: a fresh SQLite file)")
    a = p.parse_args()
    page = fetch_page()
    tune_gc()  # as opsdesk serve does
    config = PrometheusConfig.model_validate({"rules": RULES})
    with tempfile.TemporaryDirectory() as tmp:
        db = Database(a.url or f"sqlite:///{Path(tmp) / 'bench.db'}")
        migrate.upgrade(db.engine)
        store = SQLMetricsStore(db)
        t0 = int(time.time() * 1000) - a.rounds * 15_000
        stored = 0
        times = []  # (wall, cpu, samples) per round after the first (which creates the series)
        for rnd in range(a.rounds + 1):
            wall, cpu = time.perf_counter(), time.process_time()
            batch = []
            for target in range(a.targets):
                outcome = process(
                    config, page, f"10.0.{target // 250}.{target % 250}:9100", t0 + rnd * 15_000, 0.01, 200
                )
                assert outcome.ok, outcome.message
                batch.extend(with_job(outcome.samples, f"node-{target}"))
            n = store.write(batch)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            stored += n
            if rnd:
                times.append((wall, cpu, len(batch)))
        samples = sum(x[2] for x in times)
        wall = sum(x[0] for x in times)
        cpu = sum(x[1] for x in times)
        per_page = len(batch) // a.targets
        print(
            f"opsdesk scrape benchmark: node_exporter page of {len(page):,} bytes, "
            f"{per_page} samples per scrape with synthetic ones; {a.targets} targets x {a.rounds} rounds; "
            f"store {db.engine.dialect.name}"
        )
        print(
            f"  parsed + rules + stored   {samples / wall:10,.0f} samples/s   "
            f"({samples / cpu:,.0f} per CPU-second)"
        )
        started = time.process_time()
        text = page.decode()
        reps = max(1, a.targets // 20)
        for _ in range(reps):
            count = sum(len(f.samples) for f in text_string_to_metric_families(text))
        pc = time.process_time() - started
        print(f"  prometheus-client parse   {count * reps / pc:10,.0f} samples per CPU-second (parse only)")
        print(
            f"  rows in the store         {stored:,} samples written, "
            f"{len(store.series(limit=1_000_000)):,} series"
        )
        store.close()
        db.dispose()


if __name__ == "__main__":
    main()
