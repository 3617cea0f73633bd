"""Prometheus scrape: read an exporter's metrics page, keep every sample, evaluate threshold rules.

Up when the page was fetched (2xx, in time, within ``max_bytes``) and parsed (at most
``max_samples`` samples). Every sample gets the label ``instance`` = host:port of the target (a
sample's own ``instance`` is kept as ``exported_instance``, like Prometheus), plus the synthetic
series ``up``, ``scrape_duration_seconds`` and ``scrape_samples_scraped``. Each rule of the config
(see :mod:`opsdesk.metrics.rules`) that holds for a series gives one :class:`Finding`, keyed by the
rule's name and the series' labels so the same problem keeps the same key across scrapes.
"""

from __future__ import annotations

import asyncio
import base64
import bisect
import re
import time
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from pydantic import Field, field_validator, model_validator

from opsdesk.metrics import exposition
from opsdesk.metrics.rules import RuleDefinition, RuleError, SampleIndex, format_labels
from opsdesk.metrics.samples import Labels, Sample
from opsdesk.monitoring.checks.base import (
    CheckConfig,
    CheckOutcome,
    CheckType,
    Finding,
    ProbeContext,
    register,
)

ACCEPT = "text/plain;version=0.0.4"
# Pages bigger than this are parsed and evaluated in a worker thread, off the event loop.
_THREAD_ABOVE_BYTES = 256 * 1024
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


def _size(n: int) -> str:
    for unit, factor in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= factor and n % factor == 0:
            return f"{n // factor} {unit}"
    return f"{n} bytes"


class PrometheusConfig(CheckConfig):
    rules: list[RuleDefinition] = Field(default_factory=list, max_length=500)
    headers: dict[str, str] = Field(default_factory=dict, max_length=50)
    username: str | None = Field(default=None, max_length=500, description="Basic auth user.")
    password: str | None = Field(default=None, max_length=1000, description="Secret: encrypted at rest.")
    bearer_token: str | None = Field(default=None, max_length=4000, description="Secret: encrypted at rest.")
    verify_tls: bool = True
    max_bytes: int = Field(
        default=10 << 20, ge=1024, le=256 << 20, description="A bigger page is a failed scrape."
    )
    max_samples: int = Field(
        default=50_000, ge=1, le=5_000_000, description="A page with more samples is a failed scrape."
    )

    @field_validator("rules")
    @classmethod
    def _unique_names(cls, v: list[RuleDefinition]) -> list[RuleDefinition]:
        seen: set[str] = set()
        for rule in v:
            if rule.name in seen:
                raise ValueError(f"two rules are named {rule.name!r}: rule names must be unique")
            seen.add(rule.name)
        return v

    @field_validator("headers")
    @classmethod
    def _headers(cls, v: dict[str, str]) -> dict[str, str]:
        for name, value in v.items():
            if not _HEADER_NAME.fullmatch(name):
                raise ValueError(f"{name!r} is not a valid header name")
            if "\r" in value or "\n" in value:
                raise ValueError(f"the value of header {name!r} contains a line break")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> PrometheusConfig:
        if self.password and not self.username:
            raise ValueError("a password needs a username")
        if self.bearer_token and self.username:
            raise ValueError("use either basic (username/password) or bearer_token, not both")
        return self


def instance_of(target: str) -> str:
    """``host:port`` of a URL, with the scheme's default port when none is given (like Prometheus)."""
    parts = urlsplit(target)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _headers(config: PrometheusConfig) -> dict[str, str]:
    headers = {
        "User-Agent": "opsdesk-monitor",
        "Accept": ACCEPT,
        "Accept-Encoding": "gzip",
        **config.headers,
        "Connection": "close",  # the server closes first, so TIME_WAIT stays on its side
    }
    if config.bearer_token:
        headers["Authorization"] = f"Bearer {config.bearer_token}"
    elif config.username:
        raw = f"{config.username}:{config.password or ''}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(raw).decode()
    return headers


# (instance, labels as parsed) -> labels with instance: the exposition parser hands out the same
# label tuples scrape after scrape, so relabelling a known series is one dict lookup.
_RELABELLED: dict[tuple[str, int], tuple[Labels, Labels]] = {}
_RELABELLED_MAX = 100_000
_new = tuple.__new__


def _relabel(labels: Labels, instance: str) -> Labels:
    at = bisect.bisect_left(labels, ("instance",))
    if at < len(labels) and labels[at][0] == "instance":
        d = dict(labels)
        key = "exported_instance"
        while key in d:
            key = "exported_" + key
        d[key] = d.pop("instance")
        d["instance"] = instance
        return tuple(sorted(d.items()))
    return (*labels[:at], ("instance", instance), *labels[at:])


def with_instance(samples: list[Sample], instance: str) -> list[Sample]:
    """Every sample with ``instance`` set; its own ``instance`` moves to ``exported_instance``.

    The parser hands out the same label tuple objects scrape after scrape, so the cache is keyed
    by identity (no hashing of the label tuples); each entry keeps its tuple alive, and the ``is``
    check guards against a reused id."""
    cache = _RELABELLED
    if len(cache) > _RELABELLED_MAX:
        cache.clear()
    out: list[Sample] = []
    append = out.append
    for s in samples:
        labels = s[1]
        key = (instance, id(labels))
        hit = cache.get(key)
        if hit is not None and hit[0] is labels:
            new = hit[1]
        else:
            new = _relabel(labels, instance)
            cache[key] = (labels, new)
        append(_new(Sample, (s[0], new, s[2], s[3])))
    return out


def _synthetic(instance: str, ts_ms: int, up: bool, duration_s: float, scraped: int | None) -> list[Sample]:
    labels: Labels = (("instance", instance),)
    out = [
        Sample("up", labels, ts_ms, 1.0 if up else 0.0),
        Sample("scrape_duration_seconds", labels, ts_ms, duration_s),
    ]
    if scraped is not None:
        out.append(Sample("scrape_samples_scraped", labels, ts_ms, float(scraped)))
    return out


def _short_labels(labels: dict[str, str]) -> str:
    shown = [f"{k}={v}" for k, v in sorted(labels.items()) if k not in ("alertname", "instance", "job")]
    return ", ".join(shown)


def _firing_text(rules: list[RuleDefinition], findings: list[Finding]) -> str:
    by_rule: dict[str, list[Finding]] = {}
    for f in findings:
        by_rule.setdefault(f.labels["alertname"], []).append(f)
    if not by_rule:
        return "no rule firing" if len(rules) == 1 else f"{len(rules)} rules, none firing"
    parts = []
    for name, found in by_rule.items():
        if len(found) > 1:
            parts.append(f"{name} ({len(found)} series)")
        elif short := _short_labels(found[0].labels):
            parts.append(f"{name} on {short}")
        else:
            parts.append(name)
    shown = "; ".join(parts[:5]) + (f"; and {len(parts) - 5} more" if len(parts) > 5 else "")
    count = len(by_rule)
    return f"{count} rule{'s' if count > 1 else ''} firing: {shown}"


def evaluate_rules(
    rules: list[RuleDefinition], samples: list[Sample], failed: list[str] | None = None
) -> tuple[list[Finding], list[str]]:
    """Findings of every rule that holds, and the errors of rules that could not be evaluated
    (whose names are appended to ``failed``)."""
    findings: list[Finding] = []
    errors: list[str] = []
    if not rules:
        return findings, errors
    index = SampleIndex(samples)
    for rd in rules:
        try:
            firing = rd.rule.firing(index)
        except RuleError as exc:
            errors.append(f"rule {rd.name} failed: {exc}")
            if failed is not None:
                failed.append(rd.name)
            continue
        except Exception as exc:  # a bug must not take the whole scrape down
            errors.append(f"rule {rd.name} failed: {type(exc).__name__}: {exc}")
            if failed is not None:
                failed.append(rd.name)
            continue
        for labels, value in firing:
            all_labels = {**dict(labels), "alertname": rd.name}
            findings.append(
                Finding(
                    key=rd.name + format_labels(labels),
                    summary=rd.summarize(labels, value),
                    severity=rd.severity,
                    labels=all_labels,
                )
            )
    return findings, errors


def process(
    config: PrometheusConfig,
    body: bytes,
    instance: str,
    ts_ms: int,
    duration_s: float,
    status: int,
) -> CheckOutcome:
    """Parse a fetched page and evaluate the rules (pure CPU work: runs in a thread for big pages)."""
    latency_ms = duration_s * 1000
    failed = _synthetic(instance, ts_ms, False, duration_s, None)
    text = body.decode("utf-8", "replace")
    try:
        parsed = exposition.parse(text, ts_ms)
    except exposition.ExpositionError as exc:
        return CheckOutcome(
            False,
            f"malformed metrics page, line {exc.line}: {exc.message}",
            latency_ms,
            status,
            samples=failed,
        )
    if len(parsed) > config.max_samples:
        return CheckOutcome(
            False,
            f"{len(parsed)} samples, more than max_samples ({config.max_samples})",
            latency_ms,
            status,
            samples=failed,
        )
    samples = with_instance(parsed, instance)
    samples.extend(_synthetic(instance, ts_ms, True, duration_s, len(parsed)))
    unevaluated: list[str] = []
    findings, errors = evaluate_rules(config.rules, samples, unevaluated)
    message = f"scraped {len(parsed)} samples in {latency_ms:.0f} ms"
    if config.rules:
        message += "; " + _firing_text(config.rules, findings)
    if errors:
        message += "; " + "; ".join(errors)
    return CheckOutcome(
        True, message, latency_ms, status, samples=samples, findings=findings, unevaluated=unevaluated
    )


async def _read_limited(resp: aiohttp.ClientResponse, limit: int) -> bytes | None:
    """The (decompressed) body, or None as soon as it passes ``limit`` bytes."""
    if resp.content_length is not None and resp.content_length > limit:
        return None  # even compressed it is already too big: do not read it
    chunks: list[bytes] = []
    total = 0
    async for chunk in resp.content.iter_chunked(64 * 1024):
        total += len(chunk)
        if total > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


@register
class PrometheusCheck(CheckType):
    name = "prometheus"
    config_model = PrometheusConfig
    secret_fields = ("password", "bearer_token")

    def validate_target(self, target: str) -> str:
        parts = urlsplit(target)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL of a metrics page")
        if parts.username is not None or parts.password is not None:
            raise ValueError("put credentials in username/password, not in the URL")
        try:
            parts.port  # noqa: B018 - raises on a bad port
        except ValueError:
            raise ValueError("the port is not a number between 0 and 65535") from None
        return target

    async def run(
        self, target: str, config: PrometheusConfig, timeout: float, ctx: ProbeContext
    ) -> CheckOutcome:
        instance = instance_of(target)
        ts_ms = int(time.time() * 1000)
        started = time.perf_counter()

        def failed(message: str, status: int | None = None) -> CheckOutcome:
            duration = time.perf_counter() - started
            samples = _synthetic(instance, ts_ms, False, duration, None)
            return CheckOutcome(False, message, duration * 1000, status, samples=samples)

        try:
            async with ctx.http.get(
                target,
                headers=_headers(config),
                timeout=aiohttp.ClientTimeout(total=timeout),
                allow_redirects=True,
                max_redirects=10,
                ssl=config.verify_tls,
            ) as resp:
                if not 200 <= resp.status < 300:
                    return failed(f"HTTP {resp.status} {resp.reason or ''}".rstrip(), resp.status)
                body = await _read_limited(resp, config.max_bytes)
                if body is None:
                    return failed(
                        f"response larger than {_size(config.max_bytes)} (max_bytes): not scraped",
                        resp.status,
                    )
                status = resp.status
        except TimeoutError:
            return failed(f"timed out after {timeout:g}s")
        except aiohttp.ClientConnectorCertificateError as exc:
            return failed(f"TLS certificate not valid: {exc.certificate_error}")
        except aiohttp.ClientConnectorError as exc:
            return failed(f"connection failed: {exc.os_error or exc}")
        except aiohttp.TooManyRedirects:
            return failed("too many redirects (more than 10)")
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            return failed(f"{type(exc).__name__}: {exc}")
        except asyncio.CancelledError:
            raise
        duration = time.perf_counter() - started
        args: tuple[Any, ...] = (config, body, instance, ts_ms, duration, status)
        if len(body) > _THREAD_ABOVE_BYTES:
            return await asyncio.to_thread(process, *args)
        return process(*args)
