"""The ping check: real ICMP to 127.0.0.1 and ::1 only; everything else with fakes.

No test sends a packet or a DNS query off this machine: "no reply" and partial loss are tested on
:func:`outcome_from_host` with ``icmplib.Host`` data, and name resolution with a patched resolver
(the configured resolver here is not on loopback, so even ``nonexistent.invalid`` would leave it).
"""

from __future__ import annotations

import asyncio
import re

import icmplib
import pytest
from pydantic import ValidationError

from opsdesk.monitoring.checks import ProbeContext, get_check_type
from opsdesk.monitoring.checks import ping as ping_mod
from opsdesk.monitoring.checks.ping import (
    NOT_PERMITTED,
    PingConfig,
    outcome_from_host,
    ping_with_fallback,
)

CHECK = get_check_type("ping")
CTX = ProbeContext(http=None)  # type: ignore[arg-type]  # the ping check does not use HTTP
FAST = PingConfig(count=3, interval=0.05)
MODE = re.compile(r"\((un)?privileged socket\)$")


@pytest.fixture(autouse=True)
def fresh_mode_cache(monkeypatch):
    monkeypatch.setattr(ping_mod, "_mode_by_family", {})


@pytest.fixture
def no_resolver(monkeypatch):
    async def refuse(*args, **kwargs):
        raise AssertionError("an IP literal must not be resolved")

    monkeypatch.setattr(icmplib, "async_resolve", refuse)


# --- real ICMP on loopback -------------------------------------------------------------------


@pytest.mark.parametrize("address, family", [("127.0.0.1", 4), ("::1", 6)])
async def test_loopback_is_up_with_no_loss_and_names_the_socket_mode(address, family, no_resolver):
    out = await CHECK.run(address, FAST, 2, CTX)
    assert out.ok and not out.degraded, out.message
    assert out.message.startswith("3/3 replies, 0% loss, rtt min/avg/max ")
    assert MODE.search(out.message)
    assert out.latency_ms is not None and out.latency_ms > 0
    # The mode that worked is remembered, and it is the one the message names.
    privileged = ping_mod._mode_by_family[family]
    assert out.message.endswith("(privileged socket)" if privileged else "(unprivileged socket)")


async def test_rtt_over_warn_is_degraded(no_resolver):
    out = await CHECK.run("127.0.0.1", PingConfig(count=2, interval=0.05, rtt_warn_ms=0), 2, CTX)
    assert out.ok and out.degraded and "avg rtt over 0 ms" in out.message


async def test_rtt_over_critical_is_down(no_resolver):
    out = await CHECK.run("::1", PingConfig(count=2, interval=0.05, rtt_critical_ms=0), 2, CTX)
    assert not out.ok and "avg rtt over 0 ms" in out.message and out.latency_ms is not None


# --- Host -> outcome -------------------------------------------------------------------------


def test_no_reply_is_down_with_full_loss():
    out = outcome_from_host(icmplib.Host("192.0.2.1", 3, []), PingConfig(), privileged=True)
    assert not out.ok and out.latency_ms is None
    assert out.message == "no reply, 100% loss (3 sent, privileged socket)"


def test_partial_loss_is_degraded_by_default():
    out = outcome_from_host(icmplib.Host("192.0.2.1", 3, [1.0, 2.0]), PingConfig(), privileged=False)
    assert out.ok and out.degraded and out.latency_ms == 1.5
    assert out.message == (
        "2/3 replies, 33.3% loss, rtt min/avg/max 1.00/1.50/2.00 ms (unprivileged socket); loss over 0%"
    )


def test_loss_thresholds():
    host = icmplib.Host("192.0.2.1", 4, [1.0, 1.0])  # 50 % loss
    assert outcome_from_host(host, PingConfig(loss_warn_percent=50), privileged=True).degraded is False
    down = outcome_from_host(host, PingConfig(loss_critical_percent=50), privileged=True)
    assert not down.ok and "loss at or over 50%" in down.message


def test_rtt_thresholds_on_the_average():
    host = icmplib.Host("192.0.2.1", 3, [10.0, 20.0, 30.0])  # avg 20
    cfg = PingConfig(rtt_warn_ms=15, rtt_critical_ms=25)
    out = outcome_from_host(host, cfg, privileged=True)
    assert out.ok and out.degraded and "avg rtt over 15 ms" in out.message and out.latency_ms == 20
    out = outcome_from_host(host, PingConfig(rtt_warn_ms=10, rtt_critical_ms=19), privileged=True)
    assert not out.ok and "avg rtt over 19 ms" in out.message
    # "over" is strict: an average equal to a threshold is not past it.
    assert not outcome_from_host(host, PingConfig(rtt_warn_ms=20), privileged=True).degraded
    assert outcome_from_host(host, PingConfig(rtt_critical_ms=20), privileged=True).ok


def test_nothing_sent_is_down():
    out = outcome_from_host(icmplib.Host("192.0.2.1", 0, []), PingConfig(), privileged=True)
    assert not out.ok and "could not send" in out.message


# --- socket mode choice ----------------------------------------------------------------------


class FakePing:
    """Records each ``privileged`` flag; raises SocketPermissionError for the modes in ``denied``."""

    def __init__(self, *denied: bool) -> None:
        self.denied, self.calls = set(denied), []

    async def __call__(self, privileged: bool):
        self.calls.append(privileged)
        if privileged in self.denied:
            raise icmplib.SocketPermissionError(privileged)
        return icmplib.Host("127.0.0.1", 1, [0.1])


async def test_falls_back_to_privileged_and_remembers_it():
    fake = FakePing(False)
    _, privileged = await ping_with_fallback(fake, 4)
    assert privileged is True and fake.calls == [False, True]
    fake.calls.clear()
    await ping_with_fallback(fake, 4)
    assert fake.calls == [True]  # the failing mode is not tried again


async def test_unprivileged_is_tried_first():
    fake = FakePing()
    assert (await ping_with_fallback(fake, 6))[1] is False and fake.calls == [False]


async def test_a_cached_mode_that_stops_working_is_replaced():
    ping_mod._mode_by_family[4] = True
    fake = FakePing(True)
    assert (await ping_with_fallback(fake, 4))[1] is False and fake.calls == [True, False]
    assert ping_mod._mode_by_family[4] is False


async def test_no_permitted_mode_is_down_and_says_how_to_fix(monkeypatch):
    fake = FakePing(False, True)
    assert await ping_with_fallback(fake, 4) is None and 4 not in ping_mod._mode_by_family

    async def denied(address, *, privileged, **kwargs):
        raise icmplib.SocketPermissionError(privileged)

    monkeypatch.setattr(icmplib, "async_ping", denied)
    out = await CHECK.run("127.0.0.1", FAST, 2, CTX)
    assert not out.ok and out.message == NOT_PERMITTED
    assert 'sysctl net.ipv4.ping_group_range="0 2147483647"' in out.message and "root" in out.message


# --- names and the time budget ---------------------------------------------------------------


async def test_unresolvable_name_is_down(monkeypatch):
    async def fail(name, family=None):
        raise icmplib.NameLookupError(name)

    async def never(*args, **kwargs):
        raise AssertionError("nothing to ping")

    monkeypatch.setattr(icmplib, "async_resolve", fail)
    monkeypatch.setattr(icmplib, "async_ping", never)
    out = await CHECK.run("nonexistent.invalid", FAST, 2, CTX)
    assert not out.ok and out.message == "cannot resolve nonexistent.invalid"


async def test_a_name_is_pinged_at_its_resolved_address(monkeypatch):
    async def resolve(name, family=None):
        return ["127.0.0.1"] if name == "db-01.example.internal" else []

    monkeypatch.setattr(icmplib, "async_resolve", resolve)
    out = await CHECK.run("db-01.example.internal", FAST, 2, CTX)
    assert out.ok and out.message.startswith("3/3 replies")


async def test_per_packet_timeout_keeps_the_check_within_its_timeout(monkeypatch, no_resolver):
    seen = {}

    async def record(address, **kwargs):
        seen.update(kwargs)
        return icmplib.Host(address, kwargs["count"], [])

    monkeypatch.setattr(icmplib, "async_ping", record)
    cfg = PingConfig(count=5, interval=0.5)
    out = await CHECK.run("127.0.0.1", cfg, 4, CTX)
    assert not out.ok and out.message.startswith("no reply")
    worst_case = seen["count"] * seen["timeout"] + (seen["count"] - 1) * seen["interval"]
    assert 3 < worst_case < 4


async def test_a_timeout_too_short_for_the_packets_is_down_at_once(no_resolver):
    loop = asyncio.get_running_loop()
    started = loop.time()
    out = await CHECK.run("127.0.0.1", PingConfig(count=5, interval=1), 2, CTX)
    assert not out.ok and out.message == "timeout 2s too short for 5 packets at 1s"
    assert loop.time() - started < 0.5


# --- validation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        {"count": 0},
        {"count": 21},
        {"interval": 0.01},
        {"loss_warn_percent": 100},
        {"loss_warn_percent": 50, "loss_critical_percent": 50},
        {"rtt_warn_ms": -1},
        {"rtt_warn_ms": 100, "rtt_critical_ms": 50},
        {"timeout": 1},
    ],
)
def test_bad_config_is_rejected(bad):
    with pytest.raises(ValidationError):
        PingConfig.model_validate(bad)


@pytest.mark.parametrize(
    "good", ["127.0.0.1", "::1", "2001:db8::1", "localhost", "db-01.example.internal", "example.org."]
)
def test_good_targets(good):
    assert CHECK.validate_target(good) == good


@pytest.mark.parametrize(
    "bad",
    [
        "",
        " ",
        "host name",
        " 127.0.0.1",
        "127.0.0.1\n",
        "http://example.org",
        "example.org/path",
        "example.org:80",
        "[::1]",
        "1.2.3",
        "256.1.1.1",
        "-bad.example",
        "a..b",
    ],
)
def test_bad_targets(bad):
    with pytest.raises(ValueError):
        CHECK.validate_target(bad)
