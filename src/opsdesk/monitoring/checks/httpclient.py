"""A minimal HTTP/1.1 client for checks: one fresh connection per request, on httptools.

Why not aiohttp: a check is one request on a fresh connection, and aiohttp's connector, session,
cookie jar, tracing and stream layers are most of its cost per request (measured, see
docs/decisions/0008-http-check-client.md). This module is an ``asyncio.Protocol`` feeding
httptools' parser, and does only what a check needs:

- plain HTTP and TLS (verify on or off, SNI, a caller's own ``ssl.SSLContext``);
- a request with a method, headers and a body, always with ``Connection: close`` so that the
  server closes first and the TIME_WAIT sockets stay on its side;
- the status, headers and body of the answer, with a body read up to a byte limit: past the limit
  the client stops reading and drops the connection; bodies by Content-Length, chunked, or up to the
  server's close; gzip and deflate bodies decoded (no Accept-Encoding is sent unless the caller
  sends one);
- redirects followed here up to a maximum, when asked;
- one total timeout for everything (DNS, connect, TLS, redirects, body);
- exceptions saying what went wrong: :class:`ConnectError` (refused, unreachable, DNS as
  :class:`DNSError`), :class:`CertificateError` and :class:`TLSError`, :class:`ConnectionClosed`
  (reset, or closed before the answer was complete), :class:`MalformedResponse`,
  :class:`TooManyRedirects`, :class:`RequestTimeout` (a :class:`TimeoutError`) and
  :class:`InvalidRequest` (a :class:`ValueError`: a bad URL or header).
"""

from __future__ import annotations

import asyncio
import base64
import errno
import functools
import ipaddress
import os
import socket
import ssl
import time
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import NamedTuple
from urllib.parse import unquote, urljoin, urlsplit

import httptools

__all__ = [
    "CertificateError",
    "ConnectError",
    "ConnectionClosed",
    "DNSError",
    "HttpClientError",
    "InvalidRequest",
    "MalformedResponse",
    "RequestTimeout",
    "Response",
    "TLSError",
    "TooManyRedirects",
    "request",
]

DNS_TTL = 60.0  # seconds a resolved host name is reused, as aiohttp's ttl_dns_cache in the prober
CLOSE_GRACE = 1.0  # seconds the server gets to close after its answer, before the client drops it
MAX_HEADER_BYTES = 65536
REDIRECTS = frozenset((301, 302, 303, 307, 308))


class HttpClientError(Exception):
    """Base of every error this client raises; ``str()`` is a short reason for a person."""


class InvalidRequest(HttpClientError, ValueError):
    """The URL or a header cannot be sent."""


class ConnectError(HttpClientError):
    """No connection: refused, unreachable, or the host name does not resolve."""

    def __init__(self, message: str, os_error: OSError | None = None) -> None:
        super().__init__(message)
        self.os_error = os_error


class DNSError(ConnectError):
    """The host name did not resolve."""


class TLSError(HttpClientError):
    """The TLS handshake failed."""


class CertificateError(TLSError):
    """The server's certificate was not accepted; ``str()`` is the verifier's reason."""


class ConnectionClosed(HttpClientError):
    """The server reset or closed the connection before its answer was complete."""


class MalformedResponse(HttpClientError):
    """What the server sent is not an HTTP/1.x response."""


class TooManyRedirects(HttpClientError):
    """More redirects than the maximum."""


class RequestTimeout(HttpClientError, TimeoutError):
    """The whole request took longer than its timeout."""


@dataclass(slots=True)
class Response:
    status: int
    reason: str
    http_version: str
    raw_headers: list[tuple[bytes, bytes]]
    body: bytes
    truncated: bool  # the body was longer than the limit: ``body`` holds its first part only
    url: str  # the URL that answered (after redirects)
    redirects: int = 0

    def header(self, name: str) -> str | None:
        """The first value of the header ``name`` (any case), or None."""
        key = name.lower().encode("latin-1")
        for k, v in self.raw_headers:
            if k.lower() == key:
                return v.decode("latin-1")
        return None

    @property
    def headers(self) -> dict[str, str]:
        """Headers by lower-case name; for a repeated header, the last value."""
        return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in self.raw_headers}


# --- TLS contexts and DNS, shared by every request -------------------------------------------------

_ssl_contexts: dict[bool, ssl.SSLContext] = {}


def default_ssl_context(verify: bool) -> ssl.SSLContext:
    """One context per mode for the process: building one reads the CA store (milliseconds)."""
    ctx = _ssl_contexts.get(verify)
    if ctx is None:
        ctx = ssl.create_default_context()
        if not verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        ctx.set_alpn_protocols(["http/1.1"])
        _ssl_contexts[verify] = ctx
    return ctx


# (host, port) -> (expires at (monotonic), addresses); IP literals never expire.
_dns_cache: dict[tuple[str, int], tuple[float, list[tuple[int, tuple[object, ...]]]]] = {}


def _literal(host: str, port: int) -> list[tuple[int, tuple[object, ...]]] | None:
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None
    if ip.version == 4:
        return [(socket.AF_INET, (host, port))]
    return [(socket.AF_INET6, (host, port, 0, 0))]


def _cached(host: str, port: int) -> list[tuple[int, tuple[object, ...]]] | None:
    hit = _dns_cache.get((host, port))
    if hit is not None and hit[0] > time.monotonic():
        return hit[1]
    return None


async def _resolve(
    loop: asyncio.AbstractEventLoop, host: str, port: int
) -> list[tuple[int, tuple[object, ...]]]:
    addrs = _literal(host, port)
    expires = float("inf")
    if addrs is None:
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise DNSError(f"cannot resolve host {host}: {exc.strerror or exc}", exc) from None
        addrs = []
        for family, _, _, _, sockaddr in infos:
            if (family, sockaddr) not in addrs:
                addrs.append((family, sockaddr))
        if not addrs:
            raise DNSError(f"cannot resolve host {host}: no addresses")
        expires = time.monotonic() + DNS_TTL
    if len(_dns_cache) > 50_000:
        _dns_cache.clear()
    _dns_cache[(host, port)] = (expires, addrs)
    return addrs


def _describe(exc: OSError) -> str:
    code = exc.errno
    if code == errno.ECONNREFUSED:
        return "connection refused"
    if code:
        return os.strerror(code).lower()
    return str(exc) or type(exc).__name__


# --- the protocol: one request, one answer ---------------------------------------------------------


class _Exchange(asyncio.Protocol):
    """Sends the request when connected and parses the answer; ``done`` gets the result."""

    __slots__ = (
        "_closing",
        "body",
        "body_size",
        "decoder",
        "done",
        "header_bytes",
        "headers",
        "headers_done",
        "http_version",
        "is_head",
        "limit",
        "loop",
        "parser",
        "reason",
        "request",
        "status",
        "transport",
        "truncated",
        "until_close",
    )

    # httptools looks these up once per parser: present as None, they cost no AttributeError.
    on_message_begin = None
    on_chunk_header = None
    on_chunk_complete = None
    on_url = None

    def __init__(self, loop: asyncio.AbstractEventLoop, request: bytes, is_head: bool, limit: int) -> None:
        self.loop = loop
        self.request = request
        self.is_head = is_head
        self.limit = limit
        self.done: asyncio.Future[None] = loop.create_future()
        self.parser: httptools.HttpResponseParser | None = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.status = 0
        self.reason = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.headers_done = False
        self.http_version = ""
        self.header_bytes = 0
        self.body: list[bytes] = []
        self.body_size = 0
        self.truncated = False
        self.until_close = False
        self.decoder: zlib._Decompress | None = None
        self._closing: asyncio.TimerHandle | None = None

    # asyncio callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.write(self.request)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        parser = self.parser
        if parser is None or self.done.done():
            return
        if not self.headers_done:
            self.header_bytes += len(data)
        try:
            parser.feed_data(data)
        except httptools.HttpParserError as exc:
            if not self.done.done():  # a callback may have finished the answer (HEAD, the limit)
                self._fail(MalformedResponse(f"malformed response: {exc}"))
            return
        if not self.headers_done and self.header_bytes > MAX_HEADER_BYTES:
            self._fail(MalformedResponse(f"response headers larger than {MAX_HEADER_BYTES} bytes"))

    def eof_received(self) -> bool:
        return False  # the transport closes; connection_lost decides what the EOF means

    def connection_lost(self, exc: Exception | None) -> None:
        if self._closing is not None:
            self._closing.cancel()
            self._closing = None
        self.transport = None  # no cycle left for the GC: refcounting frees the exchange
        if self.done.done():
            return
        if self.headers_done and self.until_close and exc is None:
            self._finish()  # a body delimited by the end of the connection
        elif isinstance(exc, ConnectionResetError):
            self._fail(ConnectionClosed("connection reset by the server"))
        elif exc is not None:
            self._fail(
                ConnectionClosed(f"connection lost: {_describe(exc) if isinstance(exc, OSError) else exc}")
            )
        elif not self.header_bytes:
            self._fail(ConnectionClosed("the server closed the connection without answering"))
        else:
            self._fail(ConnectionClosed("the server closed the connection before the answer was complete"))

    # httptools callbacks

    def on_status(self, status: bytes) -> None:
        self.reason += status

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        parser = self.parser
        assert parser is not None  # called by the parser itself
        status = parser.get_status_code()
        if status < 200:  # 1xx interim answer (103 Early Hints): the real one follows
            self.headers = []
            self.reason = b""
            return
        self.status = status
        self.http_version = parser.get_http_version()
        self.headers_done = True
        if self.is_head:
            self._finish()
            return
        chunked = False
        length = False
        for name, value in self.headers:
            lname = name.lower()
            if lname == b"content-length":
                length = True
            elif lname == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
            elif lname == b"content-encoding":
                coding = value.strip().lower()
                if coding in (b"gzip", b"x-gzip"):
                    self.decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
                elif coding == b"deflate":
                    self.decoder = zlib.decompressobj()
        self.until_close = not chunked and not length and status not in (204, 304)

    def on_body(self, data: bytes) -> None:
        if self.done.done():
            return
        room = self.limit - self.body_size
        if self.decoder is not None:
            try:
                data = self._decode(data, room)
            except zlib.error as exc:
                self._fail(MalformedResponse(f"cannot decode the compressed body: {exc}"))
                return
        if len(data) > room:
            self.body.append(data[:room])
            self.body_size = self.limit
            self.truncated = True
            self._finish(abort=True)
            return
        self.body.append(data)
        self.body_size += len(data)

    def _decode(self, data: bytes, room: int) -> bytes:
        assert self.decoder is not None
        try:
            return self.decoder.decompress(data, room + 1)
        except zlib.error:
            # Some servers send raw deflate (no zlib header) as "deflate".
            if self.body_size:
                raise
            self.decoder = zlib.decompressobj(-zlib.MAX_WBITS)
            return self.decoder.decompress(data, room + 1)

    def on_message_complete(self) -> None:
        if self.headers_done and not self.done.done():
            self._finish()

    # the end

    def _finish(self, abort: bool = False) -> None:
        if self.done.done():
            return
        self.done.set_result(None)
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if abort:  # past the body limit: stop reading now
            transport.abort()
        else:  # Connection: close was sent, so the server closes; give it a moment
            self._closing = self.loop.call_later(CLOSE_GRACE, transport.abort)

    def _fail(self, exc: Exception) -> None:
        if not self.done.done():
            self.done.set_exception(exc)
        if self.transport is not None:
            self.transport.abort()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def result_body(self) -> bytes:
        return self.body[0] if len(self.body) == 1 else b"".join(self.body)


# --- building the request ------------------------------------------------------------------------


class _Target(NamedTuple):
    host: str  # ASCII (IDNA) host name or IP address, without brackets
    port: int
    tls: bool
    host_header: str
    path: str  # path and query
    basic_auth: str | None  # from user:password@ in the URL


@functools.lru_cache(maxsize=16384)  # a monitor asks for the same URL every interval
def _target(url: str) -> _Target:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise InvalidRequest(f"not an http:// or https:// URL: {url!r}")
    try:
        host = parts.hostname
        port = parts.port
    except ValueError as exc:  # a port that is not a number
        raise InvalidRequest(f"invalid URL {url!r}: {exc}") from None
    if not host:
        raise InvalidRequest(f"no host in URL {url!r}")
    if not host.isascii():
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError as exc:
            raise InvalidRequest(f"invalid host name {host!r}: {exc}") from None
    tls = scheme == "https"
    port = port or (443 if tls else 80)
    shown = f"[{host}]" if ":" in host else host
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    auth = None
    if parts.username is not None:
        raw = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
        auth = "Basic " + base64.b64encode(raw).decode()
    return _Target(host, port, tls, shown if port == (443 if tls else 80) else f"{shown}:{port}", path, auth)


def _encode_request(method: str, target: _Target, headers: Mapping[str, str], body: bytes | None) -> bytes:
    lines = [f"{method} {target.path} HTTP/1.1", f"Host: {target.host_header}"]
    seen = {"host", "connection"}
    for name, value in headers.items():
        lname = name.lower()
        if lname in ("host", "connection", "content-length", "transfer-encoding"):
            if lname == "host":  # the caller's Host replaces ours
                lines[1] = f"Host: {value}"
            continue
        seen.add(lname)
        lines.append(f"{name}: {value}")
    if "accept" not in seen:
        lines.append("Accept: */*")
    if target.basic_auth is not None and "authorization" not in seen:
        lines.append(f"Authorization: {target.basic_auth}")
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    elif method in ("POST", "PUT", "PATCH"):
        lines.append("Content-Length: 0")
    lines.append("Connection: close")
    text = "\r\n".join(lines)
    breaks = len(lines) - 1
    if text.count("\n") != breaks or text.count("\r") != breaks:
        raise InvalidRequest("header names and values must not contain line breaks")
    head = (text + "\r\n\r\n").encode("utf-8")
    return head + body if body else head


# --- one exchange, then redirects ----------------------------------------------------------------


async def _connect(
    loop: asyncio.AbstractEventLoop,
    exchange: _Exchange,
    host: str,
    port: int,
    tls: ssl.SSLContext | None,
) -> None:
    addrs = _cached(host, port) or await _resolve(loop, host, port)
    last: OSError | None = None
    for family, sockaddr in addrs:
        try:
            if tls is None:
                await loop.create_connection(lambda: exchange, str(sockaddr[0]), port, family=family)
            else:
                await loop.create_connection(
                    lambda: exchange,
                    str(sockaddr[0]),
                    port,
                    family=family,
                    ssl=tls,
                    server_hostname=host,
                )
            return
        except ssl.SSLCertVerificationError as exc:
            raise CertificateError(exc.verify_message or exc.reason or str(exc)) from None
        except ssl.SSLError as exc:
            raise TLSError(f"TLS handshake failed: {exc.reason or exc}") from None
        except ConnectionResetError as exc:
            if tls is not None:
                raise TLSError("TLS handshake failed: connection reset by the server") from None
            last = exc
        except OSError as exc:
            last = exc
    assert last is not None
    raise ConnectError(_describe(last), last) from None


async def _exchange_once(
    loop: asyncio.AbstractEventLoop,
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes | None,
    ssl_context: ssl.SSLContext | None,
    verify_tls: bool,
    max_body_bytes: int,
) -> Response:
    target = _target(url)
    payload = _encode_request(method, target, headers, body)
    exchange = _Exchange(loop, payload, method == "HEAD", max_body_bytes)
    context = (ssl_context or default_ssl_context(verify_tls)) if target.tls else None
    try:
        await _connect(loop, exchange, target.host, target.port, context)
        await exchange.done
    except BaseException:
        exchange.abort()
        raise
    finally:
        exchange.parser = None  # it holds the exchange's bound methods: a cycle for the GC otherwise
    return Response(
        status=exchange.status,
        reason=exchange.reason.decode("latin-1"),
        http_version=exchange.http_version,
        raw_headers=exchange.headers,
        body=exchange.result_body(),
        truncated=exchange.truncated,
        url=url,
    )


async def request(
    method: str,
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    body: bytes | None = None,
    timeout: float | None = None,
    verify_tls: bool = True,
    ssl_context: ssl.SSLContext | None = None,
    max_body_bytes: int = 1_048_576,
    follow_redirects: bool = False,
    max_redirects: int = 10,
) -> Response:
    """Send one request on a fresh connection and read the answer (see the module's docstring).

    ``timeout`` bounds everything, redirects included; ``ssl_context`` replaces the default
    context chosen by ``verify_tls``. Following a redirect: 303 (and 301/302 after a POST) becomes
    a GET without a body; an Authorization header is dropped when the redirect leaves the origin.
    """
    method = method.upper()
    if not method.isascii() or not method.isalpha():
        raise InvalidRequest(f"invalid method {method!r}")
    headers = headers or {}
    loop = asyncio.get_running_loop()
    args = (
        loop,
        method,
        url,
        headers,
        body,
        ssl_context,
        verify_tls,
        max_body_bytes,
        follow_redirects,
        max_redirects,
    )
    if timeout is None:
        return await _follow(*args)
    # One timer for the whole request, cheaper than asyncio.timeout(): it cancels this task.
    task = asyncio.current_task()
    assert task is not None
    expired: list[bool] = []
    timer = loop.call_later(timeout, _expire, task, expired)
    try:
        return await _follow(*args)
    except asyncio.CancelledError:
        if expired and task.uncancel() == 0:
            raise RequestTimeout(f"timed out after {timeout:g}s") from None
        raise
    finally:
        timer.cancel()


def _expire(task: asyncio.Task[object], expired: list[bool]) -> None:
    expired.append(True)
    task.cancel()


async def _follow(
    loop: asyncio.AbstractEventLoop,
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes | None,
    ssl_context: ssl.SSLContext | None,
    verify_tls: bool,
    max_body_bytes: int,
    follow_redirects: bool,
    max_redirects: int,
) -> Response:
    hops = 0
    while True:
        resp = await _exchange_once(loop, method, url, headers, body, ssl_context, verify_tls, max_body_bytes)
        resp.redirects = hops
        if not follow_redirects or resp.status not in REDIRECTS:
            return resp
        location = resp.header("location")
        if location is None:
            return resp
        if hops >= max_redirects:
            raise TooManyRedirects(f"too many redirects (more than {max_redirects})")
        hops += 1
        new_url = urljoin(url, location.strip())
        if urlsplit(new_url).scheme.lower() not in ("http", "https"):
            raise InvalidRequest(f"redirected to a URL that is not http(s): {new_url!r}")
        if (resp.status == 303 and method != "HEAD") or (resp.status in (301, 302) and method == "POST"):
            method, body = "GET", None
            headers = {k: v for k, v in headers.items() if k.lower() != "content-type"}
        if _origin(new_url) != _origin(url):
            headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
        url = new_url


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return parts.scheme.lower(), (parts.hostname or ""), parts.port
