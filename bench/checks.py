"""HTTP checks at scale through the real prober: ``python bench/checks.py [--monitors N] [--interval S]``.

Starts Debian's nginx on loopback (a small static page), creates N HTTP monitors on a fresh SQLite
database, runs ``opsdesk serve`` with the probe role, and over a measured window reads the
process's CPU time and peak RSS from /proc and the checks run and their scheduling lag from its
/metrics. Then, in the same run, Debian's prometheus-blackbox-exporter probes the same page through
its ``/probe`` endpoint at the prober's concurrency, for as many probes, and the table compares
checks (probes) per CPU-second. Everything stays on 127.0.0.1, stops by itself, ends only the
processes it started and removes its temporary directory.

By default opsdesk runs with ``--roles web,probes``: /metrics (the lag histogram) is served by the
web role only, and the web role is idle apart from the two scrapes, which are made outside the CPU
window. ``--roles probes`` measures the prober alone (asyncio's default loop, no lag figures).

The monitors' first checks are spread evenly over one interval, as in a steady state. ``--quick``
is a smoke run (1,000 monitors every 5 s, 15 s window). ``--py-spy FILE`` (py-spy installed into
.venv) profiles opsdesk during the window and prints microseconds of CPU per check by function.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import inspect
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import aiohttp
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select, update

OPSDESK = str(Path(sys.executable).parent / "opsdesk")
NGINX = "/usr/sbin/nginx"
BLACKBOX = "/usr/bin/prometheus-blackbox-exporter"
TICK = os.sysconf("SC_CLK_TCK")
PAGE = (
    b"<!DOCTYPE html>\n<html><head><title>shop</title></head>\n<body><h1>Welcome to the shop</h1>\n"
    + b"<p>All systems operational.</p>\n" * 12
    + b"</body></html>\n"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- /proc --------------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """utime + stime of the process (all its threads), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def cpu_split(pid: int) -> tuple[float, float]:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) / TICK, int(fields[12]) / TICK


def status_kb(pid: int, key: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def tree_cpu(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        with contextlib.suppress(OSError):
            total += cpu_seconds(pid)
    return total


def client_time_wait(server_port: int) -> int:
    """TIME_WAIT sockets on the client side of connections to ``server_port``: near zero when the
    server closes first (``Connection: close``), thousands when the client does."""
    count = 0
    with contextlib.suppress(OSError), open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            if fields[3] == "06" and int(fields[2].rsplit(":", 1)[1], 16) == server_port:
                count += 1
    return count


def children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            out += [int(c) for c in (task / "children").read_text().split()]
    return out


# --- processes we start, and only those ---------------------------------------------------------


@dataclass
class Procs:
    logs: Path  # each process's output goes to a file here (a pipe nobody reads would fill up)
    started: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(self, args: list[str], **kw: object) -> subprocess.Popen[bytes]:
        log = self.logs / f"{Path(args[0]).name}-{len(self.started)}.log"
        with open(log, "wb") as out:
            p = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, **kw)  # type: ignore[call-overload]
        p.log = log  # type: ignore[attr-defined]
        self.started.append(p)
        return p

    def stop(self, p: subprocess.Popen[bytes], grace: float = 20) -> None:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=5)

    def stop_all(self) -> None:
        for p in reversed(self.started):
            self.stop(p)


async def wait_http(url: str, seconds: float, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + seconds
    async with aiohttp.ClientSession() as s:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                log = getattr(proc, "log", None)
                err = log.read_text(errors="replace") if log is not None else ""
                raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode}: {err[-2000:]}")
            with contextlib.suppress(aiohttp.ClientError, OSError):
                async with s.get(url) as r:
                    if r.status < 500:
                        return
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {seconds:g}s")


# --- nginx and blackbox configuration -----------------------------------------------------------


def nginx_conf(tmp: Path, port: int, workers: str) -> Path:
    www = tmp / "www"
    www.mkdir()
    (www / "index.html").write_bytes(PAGE)
    conf = tmp / "nginx.conf"
    conf.write_text(
        f"""
worker_processes {workers};
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 16384; multi_accept on; }}
http {{
  access_log off;
  client_body_temp_path {tmp}/ngx-body;
  proxy_temp_path {tmp}/ngx-proxy;
  fastcgi_temp_path {tmp}/ngx-fastcgi;
  uwsgi_temp_path {tmp}/ngx-uwsgi;
  scgi_temp_path {tmp}/ngx-scgi;
  open_file_cache max=16 inactive=60s;
  open_file_cache_valid 60s;
  server {{
    listen 127.0.0.1:{port} backlog=8192 reuseport;
    root {www};
    index index.html;
    default_type text/html;
  }}
}}
"""
    )
    return conf


def blackbox_conf(tmp: Path, timeout: float) -> Path:
    conf = tmp / "blackbox.yml"
    conf.write_text(
        f"""modules:
  http_2xx:
    prober: http
    timeout: {timeout:g}s
    http:
      preferred_ip_protocol: ip4
      ip_protocol_fallback: false
"""
    )
    return conf


# --- opsdesk's side ------------------------------------------------------------------------------


def prober_concurrency() -> int:
    from opsdesk.monitoring.scheduler import Scheduler

    default = inspect.signature(Scheduler.__init__).parameters["concurrency"].default
    return int(default)


def create_monitors(db_url: str, count: int, target: str, interval: int, timeout: float) -> float:
    """N monitors through the service layer, their first checks spread evenly over one interval."""
    from opsdesk.core.actor import SYSTEM
    from opsdesk.core.clock import SystemClock
    from opsdesk.core.db import Database
    from opsdesk.monitoring import service
    from opsdesk.monitoring.models import Monitor
    from opsdesk.monitoring.schemas import MonitorIn

    started = time.perf_counter()
    db = Database(db_url)
    now = SystemClock().now()
    ids = []
    try:
        for first in range(0, count, 1000):
            with db.session() as s:
                for i in range(first, min(count, first + 1000)):
                    m = service.create_monitor(
                        s,
                        MonitorIn(
                            name=f"shop-{i:05d}",
                            type="http",
                            target=target,
                            interval_seconds=interval,
                            timeout_seconds=timeout,
                        ),
                        actor=SYSTEM,
                        now=now,
                    )
                    ids.append(m.id)
        # A steady state, as after a while in production: due times spread over the interval,
        # not all 10,000 due in the same instant. The first ones are due a few seconds from now.
        start = now + timedelta(seconds=3)
        with db.session() as s:
            s.execute(
                update(Monitor),
                [
                    {"id": mid, "next_check_at": start + timedelta(seconds=interval * i / count)}
                    for i, mid in enumerate(ids)
                ],
            )
    finally:
        db.dispose()
    return time.perf_counter() - started


def count_results(db_url: str) -> int:
    from opsdesk.core.db import Database
    from opsdesk.monitoring.models import CheckResult

    db = Database(db_url)
    try:
        with db.session() as s:
            return int(s.scalar(select(func.count()).select_from(CheckResult)) or 0)
    finally:
        db.dispose()


@dataclass
class Scrape:
    checks: dict[str, float]  # outcome -> count, for type http
    lag_buckets: list[tuple[float, float]]  # (upper bound, cumulative count)


async def scrape(url: str) -> Scrape:
    async with aiohttp.ClientSession() as s, s.get(url) as r:
        text = await r.text()
        if r.status != 200:
            raise RuntimeError(f"/metrics answered {r.status}: {text[:200]}")
    checks: dict[str, float] = {}
    buckets: list[tuple[float, float]] = []
    for fam in text_string_to_metric_families(text):
        for sample in fam.samples:
            if sample.name == "opsdesk_checks_total" and sample.labels.get("type") == "http":
                checks[sample.labels["outcome"]] = checks.get(sample.labels["outcome"], 0) + sample.value
            elif sample.name == "opsdesk_check_lag_seconds_bucket":
                buckets.append((float(sample.labels["le"]), sample.value))
    buckets.sort()
    return Scrape(checks, buckets)


def quantile(before: list[tuple[float, float]], after: list[tuple[float, float]], q: float) -> float:
    """The q-quantile of the histogram's change between two scrapes, interpolated in its bucket."""
    old = dict(before)
    delta = [(le, n - old.get(le, 0.0)) for le, n in after]
    total = delta[-1][1] if delta else 0.0
    if total <= 0:
        return float("nan")
    rank = q * total
    lo, prev = 0.0, 0.0
    for le, cum in delta:
        if cum >= rank:
            if le == float("inf"):
                return float("inf")
            return lo + (le - lo) * ((rank - prev) / (cum - prev) if cum > prev else 1.0)
        lo, prev = le, cum
    return float("inf")


@dataclass
class OpsdeskFigures:
    checks: int
    down: int
    wall: float
    cpu: float
    user: float
    system: float
    lag_p50: float
    lag_p99: float
    peak_rss_mb: float
    rss_mb: float
    results_rows: int
    nginx_cpu: float
    setup_seconds: float
    client_time_wait: int


async def run_opsdesk(
    args: argparse.Namespace, tmp: Path, procs: Procs, target: str, nginx_pids: list[int]
) -> OpsdeskFigures:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPSDESK_")}
    env.update(
        OPSDESK_DATA_DIR=str(tmp),
        OPSDESK_PORT=str(port),
        OPSDESK_LOG_LEVEL="WARNING",
        OPSDESK_METRICS_PUBLIC="true",
    )
    db_url = f"sqlite:///{tmp / 'opsdesk.db'}"
    env["OPSDESK_DATABASE_URL"] = db_url
    subprocess.run([OPSDESK, "db", "upgrade"], env=env, check=True, capture_output=True)
    os.environ.update(
        {k: v for k, v in env.items() if k.startswith("OPSDESK_")}
    )  # for in-process service calls
    setup = create_monitors(db_url, args.monitors, target, args.interval, args.timeout)
    print(f"  created {args.monitors:,} monitors in {setup:.1f} s", flush=True)

    server = procs.start([OPSDESK, "serve", "--roles", args.roles], env=env)
    web = "web" in args.roles.split(",")
    metrics_url = f"http://127.0.0.1:{port}/metrics"
    if web:
        await wait_http(f"http://127.0.0.1:{port}/healthz", 60, server)
    print(
        f"  opsdesk serve --roles {args.roles} (pid {server.pid}); warming up {args.warmup:g} s", flush=True
    )
    await asyncio.sleep(args.warmup)
    if server.poll() is not None:
        raise RuntimeError(f"opsdesk serve exited with {server.returncode}")

    # Scrape, then read CPU; at the end read CPU, then scrape: the scrapes stay outside the window.
    first = await scrape(metrics_url) if web else None
    rows0 = count_results(db_url) if not web else 0
    spy = None
    if args.py_spy:
        spy = procs.start(
            [str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(server.pid), "--rate", "200",
             "--duration", str(int(args.duration)), "--nonblocking", "--threads", "--format", "raw",
             "-o", args.py_spy],
        )  # fmt: skip
    t0 = time.monotonic()
    u0, s0 = cpu_split(server.pid)
    n0 = tree_cpu(nginx_pids)
    rss: list[int] = []
    while time.monotonic() - t0 < args.duration:
        await asyncio.sleep(min(1.0, args.duration - (time.monotonic() - t0)))
        rss.append(status_kb(server.pid, "VmRSS"))
    u1, s1 = cpu_split(server.pid)
    n1 = tree_cpu(nginx_pids)
    wall = time.monotonic() - t0
    time_wait = client_time_wait(int(target.rsplit(":", 1)[1].strip("/")))
    last = await scrape(metrics_url) if web else None
    peak = status_kb(server.pid, "VmHWM")
    if spy is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            spy.wait(timeout=30)
    procs.stop(server)
    rows = count_results(db_url)

    if first is not None and last is not None:
        ups = last.checks.get("up", 0) - first.checks.get("up", 0)
        downs = last.checks.get("down", 0) - first.checks.get("down", 0)
        checks = int(ups + downs)
        p50 = quantile(first.lag_buckets, last.lag_buckets, 0.50)
        p99 = quantile(first.lag_buckets, last.lag_buckets, 0.99)
    else:  # no /metrics without the web role: count the rows written in the window instead
        checks, downs, p50, p99 = rows - rows0, 0, float("nan"), float("nan")
    if args.py_spy and Path(args.py_spy).exists():
        profile_summary(args.py_spy, checks, (u1 - u0) + (s1 - s0))
    return OpsdeskFigures(
        checks=checks,
        down=int(downs),
        wall=wall,
        cpu=(u1 - u0) + (s1 - s0),
        user=u1 - u0,
        system=s1 - s0,
        lag_p50=p50,
        lag_p99=p99,
        peak_rss_mb=peak / 1024,
        rss_mb=statistics.median(rss) / 1024 if rss else 0.0,
        results_rows=rows,
        nginx_cpu=n1 - n0,
        setup_seconds=setup,
        client_time_wait=time_wait,
    )


def profile_summary(path: str, checks: int, cpu: float, top: int = 30) -> None:
    """Where opsdesk's CPU went, from py-spy's folded stacks: share of samples scaled to the CPU
    measured in the window, in microseconds per check, per function (line numbers merged)."""
    total = 0
    incl: dict[str, int] = {}
    own: dict[str, int] = {}
    threads: dict[str, int] = {}
    for line in Path(path).read_text().splitlines():
        stack, _, n_text = line.rpartition(" ")
        n = int(n_text)
        frames = [re.sub(r":\d+\)$", ")", f) for f in stack.split(";")]
        total += n
        threads[frames[0]] = threads.get(frames[0], 0) + n
        own[frames[-1]] = own.get(frames[-1], 0) + n
        for f in set(frames[1:]):
            incl[f] = incl.get(f, 0) + n
    if not total or not checks:
        return
    per = cpu / checks * 1e6 / total  # microseconds of CPU per check, per sample

    def short(f: str) -> str:
        return f.replace(str(Path(sys.prefix)), "").replace("/lib/python3.11/site-packages/", "")[:110]

    print(f"\nprofile ({total} samples; us of CPU per check, {cpu / checks * 1e6:.0f} us in all)")
    for name, n in sorted(threads.items(), key=lambda kv: -kv[1]):
        print(f"  thread {name[:60]:60s} {n * per:7.1f} us")
    print("  inclusive:")
    for name, n in sorted(incl.items(), key=lambda kv: -kv[1])[:top]:
        print(f"    {n * per:7.1f} us  {short(name)}")
    print("  self:")
    for name, n in sorted(own.items(), key=lambda kv: -kv[1])[:top]:
        print(f"    {n * per:7.1f} us  {short(name)}")


# --- blackbox's side -----------------------------------------------------------------------------


@dataclass
class BlackboxFigures:
    probes: int
    failed: int
    wall: float
    cpu: float
    peak_rss_mb: float
    nginx_cpu: float
    client_time_wait: int


async def drive_blackbox(url: str, count: int, concurrency: int, deadline: float) -> tuple[int, int]:
    done = failed = 0
    left = count

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal done, failed, left
        while left > 0 and time.monotonic() < deadline:
            left -= 1
            async with session.get(url) as r:
                body = await r.read()
            done += 1
            if r.status != 200 or b"\nprobe_success 1" not in body:
                failed += 1

    connector = aiohttp.TCPConnector(limit=concurrency)  # keep-alive to blackbox itself
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as s:
        await asyncio.gather(*(worker(s) for _ in range(concurrency)))
    return done, failed


async def run_blackbox(
    args: argparse.Namespace, tmp: Path, procs: Procs, target: str, probes: int, nginx_pids: list[int]
) -> BlackboxFigures:
    port = free_port()
    conf = blackbox_conf(tmp, args.timeout)
    env = dict(os.environ)
    if args.blackbox_gomaxprocs:
        env["GOMAXPROCS"] = args.blackbox_gomaxprocs
    bb = procs.start(
        [BLACKBOX, f"--config.file={conf}", f"--web.listen-address=127.0.0.1:{port}", "--log.level=error"],
        env=env,
    )
    await wait_http(f"http://127.0.0.1:{port}/", 30, bb)
    url = f"http://127.0.0.1:{port}/probe?target={target}&module=http_2xx"
    print(
        f"  blackbox exporter (pid {bb.pid}): {probes:,} probes at concurrency {args.concurrency}", flush=True
    )
    await drive_blackbox(url, min(probes, 2000), args.concurrency, time.monotonic() + 30)  # warm-up
    c0, n0, t0 = cpu_seconds(bb.pid), tree_cpu(nginx_pids), time.monotonic()
    done, failed = await drive_blackbox(url, probes, args.concurrency, t0 + max(60.0, args.duration * 3))
    c1, n1, wall = cpu_seconds(bb.pid), tree_cpu(nginx_pids), time.monotonic() - t0
    peak = status_kb(bb.pid, "VmHWM")
    time_wait = client_time_wait(int(target.rsplit(":", 1)[1].strip("/")))
    procs.stop(bb)
    return BlackboxFigures(done, failed, wall, c1 - c0, peak / 1024, n1 - n0, time_wait)


# --- the run -------------------------------------------------------------------------------------


def version(cmd: list[str]) -> str:
    out = subprocess.run(cmd, capture_output=True, text=True)
    text = (out.stdout + out.stderr).strip().splitlines()
    return text[0] if text else "?"


def fmt_s(v: float) -> str:
    if v != v:  # nan
        return "n/a"
    if v == float("inf"):
        return "> 30 s"
    return f"{v * 1000:.0f} ms" if v < 1 else f"{v:.2f} s"


async def run(args: argparse.Namespace) -> int:
    for exe in (NGINX, BLACKBOX):
        if not os.access(exe, os.X_OK) and not (exe == BLACKBOX and args.no_blackbox):
            package = "nginx" if exe == NGINX else "prometheus-blackbox-exporter"
            print(f"{exe} is missing: apt-get install {package}")
            return 2
    tmp = Path(tempfile.mkdtemp(prefix="opsdesk-bench-checks-"))
    tmp.chmod(0o755)  # nginx's workers run as an unprivileged user and must read the page
    procs = Procs(tmp)
    try:
        nginx_port = free_port()
        conf = nginx_conf(tmp, nginx_port, args.nginx_workers)
        nginx = procs.start([NGINX, "-p", str(tmp), "-c", str(conf), "-g", "daemon off;"])
        target = f"http://127.0.0.1:{nginx_port}/"
        await wait_http(target, 10, nginx)
        nginx_pids = [nginx.pid, *children(nginx.pid)]

        import uvloop

        print(
            f"opsdesk HTTP check benchmark: {args.monitors:,} monitors every {args.interval} s "
            f"(offered {args.monitors / args.interval:,.0f} checks/s), window {args.duration:g} s, "
            f"prober concurrency {args.concurrency}\n"
            f"  python {sys.version.split()[0]}, uvloop {uvloop.__version__}, {os.cpu_count()} cores, "
            f"{version([NGINX, '-v'])} ({args.nginx_workers} worker), target {target}",
            flush=True,
        )
        ops = await run_opsdesk(args, tmp, procs, target, nginx_pids)
        bb = None
        if not args.no_blackbox:
            bb = await run_blackbox(args, tmp, procs, target, max(ops.checks, 1000), nginx_pids)
    finally:
        procs.stop_all()
        shutil.rmtree(tmp, ignore_errors=True)

    ops_rate = ops.checks / ops.wall
    ops_eff = ops.checks / ops.cpu if ops.cpu else float("inf")
    print()
    print(f"| {'':38s} | {'opsdesk':>12s} | {'blackbox':>12s} |")
    print(f"|{'-' * 40}|{'-' * 14}|{'-' * 14}|")

    def row(label: str, a: str, b: str = "") -> None:
        print(f"| {label:38s} | {a:>12s} | {b:>12s} |")

    bb_rate = bb.probes / bb.wall if bb else float("nan")
    bb_eff = bb.probes / bb.cpu if bb and bb.cpu else float("nan")
    row("checks (probes) in the window", f"{ops.checks:,}", f"{bb.probes:,}" if bb else "")
    row("failed", f"{ops.down:,}", f"{bb.failed:,}" if bb else "")
    row("sustained checks/s (probes/s)", f"{ops_rate:,.0f}", f"{bb_rate:,.0f}" if bb else "")
    row("CPU seconds (user+sys)", f"{ops.cpu:.1f}", f"{bb.cpu:.1f}" if bb else "")
    row("checks per CPU-second", f"{ops_eff:,.0f}", f"{bb_eff:,.0f}" if bb else "")
    row(
        "CPU per check",
        f"{ops.cpu / max(ops.checks, 1) * 1e6:.0f} us",
        f"{bb.cpu / max(bb.probes, 1) * 1e6:.0f} us" if bb else "",
    )
    row("scheduling lag p50", fmt_s(ops.lag_p50))
    row("scheduling lag p99", fmt_s(ops.lag_p99))
    row("peak RSS (VmHWM)", f"{ops.peak_rss_mb:.0f} MB", f"{bb.peak_rss_mb:.0f} MB" if bb else "")
    row("nginx CPU per request", f"{ops.nginx_cpu / max(ops.checks, 1) * 1e6:.0f} us",
        f"{bb.nginx_cpu / max(bb.probes, 1) * 1e6:.0f} us" if bb else "")  # fmt: skip
    row(
        "client-side TIME_WAIT at the end",
        f"{ops.client_time_wait:,}",
        f"{bb.client_time_wait:,}" if bb else "",
    )
    print()
    offered = args.monitors / args.interval
    print(
        f"opsdesk: {ops_rate:,.0f} of {offered:,.0f} offered checks/s; CPU {ops.user:.1f} s user + "
        f"{ops.system:.1f} s sys = {ops.cpu / ops.wall * 100:.0f}% of a core; RSS median {ops.rss_mb:.0f} MB"
    )
    if bb:
        ratio = ops_eff / bb_eff
        verdict = "meets" if ratio >= 2.5 else "misses"
        print(
            f"ratio: opsdesk does {ratio:.2f}x blackbox's checks per CPU-second ({verdict} the 2.5x target)"
        )
    ok = ops.checks > 0 and ops.down == 0
    if ops.down:
        print(f"WARNING: {ops.down} checks failed: the figures are not of healthy checks")
    return 0 if ok else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--monitors", type=int, default=10_000)
    parser.add_argument("--interval", type=int, default=10, help="seconds between checks of a monitor")
    parser.add_argument("--duration", type=float, default=60, help="measured window, seconds")
    parser.add_argument(
        "--warmup", type=float, default=None, help="seconds before the window (default: 1.5 intervals)"
    )
    parser.add_argument("--timeout", type=float, default=5, help="check (and probe) timeout, seconds")
    parser.add_argument("--roles", default="web,probes", help="opsdesk serve --roles (web is needed for lag)")
    parser.add_argument(
        "--concurrency", type=int, default=None, help="blackbox concurrency (default: the prober's)"
    )
    parser.add_argument("--nginx-workers", default="1")
    parser.add_argument("--no-blackbox", action="store_true")
    parser.add_argument(
        "--py-spy", metavar="FILE", help="profile opsdesk during the window (pip install py-spy into .venv)"
    )
    parser.add_argument("--blackbox-gomaxprocs", default="", help="GOMAXPROCS for blackbox (default: unset)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 1,000 monitors, 15 s window")
    args = parser.parse_args()
    if args.quick:
        args.monitors, args.duration = min(args.monitors, 1000), min(args.duration, 15)
        args.interval = min(args.interval, 5)
    if args.warmup is None:
        args.warmup = max(5.0, 1.5 * args.interval)
    if args.concurrency is None:
        args.concurrency = prober_concurrency()
    if not re.fullmatch(r"[a-z,]+", args.roles) or "probes" not in args.roles:
        parser.error("--roles must include probes")
    sys.exit(asyncio.run(run(args)))


if __name__ == "__main__":
    main()
