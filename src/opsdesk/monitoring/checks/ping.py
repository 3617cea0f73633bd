"""ICMP ping check: echo requests to a host name or IP address; up when it answers.

Packet loss over ``loss_warn_percent`` or an average RTT over ``rtt_warn_ms`` is degraded; loss at or
over ``loss_critical_percent`` or an average RTT over ``rtt_critical_ms`` is a failure. Unprivileged
ICMP sockets are tried first, then raw (privileged) ones; the mode that worked is cached per address
family for the process and named in the message. :func:`outcome_from_host` (icmplib result →
outcome) and :func:`ping_with_fallback` (socket mode choice) are pure enough to test without a network.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
from collections.abc import Awaitable, Callable
from typing import Any

import icmplib  # type: ignore[import-untyped]
from pydantic import Field, model_validator

from opsdesk.monitoring.checks.base import CheckConfig, CheckOutcome, CheckType, ProbeContext, register

NOT_PERMITTED = (
    "ICMP not permitted: unprivileged ICMP sockets are disabled and raw sockets need root; "
    'run sysctl net.ipv4.ping_group_range="0 2147483647" or run as root'
)
MIN_PACKET_TIMEOUT = 0.05  # seconds; below this, slow replies would be counted as lost
_LABEL = re.compile(r"(?!-)[A-Za-z0-9_-]{1,63}(?<!-)")
_mode_by_family: dict[int, bool] = {}  # address family (4/6) → privileged flag known to work


class PingConfig(CheckConfig):
    count: int = Field(default=3, ge=1, le=20)
    interval: float = Field(default=0.2, ge=0.05, le=10)
    loss_warn_percent: float = Field(default=0, ge=0, lt=100)
    loss_critical_percent: float = Field(default=100, gt=0, le=100)
    rtt_warn_ms: float | None = Field(default=None, ge=0)
    rtt_critical_ms: float | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _consistent(self) -> PingConfig:
        if self.loss_warn_percent >= self.loss_critical_percent:
            raise ValueError("loss_warn_percent must be below loss_critical_percent")
        warn, critical = self.rtt_warn_ms, self.rtt_critical_ms
        if warn is not None and critical is not None and warn >= critical:
            raise ValueError("rtt_warn_ms must be below rtt_critical_ms")
        return self


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def outcome_from_host(host: Any, config: PingConfig, privileged: bool) -> CheckOutcome:
    """Turn an ``icmplib.Host`` (address, packets_sent, rtts) into an outcome."""
    mode = "privileged" if privileged else "unprivileged"
    sent, rtts = host.packets_sent, list(host.rtts)
    if sent == 0:
        return CheckOutcome(False, f"could not send any packet to {host.address} ({mode} socket)")
    if not rtts:
        return CheckOutcome(False, f"no reply, 100% loss ({sent} sent, {mode} socket)")
    loss = 100 * (sent - len(rtts)) / sent
    avg = sum(rtts) / len(rtts)
    summary = (
        f"{len(rtts)}/{sent} replies, {loss:.3g}% loss, "
        f"rtt min/avg/max {min(rtts):.2f}/{avg:.2f}/{max(rtts):.2f} ms ({mode} socket)"
    )
    if loss >= config.loss_critical_percent:
        return CheckOutcome(False, f"{summary}; loss at or over {config.loss_critical_percent:g}%", avg)
    if config.rtt_critical_ms is not None and avg > config.rtt_critical_ms:
        return CheckOutcome(False, f"{summary}; avg rtt over {config.rtt_critical_ms:g} ms", avg)
    if loss > config.loss_warn_percent:
        reason = f"loss over {config.loss_warn_percent:g}%"
        return CheckOutcome(True, f"{summary}; {reason}", avg, degraded=True)
    if config.rtt_warn_ms is not None and avg > config.rtt_warn_ms:
        reason = f"avg rtt over {config.rtt_warn_ms:g} ms"
        return CheckOutcome(True, f"{summary}; {reason}", avg, degraded=True)
    return CheckOutcome(True, summary, avg)


async def ping_with_fallback(ping: Callable[[bool], Awaitable[Any]], family: int) -> tuple[Any, bool] | None:
    """Call ``ping(privileged)`` with the cached mode, else unprivileged then privileged.

    Returns ``(host, privileged)``, or None when no socket mode is permitted.
    """
    cached = _mode_by_family.get(family)
    for privileged in (False, True) if cached is None else (cached, not cached):
        try:
            host = await ping(privileged)
        except icmplib.SocketPermissionError:
            _mode_by_family.pop(family, None)
            continue
        _mode_by_family[family] = privileged
        return host, privileged
    return None


@register
class PingCheck(CheckType):
    name = "ping"
    config_model = PingConfig

    def validate_target(self, target: str) -> str:
        if not target or target != target.strip() or " " in target:
            raise ValueError("must be a host name or an IP address, without spaces")
        if _is_ip(target):
            return target
        labels = target.removesuffix(".").split(".")
        if len(target) > 253 or not all(_LABEL.fullmatch(label) for label in labels) or labels[-1].isdigit():
            raise ValueError("must be a host name or an IP address (not a URL)")
        return target

    async def run(self, target: str, config: PingConfig, timeout: float, ctx: ProbeContext) -> CheckOutcome:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        address = target
        if not _is_ip(target):
            try:
                address = (await asyncio.wait_for(icmplib.async_resolve(target), timeout))[0]
            except (icmplib.NameLookupError, TimeoutError):
                return CheckOutcome(False, f"cannot resolve {target}")
        # Worst case (no replies): count waits of packet_timeout plus count-1 intervals; keep 10% spare.
        budget = (deadline - loop.time()) * 0.9 - (config.count - 1) * config.interval
        packet_timeout = budget / config.count
        if packet_timeout < MIN_PACKET_TIMEOUT:
            return CheckOutcome(
                False, f"timeout {timeout:g}s too short for {config.count} packets at {config.interval:g}s"
            )

        def ping(privileged: bool) -> Awaitable[Any]:
            return icmplib.async_ping(
                address,
                count=config.count,
                interval=config.interval,
                timeout=packet_timeout,
                privileged=privileged,
            )

        try:
            result = await ping_with_fallback(ping, 6 if ":" in address else 4)
        except icmplib.ICMPLibError as exc:
            return CheckOutcome(False, f"ping failed: {exc}")
        if result is None:
            return CheckOutcome(False, NOT_PERMITTED)
        return outcome_from_host(result[0], config, result[1])
