"""A fast parser for the Prometheus text exposition format (0.0.4).

``parse(text, default_ts_ms)`` turns a scraped ``/metrics`` page into a flat list of
:class:`~opsdesk.metrics.samples.Sample`. It accepts what node_exporter and prometheus-client
emit: ``# HELP`` / ``# TYPE`` lines (other comments are skipped), names with optional label sets
(escapes ``\\\\``, ``\\"`` and ``\\n`` in values, a trailing comma, ``{}``), values including
``NaN``/``+Inf``/``-Inf``, an optional integer timestamp in milliseconds, blank lines and CRLF line
ends. Histogram and summary lines are ordinary samples. OpenMetrics exemplars (`` # {...} v [ts]``)
are checked and dropped, and ``# EOF`` is a comment. Anything malformed raises
:class:`ExpositionError` with the 1-based line number; nothing is ever dropped silently.

How it is fast (pure Python). Every valid sample line is ``<series> <value>`` or
``<series> <value> <timestamp>``, and the ``<series>`` part (name plus raw label text) repeats
exactly from one scrape to the next. A bounded cache maps that raw text, as validated by the careful
parser, to ``(name, labels)``; the hot path is then one ``str.rpartition``, one dict lookup and one
``float()`` per line. ``# HELP``/``# TYPE`` lines, about half of a node_exporter page, are
remembered whole in a bounded set. A line that misses both caches goes through the careful parser
(small anchored regexes, no per-character Python loop), which is also the only place that raises,
so the hot path can never accept something the careful parser would reject.

Where this differs from prometheus-client's ``text_string_to_metric_families`` (deliberately;
Prometheus' own Go parser is just as strict in each case, except that recent versions accept
quoted names):

* the timestamp must be an integer (milliseconds); prometheus-client also takes ``1.5e3``;
* anything after the timestamp other than an exemplar is an error; prometheus-client keeps the
  first and the last whitespace-separated token and ignores the middle, which also makes it read
  an exemplar's value or timestamp as the sample's timestamp. We ignore exemplars;
* ``{,}`` (a lone comma) is an error; prometheus-client reads it as an empty label set;
* ``# HELP`` and ``# TYPE`` need a metric name (prometheus-client ignores a bare ``# HELP``);
* ``# TYPE`` must name a known type (the four Prometheus types, ``untyped``, or an OpenMetrics
  one); prometheus-client takes any word;
* quoted (UTF-8) metric and label names (``{"my.metric", "a.b"="c"}``) are rejected: node_exporter
  and prometheus-client only emit them when a scraper negotiates them, which we never do. A
  ``{__name__="x"}`` label still names the metric, but ``x`` must be a legacy metric name.

Like prometheus-client (which strips every line and token) we take any Unicode whitespace
(``str.isspace``) as a blank between tokens and inside label sets; ``float()`` and ``int()`` do
too. Like prometheus-client we accept unknown escapes in label values literally (``\\t`` stays the two
characters backslash and ``t``; the Go parser rejects them), label names starting with ``__``
are rejected as reserved, and we do not check family grouping, ``le``/``quantile`` labels,
duplicate series or TYPE-before-sample order.
"""

from __future__ import annotations

import re

from opsdesk.metrics.samples import Labels, Sample

__all__ = ["ExpositionError", "parse"]

# Entries kept in each cache before it is emptied and refilled (a page of a few thousand series
# from each of many targets fits; the label strings of node_exporter pages repeat across hosts).
CACHE_MAX = 50_000

_Series = tuple[str, Labels]
_SERIES: dict[str, _Series] = {}  # raw "<name>{<labels>}" text before the value -> (name, labels)
_COMMENTS: set[str] = set()  # whole comment lines already validated
_LABELSETS: dict[str, Labels] = {}  # raw label text without escapes or blanks -> sorted labels

_TYPES = frozenset(
    {"counter", "gauge", "histogram", "summary", "untyped", "unknown", "info", "stateset", "gaugehistogram"}
)
_ESCAPES = {"\\": "\\", "n": "\n", '"': '"'}

_ws_re = re.compile(r"\s*")
_token_re = re.compile(r"\S+")
_metric_name = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*").match
_label_name = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*").match
# The inside of a quoted label value: stops at the closing quote, or at a lone final backslash.
_label_body = re.compile(r'[^"\\]*(?:\\.[^"\\]*)*').match
# A sample line exactly as exporters write it: name, optional label set without escapes or
# blanks (trailing comma allowed), one space, value, optionally one space and a timestamp.
_simple_line = re.compile(
    r"([a-zA-Z_:][a-zA-Z0-9_:]*+)"
    r'(?:\{((?:[a-zA-Z_][a-zA-Z0-9_]*+="[^"\\]*+",)*+(?:[a-zA-Z_][a-zA-Z0-9_]*+="[^"\\]*+")?+)\})?+'
    r" (\S++)(?: (\S++))?+"
).fullmatch
_simple_pair = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*+)="([^"]*+)"').findall
_label_token = re.compile(r'[^\s=,}"]*').match
_escape = re.compile(r"\\(.)")
_legacy_name = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*").fullmatch


def _ws(line: str, i: int = 0) -> int:
    """The index of the first non-whitespace character at or after ``i`` (or ``len(line)``)."""
    m = _ws_re.match(line, i)
    assert m is not None
    return m.end()


def _token(line: str, i: int) -> re.Match[str]:
    """The run of non-whitespace starting at ``i``, which must be a non-whitespace character."""
    m = _token_re.match(line, i)
    assert m is not None
    return m


class ExpositionError(ValueError):
    """A malformed exposition page; ``line`` is 1-based."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(f"line {line}: {message}")
        self.line = line
        self.message = message


class _LineError(Exception):
    """Raised by the careful parser; ``parse`` adds the line number."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def parse(text: str, default_ts_ms: int) -> list[Sample]:
    """Parse one exposition page into samples, in page order.

    Samples without a timestamp get ``default_ts_ms``. Raises :class:`ExpositionError`.
    """
    if "\r" in text:
        text = text.replace("\r\n", "\n")
    lines = text.split("\n")
    out: list[Sample] = []
    append = out.append
    series_get = _SERIES.get
    comments = _COMMENTS
    new = tuple.__new__
    sample_cls = Sample
    ts = default_ts_ms
    line = ""
    try:
        for line in lines:
            # Hot path: "<known series> <value>". A valid cached series followed by one space and
            # a float is always a valid line, with exactly this meaning.
            key, _, v = line.rpartition(" ")
            hit = series_get(key)
            if hit is not None and "_" not in v:  # float() would take "1_0"
                try:
                    append(new(sample_cls, (hit[0], hit[1], ts, float(v))))
                    continue
                except ValueError:
                    pass
            if not line or line in comments:
                continue
            # "<known series> <value> <timestamp>"
            key, _, v2 = key.rpartition(" ")
            hit = series_get(key)
            if hit is not None and "_" not in v and "_" not in v2:
                try:
                    append(new(sample_cls, (hit[0], hit[1], int(v), float(v2))))
                    continue
                except ValueError:
                    pass
            sample = _parse_line(line, ts)
            if sample is not None:
                append(sample)
    except _LineError as e:
        # Parsing a line depends only on its text, so the first line equal to the failing one
        # is the failing one (an identical earlier line would have failed first).
        raise ExpositionError(lines.index(line) + 1, e.message) from None
    return out


def _parse_line(line: str, default_ts_ms: int) -> Sample | None:
    """Parse one line the hot path did not know: a sample, or None for a blank or comment line.

    Remembers valid series text and comment lines for the hot path of ``parse``. Lines in the
    canonical shape exporters write (no escapes, no extra blanks, no exemplar) take one regex;
    anything else, and anything invalid, goes through the careful parser.
    """
    m = _simple_line(line)
    if m is not None:
        name, raw_labels, v, t = m.groups()
        labels: Labels = ()
        if raw_labels is not None:
            cached = _LABELSETS.get(raw_labels)
            if cached is None:
                labels = tuple(sorted(_simple_pair(raw_labels)))
                if len({k for k, _ in labels}) != len(labels) or any(k[:2] == "__" for k, _ in labels):
                    return _parse_careful(line, default_ts_ms)  # raises (duplicate or reserved name)
                if len(_LABELSETS) >= CACHE_MAX:
                    _LABELSETS.clear()
                _LABELSETS[raw_labels] = labels
            else:
                labels = cached
        if "_" not in v and (t is None or "_" not in t):
            try:
                value = float(v)
                ts = default_ts_ms if t is None else int(t)
            except ValueError:
                pass
            else:
                if len(_SERIES) >= CACHE_MAX:
                    _SERIES.clear()
                _SERIES[line[: m.start(3) - 1]] = (name, labels)
                return tuple.__new__(Sample, (name, labels, ts, value))
    return _parse_careful(line, default_ts_ms)


def _parse_careful(line: str, default_ts_ms: int) -> Sample | None:
    """The careful parser for one line: a sample, or None for a blank or comment line.

    The only place that raises: with a message saying what is wrong.
    """
    n = len(line)
    i = _ws(line)
    if i == n or line[i] == "#":
        if i < n:
            _check_comment(line)
        if len(_COMMENTS) >= CACHE_MAX:
            _COMMENTS.clear()
        _COMMENTS.add(line)
        return None

    m = _metric_name(line, i)
    name = ""
    labels: Labels = ()
    if m is not None:
        name = m.group()
        i = m.end()
        if i < n and not line[i].isspace() and line[i] != "{":
            bad = _token(line, m.start()).group().partition("{")[0]
            raise _LineError(f"invalid metric name {bad!r}")
        i = _ws(line, i)
    elif line[i] == '"':
        raise _LineError("quoted (UTF-8) metric names are not supported")
    elif line[i] != "{":
        raise _LineError(f"invalid metric name {_token(line, i).group().partition('{')[0]!r}")
    if i < n and line[i] == "{":
        pairs, label_name, i = _parse_labels(line, i + 1)
        if label_name is not None:
            if name:
                raise _LineError("metric name given both before the labels and as __name__")
            if _legacy_name(label_name) is None:
                raise _LineError(f"invalid metric name {label_name!r} in __name__")
            name = label_name
        elif not name:
            raise _LineError("missing metric name")
        labels = tuple(sorted(pairs))
        i = _ws(line, i)

    if i == n or line[i] == "#":
        raise _LineError("missing value")
    value_start = i
    m = _token(line, i)
    value = _to_float(m.group(), "value")
    value_end = i = m.end()
    i = _ws(line, i)
    ts = default_ts_ms
    ts_start = ts_end = -1
    if i < n and line[i] != "#":
        ts_start = i
        m = _token(line, i)
        tok = m.group()
        if "_" in tok:
            raise _LineError(f"invalid timestamp {tok!r}")
        try:
            ts = int(tok)
        except ValueError:
            raise _LineError(f"invalid timestamp {tok!r} (must be integer milliseconds)") from None
        ts_end = m.end()
        i = _ws(line, ts_end)
    if i < n:
        if line[i] != "#":
            raise _LineError(f"unexpected text after the sample: {line[i:].rstrip()!r}")
        _check_exemplar(line, i + 1)
    elif line[value_start - 1] == " " and (
        (ts_start < 0 and value_end == n)
        or (ts_end == n and ts_start == value_end + 1 and line[value_end] == " ")
    ):
        # Remember the series text for the hot path of parse(), which assumes exactly this shape:
        # "<key> <value>" or "<key> <value> <timestamp>", single spaces, nothing after.
        if len(_SERIES) >= CACHE_MAX:
            _SERIES.clear()
        _SERIES[line[: value_start - 1]] = (name, labels)
    return tuple.__new__(Sample, (name, labels, ts, value))


def _parse_labels(line: str, i: int) -> tuple[list[tuple[str, str]], str | None, int]:
    """Parse label pairs from just after ``{`` through the closing ``}``.

    Returns the pairs, the value of a ``__name__`` label if any, and the index after ``}``.
    """
    n = len(line)
    pairs: list[tuple[str, str]] = []
    seen: set[str] = set()
    name_label: str | None = None
    while True:
        i = _ws(line, i)
        if i == n:
            raise _LineError("unterminated label set (missing '}')")
        c = line[i]
        if c == "}":
            return pairs, name_label, i + 1
        m = _label_name(line, i)
        if m is None:
            if c == '"':
                raise _LineError("quoted (UTF-8) label names are not supported")
            raise _LineError(f"invalid label name at {line[i : i + 20]!r}")
        lname = m.group()
        i = m.end()
        if i < n and line[i] not in '=,}"' and not line[i].isspace():
            bad = _label_token(line, m.start())
            raise _LineError(f"invalid label name {bad.group() if bad else line[i:]!r}")
        i = _ws(line, i)
        if i == n or line[i] != "=":
            raise _LineError(f"expected '=' after label name {lname!r}")
        i = _ws(line, i + 1)
        if i == n or line[i] != '"':
            raise _LineError(f"value of label {lname!r} is not quoted")
        m = _label_body(line, i + 1)
        assert m is not None
        j = m.end()
        if j == n or line[j] != '"':
            raise _LineError(f"unterminated label value for label {lname!r}")
        lvalue = m.group()
        if "\\" in lvalue:
            lvalue = _escape.sub(_unescape_one, lvalue)
        if lname in seen:
            raise _LineError(f"duplicate label name {lname!r}")
        seen.add(lname)
        if lname == "__name__":
            name_label = lvalue
        elif lname.startswith("__"):
            raise _LineError(f"label name {lname!r} is reserved (starts with '__')")
        else:
            pairs.append((lname, lvalue))
        i = _ws(line, j + 1)
        if i == n:
            raise _LineError("unterminated label set (missing '}')")
        if line[i] == ",":
            i += 1
        elif line[i] != "}":
            raise _LineError(f"expected ',' or '}}' after the value of label {lname!r}")


def _unescape_one(m: re.Match[str]) -> str:
    # Like prometheus-client: unknown escapes stay as they are (the Go parser rejects them).
    c = m.group(1)
    return _ESCAPES.get(c, "\\" + c)


def _to_float(tok: str, what: str) -> float:
    if "_" not in tok:
        try:
            return float(tok)
        except ValueError:
            pass
    raise _LineError(f"invalid {what} {tok!r}")


def _check_comment(line: str) -> None:
    parts = line.split(None, 3)
    if len(parts) < 2 or parts[0] != "#" or parts[1] not in ("HELP", "TYPE"):
        return  # an ordinary comment (or "# EOF")
    kind = parts[1]
    if len(parts) < 3:
        raise _LineError(f"missing metric name after # {kind}")
    name = parts[2]
    if _legacy_name(name) is None:
        if name.startswith('"'):
            raise _LineError(f"quoted (UTF-8) metric names are not supported in # {kind}")
        raise _LineError(f"invalid metric name {name!r} in # {kind}")
    if kind == "TYPE":
        if len(parts) < 4:
            raise _LineError(f"missing metric type for {name!r}")
        typ = parts[3].rstrip()
        if typ not in _TYPES:
            raise _LineError(f"unknown metric type {typ!r} for {name!r}")


def _check_exemplar(line: str, i: int) -> None:
    """Validate (and drop) an OpenMetrics exemplar ``{labels} value [timestamp]`` after ``#``."""
    n = len(line)
    i = _ws(line, i)
    if i == n or line[i] != "{":
        raise _LineError("invalid exemplar: expected '{' after ' # '")
    _, _, i = _parse_labels(line, i + 1)
    i = _ws(line, i)
    if i == n:
        raise _LineError("invalid exemplar: missing value")
    m = _token(line, i)
    _to_float(m.group(), "exemplar value")
    i = _ws(line, m.end())
    if i < n:
        m = _token(line, i)
        _to_float(m.group(), "exemplar timestamp")
        i = _ws(line, m.end())
        if i < n:
            raise _LineError(f"unexpected text after the exemplar: {line[i:].rstrip()!r}")
