"""TCP check: up when a connection to ``host:port`` opens in time; optional latency thresholds.

Only the TCP handshake is measured: the connection is closed as soon as it is open. The helpers here
(target parsing, error wording, closing) are shared with the DNS and TLS checks.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import os
import re
import socket
import time
from typing import Self

from pydantic import Field, model_validator

from opsdesk.monitoring.checks.base import CheckConfig, CheckOutcome, CheckType, ProbeContext, register

_LABEL = re.compile(r"^(?!-)[A-Za-z0-9_-]{1,63}(?<!-)$")
CLOSE_GRACE = 0.5  # seconds allowed for a polite close after the measurement


def split_host_port(target: str, default_port: int | None = None) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` to ``(host, port)``; ValueError saying what is wrong."""
    target = target.strip()
    if target.startswith("["):
        host, sep, rest = target[1:].partition("]")
        if not sep:
            raise ValueError("missing ']' after the IPv6 address")
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"{host!r} is not an IPv6 address") from None
        if rest and not rest.startswith(":"):
            raise ValueError("expected ':port' after ']'")
        port_text = rest[1:] if rest else None
    else:
        if target.count(":") > 1:
            raise ValueError("write an IPv6 address in brackets, e.g. [2001:db8::1]:443")
        host, sep, port_text_ = target.partition(":")
        port_text = port_text_ if sep else None
        if not host:
            raise ValueError("host is missing")
        if not valid_hostname(host):
            raise ValueError(f"{host!r} is not a valid host name or IP address")
    if port_text is None:
        if default_port is None:
            raise ValueError("port is missing (expected host:port)")
        return host, default_port
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"port must be a number from 1 to 65535, not {port_text!r}")
    return host, int(port_text)


def valid_hostname(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        pass
    name = host.removesuffix(".")
    return len(name) <= 253 and all(_LABEL.match(label) for label in name.split("."))


def describe_os_error(exc: OSError) -> str:
    """A short reason for a failed connect, e.g. "connection refused"."""
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve host: {exc.strerror or exc}"
    codes = {exc.errno} if exc.errno else {int(n) for n in re.findall(r"\[Errno (\d+)\]", str(exc))}
    if codes == {errno.ECONNREFUSED}:  # also when every address of the host refused
        return "connection refused"
    if len(codes) == 1:
        return os.strerror(codes.pop()).lower()
    if not codes and isinstance(exc, ConnectionError):  # e.g. asyncio's EOF during a TLS handshake
        return "connection closed by the server"
    return str(exc) or type(exc).__name__


async def close_writer(writer: asyncio.StreamWriter) -> None:
    """Close politely within CLOSE_GRACE seconds, else drop the connection."""
    writer.close()
    try:
        async with asyncio.timeout(CLOSE_GRACE):
            await writer.wait_closed()
    except (TimeoutError, OSError):
        writer.transport.abort()


class TcpConfig(CheckConfig):
    latency_warn_ms: float | None = Field(default=None, ge=0)
    latency_critical_ms: float | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _warn_below_critical(self) -> Self:
        warn, critical = self.latency_warn_ms, self.latency_critical_ms
        if warn is not None and critical is not None and warn > critical:
            raise ValueError("latency_warn_ms must not exceed latency_critical_ms")
        return self


@register
class TcpCheck(CheckType):
    name = "tcp"
    config_model = TcpConfig

    def validate_target(self, target: str) -> str:
        split_host_port(target)
        return target.strip()

    async def run(self, target: str, config: TcpConfig, timeout: float, ctx: ProbeContext) -> CheckOutcome:
        try:
            host, port = split_host_port(target)
        except ValueError as exc:
            return CheckOutcome(False, f"invalid target: {exc}")
        started = time.perf_counter()
        try:
            async with asyncio.timeout(timeout):
                _, writer = await asyncio.open_connection(host, port)
        except TimeoutError:
            return CheckOutcome(False, f"timed out after {timeout:g}s")
        except OSError as exc:
            return CheckOutcome(False, describe_os_error(exc))
        latency = (time.perf_counter() - started) * 1000
        await close_writer(writer)
        said = f"connected in {latency:.1f} ms"
        if config.latency_critical_ms is not None and latency > config.latency_critical_ms:
            return CheckOutcome(False, f"{said} (critical at {config.latency_critical_ms:g} ms)", latency)
        if config.latency_warn_ms is not None and latency > config.latency_warn_ms:
            return CheckOutcome(
                True, f"{said} (warning at {config.latency_warn_ms:g} ms)", latency, degraded=True
            )
        return CheckOutcome(True, said, latency)
