"""The DNS check against a real DNS server on loopback (dnslib), over UDP and TCP."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import dns.asyncresolver
import pytest
from dnslib import QTYPE, RCODE, RR, DNSRecord
from dnslib.server import DNSLogger, DNSServer
from pydantic import ValidationError

from opsdesk.monitoring.checks import ProbeContext
from opsdesk.monitoring.checks import dns as dns_check
from opsdesk.monitoring.checks.base import get_check_type

CHECK = get_check_type("dns")
Cfg = dns_check.DnsConfig

ZONE = """
www.example.test.        60 IN A     192.0.2.10
www.example.test.        60 IN A     192.0.2.11
www.example.test.        60 IN AAAA  2001:db8::10
many.example.test.       60 IN A     192.0.2.1
many.example.test.       60 IN A     192.0.2.2
many.example.test.       60 IN A     192.0.2.3
many.example.test.       60 IN A     192.0.2.4
many.example.test.       60 IN A     192.0.2.5
alias.example.test.      60 IN CNAME www.example.test.
example.test.            60 IN MX    10 Mail.Example.Test.
example.test.            60 IN TXT   "v=spf1 -all"
example.test.            60 IN NS    ns1.example.test.
example.test.            60 IN SOA   ns1.example.test. hostmaster.example.test. 7 3600 600 86400 60
_sip._tcp.example.test.  60 IN SRV   10 5 5060 sip.example.test.
10.2.0.192.in-addr.arpa. 60 IN PTR   www.example.test.
"""


class ZoneResolver:
    """Answers from ZONE (following one CNAME); NXDOMAIN for unknown names; SERVFAIL for 'broken.'."""

    def __init__(self) -> None:
        self.records = RR.fromZone(ZONE)
        self.protocols: list[str] = []

    def resolve(self, request: DNSRecord, handler: Any) -> DNSRecord:
        self.protocols.append(handler.protocol)
        reply = request.reply()
        qname, qtype = request.q.qname, request.q.qtype
        if str(qname).startswith("broken."):
            reply.header.rcode = RCODE.SERVFAIL
            return reply
        at_name = [rr for rr in self.records if rr.rname == qname]
        if not at_name:
            reply.header.rcode = RCODE.NXDOMAIN
        for rr in at_name:
            if rr.rtype == qtype:
                reply.add_answer(rr)
            elif rr.rtype == QTYPE.CNAME:
                reply.add_answer(rr)
                reply.add_answer(*[r for r in self.records if r.rname == rr.rdata.label and r.rtype == qtype])
        return reply


@pytest.fixture
def zone() -> Iterator[tuple[str, ZoneResolver]]:
    """UDP and TCP DNS servers on one loopback port; yields ("127.0.0.1:port", resolver)."""
    resolver = ZoneResolver()
    quiet = DNSLogger(logf=lambda _: None)
    for _ in range(20):
        udp = DNSServer(resolver, address="127.0.0.1", port=0, logger=quiet)
        port = udp.server.server_address[1]
        try:
            tcp = DNSServer(resolver, address="127.0.0.1", port=port, tcp=True, logger=quiet)
            break
        except OSError:  # the TCP port happened to be taken: try another
            udp.server.server_close()
    else:
        pytest.fail("no free port for both UDP and TCP")
    threads = [
        threading.Thread(target=s.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        for s in (udp, tcp)
    ]
    for thread in threads:
        thread.start()
    yield f"127.0.0.1:{port}", resolver
    for server in (udp, tcp):
        server.stop()
        server.server.server_close()


@pytest.fixture
async def ctx() -> AsyncIterator[ProbeContext]:
    async with aiohttp.ClientSession() as http:
        yield ProbeContext(http=http)


def test_registered_on_import():
    assert isinstance(CHECK, dns_check.DnsCheck)


async def test_a_record_matching_expected_is_up_and_shows_the_answers(ctx, zone):
    server, _ = zone
    out = await CHECK.run("www.example.test", Cfg(resolver=server, expected=["192.0.2.10"]), 2, ctx)
    assert out.ok, out.message
    assert out.message == "A 192.0.2.10, 192.0.2.11" and out.latency_ms is not None and out.latency_ms > 0


async def test_without_expected_any_answer_is_up(ctx, zone):
    server, _ = zone
    out = await CHECK.run("www.example.test.", Cfg(resolver=server), 2, ctx)
    assert out.ok and "192.0.2.11" in out.message


async def test_many_answers_are_abbreviated(ctx, zone):
    server, _ = zone
    out = await CHECK.run("many.example.test", Cfg(resolver=server), 2, ctx)
    assert out.ok and out.message == "A 192.0.2.1, 192.0.2.2, 192.0.2.3 (+2 more)"


async def test_expected_value_missing_is_a_failure_naming_it(ctx, zone):
    server, _ = zone
    cfg = Cfg(resolver=server, expected=["192.0.2.10", "192.0.2.99"])
    out = await CHECK.run("www.example.test", cfg, 2, ctx)
    assert not out.ok
    assert out.message == "expected 192.0.2.99 not in answer: A 192.0.2.10, 192.0.2.11"


@pytest.mark.parametrize(
    ("target", "record_type", "expected", "shown"),
    [
        ("www.example.test", "AAAA", "2001:DB8:0::10", "AAAA 2001:db8::10"),
        ("alias.example.test", "CNAME", "WWW.example.test.", "CNAME www.example.test"),
        ("alias.example.test", "A", "192.0.2.11", "A 192.0.2.10, 192.0.2.11"),
        ("example.test", "MX", "10 mail.example.test", "MX 10 Mail.Example.Test"),
        ("example.test", "TXT", "V=SPF1 -all", "TXT v=spf1 -all"),
        ("example.test", "NS", "ns1.example.test.", "NS ns1.example.test"),
        ("example.test", "SOA", "ns1.example.test hostmaster.example.test 7 3600 600 86400 60", "SOA ns1"),
        ("_sip._tcp.example.test", "SRV", "10 5 5060 sip.example.test", "SRV 10 5 5060 sip.example.test"),
        ("192.0.2.10", "PTR", "www.example.test", "PTR www.example.test"),
        ("10.2.0.192.in-addr.arpa", "PTR", "www.example.test", "PTR www.example.test"),
    ],
)
async def test_record_types_match_case_and_trailing_dot_insensitively(
    ctx, zone, target, record_type, expected, shown
):
    server, _ = zone
    cfg = Cfg(resolver=server, record_type=record_type, expected=[expected])
    out = await CHECK.run(target, cfg, 2, ctx)
    assert out.ok, out.message
    assert out.message.startswith(shown)


async def test_nxdomain_is_no_such_name(ctx, zone):
    server, _ = zone
    out = await CHECK.run("nope.example.test", Cfg(resolver=server), 2, ctx)
    assert not out.ok and out.message == "no such name"


async def test_name_without_that_record_type_is_a_failure(ctx, zone):
    server, _ = zone
    out = await CHECK.run("www.example.test", Cfg(resolver=server, record_type="MX"), 2, ctx)
    assert not out.ok and out.message == "no MX record"


async def test_servfail_is_a_failure_saying_so(ctx, zone):
    server, _ = zone
    out = await CHECK.run("broken.example.test", Cfg(resolver=server), 2, ctx)
    assert not out.ok and out.message == "resolver failed: answered SERVFAIL"


async def test_udp_by_default_and_tcp_when_asked(ctx, zone):
    server, resolver = zone
    assert (await CHECK.run("www.example.test", Cfg(resolver=server), 2, ctx)).ok
    assert (await CHECK.run("www.example.test", Cfg(resolver=server, protocol="tcp"), 2, ctx)).ok
    assert resolver.protocols == ["udp", "tcp"]


async def test_tcp_to_a_closed_port_is_connection_refused(ctx):
    port = _unused_port(socket.SOCK_STREAM)
    out = await CHECK.run("www.example.test", Cfg(resolver=f"127.0.0.1:{port}", protocol="tcp"), 2, ctx)
    assert not out.ok and out.message == "resolver failed: connection refused"


@pytest.mark.parametrize("silent", [False, True], ids=["nobody-listens", "never-answers"])
async def test_resolver_that_does_not_answer_times_out_on_time(ctx, silent):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    if not silent:
        sock.close()
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        out = await CHECK.run("www.example.test", Cfg(resolver=f"127.0.0.1:{port}"), 0.3, ctx)
    finally:
        sock.close()
    assert not out.ok and out.message == "timed out after 0.3s"
    assert loop.time() - started < 1.5


async def test_without_resolver_the_system_configuration_is_read(ctx, zone, monkeypatch):
    server, resolver = zone
    ip, port = dns_check.parse_resolver(server)

    def fake_resolv_conf(self: dns.asyncresolver.Resolver, *args: object) -> None:
        self.nameservers = [ip]  # stands in for /etc/resolv.conf naming our server
        self.port = port

    monkeypatch.setattr(dns.asyncresolver.Resolver, "read_resolv_conf", fake_resolv_conf)
    out = await CHECK.run("www.example.test", Cfg(), 2, ctx)
    assert out.ok and resolver.protocols == ["udp"]


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"record_type": "ANY"}, "record_type"),
        ({"record_type": "HINFO"}, "record_type"),
        ({"protocol": "doh"}, "protocol"),
        ({"resolver": "dns.google"}, "resolver"),
        ({"resolver": "300.1.1.1"}, "resolver"),
        ({"resolver": "9.9.9.9:99999"}, "resolver"),
        ({"resolver": "[2620:fe::fe"}, "resolver"),
        ({"resolver": "9.9.9.9:dns"}, "resolver"),
        ({"expected": "192.0.2.1"}, "expected"),
        ({"timeout": 3}, "timeout"),
    ],
)
def test_invalid_config_is_rejected_with_a_field_error(config, field):
    with pytest.raises(ValidationError) as info:
        Cfg.model_validate(config)
    assert [err["loc"][0] for err in info.value.errors()] == [field]


@pytest.mark.parametrize(
    ("resolver", "parsed"),
    [
        ("9.9.9.9", ("9.9.9.9", 53)),
        ("9.9.9.9:5353", ("9.9.9.9", 5353)),
        ("2620:fe::fe", ("2620:fe::fe", 53)),
        ("[2620:fe::fe]:5353", ("2620:fe::fe", 5353)),
    ],
)
def test_valid_resolver_addresses(resolver, parsed):
    assert Cfg.model_validate({"resolver": resolver}).resolver == resolver
    assert dns_check.parse_resolver(resolver) == parsed


def test_record_type_and_protocol_are_case_insensitive():
    cfg = Cfg.model_validate({"record_type": "aaaa", "protocol": "TCP"})
    assert cfg.record_type == "AAAA" and cfg.protocol == "tcp"


@pytest.mark.parametrize("bad", ["", "   ", "exa mple.org", "a..b.example", "x" * 64 + ".example"])
def test_invalid_targets_are_rejected(bad):
    with pytest.raises(ValueError):
        CHECK.validate_target(bad)


def _unused_port(kind: socket.SocketKind) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
