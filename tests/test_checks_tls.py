"""The TLS check against real TLS servers on loopback, with certificates from a trustme test CA."""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
import trustme
from pydantic import ValidationError

from opsdesk.monitoring.checks import ProbeContext, tls
from opsdesk.monitoring.checks.base import get_check_type
from tests.conftest import free_port

CHECK = get_check_type("tls")
Cfg = tls.TlsConfig


class Server:
    """A loopback server (TLS with ``tls``, else plain TCP); counts connections the client closed."""

    def __init__(self, tls: trustme.LeafCert | ssl.SSLContext | None, reply: bytes | None = None) -> None:
        self.tls, self.reply, self.closed = tls, reply, 0
        self.port = 0
        self._server: asyncio.Server | None = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            if self.reply is not None:
                await reader.read(100)
                writer.write(self.reply)
                await writer.drain()
            elif not await reader.read():  # EOF: the check closed the connection
                self.closed += 1
        writer.close()

    async def __aenter__(self) -> Server:
        context = self.tls
        if isinstance(context, trustme.LeafCert):
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            self.tls.configure_cert(context)
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0, ssl=context)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2):
                await self._server.wait_closed()


def days_from_now(days: float) -> datetime:
    return datetime.now(UTC) + timedelta(days=days)


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def ca_file(ca: trustme.CA, tmp_path: Path) -> str:
    path = tmp_path / "private-ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


@pytest.fixture
async def ctx() -> AsyncIterator[ProbeContext]:
    async with aiohttp.ClientSession() as http:
        yield ProbeContext(http=http)


def leaf(ca: trustme.CA, days: float = 90, **kw: object) -> trustme.LeafCert:
    return ca.issue_cert(
        "localhost", "127.0.0.1", common_name="localhost", not_after=days_from_now(days), **kw
    )


def test_registered_on_import():
    assert isinstance(CHECK, tls.TlsCheck)


async def test_valid_certificate_is_up_with_days_subject_and_issuer(ctx, ca, ca_file):
    async with Server(leaf(ca)) as server:
        out = await CHECK.run(f"localhost:{server.port}", Cfg(ca_file=ca_file), 2, ctx)
        await asyncio.sleep(0.1)
        assert server.closed == 1  # the check closed its connection
    assert out.ok and not out.degraded, out.message
    assert out.message.startswith("certificate valid for 89 days (CN=localhost, issuer O=trustme")
    assert out.latency_ms is not None and out.latency_ms > 0


async def test_ip_address_target_is_verified_against_the_ip_san(ctx, ca, ca_file):
    async with Server(leaf(ca)) as server:
        out = await CHECK.run(f"127.0.0.1:{server.port}", Cfg(ca_file=ca_file), 2, ctx)
    assert out.ok, out.message


async def test_expiring_within_critical_days_is_a_failure(ctx, ca, ca_file):
    async with Server(leaf(ca, days=5)) as server:
        out = await CHECK.run(f"localhost:{server.port}", Cfg(ca_file=ca_file), 2, ctx)
    assert not out.ok and out.message == "certificate expires in 4 days (critical at 7)"


async def test_expiring_within_warn_days_is_degraded(ctx, ca, ca_file):
    async with Server(leaf(ca, days=10)) as server:
        out = await CHECK.run(f"localhost:{server.port}", Cfg(ca_file=ca_file), 2, ctx)
    assert out.ok and out.degraded and out.message == "certificate expires in 9 days (warning at 14)"


async def test_expired_certificate_is_a_failure_with_or_without_verification(ctx, ca, ca_file):
    expired = leaf(ca, days=-1, not_before=days_from_now(-30))
    async with Server(expired) as server:
        verified = await CHECK.run(f"localhost:{server.port}", Cfg(ca_file=ca_file), 2, ctx)
        unverified = await CHECK.run(f"localhost:{server.port}", Cfg(verify=False), 2, ctx)
    assert not verified.ok and verified.message == "certificate verify failed: certificate has expired"
    assert not unverified.ok and unverified.message.startswith("certificate expired on ")


async def test_hostname_mismatch_is_a_failure_naming_it(ctx, ca, ca_file):
    async with Server(leaf(ca)) as server:
        cfg = Cfg(server_name="example.org", ca_file=ca_file)
        out = await CHECK.run(f"127.0.0.1:{server.port}", cfg, 2, ctx)
    assert not out.ok
    assert (
        out.message
        == "certificate verify failed: hostname mismatch, certificate is not valid for 'example.org'"
    )


async def test_untrusted_ca_is_a_failure_and_verify_false_still_reports_expiry(ctx, ca):
    async with Server(leaf(ca)) as server:
        untrusted = await CHECK.run(f"localhost:{server.port}", Cfg(), 2, ctx)
        unverified = await CHECK.run(f"localhost:{server.port}", Cfg(verify=False), 2, ctx)
    assert not untrusted.ok
    assert untrusted.message in (
        "certificate verify failed: unable to get local issuer certificate",
        "certificate verify failed: self-signed certificate in certificate chain",
    )
    assert unverified.ok and unverified.message.startswith("certificate valid for 89 days")


async def test_self_signed_certificate_is_named_as_such(ctx, ca, tmp_path):
    pem = tmp_path / "self-signed.pem"  # the CA's own certificate and key: a self-signed server cert
    pem.write_bytes(ca.private_key_pem.bytes() + ca.cert_pem.bytes())
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(pem))
    async with Server(context) as server:
        out = await CHECK.run(f"localhost:{server.port}", Cfg(), 2, ctx)
    assert not out.ok and out.message == "certificate verify failed: self-signed certificate"


async def test_plain_tcp_server_is_a_clear_handshake_failure(ctx):
    async with Server(None, reply=b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n") as server:
        out = await CHECK.run(f"127.0.0.1:{server.port}", Cfg(), 2, ctx)
    assert not out.ok and out.message.startswith("TLS handshake failed: "), out.message
    assert "not a TLS port?" in out.message


async def test_server_closing_during_the_handshake_is_a_clear_failure(ctx):
    async with Server(None, reply=b"") as server:  # reads the ClientHello, answers nothing, closes
        out = await CHECK.run(f"127.0.0.1:{server.port}", Cfg(), 2, ctx)
    assert not out.ok and out.message == "TLS handshake failed: connection closed by the server"


async def test_silent_server_times_out_in_the_handshake_on_time(ctx):
    async with Server(None) as server:  # plain TCP, never writes
        loop = asyncio.get_running_loop()
        started = loop.time()
        out = await CHECK.run(f"127.0.0.1:{server.port}", Cfg(), 0.3, ctx)
        elapsed = loop.time() - started
    assert not out.ok and out.message == "timed out after 0.3s (TLS handshake)"
    assert elapsed < 1.5


async def test_connection_refused_is_a_failure(ctx):
    out = await CHECK.run(f"127.0.0.1:{free_port()}", Cfg(), 2, ctx)
    assert not out.ok and out.message == "connection refused"


async def test_unreadable_ca_file_is_a_failure(ctx, tmp_path):
    missing = tmp_path / "nope.pem"
    out = await CHECK.run(f"127.0.0.1:{free_port()}", Cfg(ca_file=str(missing)), 2, ctx)
    assert not out.ok and out.message == f"cannot load ca_file {missing}: no such file or directory"
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    out = await CHECK.run(f"127.0.0.1:{free_port()}", Cfg(ca_file=str(junk)), 2, ctx)
    assert not out.ok and out.message.startswith(f"cannot load ca_file {junk}: ")


async def test_a_replaced_ca_file_is_reloaded(ctx, tmp_path):
    first, second = trustme.CA(), trustme.CA()
    path = tmp_path / "ca.pem"
    first.cert_pem.write_to_path(str(path))
    async with Server(leaf(first)) as server:
        assert (await CHECK.run(f"localhost:{server.port}", Cfg(ca_file=str(path)), 2, ctx)).ok
    second.cert_pem.write_to_path(str(path))
    os.utime(path, ns=(0, os.stat(path).st_mtime_ns + 1_000_000_000))
    async with Server(leaf(second)) as server:
        out = await CHECK.run(f"localhost:{server.port}", Cfg(ca_file=str(path)), 2, ctx)
    assert out.ok, out.message


@pytest.mark.parametrize(
    ("target", "expected"),
    [("example.org", "example.org"), ("example.org:8443", "example.org:8443"), ("[::1]:443", "[::1]:443")],
)
def test_port_defaults_to_443(target, expected):
    assert CHECK.validate_target(target) == expected
    assert tls.split_host_port(target, default_port=443)[1] in (443, 8443)


@pytest.mark.parametrize("bad", ["", "example.org:0", "example.org:https", "::1", "bad host:443"])
def test_invalid_targets_are_rejected(bad):
    with pytest.raises(ValueError):
        CHECK.validate_target(bad)


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"warn_days": -1}, "warn_days"),
        ({"critical_days": "soon"}, "critical_days"),
        ({"server_name": "not a name"}, "server_name"),
        ({"verify": "maybe"}, "verify"),
        ({"sni": "example.org"}, "sni"),
    ],
)
def test_invalid_config_is_rejected_with_a_field_error(config, field):
    with pytest.raises(ValidationError) as info:
        Cfg.model_validate(config)
    assert [err["loc"][0] for err in info.value.errors()] == [field]


def test_critical_days_must_not_exceed_warn_days():
    with pytest.raises(ValidationError, match="critical_days must not exceed warn_days"):
        Cfg.model_validate({"warn_days": 3, "critical_days": 7})
    assert Cfg.model_validate({"warn_days": 30, "critical_days": 30}).critical_days == 30
