"""The SNMP check against a real Net-SNMP agent (Debian's snmpd) on loopback, v2c and v3.

The agent runs unprivileged on a free port with a throwaway config and persistent directory; it
is stopped by its own pid. The rate arithmetic (32-bit wrap, 64-bit preference, resets) is tested
without an agent.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from pydantic import ValidationError
from pysnmp.proto import rfc1902

from opsdesk.monitoring.checks import snmp as snmp_check
from opsdesk.monitoring.checks.base import ProbeContext, get_check_type
from opsdesk.monitoring.checks.snmp import (
    CounterReading,
    Snapshot,
    SnmpCheck,
    SnmpConfig,
    counter_delta,
    counter_rates,
    format_bps,
    name_of,
    pick_counters,
    resolve_oid,
)

CHECK = get_check_type("snmp")
SNMPD = shutil.which("snmpd") or "/usr/sbin/snmpd"
COMMUNITY = "s3cret-Community"
AUTH, PRIV = "auth-pass-123", "priv-pass-456"

# user -> (auth protocol, priv protocol, snmpd access level)
USERS = {
    "opsuser": ("SHA", "AES", "priv"),
    "u256": ("SHA-256", "AES-256", "priv"),
    "u256c": ("SHA-512", "AES-256-C", "priv"),
    "u192": ("SHA", "AES-192", "priv"),
    "umd5": ("MD5", "DES", "priv"),
    "uauth": ("SHA-384", None, "auth"),
    "unoauth": (None, None, "noauth"),
}


def _snmpd_conf() -> str:
    lines = [f"rocommunity {COMMUNITY} 127.0.0.1", f"rocommunity6 {COMMUNITY} ::1", "sysServices 72"]
    for user, (auth, priv, level) in USERS.items():
        create = f"createUser {user}"
        if auth:
            create += f' {auth} "{AUTH}"'
        if priv:
            create += f' {priv} "{PRIV}"'
        lines += [create, f"rouser {user} {level}"]
    return "\n".join(lines) + "\n"


@dataclass
class Agent:
    port: int
    ipv6: bool
    proc: subprocess.Popen[bytes]

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def _answers(port: int, env: dict[str, str]) -> bool:
    if shutil.which("snmpget") is None:  # without the tools: give the agent a moment
        time.sleep(0.5)
        return True
    probe = [
        "snmpget",
        "-v2c",
        "-c",
        COMMUNITY,
        "-t",
        "0.3",
        "-r",
        "0",
        f"127.0.0.1:{port}",
        "1.3.6.1.2.1.1.3.0",
    ]
    return subprocess.run(probe, env=env, capture_output=True, timeout=5).returncode == 0


def start_agent(base: Path, port: int | None = None) -> Agent:
    """snmpd on loopback, unprivileged, with a fresh persistent directory (so a fresh engine ID)."""
    if not os.path.exists(SNMPD):
        pytest.fail("snmpd is not installed: apt-get install snmpd snmp (see .ci/run)")
    conf = base / "snmpd.conf"
    conf.write_text(_snmpd_conf())
    ipv6 = _ipv6_loopback()
    for _attempt in range(5):
        persist = Path(tempfile.mkdtemp(dir=base))
        # Net-SNMP keeps engine state in its persistent directory: a fresh one per agent, never /var/lib.
        env = dict(os.environ, SNMP_PERSISTENT_DIR=str(persist), MIBS="")
        listen_port = port or _free_udp_port()
        listen = f"udp:127.0.0.1:{listen_port}" + (f",udp6:[::1]:{listen_port}" if ipv6 else "")
        cmd = [SNMPD, "-f", "-Lo", "-C", "-c", str(conf), "-p", str(persist / "snmpd.pid"), listen]
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while proc.poll() is None and time.monotonic() < deadline and not _answers(listen_port, env):
            time.sleep(0.1)
        if proc.poll() is None:
            return Agent(listen_port, ipv6, proc)
        if port is not None:
            time.sleep(0.2)  # the port is still being released: try again
        # else the port was taken in the meantime: try another
    pytest.fail("snmpd did not start")


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Agent]:
    running = start_agent(tmp_path_factory.mktemp("snmpd"))
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
async def ctx() -> AsyncIterator[ProbeContext]:
    async with aiohttp.ClientSession() as http:
        yield ProbeContext(http=http)


def v3(user: str, **extra: object) -> SnmpConfig:
    auth, priv, _ = USERS[user]
    values: dict[str, object] = {"version": "3", "username": user, "oids": ["sysName"]}
    if auth:
        values |= {"auth_protocol": auth, "auth_password": AUTH}
    if priv:
        values |= {"priv_protocol": priv, "priv_password": PRIV}
    return SnmpConfig.model_validate(values | extra)


def v2c(**extra: object) -> SnmpConfig:
    return SnmpConfig.model_validate({"community": COMMUNITY} | extra)


def samples_named(outcome, name: str) -> list:
    return [s for s in outcome.samples if s.name == name]


def test_registered_on_import():
    assert isinstance(CHECK, SnmpCheck)
    assert set(CHECK.secret_fields) == {"community", "auth_password", "priv_password"}


# ------------------------------------------------------------------------------------------ get


async def test_v2c_get_reads_sysdescr_and_uptime(ctx, agent):
    out = await CHECK.run(agent.target, v2c(oids=["sysDescr", "sysUpTime.0"]), 2, ctx)
    assert out.ok, out.message
    assert not out.degraded
    assert "sysDescr.0 = Linux" in out.message and "sysUpTime.0 = " in out.message
    assert out.latency_ms is not None and out.latency_ms > 0
    (uptime,) = out.samples  # sysDescr is text: no sample
    assert uptime.name == "snmp_value" and uptime.value > 0
    assert dict(uptime.labels) == {
        "instance": agent.target,
        "oid": "1.3.6.1.2.1.1.3.0",
        "name": "sysUpTime.0",
    }


@pytest.mark.parametrize("user", [u for u in USERS if u != "unoauth"] + ["unoauth"])
async def test_v3_get_with_each_protocol_pair(ctx, agent, user):
    out = await CHECK.run(agent.target, v3(user, oids=["sysDescr.0", "1.3.6.1.2.1.1.3.0"]), 2, ctx)
    assert out.ok, out.message
    assert "sysDescr.0 = Linux" in out.message and "sysUpTime.0 = " in out.message  # numeric OID named


async def test_v3_auth_priv_explicit_security_level_and_aliases(ctx, agent):
    cfg = v3("opsuser", security_level="authpriv", auth_protocol="sha1", priv_protocol="aes128")
    assert (cfg.auth_protocol, cfg.priv_protocol, cfg.security_level) == ("SHA", "AES-128", "authPriv")
    out = await CHECK.run(agent.target, cfg, 2, ctx)
    assert out.ok, out.message


async def test_ipv6_target_in_brackets(ctx, agent):
    if not agent.ipv6:
        pytest.skip("no IPv6 loopback here")
    out = await CHECK.run(f"[::1]:{agent.port}", v2c(oids=["sysName"]), 2, ctx)
    assert out.ok, out.message


async def test_wrong_community_is_no_answer_naming_the_community(ctx, agent):
    started = time.monotonic()
    out = await CHECK.run(agent.target, SnmpConfig(community="wrong", oids=["sysName"]), 1, ctx)
    assert time.monotonic() - started < 1.5
    assert not out.ok
    assert out.message == (
        f"no SNMP answer from {agent.target} within 1s "
        "(check the community, and that the agent answers this host)"
    )


async def test_v3_wrong_auth_password_says_so(ctx, agent):
    out = await CHECK.run(agent.target, v3("opsuser", auth_password="not-the-password"), 2, ctx)
    assert not out.ok
    assert out.message == (
        "SNMPv3 authentication failed for user 'opsuser': wrong auth password or auth protocol "
        "(usmStatsWrongDigests)"
    )


async def test_v3_wrong_auth_protocol_is_a_wrong_digest_too(ctx, agent):
    out = await CHECK.run(agent.target, v3("opsuser", auth_protocol="MD5"), 2, ctx)
    assert not out.ok and "usmStatsWrongDigests" in out.message


async def test_v3_unknown_user_says_so(ctx, agent):
    cfg = v3("opsuser", username="nobody")
    out = await CHECK.run(agent.target, cfg, 2, ctx)
    assert not out.ok
    assert out.message == "SNMPv3 user 'nobody' is unknown to the agent (usmStatsUnknownUserNames)"


async def test_v3_wrong_privacy_password_is_no_answer_with_a_hint(ctx, agent):
    out = await CHECK.run(agent.target, v3("opsuser", priv_password="not-the-password"), 1, ctx)
    assert not out.ok
    assert out.message == (
        f"no SNMP answer from {agent.target} within 1s "
        "(check the host, the port, and the privacy protocol and password)"
    )


async def test_v3_too_low_security_level_is_refused_access(ctx, agent):
    cfg = SnmpConfig(version="3", username="opsuser", oids=["sysName"])  # the agent wants authPriv
    out = await CHECK.run(agent.target, cfg, 2, ctx)
    assert not out.ok
    assert out.message.startswith("the agent refused access") and "authorizationError" in out.message


async def test_failures_do_not_spoil_the_next_check(ctx, agent):
    good = v3("opsuser")
    for cfg, ok in [
        (good, True),
        (v3("opsuser", auth_password="not-the-password"), False),
        (good, True),
        (v3("opsuser", priv_password="not-the-password"), False),
        (good, True),
        (v2c(oids=["sysName"]), True),
        (SnmpConfig(community="wrong", oids=["sysName"]), False),
        (v2c(oids=["sysName"]), True),
    ]:
        # 3 s: on a loaded machine a good v3 answer can take longer than half a second.
        out = await CHECK.run(agent.target, cfg, 3, ctx)
        assert out.ok is ok, out.message


async def test_v3_agent_replaced_at_the_same_address_is_read_again(ctx, tmp_path):
    first = start_agent(tmp_path)
    try:
        assert (await CHECK.run(first.target, v3("opsuser"), 1, ctx)).ok
    finally:
        first.stop()
    second = start_agent(tmp_path, port=first.port)  # a new snmpEngineID at the same address
    try:
        outs = [await CHECK.run(second.target, v3("opsuser"), 1, ctx) for _ in range(2)]
    finally:
        second.stop()
    assert outs[-1].ok, [o.message for o in outs]  # at most the first check after the change fails


async def test_concurrent_checks_with_different_credentials(ctx, agent):
    good = [v3(user) for user in USERS] + [v2c(oids=["sysName"]), v2c(mode="interfaces", interfaces=["lo"])]
    bad = [v3("opsuser", auth_password="not-the-password"), SnmpConfig(community="wrong", oids=["sysName"])]
    outs = await asyncio.gather(*(CHECK.run(agent.target, cfg, 3, ctx) for cfg in good * 3 + bad))
    assert [o.ok for o in outs] == [True] * len(good) * 3 + [False] * len(bad), [o.message for o in outs]


async def test_missing_object_and_instance_are_down_naming_them(ctx, agent):
    cfg = v2c(oids=["sysName", "1.3.6.1.2.1.1.99.0", "sysDescr.5"])
    out = await CHECK.run(agent.target, cfg, 2, ctx)
    assert not out.ok
    assert out.message.startswith(
        "1.3.6.1.2.1.1.99.0: no such object on the agent; "
        "sysDescr.5: no such instance on the agent; sysName.0 = "
    )


@pytest.mark.parametrize(
    ("spec", "ok", "degraded", "verdict"),
    [
        ({"warn": 100, "critical": 200}, True, False, None),
        ({"warn": 50, "critical": 200}, True, True, "(warn > 50)"),
        ({"warn": 50, "critical": 70}, False, False, "(critical > 70)"),
        ({"critical": 72, "compare": ">="}, False, False, "(critical >= 72)"),
        ({"warn": 100, "compare": "<"}, True, True, "(warn < 100)"),
        ({"critical": 72, "compare": "!="}, True, False, None),
        ({"critical": 72, "compare": "=="}, False, False, "(critical == 72)"),
    ],
)
async def test_thresholds_give_degraded_or_down(ctx, agent, spec, ok, degraded, verdict):
    out = await CHECK.run(
        agent.target, v2c(oids=[{"oid": "sysServices"} | spec]), 2, ctx
    )  # set in the config
    assert (out.ok, out.degraded) == (ok, degraded), out.message
    assert out.message == "sysServices.0 = 72" + (f" {verdict}" if verdict else "")


async def test_text_value_with_threshold_is_down(ctx, agent):
    out = await CHECK.run(agent.target, v2c(oids=[{"oid": "sysName", "warn": 1}]), 2, ctx)
    assert not out.ok and out.message.endswith(": not a number, cannot compare")


async def test_table_column_is_walked_and_each_instance_judged(ctx, agent):
    cfg = v2c(oids=[{"oid": "laLoad", "critical": 100000}, "laLoadFloat.1", "laNames"])
    out = await CHECK.run(agent.target, cfg, 2, ctx)
    assert out.ok, out.message
    assert "laLoad.1 = " in out.message and "laNames.3 = Load-15" in out.message
    names = sorted(dict(s.labels)["name"] for s in out.samples)
    assert names == ["laLoad.1", "laLoad.2", "laLoad.3", "laLoadFloat.1"]  # text load and Opaque float
    assert all(s.value >= 0 for s in out.samples)


async def test_numeric_subtree_walk_with_label(ctx, agent):
    cfg = v2c(oids=[{"oid": "1.3.6.1.4.1.2021.10.1.2", "walk": True, "label": "load"}])
    out = await CHECK.run(agent.target, cfg, 2, ctx)
    assert out.ok and out.message == "load.1 = Load-1; load.2 = Load-5; load.3 = Load-15"


async def test_walk_finding_nothing_is_down(ctx, agent):
    out = await CHECK.run(agent.target, v2c(oids=[{"oid": "1.3.6.1.4.1.99999", "walk": True}]), 2, ctx)
    assert not out.ok and out.message == "1.3.6.1.4.1.99999: nothing under 1.3.6.1.4.1.99999"


# ----------------------------------------------------------------------------------- interfaces


def _loopback_traffic(megabytes: int) -> None:
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx,
    ):
        rx.bind(("127.0.0.1", 0))
        rx.setblocking(False)
        chunk = b"x" * 8192
        for _ in range(megabytes * 128):
            tx.sendto(chunk, rx.getsockname())
            try:
                rx.recv(65536)
            except BlockingIOError:
                pass


async def test_interfaces_lo_up_then_rates_on_the_second_check(ctx, agent):
    check = SnmpCheck()  # its own memory of counters
    cfg = v2c(mode="interfaces", interfaces=["lo"])
    first = await check.run(agent.target, cfg, 2, ctx)
    assert first.ok, first.message
    assert first.message == "1 interface up; traffic rates from the next check"
    labels = {"instance": agent.target, "ifIndex": "1", "ifName": "lo"}
    by_name = {s.name: s for s in first.samples if dict(s.labels) == labels}
    assert by_name["snmp_if_oper_status"].value == 1 and by_name["snmp_if_admin_status"].value == 1
    assert by_name["snmp_if_in_octets_total"].value > 0 and by_name["snmp_if_out_octets_total"].value > 0
    assert "snmp_if_speed_bps" in by_name and "snmp_if_in_errors_total" in by_name
    assert "snmp_if_in_bps" not in by_name
    assert samples_named(first, "snmp_sys_uptime_seconds")[0].value > 0

    _loopback_traffic(4)
    await asyncio.sleep(3.2)  # snmpd caches interface counters for about 3 s
    second = await check.run(agent.target, cfg, 2, ctx)
    assert second.ok, second.message
    (rate_in,) = samples_named(second, "snmp_if_in_bps")
    (rate_out,) = samples_named(second, "snmp_if_out_bps")
    assert rate_in.value > 0 and rate_out.value > 0  # we sent 4 MB over lo in between
    total = samples_named(second, "snmp_if_in_octets_total")[0].value
    assert total > by_name["snmp_if_in_octets_total"].value
    assert second.message.startswith("1 interface up; lo in ") and " out " in second.message
    assert "bit/s" in second.message


async def test_interfaces_prefers_64_bit_counters(ctx, agent):
    check = SnmpCheck()
    out = await check.run(agent.target, v2c(mode="interfaces", interfaces=["1"]), 2, ctx)
    assert out.ok, out.message
    (octets,) = samples_named(out, "snmp_if_in_octets_total")
    assert dict(octets.labels)["ifName"] == "lo" and octets.value > 0
    (remembered,) = check._snapshots.values()  # snmpd has ifXTable: its HC counters are the ones kept
    assert {reading.bits for reading in remembered.counters.values()} == {64}


async def test_interfaces_without_filter_lists_every_interface(ctx, agent):
    out = await SnmpCheck().run(agent.target, v2c(mode="interfaces"), 2, ctx)
    names = {dict(s.labels)["ifName"] for s in samples_named(out, "snmp_if_oper_status")}
    assert "lo" in names
    assert " up" in out.message


async def test_interface_not_found_is_down_naming_it(ctx, agent):
    out = await SnmpCheck().run(agent.target, v2c(mode="interfaces", interfaces=["LO", "eth-nope*"]), 2, ctx)
    assert not out.ok
    assert out.message == "eth-nope* not found, 1 interface up; traffic rates from the next check"


async def test_counter_memory_is_bounded(ctx, agent, monkeypatch):
    from opsdesk.monitoring.checks import snmp

    monkeypatch.setattr(snmp, "MAX_REMEMBERED", 2)
    check = SnmpCheck()
    for selector in ("lo", "1", "l*"):
        assert (await check.run(agent.target, v2c(mode="interfaces", interfaces=[selector]), 2, ctx)).ok
    assert len(check._snapshots) == 2


# --------------------------------------------------------------------------------- no agent


@pytest.mark.parametrize("silent", [False, True], ids=["nobody-listens", "never-answers"])
@pytest.mark.parametrize("version", ["2c", "3"])
async def test_dead_port_is_down_within_the_timeout(ctx, silent, version):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    if not silent:
        sock.close()
    cfg = v2c(oids=["sysName"], retries=2) if version == "2c" else v3("opsuser", retries=2)
    # The engine is built before the timeout starts (it is the prober's cost, not the agent's):
    # built here first, so what is timed is the wait for the agent.
    snmp_check._ENGINES.release(await snmp_check._ENGINES.acquire(snmp_check._engine_key(cfg)))
    started = time.monotonic()
    try:
        out = await CHECK.run(f"127.0.0.1:{port}", cfg, 0.8, ctx)
    finally:
        sock.close()
    elapsed = time.monotonic() - started
    assert not out.ok
    assert out.message.startswith(f"no SNMP answer from 127.0.0.1:{port} within 0.8s (check the ")
    assert elapsed < 1.5  # the timeout holds (with room for a busy machine)
    if silent:
        assert elapsed > 0.5  # the retries used the time given


async def test_unresolvable_host_is_down_saying_so(ctx, monkeypatch):
    def no_such_host(*args: object, **kwargs: object) -> None:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_such_host)
    out = await CHECK.run("no-such-host.invalid", v2c(oids=["sysName"]), 1, ctx)
    assert not out.ok
    assert out.message == "cannot resolve host no-such-host.invalid: Name or service not known"


async def test_bad_target_is_down_not_raised(ctx):
    out = await CHECK.run("bad host", v2c(oids=["sysName"]), 1, ctx)
    assert not out.ok and out.message.startswith("bad target: ")


@pytest.mark.parametrize("target", ["192.0.2.1", "192.0.2.1:1161", "router.example.net", "[2001:db8::1]:161"])
def test_valid_targets(target):
    assert CHECK.validate_target(f" {target} ") == target


@pytest.mark.parametrize(
    "target", ["", "a b", "host:0", "host:99999", "2001:db8::1", "[2001:db8::1", "host:snmp"]
)
def test_invalid_targets_are_rejected(target):
    with pytest.raises(ValueError):
        CHECK.validate_target(target)


# --------------------------------------------------------------------------------------- config


@pytest.mark.parametrize(
    ("config", "loc"),
    [
        ({"oids": ["sysUpTme.0"]}, ("oids", 0, "oid")),
        ({"oids": ["NOT-A-MIB::nothing"]}, ("oids", 0, "oid")),
        ({"oids": ["1.3.6.x"]}, ("oids", 0, "oid")),
        ({"oids": ["7.1"]}, ("oids", 0, "oid")),
        ({"oids": [{"oid": "sysName", "compare": "~"}]}, ("oids", 0, "compare")),
        ({"oids": [{"oid": "sysName", "colour": "red"}]}, ("oids", 0, "colour")),
        ({"oids": [{"oid": "hrProcessorLoad", "walk": False}]}, ("oids", 0)),
        ({"oids": []}, ("oids",)),
        ({}, ("oids",)),
        ({"version": "1", "oids": ["sysName"]}, ("version",)),
        ({"version": "4", "oids": ["sysName"]}, ("version",)),
        ({"version": "3", "oids": ["sysName"]}, ("username",)),
        ({"version": "3", "username": "u", "auth_protocol": "SHA", "oids": ["sysName"]}, ("auth_password",)),
        (
            {
                "version": "3",
                "username": "u",
                "auth_protocol": "SHA",
                "auth_password": "short",
                "oids": ["sysName"],
            },
            ("auth_password",),
        ),
        (
            {"version": "3", "username": "u", "auth_protocol": "SHA-1024", "oids": ["sysName"]},
            ("auth_protocol",),
        ),
        (
            {
                "version": "3",
                "username": "u",
                "priv_protocol": "AES",
                "priv_password": PRIV,
                "oids": ["sysName"],
            },
            ("priv_protocol",),
        ),
        (
            {
                "version": "3",
                "username": "u",
                "auth_protocol": "SHA",
                "auth_password": AUTH,
                "priv_protocol": "AES",
            }
            | {"oids": ["sysName"]},
            ("priv_password",),
        ),
        (
            {"version": "3", "username": "u", "auth_protocol": "SHA", "auth_password": AUTH}
            | {"security_level": "authPriv", "oids": ["sysName"]},
            ("security_level",),
        ),
        ({"mode": "walk", "oids": ["sysName"]}, ("mode",)),
        ({"mode": "interfaces", "interfaces": [""]}, ("interfaces",)),
        ({"mode": "interfaces", "retries": 9}, ("retries",)),
        ({"mode": "interfaces", "timeout": 3}, ("timeout",)),
    ],
)
def test_invalid_config_is_rejected_with_a_field_error(config, loc):
    with pytest.raises(ValidationError) as info:
        SnmpConfig.model_validate(config)
    assert [err["loc"] for err in info.value.errors()] == [loc]


def test_unknown_name_error_suggests_close_names():
    with pytest.raises(ValidationError) as info:
        SnmpConfig.model_validate({"oids": ["ifHCInOctet"]})
    assert "unknown OID name 'ifHCInOctet'; did you mean ifHCInOctets" in str(info.value)


def test_valid_configs_and_defaults():
    cfg = SnmpConfig.model_validate({"oids": ["sysUpTime"]})
    assert (cfg.version, cfg.community, cfg.mode, cfg.retries) == ("2c", "public", "get", 1)
    cfg = SnmpConfig.model_validate({"version": "v2c", "mode": "interfaces", "interfaces": [1, "eth*"]})
    assert cfg.version == "2c" and cfg.interfaces == ["1", "eth*"] and cfg.oids == []
    cfg = SnmpConfig.model_validate(
        {"version": 3, "username": "u", "auth_password": "x", "oids": ["sysName"]}
    )
    assert cfg.version == "3" and cfg.level == "noAuthNoPriv"  # a password without a protocol is ignored
    cfg = v3("u256c")
    assert (cfg.auth_protocol, cfg.priv_protocol, cfg.level) == ("SHA-512", "AES-256-C", "authPriv")
    # a stored config (model_dump) validates again to the same thing
    assert SnmpConfig.model_validate(cfg.model_dump()) == cfg


@pytest.mark.parametrize(
    ("text", "oid", "name", "walk"),
    [
        ("sysUpTime", "1.3.6.1.2.1.1.3.0", "sysUpTime.0", False),
        ("sysUpTime.0", "1.3.6.1.2.1.1.3.0", "sysUpTime.0", False),
        ("SNMPv2-MIB::sysuptime", "1.3.6.1.2.1.1.3.0", "sysUpTime.0", False),
        ("ifHCInOctets.3", "1.3.6.1.2.1.31.1.1.1.6.3", "ifHCInOctets.3", False),
        ("hrProcessorLoad", "1.3.6.1.2.1.25.3.3.1.2", "hrProcessorLoad", True),
        ("hrStorageUsed.1", "1.3.6.1.2.1.25.2.3.1.6.1", "hrStorageUsed.1", False),
        ("laLoad.1", "1.3.6.1.4.1.2021.10.1.3.1", "laLoad.1", False),
        ("memAvailReal", "1.3.6.1.4.1.2021.4.6.0", "memAvailReal.0", False),
        (".1.3.6.1.2.1.2.2.1.10.2", "1.3.6.1.2.1.2.2.1.10.2", "ifInOctets.2", False),
        ("1.3.6.1.4.1.9.9.109", "1.3.6.1.4.1.9.9.109", "1.3.6.1.4.1.9.9.109", False),
    ],
)
def test_oid_names_resolve(text, oid, name, walk):
    resolved = resolve_oid(text)
    assert (".".join(map(str, resolved.oid)), resolved.name, resolved.walk) == (oid, name, walk)


def test_name_of_unknown_oid_is_dotted():
    assert name_of((1, 3, 6, 1, 2, 1, 31, 1, 1, 1, 10, 7)) == "ifHCOutOctets.7"
    assert name_of((1, 3, 6, 1, 4, 1, 9)) == "1.3.6.1.4.1.9"


# ---------------------------------------------------------------------------------------- rates


def snap(at: float, uptime: int | None, **counters: tuple[int, int]) -> Snapshot:
    return Snapshot(at, uptime, {(1, key): CounterReading(v, bits) for key, (v, bits) in counters.items()})


def test_rate_is_delta_over_elapsed_time():
    rates = counter_rates(snap(10, 1000, in_octets=(1000, 64)), snap(20, 2000, in_octets=(6000, 64)))
    assert rates == {(1, "in_octets"): 500.0}


def test_first_check_has_no_rate():
    assert counter_rates(None, snap(20, 2000, in_octets=(6000, 64))) == {}


def test_32_bit_counter_wrap_adds_two_to_the_32():
    before, after = CounterReading(2**32 - 100, 32), CounterReading(50, 32)
    assert counter_delta(before, after) == 150
    rates = counter_rates(snap(0, 100, in_octets=(2**32 - 100, 32)), snap(10, 1100, in_octets=(50, 32)))
    assert rates == {(1, "in_octets"): 15.0}


def test_64_bit_counter_going_backwards_is_a_reset_not_a_spike():
    assert counter_delta(CounterReading(2**40, 64), CounterReading(10, 64)) is None
    assert counter_rates(snap(0, 100, in_octets=(2**40, 64)), snap(10, 1100, in_octets=(10, 64))) == {}


def test_agent_restart_gives_no_rate_that_round():
    # sysUpTime went backwards: even a 32-bit counter that "went backwards" is not taken as a wrap
    previous = snap(0, 500_000, in_octets=(4_000_000, 32), out_octets=(10, 64))
    current = snap(60, 300, in_octets=(1_000, 32), out_octets=(20, 64))
    assert counter_rates(previous, current) == {}
    # and the round after is normal again
    later = snap(120, 6300, in_octets=(61_000, 32), out_octets=(80, 64))
    assert counter_rates(current, later) == {(1, "in_octets"): 1000.0, (1, "out_octets"): 1.0}


def test_counter_discontinuity_or_width_change_gives_no_rate():
    previous = Snapshot(0, 100, {(1, "in_octets"): CounterReading(10, 64)}, {1: 0})
    current = Snapshot(10, 1100, {(1, "in_octets"): CounterReading(20, 64)}, {1: 900})
    assert counter_rates(previous, current) == {}
    assert counter_rates(snap(0, 100, in_octets=(10, 32)), snap(10, 1100, in_octets=(20, 64))) == {}


def test_no_time_elapsed_gives_no_rate():
    assert counter_rates(snap(5, 100, in_octets=(1, 64)), snap(5, 100, in_octets=(2, 64))) == {}


def test_64_bit_counters_are_preferred_when_present():
    row = {
        "ifInOctets": rfc1902.Counter32(5),
        "ifHCInOctets": rfc1902.Counter64(2**33 + 5),
        "ifOutOctets": rfc1902.Counter32(7),
    }
    assert pick_counters(row) == {
        "in_octets": CounterReading(2**33 + 5, 64),
        "out_octets": CounterReading(7, 32),  # no HC counter for this one: the 32-bit one
    }
    assert pick_counters({"ifDescr": rfc1902.OctetString(b"eth0")}) == {}


@pytest.mark.parametrize(
    ("bps", "text"),
    [
        (0, "0 bit/s"),
        (999, "999 bit/s"),
        (1_200_000, "1.2 Mbit/s"),
        (300_000, "300 kbit/s"),
        (2.5e9, "2.5 Gbit/s"),
    ],
)
def test_format_bps(bps, text):
    assert format_bps(bps) == text
