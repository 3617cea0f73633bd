"""The TCP check against real loopback sockets."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Iterator

import aiohttp
import pytest
from pydantic import ValidationError

from opsdesk.monitoring.checks import ProbeContext, tcp
from opsdesk.monitoring.checks.base import get_check_type
from tests.conftest import free_port

CHECK = get_check_type("tcp")


@pytest.fixture
async def ctx() -> AsyncIterator[ProbeContext]:
    async with aiohttp.ClientSession() as http:
        yield ProbeContext(http=http)


@pytest.fixture
async def listener() -> AsyncIterator[tuple[int, list[int]]]:
    """A server that accepts and counts connections; yields (port, [accepted])."""
    accepted = [0]

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted[0] += 1
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1], accepted
    server.close()
    await server.wait_closed()


@pytest.fixture
def full_backlog() -> Iterator[int]:
    """A listening socket that never accepts, its backlog filled so further SYNs are dropped."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(0)
    port = srv.getsockname()[1]
    fillers = []
    for _ in range(3):
        c = socket.socket()
        c.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            c.connect(("127.0.0.1", port))
        fillers.append(c)
    yield port
    for c in fillers:
        c.close()
    srv.close()


def test_registered_on_import():
    assert CHECK is not None and isinstance(CHECK, tcp.TcpCheck)


async def test_open_port_is_up_with_latency(ctx, listener):
    port, accepted = listener
    out = await CHECK.run(f"127.0.0.1:{port}", tcp.TcpConfig(), 2, ctx)
    assert out.ok and not out.degraded
    assert out.latency_ms is not None and out.latency_ms > 0 and "connected in" in out.message
    await asyncio.sleep(0.05)
    assert accepted[0] == 1  # one connection, opened and closed


async def test_ipv6_loopback_target(ctx):
    try:
        server = await asyncio.start_server(lambda r, w: w.close(), "::1", 0)
    except OSError:
        pytest.skip("no IPv6 loopback here")
    port = server.sockets[0].getsockname()[1]
    try:
        out = await CHECK.run(f"[::1]:{port}", tcp.TcpConfig(), 2, ctx)
    finally:
        server.close()
        await server.wait_closed()
    assert out.ok


async def test_closed_port_is_connection_refused(ctx):
    out = await CHECK.run(f"127.0.0.1:{free_port()}", tcp.TcpConfig(), 2, ctx)
    assert not out.ok and out.message == "connection refused"


async def test_localhost_refused_on_every_address_is_still_connection_refused(ctx):
    out = await CHECK.run(f"localhost:{free_port()}", tcp.TcpConfig(), 2, ctx)
    assert not out.ok and out.message == "connection refused"


async def test_unresolvable_host_is_down(ctx):
    out = await CHECK.run("no-such-host.invalid:80", tcp.TcpConfig(), 2, ctx)
    if out.message.startswith("timed out"):
        pytest.skip("the system resolver did not answer in time")
    assert not out.ok and "cannot resolve" in out.message


async def test_full_backlog_times_out_on_time(ctx, full_backlog):
    loop = asyncio.get_running_loop()
    started = loop.time()
    out = await CHECK.run(f"127.0.0.1:{full_backlog}", tcp.TcpConfig(), 0.3, ctx)
    assert not out.ok and out.message == "timed out after 0.3s"
    assert loop.time() - started < 1.5


async def test_latency_over_warning_is_degraded(ctx, listener):
    port, _ = listener
    out = await CHECK.run(f"127.0.0.1:{port}", tcp.TcpConfig(latency_warn_ms=0), 2, ctx)
    assert out.ok and out.degraded and "(warning at 0 ms)" in out.message


async def test_latency_over_critical_is_a_failure(ctx, listener):
    port, _ = listener
    cfg = tcp.TcpConfig(latency_warn_ms=0, latency_critical_ms=0)
    out = await CHECK.run(f"127.0.0.1:{port}", cfg, 2, ctx)
    assert not out.ok and "(critical at 0 ms)" in out.message and out.latency_ms is not None


async def test_generous_thresholds_stay_up(ctx, listener):
    port, _ = listener
    cfg = tcp.TcpConfig(latency_warn_ms=5000, latency_critical_ms=10000)
    out = await CHECK.run(f"127.0.0.1:{port}", cfg, 2, ctx)
    assert out.ok and not out.degraded


@pytest.mark.parametrize(
    ("target", "says"),
    [
        ("example.org", "port is missing"),
        ("example.org:", "port must be"),
        ("example.org:http", "port must be"),
        ("example.org:0", "port must be"),
        ("example.org:65536", "port must be"),
        (":80", "host is missing"),
        ("exa mple.org:80", "not a valid host"),
        ("-bad.example:80", "not a valid host"),
        ("::1:80", "in brackets"),
        ("[::1:80", "missing ']'"),
        ("[nope]:80", "not an IPv6 address"),
        ("[::1]", "port is missing"),
        ("[::1]x80", "expected ':port'"),
    ],
)
def test_invalid_targets_are_rejected(target, says):
    with pytest.raises(ValueError, match=says):
        CHECK.validate_target(target)


@pytest.mark.parametrize("target", ["127.0.0.1:22", "[::1]:443", "db-1.internal:5432", "example.org.:80"])
def test_valid_targets_are_accepted(target):
    assert CHECK.validate_target(target) == target


def test_config_rejects_negative_or_inverted_thresholds():
    with pytest.raises(ValidationError):
        tcp.TcpConfig.model_validate({"latency_warn_ms": -1})
    with pytest.raises(ValidationError, match="must not exceed"):
        tcp.TcpConfig.model_validate({"latency_warn_ms": 100, "latency_critical_ms": 50})
    with pytest.raises(ValidationError):
        tcp.TcpConfig.model_validate({"timeout": 3})
