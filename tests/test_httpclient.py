"""The check's HTTP client against real loopback servers, on asyncio's loop and on uvloop.

An aiohttp server for well-formed answers, a TLS one with a trustme CA, and raw asyncio servers
for what aiohttp would never send: bodies up to the close, garbage, silence, resets.
"""

from __future__ import annotations

import asyncio
import gzip
import socket
import ssl
import struct
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import trustme
import uvloop
from aiohttp import web

from opsdesk.monitoring.checks import httpclient
from opsdesk.monitoring.checks.httpclient import request
from tests.conftest import free_port

# pytest-asyncio's loop-factory hook must live in conftest.py; until it does, the policy fixture.
pytestmark = pytest.mark.filterwarnings('ignore:Overriding the "event_loop_policy" fixture')


@pytest.fixture(params=["asyncio", "uvloop"])
def event_loop_policy(request: pytest.FixtureRequest) -> asyncio.AbstractEventLoopPolicy:
    # The prober runs on uvloop under `opsdesk serve` (uvicorn) and on asyncio's loop elsewhere.
    if request.param == "uvloop":
        return uvloop.EventLoopPolicy()
    return asyncio.DefaultEventLoopPolicy()


# --- servers -------------------------------------------------------------------------------------


async def _start(
    app: web.Application, ssl_context: ssl.SSLContext | None = None
) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port, ssl_context=ssl_context).start()
    return runner, port


SEEN: dict[str, Any] = {}


async def _echo(r: web.Request) -> web.Response:
    SEEN.update(method=r.method, headers=dict(r.headers), body=await r.read(), path_qs=r.path_qs)
    return web.json_response(
        {"method": r.method, "body": (await r.read()).decode(), "auth": r.headers.get("Authorization", "")},
        headers={"X-Answer": "42"},
    )


async def _chunked(r: web.Request) -> web.StreamResponse:
    resp = web.StreamResponse()
    resp.enable_chunked_encoding()
    await resp.prepare(r)
    for part in (b"one,", b"two,", b"three"):
        await resp.write(part)
    await resp.write_eof()
    return resp


async def _endless(r: web.Request) -> web.StreamResponse:
    resp = web.StreamResponse()
    await resp.prepare(r)
    try:
        for _ in range(10_000):
            await resp.write(b"x" * 65536)
    except (ConnectionResetError, RuntimeError):
        pass
    return resp


def _compressed(kind: str, data: bytes) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handle(r: web.Request) -> web.Response:
        if kind == "gzip":
            body = gzip.compress(data)
        elif kind == "deflate":
            body = zlib.compress(data)
        else:  # raw deflate, as some servers send for "deflate"
            c = zlib.compressobj(wbits=-zlib.MAX_WBITS)
            body = c.compress(data) + c.flush()
        encoding = "gzip" if kind == "gzip" else "deflate"
        return web.Response(body=body, headers={"Content-Encoding": encoding, "Content-Type": "text/plain"})

    return handle


async def _redirect_to(r: web.Request) -> web.Response:
    raise web.HTTPFound(r.query["to"])


async def _see_other(r: web.Request) -> web.Response:
    raise web.HTTPSeeOther("/echo")


async def _temporary(r: web.Request) -> web.Response:
    raise web.HTTPTemporaryRedirect("/echo")


async def _loop(r: web.Request) -> web.Response:
    raise web.HTTPFound("/loop")


async def _status(r: web.Request) -> web.Response:
    return web.Response(status=int(r.match_info["code"]), text="status page")


async def _big(r: web.Request) -> web.Response:
    return web.Response(body=b"y" * 100_000)


def _app() -> web.Application:
    app = web.Application()
    app.router.add_route("*", "/echo", _echo)
    app.router.add_get("/status/{code}", _status)
    app.router.add_get("/chunked", _chunked)
    app.router.add_get("/endless", _endless)
    app.router.add_get("/big", _big)
    app.router.add_get("/gzip", _compressed("gzip", b"hello compressed world " * 100))
    app.router.add_get("/deflate", _compressed("deflate", b"deflated " * 100))
    app.router.add_get("/raw-deflate", _compressed("raw", b"raw deflated " * 100))
    app.router.add_get("/bomb", _compressed("gzip", b"\0" * 20_000_000))
    app.router.add_get("/redirect", _redirect_to)
    app.router.add_post("/see-other", _see_other)
    app.router.add_post("/temporary", _temporary)
    app.router.add_get("/loop", _loop)
    return app


@pytest.fixture
async def site() -> AsyncIterator[str]:
    runner, port = await _start(_app())
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


@pytest.fixture
async def raw() -> AsyncIterator[Callable[[bytes | None, str], Awaitable[str]]]:
    """``await raw(answer, how)``: a server that reads the request, then answers ``answer`` and
    closes (``how="close"``), resets (``"reset"``), or says nothing and keeps the line open."""
    servers: list[asyncio.Server] = []

    async def start(answer: bytes | None, how: str = "close") -> str:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                await reader.readuntil(b"\r\n\r\n")
                if answer:
                    writer.write(answer)
                    await writer.drain()
                if how == "reset":
                    sock = writer.get_extra_info("socket")
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    writer.transport.abort()
                    return
                if how == "silent":
                    await asyncio.sleep(30)
                writer.close()
            except (OSError, asyncio.IncompleteReadError, asyncio.CancelledError):
                writer.transport.abort()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        servers.append(server)
        port = server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/"

    yield start
    for s in servers:
        s.close()


# --- well-formed answers -------------------------------------------------------------------------


async def test_status_headers_and_body(site: str) -> None:
    resp = await request("GET", f"{site}/echo?x=1", headers={"User-Agent": "t"}, timeout=5)
    assert resp.status == 200 and resp.reason == "OK" and resp.http_version == "1.1"
    assert resp.header("x-answer") == "42" and resp.headers["content-type"].startswith("application/json")
    assert b'"method": "GET"' in resp.body and not resp.truncated
    assert SEEN["path_qs"] == "/echo?x=1"
    assert SEEN["headers"]["Connection"] == "close"  # so that the server closes first
    assert SEEN["headers"]["Host"] == site.removeprefix("http://")
    assert SEEN["headers"]["User-Agent"] == "t" and "Accept-Encoding" not in SEEN["headers"]
    resp = await request("GET", f"{site}/status/503", timeout=5)
    assert resp.status == 503 and resp.body == b"status page"


async def test_method_headers_and_body_are_sent(site: str) -> None:
    resp = await request("PUT", f"{site}/echo", headers={"X-Check": "yes"}, body=b"payload", timeout=5)
    assert resp.status == 200
    assert SEEN["method"] == "PUT" and SEEN["body"] == b"payload" and SEEN["headers"]["X-Check"] == "yes"
    await request("POST", f"{site}/echo", timeout=5)
    assert SEEN["headers"]["Content-Length"] == "0"
    resp = await request("HEAD", f"{site}/status/204", timeout=5)
    assert resp.status == 204 and resp.body == b""
    resp = await request("HEAD", f"{site}/big", timeout=5)  # Content-Length: 100000, and no body
    assert resp.status == 200 and resp.body == b"" and resp.header("content-length") == "100000"


async def test_credentials_in_the_url_become_basic_auth(site: str) -> None:
    port = site.rsplit(":", 1)[1]
    await request("GET", f"http://ops:s%40cret@127.0.0.1:{port}/echo", timeout=5)
    assert SEEN["headers"]["Authorization"] == "Basic b3BzOnNAY3JldA=="  # ops:s@cret


async def test_chunked_and_content_length_bodies(site: str) -> None:
    resp = await request("GET", f"{site}/chunked", timeout=5)
    assert resp.body == b"one,two,three" and resp.header("transfer-encoding") == "chunked"
    resp = await request("GET", f"{site}/big", timeout=5)
    assert resp.body == b"y" * 100_000 and not resp.truncated


async def test_a_body_up_to_the_close(raw: Any) -> None:
    url = await raw(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nread until the end")
    resp = await request("GET", url, timeout=5)
    assert resp.status == 200 and resp.body == b"read until the end" and resp.http_version == "1.0"


async def test_an_interim_answer_is_skipped(raw: Any) -> None:
    url = await raw(
        b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    )
    resp = await request("GET", url, timeout=5)
    assert resp.status == 200 and resp.body == b"ok" and resp.header("link") is None


async def test_the_body_is_read_up_to_the_limit_and_no_further(site: str) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    resp = await request("GET", f"{site}/endless", max_body_bytes=100_000, timeout=5)
    assert resp.truncated and resp.body == b"x" * 100_000
    assert loop.time() - started < 3  # 640 MB would take much longer
    resp = await request("GET", f"{site}/big", max_body_bytes=100_000, timeout=5)
    assert not resp.truncated and len(resp.body) == 100_000  # exactly the limit is not truncated
    resp = await request("GET", f"{site}/big", max_body_bytes=99_999, timeout=5)
    assert resp.truncated and len(resp.body) == 99_999


async def test_gzip_and_deflate_bodies_are_decoded(site: str) -> None:
    resp = await request("GET", f"{site}/gzip", headers={"Accept-Encoding": "gzip"}, timeout=5)
    assert resp.body == b"hello compressed world " * 100 and resp.header("content-encoding") == "gzip"
    assert (await request("GET", f"{site}/deflate", timeout=5)).body == b"deflated " * 100
    assert (await request("GET", f"{site}/raw-deflate", timeout=5)).body == b"raw deflated " * 100


async def test_the_limit_applies_to_the_decoded_body(site: str) -> None:
    resp = await request("GET", f"{site}/bomb", max_body_bytes=4096, timeout=5)  # 20 MB of zeros
    assert resp.truncated and resp.body == b"\0" * 4096


async def test_a_body_that_does_not_decode_is_malformed(raw: Any) -> None:
    url = await raw(b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 9\r\n\r\nnot gzip!")
    with pytest.raises(httpclient.MalformedResponse, match="cannot decode"):
        await request("GET", url, timeout=5)


# --- redirects -----------------------------------------------------------------------------------


async def test_redirects_are_followed_when_asked(site: str) -> None:
    resp = await request("GET", f"{site}/redirect?to=/status/201", follow_redirects=True, timeout=5)
    assert resp.status == 201 and resp.redirects == 1 and resp.url.endswith("/status/201")
    resp = await request("GET", f"{site}/redirect?to=/status/201", timeout=5)
    assert resp.status == 302 and resp.header("location") == "/status/201"


async def test_303_becomes_a_get_and_307_keeps_method_and_body(site: str) -> None:
    await request("POST", f"{site}/see-other", body=b"data", follow_redirects=True, timeout=5)
    assert SEEN["method"] == "GET" and SEEN["body"] == b""
    await request("POST", f"{site}/temporary", body=b"data", follow_redirects=True, timeout=5)
    assert SEEN["method"] == "POST" and SEEN["body"] == b"data"


async def test_authorization_is_not_sent_to_another_origin(site: str) -> None:
    other, port = await _start(_app())
    try:
        auth = {"Authorization": "Bearer secret"}
        to = f"http://127.0.0.1:{port}/echo"
        await request("GET", f"{site}/redirect?to={to}", headers=auth, follow_redirects=True, timeout=5)
        assert "Authorization" not in SEEN["headers"]
        await request("GET", f"{site}/redirect?to=/echo", headers=auth, follow_redirects=True, timeout=5)
        assert SEEN["headers"]["Authorization"] == "Bearer secret"
    finally:
        await other.cleanup()


async def test_a_redirect_loop_stops_at_the_maximum(site: str) -> None:
    with pytest.raises(httpclient.TooManyRedirects, match="more than 3"):
        await request("GET", f"{site}/loop", follow_redirects=True, max_redirects=3, timeout=5)


# --- failures ------------------------------------------------------------------------------------


async def test_a_refused_port_is_a_connect_error() -> None:
    with pytest.raises(httpclient.ConnectError, match=r"^connection refused$") as info:
        await request("GET", f"http://127.0.0.1:{free_port()}/", timeout=5)
    assert isinstance(info.value.os_error, ConnectionRefusedError)


async def test_an_unknown_host_is_a_dns_error() -> None:
    try:
        await request("GET", "http://opsdesk-test.invalid/", timeout=5)
    except httpclient.RequestTimeout:
        pytest.skip("this machine's resolver did not answer in time")
    except httpclient.DNSError as exc:
        assert "cannot resolve host opsdesk-test.invalid" in str(exc)
        assert isinstance(exc, httpclient.ConnectError)
    else:
        pytest.fail("a .invalid name resolved")


async def test_a_server_that_never_answers_times_out_on_time(raw: Any) -> None:
    url = await raw(None, "silent")
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(httpclient.RequestTimeout, match=r"timed out after 0\.3s") as info:
        await request("GET", url, timeout=0.3)
    assert isinstance(info.value, TimeoutError)
    assert 0.25 < loop.time() - started < 2


async def test_a_timeout_inside_a_task_leaves_the_task_usable(raw: Any) -> None:
    url = await raw(None, "silent")
    with pytest.raises(TimeoutError):
        await request("GET", url, timeout=0.1)
    await asyncio.sleep(0)  # the task was not left cancelled
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0


async def test_an_outside_cancellation_is_not_turned_into_a_timeout(raw: Any) -> None:
    url = await raw(None, "silent")
    task = asyncio.create_task(request("GET", url, timeout=5))
    await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


@pytest.mark.parametrize(
    ("answer", "how", "error", "message"),
    [
        (b"this is not http\r\n\r\n", "close", httpclient.MalformedResponse, "malformed response"),
        (b"HTTP/1.1 2000 OK\r\n\r\n", "close", httpclient.MalformedResponse, "malformed response"),
        (None, "close", httpclient.ConnectionClosed, "closed the connection without answering"),
        (None, "reset", httpclient.ConnectionClosed, "reset|without answering"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort", "close", httpclient.ConnectionClosed,
         "before the answer was complete"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort", "reset", httpclient.ConnectionClosed,
         "reset|before the answer was complete"),
        (b"HTTP/1.1 200 OK\r\n" + b"X-Endless: " + b"a" * 70_000, "silent",  # headers that never end
         httpclient.MalformedResponse, "headers larger than"),
    ],
)  # fmt: skip
async def test_broken_answers_raise_clear_errors(
    raw: Any, answer: bytes | None, how: str, error: type[Exception], message: str
) -> None:
    url = await raw(answer, how)
    with pytest.raises(error, match=message):
        await request("GET", url, timeout=3)


@pytest.mark.parametrize(
    ("url", "headers", "message"),
    [
        ("ftp://example.org/", {}, "not an http"),
        ("http:///path", {}, "no host"),
        ("http://127.0.0.1:99999/", {}, "invalid URL"),
        ("http://127.0.0.1/", {"X-Evil": "a\r\nInjected: yes"}, "line breaks"),
        ("http://127.0.0.1/", {"X-Evil\n": "a"}, "line breaks"),
    ],
)
async def test_bad_requests_are_refused_before_connecting(
    url: str, headers: dict[str, str], message: str
) -> None:
    with pytest.raises(httpclient.InvalidRequest, match=message):
        await request("GET", url, headers=headers, timeout=5)


# --- TLS -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
async def tls_site(ca: trustme.CA) -> AsyncIterator[tuple[str, list[str | None]]]:
    """An HTTPS server for ``localhost`` and 127.0.0.1; yields its port and the SNI names it saw."""
    names: list[str | None] = []
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(server_ctx)
    server_ctx.sni_callback = lambda sock, name, ctx: names.append(name)  # type: ignore[assignment,func-returns-value]
    runner, port = await _start(_app(), ssl_context=server_ctx)
    yield str(port), names
    await runner.cleanup()


async def test_tls_with_a_trusted_ca_sends_sni(
    ca: trustme.CA, tls_site: tuple[str, list[str | None]]
) -> None:
    port, names = tls_site
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    resp = await request("GET", f"https://localhost:{port}/status/200", ssl_context=ctx, timeout=5)
    assert resp.status == 200 and resp.body == b"status page"
    assert names[-1] == "localhost"
    resp = await request("GET", f"https://127.0.0.1:{port}/status/200", ssl_context=ctx, timeout=5)
    assert resp.status == 200 and names[-1] is None  # no SNI for an IP address


async def test_tls_verify_failure_is_a_clear_certificate_error(
    tls_site: tuple[str, list[str | None]],
) -> None:
    port, _ = tls_site
    with pytest.raises(httpclient.CertificateError, match=r"local issuer|self-signed|self signed"):
        await request("GET", f"https://127.0.0.1:{port}/status/200", timeout=5)


async def test_tls_verify_off_accepts_the_same_server(tls_site: tuple[str, list[str | None]]) -> None:
    port, _ = tls_site
    resp = await request("GET", f"https://127.0.0.1:{port}/chunked", verify_tls=False, timeout=5)
    assert resp.status == 200 and resp.body == b"one,two,three"


async def test_tls_name_mismatch_is_a_certificate_error(ca: trustme.CA) -> None:
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("other.example").configure_cert(server_ctx)
    runner, port = await _start(_app(), ssl_context=server_ctx)
    try:
        ctx = ssl.create_default_context()
        ca.configure_trust(ctx)
        with pytest.raises(httpclient.CertificateError, match="mismatch"):
            await request("GET", f"https://127.0.0.1:{port}/", ssl_context=ctx, timeout=5)
    finally:
        await runner.cleanup()


async def test_tls_against_a_plain_server_is_a_tls_error(site: str) -> None:
    with pytest.raises(httpclient.TLSError, match="TLS"):
        await request("GET", site.replace("http://", "https://") + "/echo", verify_tls=False, timeout=5)
