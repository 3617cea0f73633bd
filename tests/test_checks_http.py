"""The HTTP check against real loopback servers."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from aiohttp import web

from opsdesk.monitoring.checks import ProbeContext, get_check_type
from opsdesk.monitoring.checks.http import HttpConfig
from tests.conftest import free_port
from tests.support import TargetServer


@pytest.fixture
async def ctx():
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http:
        yield ProbeContext(http=http)


@pytest.fixture
async def slow_server():
    """Answers after 5 s: longer than any timeout below."""

    async def handle(request: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return web.Response(text="late")

    app = web.Application()
    app.router.add_get("/", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"http://127.0.0.1:{port}/"
    await runner.cleanup()


CHECK = get_check_type("http")


async def test_expected_status_is_up_with_latency(ctx):
    server = TargetServer(200)
    await server.start()
    try:
        out = await CHECK.run(server.url, HttpConfig(), 2, ctx)
    finally:
        await server.stop()
    assert out.ok and out.status_code == 200 and out.latency_ms is not None and out.latency_ms > 0


async def test_other_status_is_down_and_says_what_was_expected(ctx):
    server = TargetServer(503)
    await server.start()
    try:
        out = await CHECK.run(server.url, HttpConfig(expected_status=200), 2, ctx)
    finally:
        await server.stop()
    assert not out.ok and out.status_code == 503 and "expected 200" in out.message


async def test_a_configured_non_200_status_counts_as_up(ctx):
    server = TargetServer(401)
    await server.start()
    try:
        out = await CHECK.run(server.url, HttpConfig(expected_status=401), 2, ctx)
    finally:
        await server.stop()
    assert out.ok


async def test_connection_refused_is_down(ctx):
    out = await CHECK.run(f"http://127.0.0.1:{free_port()}/", HttpConfig(), 2, ctx)
    assert not out.ok and "connection failed" in out.message


async def test_timeout_is_down_and_returns_on_time(ctx, slow_server):
    loop = asyncio.get_running_loop()
    started = loop.time()
    out = await CHECK.run(slow_server, HttpConfig(), 0.3, ctx)
    assert not out.ok and "timed out" in out.message
    assert loop.time() - started < 4  # well before the server would have answered


def test_target_must_be_an_http_url():
    for bad in ("ftp://example.org", "example.org", "http://"):
        with pytest.raises(ValueError):
            CHECK.validate_target(bad)
