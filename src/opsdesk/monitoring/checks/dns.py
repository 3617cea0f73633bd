"""DNS check: resolve a name with a given resolver; up when it answers (with the expected values).

The target is the name to look up (for PTR, an IP address is turned into its reverse name). With
no ``resolver`` the prober's own resolvers from /etc/resolv.conf are used, re-read on every run.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import time
from typing import Any, Literal

import dns.asyncresolver
import dns.exception
import dns.name
import dns.resolver
import dns.reversename
from pydantic import Field, field_validator

from opsdesk.monitoring.checks.base import CheckConfig, CheckOutcome, CheckType, ProbeContext, register
from opsdesk.monitoring.checks.tcp import describe_os_error, split_host_port

RecordType = Literal["A", "AAAA", "CNAME", "MX", "TXT", "NS", "SOA", "SRV", "PTR"]
SHOWN = 3  # answers quoted in the message


def parse_resolver(text: str) -> tuple[str, int]:
    """``ip``, ``ip:port``, ``v6`` or ``[v6]:port`` to ``(ip, port)``; ValueError otherwise."""
    text = text.strip()
    try:
        return str(ipaddress.ip_address(text)), 53
    except ValueError:
        pass
    host, port = split_host_port(text)
    try:
        return str(ipaddress.ip_address(host)), port
    except ValueError:
        raise ValueError(f"the resolver must be an IP address, not {host!r}") from None


def _normalize(value: str) -> str:
    try:
        return ipaddress.ip_address(value.strip()).compressed
    except ValueError:
        return " ".join(token.rstrip(".") for token in value.lower().split())


def _text(rdata: Any) -> str:
    if hasattr(rdata, "strings"):  # TXT: the strings themselves, unquoted
        return b"".join(rdata.strings).decode("utf-8", "replace")
    return str(rdata.to_text()).rstrip(".")


class DnsConfig(CheckConfig):
    record_type: RecordType = "A"
    resolver: str | None = Field(default=None, description="ip, ip:port or [v6]:port; default: the system's")
    expected: list[str] = Field(default_factory=list, description="values that must all be in the answer")
    protocol: Literal["udp", "tcp"] = "udp"

    @field_validator("record_type", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("protocol", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("resolver")
    @classmethod
    def _resolver(cls, value: str | None) -> str | None:
        if value is not None:
            parse_resolver(value)
        return value


@register
class DnsCheck(CheckType):
    name = "dns"
    config_model = DnsConfig

    def validate_target(self, target: str) -> str:
        target = target.strip()
        if not target or any(c.isspace() for c in target):
            raise ValueError("must be a DNS name, e.g. example.org")
        try:
            dns.name.from_text(target)
        except dns.exception.DNSException as exc:
            raise ValueError(f"not a valid DNS name: {exc}") from None
        return target

    async def run(self, target: str, config: DnsConfig, timeout: float, ctx: ProbeContext) -> CheckOutcome:
        rtype = config.record_type
        try:
            qname = dns.name.from_text(self.validate_target(target))
            if rtype == "PTR":  # an IP address becomes its reverse name; a name stays as it is
                with contextlib.suppress(dns.exception.SyntaxError):
                    qname = dns.reversename.from_address(target.strip())
            resolver = dns.asyncresolver.Resolver(configure=config.resolver is None)
            resolver.lifetime = timeout
            if config.resolver is not None:
                ip, port = parse_resolver(config.resolver)
                resolver.nameservers = [ip]
                resolver.port = port
        except (ValueError, OSError, dns.exception.DNSException) as exc:
            return CheckOutcome(False, f"cannot query: {exc}")
        started = time.perf_counter()
        try:
            async with asyncio.timeout(timeout):
                answer = await resolver.resolve(
                    qname, rtype, tcp=config.protocol == "tcp", raise_on_no_answer=False, search=False
                )
        except (TimeoutError, dns.exception.Timeout):
            return CheckOutcome(False, f"timed out after {timeout:g}s")
        except dns.resolver.NXDOMAIN:
            return CheckOutcome(False, "no such name", _ms(started))
        except dns.resolver.NoNameservers as exc:
            reasons = [_reason(err[3]) for err in exc.kwargs.get("errors", [])][:2]
            return CheckOutcome(False, f"resolver failed: {'; '.join(reasons) or 'no answer'}", _ms(started))
        except OSError as exc:
            return CheckOutcome(False, describe_os_error(exc))
        except dns.exception.DNSException as exc:
            return CheckOutcome(False, f"DNS error: {exc}", _ms(started))
        latency = _ms(started)
        if answer.rrset is None:
            return CheckOutcome(False, f"no {rtype} record", latency)
        values = [_text(rdata) for rdata in answer.rrset]
        shown = ", ".join(v if len(v) <= 60 else v[:59] + "…" for v in values[:SHOWN])
        shown = f"{rtype} {shown}" + (f" (+{len(values) - SHOWN} more)" if len(values) > SHOWN else "")
        have = {_normalize(v) for v in values}
        missing = [e for e in config.expected if _normalize(e) not in have]
        if missing:
            return CheckOutcome(False, f"expected {', '.join(missing)} not in answer: {shown}", latency)
        return CheckOutcome(True, shown, latency)


def _reason(error: object) -> str:
    if isinstance(error, OSError):
        return describe_os_error(error)
    return f"answered {error}" if isinstance(error, str) else f"{type(error).__name__}: {error}"


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000
