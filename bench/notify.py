"""Paging speed and escalation timing: ``python bench/notify.py``.

    python bench/notify.py [--incidents 1000] [--people 5] [--db sqlite|postgresql|both]

For each database:

1. **Wall clock, real server.** ``--incidents`` incidents on a service whose escalation policy pages
   a team of ``--people``, each with a webhook contact method pointing at a loopback receiver in
   this process (it checks the Standard Webhooks signature of every 50th delivery with the
   reference library). All escalations are due at the same instant T, a few seconds ahead; then a
   real ``opsdesk serve --roles notify`` starts. Reported: the escalation timing error, from T to
   the first notification of each incident arriving at the receiver (p50, p99, max: wall time,
   including the step, the outbox and the HTTP delivery), and from T to the page's own timestamp
   (opsdesk's clock); notifications delivered per second (first to last arrival) and per CPU-second
   of the opsdesk process; and a count check: every page arrived, none twice.
2. **Injectable clock.** The same number of incidents through a three-level policy, stepped in
   this process with a manual clock advanced in the notify role's own cadence (0.25 s): the error
   of every step against its scheduled time, in clock seconds, and the wall time of the longest
   tick.

Everything stays on 127.0.0.1 and stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aiohttp import web
from sqlalchemy import create_engine, select, text, update

from opsdesk.auth import service as auth
from opsdesk.auth.schemas import TeamIn, UserIn
from opsdesk.cmdb import service as cmdb
from opsdesk.cmdb.schemas import ServiceIn
from opsdesk.core.actor import SYSTEM
from opsdesk.core.clock import ManualClock
from opsdesk.core.db import Database
from opsdesk.core.migrate import upgrade
from opsdesk.core.settings import Settings
from opsdesk.incidents import service as incidents
from opsdesk.notify import rules
from opsdesk.oncall import escalation
from opsdesk.oncall.models import Escalation, Page
from opsdesk.oncall.schemas import PolicyIn

OPSDESK = str(Path(sys.executable).parent / "opsdesk")
PG_URL = os.environ.get("BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
TICK = os.sysconf("SC_CLK_TCK")
LEAD = 2.0  # seconds between making the escalations due and their due time


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:15]) / TICK


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))]


class Receiver:
    def __init__(self, secret: str) -> None:
        from standardwebhooks import Webhook

        self.verifier = Webhook(secret)
        self.port = free_port()
        self.arrivals: dict[str, tuple[float, int]] = {}  # webhook-id -> (wall time, incident id)
        self.repeats = 0
        self.bad = 0
        self.n = 0
        self.runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        at = time.time()
        msg_id = request.headers["webhook-id"]
        self.n += 1
        if self.n % 50 == 1:
            try:
                self.verifier.verify(body, dict(request.headers))
            except Exception:
                self.bad += 1
        if msg_id in self.arrivals:
            self.repeats += 1
        else:
            incident = int(body.split(b'"incident":{"id":', 1)[1].split(b",", 1)[0])
            self.arrivals[msg_id] = (at, incident)
        return web.Response(status=204)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self.runner:
            await self.runner.cleanup()


def make_db(kind: str, tmp: Path) -> tuple[str, str | None]:
    if kind == "sqlite":
        return f"sqlite:///{tmp / 'opsdesk.db'}", None
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    with create_engine(PG_URL).begin() as c:
        c.execute(text(f"CREATE SCHEMA {schema}"))
    sep = "&" if "?" in PG_URL else "?"
    return f"{PG_URL}{sep}options=-csearch_path%3D{schema}", schema


def seed(db: Database, now: datetime, people: int, url: str, secret: str, levels: list[int]) -> int:
    """A team of ``people`` with webhook contact methods; a policy; a service. Returns its id."""
    with db.session() as s:
        users = []
        for i in range(people):
            u = auth.create_user(
                s,
                UserIn(email=f"p{i}@example.org", name=f"Person {i}", role="responder"),
                actor=SYSTEM,
                now=now,
            )
            ch, _ = rules.create_channel(
                s,
                rules.ChannelIn(name="hook", kind="webhook", url=url, secrets=[secret]),
                owner_id=u.id,
                actor=SYSTEM,
                now=now,
            )
            rules.add_rule(s, u.id, rules.RuleIn(channel_id=ch.id), actor=SYSTEM, now=now)
            users.append(u.id)
        team = auth.create_team(s, TeamIn(name="oncall", member_ids=users), actor=SYSTEM, now=now)
        policy = escalation.create(
            s,
            PolicyIn.model_validate(
                {
                    "name": "bench",
                    "levels": [
                        {"timeout_minutes": m, "targets": [{"type": "team", "id": team.id}]} for m in levels
                    ],
                }
            ),
            actor=SYSTEM,
            now=now,
        )
        svc = cmdb.create_service(
            s, ServiceIn(name="svc", escalation_policy_id=policy.id), actor=SYSTEM, now=now
        )
        return svc.id


def declare(db: Database, service_id: int, n: int, now: datetime) -> None:
    with db.session() as s:
        for i in range(n):
            incidents.declare(
                s, title=f"incident {i}", service_id=service_id, severity="critical", actor=SYSTEM, now=now
            )


async def wall(kind: str, n: int, people: int) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="opsdesk-bench-notify-"))
    url, schema = make_db(kind, tmp)
    secret = rules.new_secret()
    receiver = Receiver(secret)
    await receiver.start()
    settings = Settings(data_dir=tmp, database_url=url)
    settings.configure_secrets()
    db = Database(url)
    upgrade(db.engine)
    proc = None
    try:
        now = datetime.now(UTC)
        svc = seed(db, now, people, f"http://127.0.0.1:{receiver.port}/hook", secret, [60])
        declare(db, svc, n, now)
        with db.session() as s:  # held back until the server is up
            s.execute(update(Escalation).values(next_at=now + timedelta(hours=1)))
        env = {k: v for k, v in os.environ.items() if not k.startswith("OPSDESK_")}
        env.update(
            OPSDESK_DATA_DIR=str(tmp),
            OPSDESK_DATABASE_URL=url,
            OPSDESK_ROLES="notify",
            OPSDESK_LOG_LEVEL="WARNING",
            OPSDESK_BASE_URL="http://opsdesk.bench",
        )
        proc = subprocess.Popen(
            [OPSDESK, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        settle = time.monotonic() + 30  # started: its CPU stops climbing
        last = -1.0
        while time.monotonic() < settle:
            await asyncio.sleep(0.5)
            used = cpu_seconds(proc.pid)
            if used - last < 0.02:
                break
            last = used
        cpu0 = cpu_seconds(proc.pid)
        due = datetime.now(UTC) + timedelta(seconds=LEAD)
        with db.session() as s:
            s.execute(update(Escalation).values(next_at=due))
        expected = n * people
        made: dict[int, float] = {}  # page id -> wall time the bench first saw it committed
        deadline = time.monotonic() + LEAD + 180
        while len(receiver.arrivals) < expected and time.monotonic() < deadline:
            with db.session() as s:
                for pid in s.scalars(select(Page.id).where(Page.id > max(made, default=0))):
                    made[pid] = time.time()
            await asyncio.sleep(0.02)
        await asyncio.sleep(1.0)  # late repeats, if any, would show now
        cpu = cpu_seconds(proc.pid) - cpu0
        t_due = due.timestamp()
        first: dict[int, float] = {}
        for at, inc in receiver.arrivals.values():
            first[inc] = min(first.get(inc, at), at)
        wall_err = [first[i] - t_due for i in first]
        with db.session() as s:
            clock_err = [(p.at - due).total_seconds() for p in s.scalars(select(Page))]
        seen_err = [at - t_due for at in made.values()]
        times = sorted(at for at, _ in receiver.arrivals.values())
        got = len(receiver.arrivals)
        rate = (got - 1) / (times[-1] - times[0]) if got > 1 and times[-1] > times[0] else float("nan")
        print(f"opsdesk on {kind}: {n} incidents due at once, each paging {people} people by signed webhook")
        print(
            f"  escalation error, wall (due -> first webhook at the receiver): p50 {pct(wall_err, 0.5):.3f} s"
            f"  p99 {pct(wall_err, 0.99):.3f} s  max {max(wall_err):.3f} s"
        )
        print(
            f"  escalation error, wall (due -> page committed, seen by polling every 20 ms):"
            f" p50 {pct(seen_err, 0.5):.3f} s  p99 {pct(seen_err, 0.99):.3f} s  max {max(seen_err):.3f} s"
        )
        print(
            f"  escalation error, opsdesk's clock (due -> the step's time): p50 {pct(clock_err, 0.5):.3f} s"
            f"  p99 {pct(clock_err, 0.99):.3f} s  max {max(clock_err):.3f} s"
        )
        print(
            f"  delivered {got} notifications: {rate:.0f}/s (first to last arrival),"
            f" {got / cpu if cpu else float('nan'):.0f} per CPU-second of opsdesk ({cpu:.2f} CPU-s)"
        )
        ok = got == expected and receiver.repeats == 0 and receiver.bad == 0 and len(first) == n
        print(
            f"  count: {got}/{expected} arrived, {receiver.repeats} repeated, {receiver.bad} bad signatures"
            f" (of {receiver.n // 50 + 1} checked): {'OK' if ok else 'FAILED'}"
        )
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
        await receiver.stop()
        db.dispose()
        if schema:
            with create_engine(PG_URL).begin() as c:
                c.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        shutil.rmtree(tmp, ignore_errors=True)


def injected(kind: str, n: int, people: int) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="opsdesk-bench-notify-"))
    url, schema = make_db(kind, tmp)
    settings = Settings(data_dir=tmp, database_url=url)
    settings.configure_secrets()
    db = Database(url)
    upgrade(db.engine)
    clock = ManualClock(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
    try:
        svc = seed(db, clock.now(), people, "http://127.0.0.1:9/hook", rules.new_secret(), [1, 2, 1])
        declare(db, svc, n, clock.now())
        errors: list[float] = []
        longest = 0.0
        ticks = 0
        while True:
            started = time.perf_counter()
            with db.session() as s:
                steps = escalation.run_due(s, now=clock.now(), base_url="http://opsdesk.bench", limit=n)
            longest = max(longest, time.perf_counter() - started)
            errors += [late for _, late in steps]
            ticks += 1
            with db.session() as s:
                if escalation.next_due(s) is None:
                    break
            clock.advance(0.25)
        print(f"opsdesk on {kind}, injectable clock: {n} incidents through 3 levels, ticks every 0.25 s")
        print(
            f"  {len(errors)} steps; error against the schedule: p50 {pct(errors, 0.5):.3f} s"
            f"  p99 {pct(errors, 0.99):.3f} s  max {max(errors):.3f} s (clock seconds);"
            f" longest tick {longest:.2f} s of wall time over {ticks} ticks"
        )
    finally:
        db.dispose()
        if schema:
            with create_engine(PG_URL).begin() as c:
                c.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--incidents", type=int, default=1000)
    ap.add_argument("--people", type=int, default=1, help="people paged per incident (a team of them)")
    ap.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    args = ap.parse_args()
    kinds = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    for kind in kinds:
        asyncio.run(wall(kind, args.incidents, args.people))
        injected(kind, args.incidents, args.people)


if __name__ == "__main__":
    main()
