"""Write throughput of the SQL metrics store: ``python bench/metrics_write.py [--url URL]``.

Writes ``--batches`` batches of ``--batch`` samples (``--series`` series with 3 labels each, one
sample per series per scrape, timestamps advancing 15 s per scrape) to a fresh, migrated
database, and prints samples/s for the first batch (series creation) and the steady state.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from opsdesk.core import migrate
from opsdesk.core.db import Database
from opsdesk.metrics.samples import Sample
from opsdesk.metrics.sqlstore import SQLMetricsStore


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--url", default="")
    p.add_argument("--series", type=int, default=50_000)
    p.add_argument("--batch", type=int, default=50_000)
    p.add_argument("--batches", type=int, default=20)
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = a.url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        db = Database(url)
        migrate.upgrade(db.engine)
        store = SQLMetricsStore(db)
        keys = [
            (f"node_metric_{i % 50}", (("instance", f"host-{i // 50}:9100"), ("job", "node"), ("mode", "x")))
            for i in range(a.series)
        ]
        t0 = 1_790_000_000_000
        n = 0
        scrape = 0
        timings: list[float] = []
        cpus: list[float] = []
        for _ in range(a.batches):
            batch = []
            while len(batch) < a.batch:
                ts = t0 + scrape * 15_000
                batch.extend(Sample(nm, lb, ts, float(scrape + j)) for j, (nm, lb) in enumerate(keys))
                scrape += 1
            batch = batch[: a.batch]
            started, cpu = time.perf_counter(), time.process_time()
            n += store.write(batch)
            timings.append(time.perf_counter() - started)
            cpus.append(time.process_time() - cpu)
        first, rest = timings[0], timings[1:]
        kind = url.split(":")[0]
        print(f"{kind}: first batch (creates {a.series:,} series): {a.batch / first:,.0f} samples/s")
        if rest:
            med = statistics.median(rest)
            overall = a.batch * len(rest) / sum(rest)
            print(
                f"steady state, {len(rest)} batches of {a.batch:,}: {overall:,.0f} samples/s"
                f" overall, {a.batch / med:,.0f} samples/s median batch,"
                f" {a.batch * len(rest) / sum(cpus[1:]):,.0f} samples per CPU-second ({n:,} stored)"
            )
        t = time.perf_counter()
        counts = store.maintain(datetime.fromtimestamp((t0 + scrape * 15_000) / 1000 + 600, UTC))
        print(f"maintain (moves the buffer, builds rollups): {time.perf_counter() - t:.2f} s, {counts}")
        db.dispose()


if __name__ == "__main__":
    main()
