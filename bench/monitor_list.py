"""The monitor list page at scale: ``python bench/monitor_list.py [--monitors N] [--repeat R]``.

Builds a fresh SQLite database in a temporary directory (or uses an empty PostgreSQL database given
as OPSDESK_DATABASE_URL), migrated with the real migrations, and fills it with bulk inserts: N
monitors of mixed types and states over 20 services, 90 days of ``monitor_daily`` rows for each
(N x 90 rows), and a few state changes each. Then it asks the real application (FastAPI's
TestClient, an admin's API token) for the list page: the first page, filtered pages, a search, a
deep page, and one monitor's detail page, R times each, and prints the median and p95 in ms.
The goal: every list page under 1 s at 10,000 monitors.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import insert

from opsdesk.auth import service as auth
from opsdesk.auth.schemas import UserIn
from opsdesk.cmdb import service as cmdb
from opsdesk.cmdb.schemas import ServiceIn
from opsdesk.core import migrate
from opsdesk.core.actor import SYSTEM, Role
from opsdesk.core.clock import ManualClock
from opsdesk.core.db import Database
from opsdesk.core.settings import Settings
from opsdesk.monitoring.models import DailyStats, Monitor, StateChange
from opsdesk.web.app import create_app

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
TYPES = [("http", 60), ("tcp", 15), ("ping", 10), ("dns", 5), ("tls", 5), ("heartbeat", 5)]
STATES = [("up", 90), ("down", 3), ("degraded", 3), ("unknown", 2), ("paused", 2)]
CHUNK = 20_000


def pick(rng: random.Random, weighted: list[tuple[str, int]]) -> str:
    return rng.choices([v for v, _ in weighted], [w for _, w in weighted])[0]


def target(kind: str, i: int) -> str:
    host = f"host-{i:05d}.dc{i % 4}.example.org"
    return {
        "http": f"https://{host}/health",
        "tcp": f"{host}:5432",
        "tls": f"{host}:443",
        "heartbeat": f"nightly job {i}",
    }.get(kind, host)


def populate(db: Database, monitors: int, days: int) -> str:
    """Fill the database; returns an admin's API token."""
    rng = random.Random(42)
    started = time.perf_counter()
    with db.session() as s:
        admin = auth.create_user(
            s,
            UserIn(email="admin@example.org", name="Admin", role=Role.admin, password="bench password 1"),
            actor=SYSTEM,
            now=NOW,
        )
        _, token = auth.create_token(s, admin, "bench", actor=SYSTEM, now=NOW)
        services = [
            cmdb.create_service(s, ServiceIn(name=f"service-{n:02d}"), actor=SYSTEM, now=NOW).id
            for n in range(20)
        ]
    rows = []
    for i in range(monitors):
        kind = pick(rng, TYPES)
        state = pick(rng, STATES)
        prefix = {"http": "web", "tcp": "db", "heartbeat": "job"}.get(kind, kind)
        rows.append(
            {
                "name": f"{prefix}-{i:05d}",
                "type": kind,
                "target": target(kind, i),
                "config": {},
                "secrets": {},
                "interval_seconds": 60,
                "timeout_seconds": 10.0,
                "failures_before_down": 3,
                "service_id": services[i % len(services)] if i % 5 else None,
                "severity": "critical",
                "enabled": state != "paused",
                "status": state,
                "consecutive_failures": 3 if state == "down" else 0,
                "status_changed_at": NOW - timedelta(hours=rng.randint(1, 2000)),
                "last_check_at": NOW - timedelta(seconds=rng.randint(1, 90)),
                "next_check_at": NOW + timedelta(seconds=rng.randint(1, 60)),
                "last_latency_ms": round(rng.lognormvariate(3.5, 0.6), 1),
                "last_message": "HTTP 200" if state == "up" else "connection refused",
                "alert_firing": state == "down",
                "recent": "1" * 21,
                "flapping": rng.random() < 0.005,
                "check_state": {},
                "locations": ["local"],
                "quorum": 1,
                "created_at": NOW - timedelta(days=days + 10),
                "updated_at": NOW,
            }
        )
    with db.session() as s:
        for n in range(0, len(rows), CHUNK):
            s.execute(insert(Monitor), rows[n : n + CHUNK])
    with db.session() as s:
        ids = list(s.scalars(Monitor.__table__.select().with_only_columns(Monitor.id).order_by(Monitor.id)))
    print(f"  {monitors:,} monitors in {time.perf_counter() - started:.1f} s")

    started = time.perf_counter()
    today = NOW.date()
    batch: list[dict[str, object]] = []
    total = 0
    with db.session() as s:
        for mid in ids:
            flaky = rng.random() < 0.1
            for d in range(days):
                failures = 0
                if flaky and rng.random() < 0.2:
                    failures = rng.choice((1, 2, 5, 20, 200))
                batch.append(
                    {
                        "monitor_id": mid,
                        "day": today - timedelta(days=d),
                        "checks": 1440,
                        "failures": failures,
                        "latency_sum_ms": 1440 * 42.0,
                        "latency_count": 1440 - failures,
                    }
                )
            if len(batch) >= CHUNK:
                s.execute(insert(DailyStats), batch)
                total += len(batch)
                batch = []
        if batch:
            s.execute(insert(DailyStats), batch)
            total += len(batch)
    print(f"  {total:,} monitor_daily rows in {time.perf_counter() - started:.1f} s")

    started = time.perf_counter()
    changes = []
    for mid in ids:
        at = NOW - timedelta(days=days)
        for old, new in (("unknown", "up"), ("up", "down"), ("down", "up")):
            at += timedelta(hours=rng.randint(1, 700))
            changes.append(
                {"monitor_id": mid, "at": at, "old": old, "new": new, "flapping": False, "message": ""}
            )
    with db.session() as s:
        for n in range(0, len(changes), CHUNK):
            s.execute(insert(StateChange), changes[n : n + CHUNK])
    print(f"  {len(changes):,} state changes in {time.perf_counter() - started:.1f} s")
    return token


def measure(client: TestClient, headers: dict[str, str], path: str, repeat: int) -> tuple[float, float, int]:
    r = client.get(path, headers=headers)  # warm up (and check it works)
    if r.status_code != 200:
        raise RuntimeError(f"GET {path}: {r.status_code} {r.text[:300]}")
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        r = client.get(path, headers=headers)
        times.append((time.perf_counter() - started) * 1000)
        assert r.status_code == 200
    times.sort()
    p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
    return statistics.median(times), p95, len(r.content)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--monitors", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="opsdesk-bench-list-"))
    url = os.environ.get("OPSDESK_DATABASE_URL") or f"sqlite:///{tmp / 'opsdesk.db'}"
    db = Database(url)
    migrate.upgrade(db.engine)
    print(
        f"opsdesk monitor list benchmark: {args.monitors:,} monitors, {args.days} days of daily stats, "
        f"database {db.engine.dialect.name}, python {sys.version.split()[0]}"
    )
    token = populate(db, args.monitors, args.days)
    settings = Settings(data_dir=tmp, database_url=url)
    app = create_app(settings, db=db, clock=ManualClock(NOW), roles=set())
    headers = {"Authorization": f"Bearer {token}", "accept": "text/html"}
    pages = [
        ("first page", "/monitors"),
        ("state tab: down", "/monitors?status=down"),
        ("type + service", "/monitors?type=tcp&service_id=3"),
        ("search", "/monitors?q=host-0123"),
        ("page 100", "/monitors?page=100"),
        ("page 150, by last check", "/monitors?sort=last_check&page=150"),
        ("one monitor's page", f"/monitors/{max(1, args.monitors // 2)}"),
    ]
    worst = 0.0
    try:
        with TestClient(app) as client:
            print(f"  {'page':26s} {'median':>9s} {'p95':>9s} {'size':>9s}   ({args.repeat} requests each)")
            for label, path in pages:
                median, p95, size = measure(client, headers, path, args.repeat)
                if path.startswith("/monitors?") or path == "/monitors":
                    worst = max(worst, p95)
                print(f"  {label:26s} {median:7.1f} ms {p95:7.1f} ms {size / 1024:6.0f} KB   GET {path}")
        verdict = "under" if worst < 1000 else "OVER"
        print(f"  slowest list page p95: {worst:.1f} ms ({verdict} the 1 s goal)")
    finally:
        db.dispose()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
