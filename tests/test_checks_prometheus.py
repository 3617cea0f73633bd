"""The Prometheus scrape check: a real node_exporter on loopback, and small misbehaving servers."""

from __future__ import annotations

import asyncio
import gzip
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Iterator

import aiohttp
import httpx
import pytest
from aiohttp import web

from opsdesk.core.errors import OpsdeskError
from opsdesk.monitoring.checks.base import ProbeContext
from opsdesk.monitoring.checks.prometheus import PrometheusCheck, PrometheusConfig, instance_of
from opsdesk.monitoring.service import validate_definition
from tests.conftest import free_port

NODE_EXPORTER = "/usr/bin/prometheus-node-exporter"
CHECK = PrometheusCheck()


def cfg(**values) -> PrometheusConfig:  # type: ignore[no-untyped-def]
    return PrometheusConfig.model_validate(values)


@pytest.fixture
async def ctx() -> AsyncIterator[ProbeContext]:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http:
        yield ProbeContext(http=http)


@pytest.fixture(scope="module")
def node_exporter() -> Iterator[str]:
    """A real prometheus-node-exporter on a free loopback port; its metrics URL."""
    if shutil.which(NODE_EXPORTER) is None:
        pytest.fail(f"{NODE_EXPORTER} is missing: apt-get install prometheus-node-exporter (see .ci/run)")
    port = free_port()
    proc = subprocess.Popen(
        [NODE_EXPORTER, f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(url, timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("node_exporter did not start answering")
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# --- against a real node_exporter ---------------------------------------------------------------


async def test_scrape_of_node_exporter_keeps_every_sample_with_instance(ctx, node_exporter):
    out = await CHECK.run(node_exporter, cfg(), 10, ctx)
    assert out.ok, out.message
    assert out.status_code == 200 and out.latency_ms is not None and out.latency_ms > 0
    instance = instance_of(node_exporter)
    assert instance.startswith("127.0.0.1:")
    names = {s.name for s in out.samples}
    assert {"node_load1", "node_cpu_seconds_total", "node_memory_MemTotal_bytes"} <= names
    assert len(out.samples) > 200
    assert all(dict(s.labels)["instance"] == instance for s in out.samples)
    assert all(s.labels == tuple(sorted(s.labels)) for s in out.samples)
    synthetic = {s.name: s.value for s in out.samples if s.name.startswith(("up", "scrape_"))}
    assert synthetic["up"] == 1
    assert synthetic["scrape_samples_scraped"] == len(out.samples) - 3
    assert 0 < synthetic["scrape_duration_seconds"] < 10
    assert out.message.startswith(f"scraped {len(out.samples) - 3} samples in ")
    assert out.findings == []


async def test_rules_on_node_exporter_give_stable_findings(ctx, node_exporter):
    config = cfg(
        rules=[
            {
                "name": "load_seen",
                "expr": "node_load1 >= 0",
                "severity": "info",
                "summary": "load {{ $value }} on {{ $labels.instance }}",
            },
            {"name": "impossible", "expr": "node_load1 < 0", "severity": "critical"},
            {
                "name": "fs_seen",
                "expr": 'node_filesystem_avail_bytes{fstype!~"tmpfs|ramfs"} / node_filesystem_size_bytes'
                " * 100 <= 100",
            },
        ]
    )
    first = await CHECK.run(node_exporter, config, 10, ctx)
    second = await CHECK.run(node_exporter, config, 10, ctx)
    assert first.ok and second.ok
    assert first.findings is not None and second.findings is not None
    instance = instance_of(node_exporter)

    [load] = [f for f in first.findings if f.labels["alertname"] == "load_seen"]
    assert load.key == f'load_seen{{instance="{instance}"}}'
    assert load.severity == "info"
    assert load.labels == {"alertname": "load_seen", "instance": instance}
    assert load.summary.startswith("load ") and load.summary.endswith(f" on {instance}")
    assert not [f for f in first.findings if f.labels["alertname"] == "impossible"]

    # same problems, same keys: the alert pipeline dedups on them
    assert {f.key for f in first.findings} == {f.key for f in second.findings}
    assert len({f.key for f in first.findings}) == len(first.findings)
    assert "load_seen" in first.message and "impossible" not in first.message
    assert "firing" in first.message
    for f in first.findings:
        if f.labels["alertname"] == "fs_seen":
            assert {"device", "fstype", "mountpoint", "instance"} <= set(f.labels)
            assert f.key.startswith("fs_seen{device=")


async def test_a_rule_that_does_not_hold_gives_no_findings(ctx, node_exporter):
    out = await CHECK.run(node_exporter, cfg(rules=[{"name": "never", "expr": "node_load1 < 0"}]), 10, ctx)
    assert out.ok and out.findings == []
    assert out.message.endswith("; no rule firing")


def test_an_invalid_rule_is_a_field_error():
    with pytest.raises(OpsdeskError) as caught:
        validate_definition(
            "prometheus",
            "http://127.0.0.1:9100/metrics",
            {"rules": [{"name": "ok", "expr": "up == 0"}, {"name": "bad", "expr": "rate(x[5m]) > 1"}]},
        )
    assert caught.value.status == 422
    [err] = caught.value.errors
    assert err.field == "config.rules.1.expr"
    assert "rate() are not supported" in err.message and "position 1" in err.message


def test_config_validation():
    _, plain, secrets = validate_definition(
        "prometheus",
        "http://127.0.0.1:9100/metrics",
        {"rules": [{"name": "load", "expr": "node_load1 > 4"}], "verify_tls": False},
    )
    assert plain["rules"] == [
        {"name": "load", "expr": "node_load1 > 4", "severity": "warning", "summary": ""}
    ]
    assert plain["max_bytes"] == 10 << 20 and plain["max_samples"] == 50_000 and secrets == {}
    # the stored config validates again (the scheduler re-reads it)
    assert PrometheusConfig.model_validate(plain).rules[0].rule.expr == "node_load1 > 4"
    bad_configs = [
        {"rules": [{"name": "a", "expr": "up"}, {"name": "a", "expr": "up"}]},
        {"password": "x"},
        {"username": "u", "bearer_token": "t"},
        {"headers": {"Bad Header": "x"}},
        {"headers": {"X": "a\r\nb"}},
        {"max_bytes": 10},
        {"unknown": 1},
    ]
    for bad in bad_configs:
        with pytest.raises(OpsdeskError):
            validate_definition("prometheus", "http://127.0.0.1:9100/metrics", bad)


def test_target_and_instance():
    for bad in ("ftp://h/metrics", "h:9100/metrics", "http://", "http://u:p@h/metrics", "http://h:99999/"):
        with pytest.raises(ValueError):
            CHECK.validate_target(bad)
    assert CHECK.validate_target("https://h.example/metrics") == "https://h.example/metrics"
    assert instance_of("http://node1:9100/metrics") == "node1:9100"
    assert instance_of("http://node1/metrics") == "node1:80"
    assert instance_of("https://node1/metrics") == "node1:443"
    assert instance_of("http://[::1]:9100/metrics") == "[::1]:9100"


# --- against small misbehaving servers --------------------------------------------------------------

PAGE = """# HELP app_requests_total Requests.
# TYPE app_requests_total counter
app_requests_total{code="200",instance="pod-1"} 1027
app_requests_total{code="500",instance="pod-1"} 3
app_temperature_celsius 71.5
"""


@pytest.fixture
async def site() -> AsyncIterator[tuple[str, list[web.Request]]]:
    seen: list[web.Request] = []

    async def page(request: web.Request) -> web.Response:
        seen.append(request)
        return web.Response(text=PAGE, content_type="text/plain")

    async def gzipped(request: web.Request) -> web.Response:
        seen.append(request)
        return web.Response(body=gzip.compress(PAGE.encode()), headers={"Content-Encoding": "gzip"})

    async def bomb(request: web.Request) -> web.Response:  # 12 MB of comments, about 12 KB on the wire
        return web.Response(body=gzip.compress(b"# x\n" * 3_000_000), headers={"Content-Encoding": "gzip"})

    async def malformed(request: web.Request) -> web.Response:
        return web.Response(text="# TYPE a gauge\na 1\na{b=c} 2\n")

    async def failing(request: web.Request) -> web.Response:
        return web.Response(status=500, text="internal error")

    async def endless(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        await resp.prepare(request)
        chunk = b"x_total 1\n" * 6554
        try:
            for _ in range(10_000):  # 640 MB if anyone read it all
                await resp.write(chunk)
        except (ConnectionResetError, RuntimeError):
            pass
        return resp

    async def declared_huge(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        resp.content_length = 50 << 20
        await resp.prepare(request)
        await resp.write(b"x 1\n" * 1000)
        await asyncio.sleep(30)  # never finishes: only the header can tell the size
        return resp

    async def big(request: web.Request) -> web.Response:  # about 900 KB: parsed in a worker thread
        text = "".join(
            f'disk_free_ratio{{instance="vm-{i}",mountpoint="/m{i % 10}",exported_instance="x"}} {v}\n'
            for i, v in ((i, i % 100 / 100) for i in range(10_000))
        )
        return web.Response(text=text)

    async def many(request: web.Request) -> web.Response:
        return web.Response(text="".join(f'm{{i="{i}"}} {i}\n' for i in range(100)))

    async def ambiguous(request: web.Request) -> web.Response:
        return web.Response(text='a{x="1",y="1"} 1\na{x="1",y="2"} 2\nb{x="1"} 5\n')

    app = web.Application()
    app.router.add_get("/metrics", page)
    app.router.add_get("/gzip", gzipped)
    app.router.add_get("/bomb", bomb)
    app.router.add_get("/malformed", malformed)
    app.router.add_get("/failing", failing)
    app.router.add_get("/endless", endless)
    app.router.add_get("/declared-huge", declared_huge)
    app.router.add_get("/many", many)
    app.router.add_get("/big", big)
    app.router.add_get("/ambiguous", ambiguous)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"http://127.0.0.1:{port}", seen
    await runner.cleanup()


async def test_request_headers_auth_and_exported_instance(ctx, site):
    base, seen = site
    config = cfg(headers={"X-Scope": "ops"}, bearer_token="tok-123")
    out = await CHECK.run(f"{base}/metrics", config, 5, ctx)
    assert out.ok, out.message
    request = seen[-1]
    assert request.headers["Accept"] == "text/plain;version=0.0.4"
    assert "gzip" in request.headers["Accept-Encoding"]
    assert request.headers["Authorization"] == "Bearer tok-123"
    assert request.headers["X-Scope"] == "ops"
    instance = base.removeprefix("http://")
    by_key = {(s.name, s.labels): s.value for s in out.samples}
    own = (("code", "500"), ("exported_instance", "pod-1"), ("instance", instance))
    assert by_key[("app_requests_total", own)] == 3
    assert by_key[("app_temperature_celsius", (("instance", instance),))] == 71.5
    assert out.message.startswith("scraped 3 samples in ")

    basic = cfg(username="ops", password="s3cret")
    assert (await CHECK.run(f"{base}/metrics", basic, 5, ctx)).ok
    assert seen[-1].headers["Authorization"] == "Basic b3BzOnMzY3JldA=="


async def test_gzip_pages_are_read(ctx, site):
    base, _ = site
    out = await CHECK.run(
        f"{base}/gzip", cfg(rules=[{"name": "hot", "expr": "app_temperature_celsius > 70"}]), 5, ctx
    )
    assert out.ok, out.message
    assert out.findings is not None and [f.key for f in out.findings] == [
        f'hot{{instance="{base.removeprefix("http://")}"}}'
    ]
    assert out.message.endswith("1 rule firing: hot")


async def test_malformed_page_is_down_with_the_line(ctx, site):
    base, _ = site
    out = await CHECK.run(f"{base}/malformed", cfg(rules=[{"name": "r", "expr": "a > 0"}]), 5, ctx)
    assert not out.ok and out.findings is None
    assert out.message.startswith("malformed metrics page, line 3: ")
    assert [(s.name, s.value) for s in out.samples if s.name == "up"] == [("up", 0.0)]


async def test_http_error_is_down(ctx, site):
    base, _ = site
    out = await CHECK.run(f"{base}/failing", cfg(rules=[{"name": "r", "expr": "up > 0"}]), 5, ctx)
    assert not out.ok and out.status_code == 500 and out.findings is None
    assert out.message == "HTTP 500 Internal Server Error"


async def test_endless_body_stops_at_the_size_limit(ctx, site):
    base, _ = site
    started = time.monotonic()
    out = await CHECK.run(f"{base}/endless", cfg(), 20, ctx)
    assert not out.ok and out.findings is None
    assert out.message.startswith("response larger than 10 MiB")
    assert time.monotonic() - started < 10

    out = await CHECK.run(f"{base}/endless", cfg(max_bytes=1 << 20), 20, ctx)
    assert not out.ok and out.message.startswith("response larger than 1 MiB")


async def test_declared_huge_body_is_refused_without_reading(ctx, site):
    base, _ = site
    started = time.monotonic()
    out = await CHECK.run(f"{base}/declared-huge", cfg(), 10, ctx)
    assert not out.ok and out.message.startswith("response larger than 10 MiB")
    assert time.monotonic() - started < 5


async def test_decompressed_size_counts(ctx, site):
    base, _ = site
    out = await CHECK.run(f"{base}/bomb", cfg(max_bytes=1 << 20), 10, ctx)
    assert not out.ok and out.message.startswith("response larger than 1 MiB")


async def test_a_big_page_with_own_instance_labels(ctx, site):
    base, _ = site
    config = cfg(
        rules=[{"name": "disk_low", "expr": "disk_free_ratio < 0.05", "summary": "{{ $labels.mountpoint }}"}]
    )
    out = await CHECK.run(f"{base}/big", config, 10, ctx)
    assert out.ok, out.message
    instance = base.removeprefix("http://")
    first = dict(out.samples[0].labels)
    # the page's own instance and exported_instance are both kept, under new names
    assert first == {
        "instance": instance,
        "exported_instance": "x",
        "exported_exported_instance": "vm-0",
        "mountpoint": "/m0",
    }
    assert out.findings is not None and len(out.findings) == 500
    assert len({f.key for f in out.findings}) == 500
    assert "1 rule firing: disk_low (500 series)" in out.message


async def test_too_many_samples_is_down(ctx, site):
    base, _ = site
    assert (await CHECK.run(f"{base}/many", cfg(max_samples=100), 5, ctx)).ok
    out = await CHECK.run(f"{base}/many", cfg(max_samples=99), 5, ctx)
    assert not out.ok and out.message == "100 samples, more than max_samples (99)"


async def test_a_rule_failing_at_run_time_is_reported_not_raised(ctx, site):
    base, _ = site
    config = cfg(
        rules=[
            {"name": "ambiguous", "expr": "a + on(x) b > 0"},
            {"name": "fine", "expr": "b > 1", "summary": "b is {{ $value }}"},
        ]
    )
    out = await CHECK.run(f"{base}/ambiguous", config, 5, ctx)
    assert out.ok
    assert out.findings is not None and [f.summary for f in out.findings] == ["b is 5"]
    assert "rule ambiguous failed: many-to-one matching" in out.message
    assert "1 rule firing: fine" in out.message


@pytest.fixture
async def silent_port() -> AsyncIterator[int]:
    """Accepts connections and never answers."""
    clients: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        clients.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    for w in clients:
        w.close()
    server.close()
    await server.wait_closed()


async def test_server_that_never_answers_is_down_at_the_timeout(ctx, silent_port):
    started = time.monotonic()
    out = await CHECK.run(f"http://127.0.0.1:{silent_port}/metrics", cfg(), 0.5, ctx)
    assert not out.ok and out.message == "timed out after 0.5s" and out.findings is None
    assert 0.4 < time.monotonic() - started < 3
    assert [s.value for s in out.samples if s.name == "up"] == [0.0]


async def test_unreachable_port_is_down(ctx):
    out = await CHECK.run(f"http://127.0.0.1:{free_port()}/metrics", cfg(), 2, ctx)
    assert not out.ok and out.message.startswith("connection failed") and out.findings is None
