"""A Prometheus-compatible remote store: remote-write out, the Prometheus HTTP query API in.

For when one database is not enough: Prometheus (``--web.enable-remote-write-receiver``),
VictoriaMetrics, Mimir, Thanos receive... keep the samples; opsdesk keeps no copy.

Writing: :meth:`PrometheusRemoteStore.write` groups a batch by series (samples sorted by time,
as receivers require), encodes a remote-write 1.0 ``WriteRequest`` protobuf by hand (no protobuf
dependency; labels sorted with ``__name__`` first, empty label values left out), compresses it
with snappy's block format (``cramjam``) and POSTs it with the remote-write headers, at most
``max_samples_per_request`` samples per request. Connection errors, timeouts, 429 and 5xx are
retried ``retries`` times with exponential backoff (``backoff_seconds`` doubling up to
``max_backoff_seconds``); other 4xx answers (out-of-order or too-old samples, bad labels) are not,
since sending the same data again cannot succeed. A write that fails in the end raises
:class:`RemoteStoreError` (status 502) saying why and how many samples were accepted first;
``last_error`` and ``failed_samples`` keep count for health pages. Every request has a timeout,
so a write never blocks longer than about ``(retries + 1) * timeout + backoffs``. NaN values are
sent as they are (Prometheus staleness markers included).

Reading: :meth:`~PrometheusRemoteStore.query_range` builds a PromQL selector from the name and the
matchers (label values escaped as PromQL strings, the name and label names validated, so no
input can change the query's shape):

- with a ``step``: ``/api/v1/query_range``; ``agg="last"`` evaluates the plain selector (the
  latest sample at each step, with Prometheus' lookback), the others ``<agg>_over_time(sel[step])``.
  Points are stamped with Prometheus' evaluation times (``start + k * step``), each summarising
  the step *before* it: the SQL store stamps buckets with their start instead.
- without a step: the raw samples in [start, end], read as a range vector through
  ``/api/v1/query`` at ``end``.

:meth:`~PrometheusRemoteStore.series` uses ``/api/v1/series`` (``limit`` applied here).
:meth:`~PrometheusRemoteStore.maintain` does nothing: the server owns retention and compaction.
Answers that are errors of the query (HTTP 400/422) raise a 422 :class:`OpsdeskError` with the
server's message; an unreachable server raises :class:`RemoteStoreError`.
"""

from __future__ import annotations

import base64
import logging
import re
import struct
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

import cramjam
import orjson

from opsdesk.core.errors import OpsdeskError, invalid
from opsdesk.core.settings import Settings
from opsdesk.metrics.samples import Labels, Sample, labels_of
from opsdesk.metrics.store import (
    AGGS,
    METRIC_NAME,
    Agg,
    Matcher,
    Resolution,
    Series,
    parse_matchers,
)

log = logging.getLogger("opsdesk.metrics.remote")

RETRY_STATUS = {429, 500, 502, 503, 504}
_DOUBLE = struct.Struct("<d")


class RemoteStoreError(OpsdeskError):
    """The remote store could not be reached or refused the data."""

    written: int = 0

    def __init__(self, detail: str, *, written: int = 0) -> None:
        super().__init__(detail=detail, status=502, title="Metrics store unavailable")
        self.written = written


# --- the protobuf encoding of a WriteRequest ----------------------------------------------------


def _varint(n: int) -> bytes:
    if n < 0:
        n += 1 << 64  # int64 as two's complement: ten bytes
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _field(tag: int, payload: bytes) -> bytes:
    """A length-delimited field (wire type 2) with a one-byte tag."""
    return bytes((tag,)) + _varint(len(payload)) + payload


def encode_labels(name: str, labels: Labels) -> bytes:
    """The repeated ``labels`` (field 1) of a TimeSeries: ``__name__`` first, then by name."""
    parts = [_field(0x0A, _field(0x0A, b"__name__") + _field(0x12, name.encode()))]
    for k, v in labels:
        if v:
            parts.append(_field(0x0A, _field(0x0A, k.encode()) + _field(0x12, v.encode())))
    return b"".join(parts)


def encode_samples(points: Sequence[tuple[int, float]]) -> bytes:
    """The repeated ``samples`` (field 2) of a TimeSeries: value double (1), timestamp int64 (2)."""
    pack = _DOUBLE.pack
    return b"".join(
        b"\x12" + _varint(9 + 1 + len(t := _varint(ts))) + b"\x09" + pack(v) + b"\x10" + t for ts, v in points
    )


def encode_write_request(series: Sequence[tuple[str, Labels, Sequence[tuple[int, float]]]]) -> bytes:
    """A ``prometheus.WriteRequest`` with one TimeSeries (field 1) per (name, labels, points)."""
    return b"".join(
        _field(0x0A, encode_labels(name, labels) + encode_samples(points)) for name, labels, points in series
    )


# --- PromQL --------------------------------------------------------------------------------------


def promql_string(value: str) -> str:
    """``value`` as a double-quoted PromQL string literal."""
    escaped = (
        value.replace("\\", "\\\\")
        .replace('"', '\\"')
        .replace("\n", "\\n")
        .replace("\r", "\\r")
        .replace("\t", "\\t")
    )
    return f'"{escaped}"'


def selector(name: str, matchers: Sequence[Matcher]) -> str:
    if not METRIC_NAME.fullmatch(name):
        raise invalid("name", "not a valid metric name ([a-zA-Z_:][a-zA-Z0-9_:]*)")
    inner = ", ".join(f"{m.label}{m.op}{promql_string(m.value)}" for m in matchers)
    return f"{name}{{{inner}}}" if inner else name


def _seconds(when: datetime) -> str:
    if when.tzinfo is None:
        raise ValueError("naive datetime given to the metrics store")
    return f"{when.timestamp():.3f}"


class PrometheusRemoteStore:
    """See the module docstring."""

    def __init__(
        self,
        write_url: str,
        query_url: str,
        *,
        timeout: float = 10.0,
        retries: int = 3,
        backoff_seconds: float = 0.5,
        max_backoff_seconds: float = 8.0,
        max_samples_per_request: int = 10_000,
        headers: Mapping[str, str] | None = None,
        bearer_token: str = "",
        basic_auth: tuple[str, str] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.write_url = write_url
        self.query_url = query_url.rstrip("/")
        self.timeout = timeout
        self.retries = retries
        self.backoff_seconds = backoff_seconds
        self.max_backoff_seconds = max_backoff_seconds
        self.max_samples_per_request = max_samples_per_request
        self.sleep = sleep
        self.headers = {"User-Agent": "opsdesk", **(headers or {})}
        if bearer_token:
            self.headers["Authorization"] = f"Bearer {bearer_token}"
        elif basic_auth:
            token = base64.b64encode(f"{basic_auth[0]}:{basic_auth[1]}".encode()).decode()
            self.headers["Authorization"] = f"Basic {token}"
        self.last_error = ""
        self.failed_samples = 0

    @classmethod
    def from_settings(cls, settings: Settings) -> PrometheusRemoteStore:
        user = settings.metrics_remote_username
        return cls(
            settings.metrics_remote_write_url,
            settings.metrics_remote_query_url,
            timeout=settings.metrics_remote_timeout_seconds,
            retries=settings.metrics_remote_retries,
            bearer_token=settings.metrics_remote_bearer_token.get_secret_value(),
            basic_auth=(user, settings.metrics_remote_password.get_secret_value()) if user else None,
        )

    # --- HTTP ------------------------------------------------------------------------------------

    def _request(self, method: str, url: str, body: bytes | None, headers: Mapping[str, str]) -> bytes:
        """The answer's body; retries what may succeed later, raises what will not."""
        attempt = 0
        while True:
            req = urllib.request.Request(url, data=body, method=method, headers={**self.headers, **headers})
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                    return bytes(resp.read())
            except urllib.error.HTTPError as e:
                text = e.read(2000).decode("utf-8", "replace").strip()
                if e.code not in RETRY_STATUS:
                    raise _Refused(e.code, text) from None
                reason = f"HTTP {e.code}: {text[:300]}"
            except (OSError, urllib.error.URLError) as e:  # refused, reset, DNS, timeout
                reason = f"{type(e).__name__}: {getattr(e, 'reason', e)}"
            if attempt >= self.retries:
                raise RemoteStoreError(
                    f"{method} {_redact(url)} failed after {attempt + 1} attempts: {reason}"
                )
            delay = min(self.backoff_seconds * 2**attempt, self.max_backoff_seconds)
            log.warning("metrics remote store: %s (retrying in %.1fs)", reason, delay)
            self.sleep(delay)
            attempt += 1

    def _get_json(self, path: str, params: list[tuple[str, str]]) -> Any:
        url = f"{self.query_url}{path}?{urllib.parse.urlencode(params)}"
        try:
            body = self._request("GET", url, None, {"Accept": "application/json"})
        except _Refused as e:
            message = e.text
            try:
                message = orjson.loads(e.text).get("error", e.text)
            except (orjson.JSONDecodeError, AttributeError):
                pass
            if e.status in (400, 422):
                raise OpsdeskError(
                    detail=f"the metrics store refused the query: {message}",
                    status=422,
                    title="Invalid input",
                ) from None
            raise RemoteStoreError(f"GET {path}: HTTP {e.status}: {message[:300]}") from None
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise RemoteStoreError(f"GET {path}: the answer is not JSON") from None
        if doc.get("status") != "success":
            raise RemoteStoreError(f"GET {path}: {doc.get('error', 'no error given')}")
        return doc.get("data")

    # --- writing ---------------------------------------------------------------------------------

    def write(self, samples: Sequence[Sample]) -> int:
        by_series: dict[tuple[str, Labels], list[tuple[int, float]]] = {}
        for s in samples:
            by_series.setdefault((s[0], s[1]), []).append((s[2], s[3]))
        written = 0
        request: list[tuple[str, Labels, Sequence[tuple[int, float]]]] = []
        size = 0
        for (name, labels), points in by_series.items():
            points.sort(key=lambda p: p[0])
            for i in range(0, len(points), self.max_samples_per_request):
                part = points[i : i + self.max_samples_per_request]
                if size + len(part) > self.max_samples_per_request and request:
                    written += self._send(request, size, written, len(samples))
                    request, size = [], 0
                request.append((name, labels, part))
                size += len(part)
        if request:
            written += self._send(request, size, written, len(samples))
        return written

    def _send(
        self, series: list[tuple[str, Labels, Sequence[tuple[int, float]]]], n: int, written: int, total: int
    ) -> int:
        body = bytes(cramjam.snappy.compress_raw(encode_write_request(series)))
        headers = {
            "Content-Encoding": "snappy",
            "Content-Type": "application/x-protobuf",
            "X-Prometheus-Remote-Write-Version": "0.1.0",
        }
        try:
            self._request("POST", self.write_url, body, headers)
        except (_Refused, RemoteStoreError) as e:
            why = f"HTTP {e.status}: {e.text[:300]}" if isinstance(e, _Refused) else e.detail
            self.last_error = why
            self.failed_samples += total - written
            raise RemoteStoreError(
                f"remote write of {total} samples stopped after {written}: {why}", written=written
            ) from None
        self.last_error = ""
        return n

    # --- reading ---------------------------------------------------------------------------------

    def query_range(
        self,
        name: str,
        matchers: Mapping[str, str] | None,
        start: datetime,
        end: datetime,
        step: int | None = None,
        *,
        agg: Agg = "avg",
        resolution: Resolution | None = None,  # the server picks; accepted for the interface
    ) -> list[Series]:
        sel = selector(name, parse_matchers(matchers))
        if agg not in AGGS:
            raise invalid("agg", f"must be one of {', '.join(AGGS)}")
        if step is not None and step < 1:
            raise invalid("step", "must be at least 1 second")
        if end < start:
            raise invalid("end", "must not be before start")
        if step is None:
            span_ms = int((end - start).total_seconds() * 1000) + 1  # a range vector is left-open
            data = self._get_json(
                "/api/v1/query", [("query", f"{sel}[{span_ms}ms]"), ("time", _seconds(end))]
            )
        else:
            query = sel if agg == "last" else f"{agg}_over_time({sel}[{step}s])"
            params = [
                ("query", query),
                ("start", _seconds(start)),
                ("end", _seconds(end)),
                ("step", str(step)),
            ]
            data = self._get_json("/api/v1/query_range", params)
        out = []
        for item in (data or {}).get("result", []):
            labels = {k: v for k, v in item.get("metric", {}).items() if k != "__name__"}
            # float() reads Prometheus' "NaN", "+Inf" and "-Inf".
            pts = [(round(float(t) * 1000), float(v)) for t, v in item.get("values", [])]
            if pts:
                out.append(Series(name, labels_of(labels), pts, "remote"))
        out.sort(key=lambda x: x.labels)
        return out

    def series(
        self, name_prefix: str = "", matchers: Mapping[str, str] | None = None, *, limit: int = 10_000
    ) -> list[tuple[str, Labels]]:
        ms = parse_matchers(matchers)
        # Python's re.escape output is valid RE2; the series API needs a matcher that is not empty.
        name_re = re.escape(name_prefix) + ".*" if name_prefix else ".+"
        parts = [f"__name__=~{promql_string(name_re)}"]
        parts += [f"{m.label}{m.op}{promql_string(m.value)}" for m in ms]
        data = self._get_json("/api/v1/series", [("match[]", "{" + ", ".join(parts) + "}")])
        found = []
        for item in data or []:
            labels = dict(item)
            name = labels.pop("__name__", "")
            found.append((name, labels_of(labels)))
        found.sort()
        return found[:limit]

    def maintain(self, now: datetime) -> dict[str, int]:
        return {}

    def close(self) -> None:
        return None


class _Refused(Exception):
    """A final (not retried) HTTP error answer."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
        self.text = text


def _redact(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", ""))


__all__ = [
    "PrometheusRemoteStore",
    "RemoteStoreError",
    "encode_write_request",
    "promql_string",
    "selector",
]
