"""TLS certificate check: handshake with ``host:port`` and report how long the certificate is valid.

Down when the chain or host name does not verify (unless ``verify`` is off), when the certificate
has expired or expires within ``critical_days``; degraded within ``warn_days``. The system trust
store is used, plus ``ca_file`` when given (an extra CA bundle for private PKIs).
"""

from __future__ import annotations

import asyncio
import os
import ssl
import time
from datetime import UTC, datetime
from typing import Self

from cryptography import x509
from cryptography.x509.oid import NameOID
from pydantic import Field, field_validator, model_validator

from opsdesk.monitoring.checks.base import CheckConfig, CheckOutcome, CheckType, ProbeContext, register
from opsdesk.monitoring.checks.tcp import close_writer, describe_os_error, split_host_port, valid_hostname

# (verify, ca_file) -> (ca_file mtime, context): building a context reads the whole trust store.
_CONTEXTS: dict[tuple[bool, str | None], tuple[int, ssl.SSLContext]] = {}


def _context(verify: bool, ca_file: str | None) -> ssl.SSLContext:
    ca_file = ca_file if verify else None
    key = (verify, ca_file)
    stamp = os.stat(ca_file).st_mtime_ns if ca_file else 0
    cached = _CONTEXTS.get(key)
    if cached is None or cached[0] != stamp:
        ctx = ssl.create_default_context()
        if not verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        elif ca_file:
            ctx.load_verify_locations(cafile=ca_file)
        _CONTEXTS[key] = cached = (stamp, ctx)
    return cached[1]


def _label(name: x509.Name) -> str | None:
    for oid in (NameOID.COMMON_NAME, NameOID.ORGANIZATION_NAME, NameOID.ORGANIZATIONAL_UNIT_NAME):
        attrs = name.get_attributes_for_oid(oid)
        if attrs:
            return attrs[0].rfc4514_string()
    return name.rfc4514_string() or None


class TlsConfig(CheckConfig):
    server_name: str | None = Field(default=None, description="SNI and name to verify; default: the host")
    warn_days: int = Field(default=14, ge=0)
    critical_days: int = Field(default=7, ge=0)
    verify: bool = True
    ca_file: str | None = Field(
        default=None, description="extra CA bundle (PEM path on the prober), for private PKIs"
    )

    @field_validator("server_name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        if value is not None and not valid_hostname(value):
            raise ValueError("must be a host name or IP address")
        return value

    @model_validator(mode="after")
    def _critical_below_warn(self) -> Self:
        if self.critical_days > self.warn_days:
            raise ValueError("critical_days must not exceed warn_days")
        return self


@register
class TlsCheck(CheckType):
    name = "tls"
    config_model = TlsConfig

    def validate_target(self, target: str) -> str:
        split_host_port(target, default_port=443)
        return target.strip()

    async def run(self, target: str, config: TlsConfig, timeout: float, ctx: ProbeContext) -> CheckOutcome:
        try:
            host, port = split_host_port(target, default_port=443)
        except ValueError as exc:
            return CheckOutcome(False, f"invalid target: {exc}")
        try:
            context = _context(config.verify, config.ca_file)
        except OSError as exc:  # a missing file, or one without PEM certificates (ssl.SSLError)
            reason = exc.reason if isinstance(exc, ssl.SSLError) else describe_os_error(exc)
            return CheckOutcome(False, f"cannot load ca_file {config.ca_file}: {reason}")
        started = time.perf_counter()
        phase, writer, failure = "connect", None, None
        try:
            async with asyncio.timeout(timeout):
                _, writer = await asyncio.open_connection(host, port)
                phase = "TLS handshake"
                await writer.start_tls(context, server_hostname=config.server_name or host)
        except TimeoutError:
            failure = f"timed out after {timeout:g}s ({phase})"
        except ssl.SSLCertVerificationError as exc:
            reason = str(exc.verify_message or exc.reason).rstrip(".")
            failure = f"certificate verify failed: {reason[:1].lower()}{reason[1:]}"
        except ssl.SSLError as exc:
            hint = (
                " (not a TLS port?)" if exc.reason in ("WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE") else ""
            )
            failure = f"TLS handshake failed: {(exc.reason or str(exc)).lower().replace('_', ' ')}{hint}"
        except OSError as exc:
            said = describe_os_error(exc)
            failure = said if phase == "connect" else f"TLS handshake failed: {said}"
        if failure is not None or writer is None:
            if writer is not None:
                writer.transport.abort()
            return CheckOutcome(False, failure or "no connection")
        latency = (time.perf_counter() - started) * 1000
        ssl_object = writer.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object else None
        await close_writer(writer)
        if not der:
            return CheckOutcome(False, "the server sent no certificate", latency)
        try:
            cert = x509.load_der_x509_certificate(der)
        except ValueError as exc:
            return CheckOutcome(False, f"cannot parse the certificate: {exc}", latency)
        return _judge(cert, config, latency)


def _judge(cert: x509.Certificate, config: TlsConfig, latency: float) -> CheckOutcome:
    now = datetime.now(UTC)
    if now < cert.not_valid_before_utc:
        return CheckOutcome(
            False, f"certificate not valid before {cert.not_valid_before_utc:%Y-%m-%d}", latency
        )
    days = (cert.not_valid_after_utc - now).days  # whole days left, rounded down
    if days < 0:
        return CheckOutcome(False, f"certificate expired on {cert.not_valid_after_utc:%Y-%m-%d}", latency)
    if days < config.critical_days:
        return CheckOutcome(
            False, f"certificate expires in {days} days (critical at {config.critical_days})", latency
        )
    if days < config.warn_days:
        said = f"certificate expires in {days} days (warning at {config.warn_days})"
        return CheckOutcome(True, said, latency, degraded=True)
    subject = _label(cert.subject) or "no subject"
    return CheckOutcome(
        True, f"certificate valid for {days} days ({subject}, issuer {_label(cert.issuer)})", latency
    )
