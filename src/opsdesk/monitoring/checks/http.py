"""HTTP(S) check: a request to a URL; up when the answer meets every expectation in time.

Expectations: status codes or ranges, a keyword or a regular expression in the body, a value at a
JSON path, and latency thresholds (over warn: degraded; over critical: a failure). Credentials
(basic or bearer) come from the monitor's encrypted secrets, never from its plain config.

Each check is one request on a fresh connection with ``Connection: close``, made by the protocol
client in :mod:`opsdesk.monitoring.checks.httpclient` (decision 0008), not by aiohttp.
"""

from __future__ import annotations

import base64
import functools
import re
import time
from typing import Any, Literal
from urllib.parse import urlsplit

import orjson
from pydantic import Field, field_validator, model_validator

from opsdesk.monitoring.checks import httpclient
from opsdesk.monitoring.checks.base import CheckConfig, CheckOutcome, CheckType, ProbeContext, register

StatusSpec = int | str
MAX_REDIRECTS = 10


def status_ranges(spec: StatusSpec | list[StatusSpec]) -> list[tuple[int, int]]:
    """``200``, ``"2xx"``, ``"200-299"`` or a list of those → inclusive ranges."""
    out = []
    for item in spec if isinstance(spec, list) else [spec]:
        text = str(item).strip().lower()
        if re.fullmatch(r"[1-5]xx", text):
            lo = int(text[0]) * 100
            out.append((lo, lo + 99))
        elif m := re.fullmatch(r"(\d{3})\s*-\s*(\d{3})", text):
            lo, hi = int(m.group(1)), int(m.group(2))
            if not 100 <= lo <= hi <= 599:
                raise ValueError(f"{item!r} is not a range of HTTP statuses")
            out.append((lo, hi))
        elif re.fullmatch(r"\d{3}", text) and 100 <= int(text) <= 599:
            out.append((int(text), int(text)))
        else:
            raise ValueError(f"{item!r} is not a status, a range like 200-299, or a class like 2xx")
    if not out:
        raise ValueError("give at least one expected status")
    return out


_PATH_PART = re.compile(r"\.?([A-Za-z_][\w-]*)|\[(\d+)\]")


def parse_json_path(path: str) -> list[str | int]:
    """A small JSONPath subset, ``$.a.b[0].c`` → ``["a", "b", 0, "c"]``."""
    rest = path.strip().removeprefix("$")
    steps: list[str | int] = []
    pos = 0
    while pos < len(rest):
        m = _PATH_PART.match(rest, pos)
        if m is None:
            raise ValueError(f"cannot read JSON path {path!r} at {rest[pos:]!r}")
        steps.append(m.group(1) if m.group(1) is not None else int(m.group(2)))
        pos = m.end()
    return steps


def json_path_get(doc: Any, path: str) -> Any:
    """The value at ``path``; KeyError when it does not exist."""
    for step in parse_json_path(path):
        found = (isinstance(step, str) and isinstance(doc, dict) and step in doc) or (
            isinstance(step, int) and isinstance(doc, list) and step < len(doc)
        )
        if not found:
            raise KeyError(step)
        doc = doc[step]
    return doc


class HttpConfig(CheckConfig):
    method: Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] = "GET"
    headers: dict[str, str] = Field(default_factory=dict)
    body: str | None = Field(default=None, max_length=65536)
    expected_status: StatusSpec | list[StatusSpec] = 200
    keyword: str | None = Field(default=None, max_length=1000)
    keyword_absent: bool = Field(default=False, description="Up when the keyword is NOT in the body.")
    regex: str | None = Field(default=None, max_length=1000)
    json_path: str | None = Field(default=None, max_length=500, description="e.g. $.status or $.checks[0].ok")
    json_expected: str | None = Field(default=None, max_length=1000)
    latency_warn_ms: float | None = Field(default=None, ge=0)
    latency_critical_ms: float | None = Field(default=None, ge=0)
    follow_redirects: bool = True
    verify_tls: bool = True
    max_body_bytes: int = Field(default=1_048_576, ge=1024, le=16_777_216)
    username: str | None = Field(default=None, max_length=500, description="Basic auth user.")
    password: str | None = Field(default=None, max_length=1000, description="Secret: encrypted at rest.")
    bearer_token: str | None = Field(default=None, max_length=4000, description="Secret: encrypted at rest.")

    @field_validator("expected_status")
    @classmethod
    def _statuses(cls, v: StatusSpec | list[StatusSpec]) -> StatusSpec | list[StatusSpec]:
        status_ranges(v)

        def plain(x: StatusSpec) -> StatusSpec:  # "204" from a form is the status 204
            return int(x) if isinstance(x, str) and x.strip().isdigit() else x

        return [plain(x) for x in v] if isinstance(v, list) else plain(v)

    @field_validator("regex")
    @classmethod
    def _regex(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                re.compile(v)
            except re.error as exc:
                raise ValueError(f"not a regular expression: {exc}") from None
        return v

    @model_validator(mode="after")
    def _consistent(self) -> HttpConfig:
        if self.json_expected is not None and not self.json_path:
            raise ValueError("json_expected needs json_path")
        if self.json_path:
            parse_json_path(self.json_path)
        if self.password and not self.username:
            raise ValueError("a password needs a username")
        if self.bearer_token and self.username:
            raise ValueError("use either basic (username/password) or bearer_token, not both")
        return self


@functools.lru_cache(maxsize=1024)  # parsed once per spec, not once per check
def _ranges(spec: StatusSpec | tuple[StatusSpec, ...]) -> tuple[tuple[int, int], ...]:
    return tuple(status_ranges(list(spec) if isinstance(spec, tuple) else spec))


def _status_ok(status: int, spec: StatusSpec | list[StatusSpec]) -> bool:
    key = tuple(spec) if isinstance(spec, list) else spec  # hashable, for the cache
    return any(lo <= status <= hi for lo, hi in _ranges(key))


def _headers(config: HttpConfig) -> dict[str, str]:
    # Connection: close makes the server close first, so TIME_WAIT stays on its side.
    headers = {"User-Agent": "opsdesk-monitor", **config.headers, "Connection": "close"}
    if config.bearer_token:
        headers["Authorization"] = f"Bearer {config.bearer_token}"
    elif config.username:
        raw = f"{config.username}:{config.password or ''}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(raw).decode()
    return headers


def evaluate(
    config: HttpConfig, status: int, body: bytes, truncated: bool, latency_ms: float
) -> CheckOutcome:
    """Turn what the server answered into an outcome (pure, so each rule is testable alone)."""
    if not _status_ok(status, config.expected_status):
        return CheckOutcome(False, f"HTTP {status}, expected {config.expected_status}", latency_ms, status)
    note = " (body read up to the size limit)" if truncated else ""
    if config.keyword is not None:
        found = config.keyword.encode() in body
        if found == config.keyword_absent:
            where = "present" if found else "missing"
            return CheckOutcome(
                False, f"HTTP {status}, keyword {config.keyword!r} {where}{note}", latency_ms, status
            )
    if config.regex is not None and re.search(config.regex, body.decode("utf-8", "replace")) is None:
        return CheckOutcome(False, f"HTTP {status}, no match for /{config.regex}/{note}", latency_ms, status)
    if config.json_path:
        try:
            value = json_path_get(orjson.loads(body), config.json_path)
        except orjson.JSONDecodeError:
            return CheckOutcome(False, f"HTTP {status}, body is not JSON{note}", latency_ms, status)
        except KeyError:
            return CheckOutcome(False, f"HTTP {status}, {config.json_path} not found", latency_ms, status)
        shown = value if isinstance(value, str) else orjson.dumps(value).decode()
        if config.json_expected is not None and shown != config.json_expected:
            return CheckOutcome(
                False,
                f"HTTP {status}, {config.json_path} is {shown!r}, expected {config.json_expected!r}",
                latency_ms,
                status,
            )
    if config.latency_critical_ms is not None and latency_ms > config.latency_critical_ms:
        return CheckOutcome(
            False,
            f"HTTP {status} in {latency_ms:.0f} ms, over {config.latency_critical_ms:g} ms",
            latency_ms,
            status,
        )
    if config.latency_warn_ms is not None and latency_ms > config.latency_warn_ms:
        return CheckOutcome(
            True,
            f"HTTP {status} in {latency_ms:.0f} ms, slow (warn {config.latency_warn_ms:g} ms)",
            latency_ms,
            status,
            degraded=True,
        )
    return CheckOutcome(True, f"HTTP {status} in {latency_ms:.0f} ms", latency_ms, status)


@register
class HttpCheck(CheckType):
    name = "http"
    config_model = HttpConfig
    secret_fields = ("password", "bearer_token")

    def validate_target(self, target: str) -> str:
        parts = urlsplit(target)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("must be an http:// or https:// URL")
        return target

    async def run(self, target: str, config: HttpConfig, timeout: float, ctx: ProbeContext) -> CheckOutcome:
        # ctx.http (aiohttp) is not used: a check is one request on a fresh connection, and the
        # protocol client in httpclient.py does that at a fraction of the CPU (decision 0008).
        started = time.perf_counter()
        try:
            resp = await httpclient.request(
                config.method,
                target,
                headers=_headers(config),
                body=config.body.encode() if config.body is not None else None,
                timeout=timeout,
                verify_tls=config.verify_tls,
                max_body_bytes=config.max_body_bytes,
                follow_redirects=config.follow_redirects,
                max_redirects=MAX_REDIRECTS,
            )
        except TimeoutError:
            return CheckOutcome(False, f"timed out after {timeout:g}s")
        except httpclient.CertificateError as exc:
            return CheckOutcome(False, f"TLS certificate not valid: {exc}")
        except httpclient.ConnectError as exc:
            return CheckOutcome(False, f"connection failed: {exc}")
        except httpclient.TooManyRedirects:
            return CheckOutcome(False, f"too many redirects (more than {MAX_REDIRECTS})")
        except httpclient.HttpClientError as exc:
            return CheckOutcome(False, str(exc))
        except (OSError, ValueError) as exc:
            return CheckOutcome(False, f"{type(exc).__name__}: {exc}")
        latency = (time.perf_counter() - started) * 1000
        return evaluate(config, resp.status, resp.body, resp.truncated, latency)
