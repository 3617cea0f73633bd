"""The HTTP check against real loopback servers."""

from __future__ import annotations

import asyncio
import re

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


# --- expectations, against one server with a route per case ------------------------------------


@pytest.fixture
async def site():
    async def json_ok(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "checks": [{"name": "db", "ok": True}]})

    async def page(request: web.Request) -> web.Response:
        return web.Response(text="<h1>Welcome to the shop</h1> version 4.2.1")

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound("/json")

    async def loop(request: web.Request) -> web.Response:
        raise web.HTTPFound("/loop")

    async def secret(request: web.Request) -> web.Response:
        auth = request.headers.get("Authorization", "")
        if auth in ("Basic b3BzOnMzY3JldA==", "Bearer tok-123"):  # ops:s3cret
            return web.Response(text="welcome")
        return web.Response(status=401, text="who are you?")

    async def echo(request: web.Request) -> web.Response:
        return web.json_response(
            {"method": request.method, "body": await request.text(), "x": request.headers.get("X-Check", "")}
        )

    async def endless(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        await resp.prepare(request)
        chunk = b"x" * 65536
        try:
            for _ in range(10_000):  # 640 MB if anyone read it all
                await resp.write(chunk)
        except (ConnectionResetError, RuntimeError):
            pass
        return resp

    app = web.Application()
    app.router.add_get("/json", json_ok)
    app.router.add_get("/page", page)
    app.router.add_get("/redirect", redirect)
    app.router.add_get("/loop", loop)
    app.router.add_get("/secret", secret)
    app.router.add_route("*", "/echo", echo)
    app.router.add_get("/endless", endless)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


def cfg(**values) -> HttpConfig:  # type: ignore[no-untyped-def]
    return HttpConfig.model_validate(values)


async def test_status_ranges_and_classes(ctx, site):
    assert (await CHECK.run(f"{site}/json", cfg(expected_status="2xx"), 2, ctx)).ok
    assert (await CHECK.run(f"{site}/json", cfg(expected_status=["200-204", 301]), 2, ctx)).ok
    out = await CHECK.run(f"{site}/secret", cfg(expected_status="2xx"), 2, ctx)
    assert not out.ok and "HTTP 401" in out.message


async def test_keyword_present_absent_and_regex(ctx, site):
    assert (await CHECK.run(f"{site}/page", cfg(keyword="Welcome"), 2, ctx)).ok
    out = await CHECK.run(f"{site}/page", cfg(keyword="Maintenance"), 2, ctx)
    assert not out.ok and "'Maintenance' missing" in out.message
    assert (await CHECK.run(f"{site}/page", cfg(keyword="Maintenance", keyword_absent=True), 2, ctx)).ok
    assert (await CHECK.run(f"{site}/page", cfg(regex=r"version 4\.\d+"), 2, ctx)).ok
    out = await CHECK.run(f"{site}/page", cfg(regex=r"version 5\."), 2, ctx)
    assert not out.ok and "no match" in out.message


async def test_json_path_value(ctx, site):
    assert (await CHECK.run(f"{site}/json", cfg(json_path="$.status", json_expected="ok"), 2, ctx)).ok
    assert (await CHECK.run(f"{site}/json", cfg(json_path="$.checks[0].ok", json_expected="true"), 2, ctx)).ok
    out = await CHECK.run(f"{site}/json", cfg(json_path="$.checks[0].ok", json_expected="false"), 2, ctx)
    assert not out.ok and "is 'true', expected 'false'" in out.message
    out = await CHECK.run(f"{site}/json", cfg(json_path="$.missing"), 2, ctx)
    assert not out.ok and "$.missing not found" in out.message
    out = await CHECK.run(f"{site}/page", cfg(json_path="$.status"), 2, ctx)
    assert not out.ok and "not JSON" in out.message


async def test_latency_thresholds_degrade_then_fail(ctx, site):
    out = await CHECK.run(f"{site}/json", cfg(latency_warn_ms=0), 2, ctx)
    assert out.ok and out.degraded and "slow" in out.message
    out = await CHECK.run(f"{site}/json", cfg(latency_warn_ms=0, latency_critical_ms=0), 2, ctx)
    assert not out.ok and "over 0 ms" in out.message


async def test_redirects_followed_or_not_and_loops_fail(ctx, site):
    assert (await CHECK.run(f"{site}/redirect", cfg(json_path="$.status", json_expected="ok"), 2, ctx)).ok
    out = await CHECK.run(f"{site}/redirect", cfg(follow_redirects=False, expected_status=302), 2, ctx)
    assert out.ok and out.status_code == 302
    out = await CHECK.run(f"{site}/loop", cfg(), 2, ctx)
    assert not out.ok and "redirects" in out.message


async def test_basic_and_bearer_credentials(ctx, site):
    assert (await CHECK.run(f"{site}/secret", cfg(username="ops", password="s3cret"), 2, ctx)).ok
    assert (await CHECK.run(f"{site}/secret", cfg(bearer_token="tok-123"), 2, ctx)).ok
    assert not (await CHECK.run(f"{site}/secret", cfg(username="ops", password="wrong"), 2, ctx)).ok


async def test_method_headers_and_body_are_sent(ctx, site):
    config = cfg(
        method="POST", body="ping", headers={"X-Check": "opsdesk"}, json_path="$.body", json_expected="ping"
    )
    assert (await CHECK.run(f"{site}/echo", config, 2, ctx)).ok
    config = cfg(method="POST", headers={"X-Check": "opsdesk"}, json_path="$.x", json_expected="opsdesk")
    assert (await CHECK.run(f"{site}/echo", config, 2, ctx)).ok


async def test_an_endless_body_is_read_up_to_the_limit_only(ctx, site):
    loop = asyncio.get_running_loop()
    started = loop.time()
    out = await CHECK.run(f"{site}/endless", cfg(max_body_bytes=65536, keyword="never"), 5, ctx)
    assert not out.ok and "keyword 'never' missing" in out.message and "size limit" in out.message
    assert loop.time() - started < 4
    assert (await CHECK.run(f"{site}/endless", cfg(max_body_bytes=65536), 5, ctx)).ok


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"expected_status": "20x"}, "expected_status"),
        ({"expected_status": "299-200"}, "expected_status"),
        ({"regex": "("}, "regex"),
        ({"json_expected": "ok"}, "json_expected needs json_path"),
        ({"json_path": "$.a[x]"}, "cannot read JSON path"),
        ({"password": "x"}, "needs a username"),
        ({"method": "BREW"}, "method"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_bad_config_is_refused_with_the_reason(values, field):
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=re.escape(field)):
        HttpConfig.model_validate(values)


# --- the protocol client underneath (decision 0008) ---------------------------------------------


@pytest.fixture
async def tls_url():
    import ssl

    import trustme

    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_ctx)

    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="secure hello")

    app = web.Application()
    app.router.add_get("/", hello)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port, ssl_context=server_ctx).start()
    yield f"https://127.0.0.1:{port}/"
    await runner.cleanup()


async def test_an_untrusted_certificate_is_down_unless_verification_is_off(ctx, tls_url):
    out = await CHECK.run(tls_url, cfg(keyword="secure"), 2, ctx)
    assert not out.ok and out.message.startswith("TLS certificate not valid: ")
    assert "issuer" in out.message or "self" in out.message
    out = await CHECK.run(tls_url, cfg(keyword="secure", verify_tls=False), 2, ctx)
    assert out.ok and out.status_code == 200


async def test_each_check_asks_the_server_to_close(ctx):
    seen = []

    async def handle(request: web.Request) -> web.Response:
        seen.append(dict(request.headers))
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        assert (
            await CHECK.run(f"http://127.0.0.1:{port}/", cfg(headers={"Connection": "keep-alive"}), 2, ctx)
        ).ok
    finally:
        await runner.cleanup()
    assert seen[0]["Connection"] == "close" and seen[0]["User-Agent"] == "opsdesk-monitor"


async def test_a_compressed_answer_is_decoded_before_the_keyword_search(ctx):
    import gzip

    async def handle(request: web.Request) -> web.Response:
        body = gzip.compress(b"<p>all systems operational</p>")
        return web.Response(body=body, headers={"Content-Encoding": "gzip"})

    app = web.Application()
    app.router.add_get("/", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        config = cfg(headers={"Accept-Encoding": "gzip"}, keyword="operational")
        assert (await CHECK.run(f"http://127.0.0.1:{port}/", config, 2, ctx)).ok
    finally:
        await runner.cleanup()


async def test_a_garbled_answer_is_down_with_the_reason(ctx):
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"SSH-2.0-OpenSSH_9.2\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        out = await CHECK.run(f"http://127.0.0.1:{port}/", cfg(), 2, ctx)
    finally:
        server.close()
    assert not out.ok and out.message.startswith("malformed response")
