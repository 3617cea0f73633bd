"""The Prometheus text-format parser, checked against prometheus_client's own parser.

The reference is ``prometheus_client.parser.text_string_to_metric_families`` with its families
flattened back into samples. Its ``# TYPE`` lines are dropped first: for a counter whose name
lacks ``_total`` it renames the samples (``foo`` -> ``foo_total``), which is family munging, not
parsing. Where the two parsers deliberately differ (see the module docstring of
``opsdesk.metrics.exposition``) the cases are tested on their own below.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Enum,
    Gauge,
    Histogram,
    Info,
    Summary,
    generate_latest,
)
from prometheus_client.parser import text_string_to_metric_families

from opsdesk.metrics import exposition
from opsdesk.metrics.exposition import ExpositionError, parse
from opsdesk.metrics.samples import Sample

DATA = Path(__file__).parent / "data"
DEFAULT_TS = -987_654_321  # no generated timestamp takes this value

Flat = tuple[str, tuple[tuple[str, str], ...], float | None, float]


@pytest.fixture(autouse=True)
def cold_caches() -> Iterator[None]:
    _clear()
    yield
    _clear()


def _clear() -> None:
    exposition._SERIES.clear()
    exposition._COMMENTS.clear()
    exposition._LABELSETS.clear()


def reference(text: str) -> list[Flat]:
    text = "\n".join(line for line in text.split("\n") if not line.lstrip().startswith("# TYPE"))
    return [
        (
            s.name,
            tuple(sorted(s.labels.items())),
            None if s.timestamp is None else float(s.timestamp),
            s.value,
        )
        for family in text_string_to_metric_families(text)
        for s in family.samples
    ]


def flat(samples: list[Sample]) -> list[Flat]:
    return [(s.name, s.labels, None if s.ts_ms == DEFAULT_TS else s.ts_ms / 1000, s.value) for s in samples]


def same(a: list[Flat], b: list[Flat]) -> bool:
    def key(x: Flat) -> tuple[object, ...]:
        return (*x[:3], "NaN" if math.isnan(x[3]) else float(x[3]))

    return [key(x) for x in a] == [key(x) for x in b]


def check_against_reference(text: str) -> list[Sample]:
    """Parse cold, parse again warm (through the caches): both must equal prometheus_client."""
    _clear()
    cold = parse(text, DEFAULT_TS)
    warm = parse(text, DEFAULT_TS)
    ref = reference(text)
    assert same(flat(cold), ref), (flat(cold), ref)
    assert same(flat(warm), ref)
    return cold


# --- whole pages -----------------------------------------------------------------------------


def test_real_node_exporter_page() -> None:
    text = (DATA / "node_exporter.txt").read_text()
    samples = check_against_reference(text)
    assert len(samples) > 400
    gc = [s for s in samples if s.name == "go_gc_duration_seconds"]
    assert [s.labels for s in gc] == [(("quantile", q),) for q in ("0", "0.25", "0.5", "0.75", "1")]
    cpu = [s for s in samples if s.name == "node_cpu_seconds_total"]
    assert cpu and all([k for k, _ in s.labels] == ["cpu", "mode"] for s in cpu)
    assert all(s.ts_ms == DEFAULT_TS for s in samples)
    assert all(isinstance(s.value, float) for s in samples)
    assert all(s.labels == tuple(sorted(s.labels)) for s in samples)


def test_real_node_exporter_page_with_crlf_line_ends() -> None:
    text = (DATA / "node_exporter.txt").read_text()
    assert parse(text.replace("\n", "\r\n"), 5) == parse(text, 5)


def test_prometheus_client_registry_output() -> None:
    r = CollectorRegistry()
    c = Counter("requests", "Requests with \\ and\nnewline in help.", ["path", "q"], registry=r)
    c.labels('a"b\\c\nd', "x").inc(3)
    c.labels("", "}{,=# ").inc()
    c.labels("\\n literal", '"').inc(2.5)
    g = Gauge("temperature_celsius", "t", ["room"], registry=r)
    g.labels("kitchen").set(-3.25e-7)
    g.labels("attic").set(float("nan"))
    g.labels("cellar").set(float("inf"))
    g.labels("garage").set(float("-inf"))
    h = Histogram("latency_seconds", "l", ["method"], registry=r)
    for v in (0.001, 0.3, 7, 1e9):
        h.labels("GET").observe(v)
    s = Summary("size_bytes", "s", registry=r)
    s.observe(4)
    Info("build", "b", registry=r).info({"version": "1.0", "comment": 'say "hi"\\'})
    Enum("state", "s", states=["a", "b"], registry=r)
    text = generate_latest(r).decode()
    samples = check_against_reference(text)
    by_name = {(x.name, x.labels): x.value for x in samples}
    assert by_name[("requests_total", (("path", 'a"b\\c\nd'), ("q", "x")))] == 3.0
    assert by_name[("requests_total", (("path", ""), ("q", "}{,=# ")))] == 1.0
    assert by_name[("build_info", (("comment", 'say "hi"\\'), ("version", "1.0")))] == 1.0
    assert by_name[("latency_seconds_bucket", (("le", "+Inf"), ("method", "GET")))] == 4.0
    assert math.isnan(by_name[("temperature_celsius", (("room", "attic"),))])


# --- hand-written edge cases -------------------------------------------------------------------

EDGE_CASES = {
    "escapes": 'm{a="back\\\\slash",b="quo\\"te",c="new\\nline",d="\\\\n",e="\\\\\\""} 1\n',
    "unknown escape kept literally": 'm{a="tab\\there",b="\\q\\\\"} 1\n',
    "special values": "a NaN\nb +Inf\nc -Inf\nd -0\ne 1e+06\nf 1.5E-3\ng .5\nh 5.\ni nan\nj inf\n",
    "big and small": "a 1e400\nb 123456789012345678901234567890\nc 1e-400\nd -1.7976931348623157e308\n",
    "timestamps": 'a 1 1700000000123\nb{x="y"} 2 -5\nc 3 0\n',
    "trailing comma and empty labels": 'a{x="1",} 1\nb{} 2\nc{ } 3\n',
    "blanks": 'a  {  x = "1" ,  y="2"  } \t 1 \t 42  \n  b 2\n\t\n\n   \nc\t3\n',
    "no space after labels": 'a{x="1"}1\n',
    "label values with syntax": 'a{x="}",y="{",z=",",w="=",v=" # ",u="a b"} 1\n',
    "unicode label value": 'a{x="Grüße ☃ 日本",y="\u2028\x85"} 1\n',
    "comments": "# just a comment\n#\n#HELP whatever\n# EOF\n# TYPE m gauge\nm 1\n",
    "help escapes": '# HELP m docs with \\\\ and \\n and "quotes"\nm 1\n',
    "histogram": (
        "# HELP h A histogram.\n# TYPE h histogram\n"
        'h_bucket{le="0.1"} 1\nh_bucket{le="+Inf"} 3\nh_sum 1.5\nh_count 3\n'
    ),
    "summary": '# TYPE s summary\ns{quantile="0.5"} NaN\ns{quantile="0.99"} 2\ns_sum 4\ns_count 2\n',
    "name via __name__": '{__name__="m",a="b"} 1\n',
    "colons in names": "job:rate5m:sum 1\n",
    "no final newline": "a 1\nb 2",
}


@pytest.mark.parametrize("text", EDGE_CASES.values(), ids=EDGE_CASES.keys())
def test_edge_cases_match_prometheus_client(text: str) -> None:
    check_against_reference(text)
    check_against_reference(text.replace("\n", "\r\n"))


def test_edge_case_values() -> None:
    s = parse(EDGE_CASES["escapes"], 7)[0]
    assert s == Sample(
        "m", (("a", "back\\slash"), ("b", 'quo"te'), ("c", "new\nline"), ("d", "\\n"), ("e", '\\"')), 7, 1.0
    )
    assert parse(EDGE_CASES["unknown escape kept literally"], 7)[0].labels == (
        ("a", "tab\\there"),
        ("b", "\\q\\"),
    )
    assert [s.ts_ms for s in parse(EDGE_CASES["timestamps"], 7)] == [1700000000123, -5, 0]
    assert parse('m{b="2",a="1",c="3"} 1', 0)[0].labels == (("a", "1"), ("b", "2"), ("c", "3"))
    assert parse("", 0) == [] and parse("\n\n# HELP x y\n", 0) == []


def test_exemplars_are_ignored() -> None:
    # OpenMetrics exemplars. prometheus_client's 0.0.4 parser reads the exemplar's last number as
    # the sample's timestamp; we drop the exemplar and keep the sample's own timestamp (if any).
    text = (
        'h_bucket{le="0.5"} 7 # {trace_id="abc123"} 0.43 1700000000.5\n'
        'h_bucket{le="1"} 8 # {trace_id="x y"} 0.9\n'
        "c_total 5 1700000000000 # {} 1\n"
        'd_total 6 #{a="b"} 1\n'
        "# EOF\n"
    )
    for _ in range(2):  # cold, then warm
        assert parse(text, 9) == [
            Sample("h_bucket", (("le", "0.5"),), 9, 7.0),
            Sample("h_bucket", (("le", "1"),), 9, 8.0),
            Sample("c_total", (), 1700000000000, 5.0),
            Sample("d_total", (), 9, 6.0),
        ]


def test_lines_after_a_cached_series_are_still_checked() -> None:
    parse('m{a="b"} 1\nn 2\n', 0)  # warm the caches
    assert parse('m{a="b"} 3\nn 4 5\n', 0) == [Sample("m", (("a", "b"),), 0, 3.0), Sample("n", (), 5, 4.0)]
    for bad in (
        'm{a="b"} 1_0',
        'm{a="b"} x',
        'm{a="b"} 1 2 3',
        "n 1 1.5",
        "n 1 2_0",
        "n 1 # x",
        "n  ",
        "n 1 2 x",
    ):
        with pytest.raises(ExpositionError):
            parse(bad, 0)


# --- deliberate differences from prometheus_client -------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("m 1 1.5e3", "invalid timestamp"),  # prometheus_client: 1.5 s; Prometheus: error
        ("m 1 2 3", "unexpected text"),  # prometheus_client: value 1, timestamp 3 ms
        ("m{,} 1", "invalid label name"),  # prometheus_client: empty label set
        ("# TYPE m whatever", "unknown metric type"),  # prometheus_client: any word
        ("# HELP", "missing metric name"),  # prometheus_client: ignored
        ('{"my.metric"} 1', "quoted"),  # UTF-8 names, never negotiated by us
        ('m{"a.b"="c"} 1', "quoted"),
        ('{__name__="not valid"} 1', "invalid metric name"),
    ],
)
def test_deliberately_stricter_than_prometheus_client(text: str, message: str) -> None:
    with pytest.raises(ExpositionError, match=message):
        parse(text, 0)


# --- errors ------------------------------------------------------------------------------------

ERRORS = [
    ("1m 1", "invalid metric name"),
    ("m-x 1", "invalid metric name 'm-x'"),
    ("m.x{} 1", "invalid metric name"),
    ("m", "missing value"),
    ("m ", "missing value"),
    ('m{a="b"}', "missing value"),
    ("m # {} 1", "missing value"),
    ("m one", "invalid value 'one'"),
    ("m 1_000", "invalid value"),
    ("m 0x10", "invalid value"),
    ("m 1.2.3", "invalid value"),
    ('m{a="b} 1', "unterminated label value"),
    ('m{a="b\\"} 1', "unterminated label value"),
    ('m{a="b\\', "unterminated label value"),
    ('m{a="b"', "unterminated label set"),
    ('m{a="b" 1', "expected ',' or '}'"),
    ('m{a="b"c="d"} 1', "expected ',' or '}'"),
    ('m{a="b",,c="d"} 1', "invalid label name"),
    ("m{a=b} 1", "not quoted"),
    ("m{a} 1", "expected '='"),
    ('m{1a="b"} 1', "invalid label name"),
    ('m{a-b="c"} 1', "invalid label name 'a-b'"),
    ('m{a="1",a="2"} 1', "duplicate label name 'a'"),
    ('m{b="1",a="2",b="3"} 1', "duplicate label name 'b'"),
    ('m{__x="1"} 1', "reserved"),
    ('m{__name__="n"} 1', "given both"),
    ('{a="b"} 1', "missing metric name"),
    ("{} 1", "missing metric name"),
    ('m{a="b"} 1 # garbage', "invalid exemplar"),
    ('m 1 # {a="b"}', "invalid exemplar: missing value"),
    ('m 1 # {a="b"} x', "invalid exemplar value"),
    ('m 1 # {a="b"} 1 2 3', "unexpected text after the exemplar"),
    ("m 1 x", "invalid timestamp 'x'"),
    ("# HELP 1m doc", "invalid metric name"),
    ("# TYPE m", "missing metric type"),
    ("# TYPE", "missing metric name"),
    ("# TYPE m counter gauge", "unknown metric type"),
]


@pytest.mark.parametrize(("bad", "message"), ERRORS, ids=[b for b, _ in ERRORS])
def test_errors_name_the_line(bad: str, message: str) -> None:
    good = '# HELP m A metric.\n# TYPE m gauge\nm{a="b"} 1\n\nm 2\n'
    for text, lineno in ((bad, 1), (good + bad + "\n" + good, 6), ((good + bad).replace("\n", "\r\n"), 6)):
        for _ in range(2):  # cold and warm caches
            with pytest.raises(ExpositionError, match=message) as info:
                parse(text, 0)
            assert info.value.line == lineno
            assert str(info.value) == f"line {lineno}: {info.value.message}"
            assert isinstance(info.value, ValueError)


def test_error_line_is_the_first_bad_line() -> None:
    text = "a 1\nb x\nc 2\nb x\n"
    with pytest.raises(ExpositionError) as info:
        parse(text, 0)
    assert info.value.line == 2
    assert str(info.value) == "line 2: invalid value 'x'"


def test_pathological_input_does_not_hang() -> None:
    started = time.process_time()
    for text in (
        "m{" + 'a="' + "\\" * 100_001,
        "m{" + 'a="\\"' * 50_000,
        "m{" + " " * 100_000 + "1",
        "m" + " " * 100_000 + "x",
        "m{" + 'a="b",' * 20_000,
        "a" * 200_000,
    ):
        with pytest.raises(ExpositionError):
            parse(text, 0)
    assert time.process_time() - started < 5


def test_caches_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(exposition, "CACHE_MAX", 100)
    text = "".join(f'# HELP m{i} x\nm{i}{{a="{i}"}} {i}\n' for i in range(1000))
    samples = parse(text, 0)
    assert len(samples) == 1000 and samples[-1] == Sample("m999", (("a", "999"),), 0, 999.0)
    assert parse(text, 0) == samples
    assert len(exposition._SERIES) <= 100
    assert len(exposition._COMMENTS) <= 100
    assert len(exposition._LABELSETS) <= 100


# --- property tests ----------------------------------------------------------------------------

metric_names = st.from_regex(r"[a-zA-Z_:][a-zA-Z0-9_:]{0,20}", fullmatch=True)
label_names = st.from_regex(r"[a-zA-Z_][a-zA-Z0-9_]{0,12}", fullmatch=True).filter(
    lambda s: not s.startswith("__")
)
label_values = st.text(st.characters(blacklist_categories=["Cs"]), max_size=15)
values = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.floats(allow_nan=False, allow_infinity=False).map(lambda f: f"{f:e}"),
    st.floats(allow_nan=False, allow_infinity=False).map(lambda f: f"{f:G}"),
    st.integers(-(10**20), 10**20).map(str),
    st.sampled_from(["NaN", "+Inf", "-Inf", "0", "-0", "1e-5", ".5", "5.", "+3"]),
)
timestamps = st.one_of(st.none(), st.integers(-(2**62), 2**62).filter(lambda t: t != DEFAULT_TS))
blank = st.sampled_from(["", "", "", " ", "  ", "\t"])


def escape(v: str) -> str:
    return v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


@st.composite
def sample_lines(draw: st.DrawFn) -> tuple[str, Flat]:
    name = draw(metric_names)
    names = draw(st.lists(label_names, max_size=4, unique=True))
    labels = {n: draw(label_values) for n in names}
    value = draw(values)
    ts = draw(timestamps)
    line = name
    braces: bool = draw(st.booleans())
    trailing_comma: bool = draw(st.booleans())
    if labels or braces:
        sep = draw(blank) + "," + draw(blank)
        inner = sep.join(
            f'{draw(blank)}{n}{draw(blank)}={draw(blank)}"{escape(v)}"' for n, v in labels.items()
        )
        if labels and trailing_comma:
            inner += ","
        line += draw(blank) + "{" + inner + draw(blank) + "}"
    line += draw(blank) + " " + value
    if ts is not None:
        line += draw(st.sampled_from([" ", "  ", "\t"])) + str(ts)
    line += draw(blank)
    return line, (name, tuple(sorted(labels.items())), None if ts is None else ts / 1000, float(value))


@st.composite
def pages(draw: st.DrawFn) -> tuple[str, list[Flat]]:
    out: list[str] = []
    expected: list[Flat] = []
    for line, sample in draw(st.lists(sample_lines(), max_size=12)):
        if draw(st.integers(0, 4)) == 0:
            out.append(draw(st.sampled_from(["", "# a comment", "# HELP x some help", "# TYPE x counter"])))
        out.append(line)
        expected.append(sample)
    return draw(st.sampled_from(["\n", "\r\n"])).join(out), expected


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pages())
def test_random_valid_pages_match_prometheus_client(page: tuple[str, list[Flat]]) -> None:
    text, expected = page
    check_against_reference(text)
    assert same(flat(parse(text, DEFAULT_TS)), expected)


# Lines made of the characters that matter to the grammar: whatever the parser makes of them,
# the fast paths (caches, canonical-line regex) must agree with the careful parser exactly.
fuzz_lines = st.lists(
    st.sampled_from([*'ab_:{}="\\, #\t1.eE+-nNIf\u2028', "NaN", "Inf", "_x", 'a="b"']), max_size=30
).map("".join)


@settings(max_examples=500, deadline=None)
@given(st.lists(st.one_of(fuzz_lines, sample_lines().map(lambda x: x[0])), min_size=1, max_size=6))
def test_fast_paths_agree_with_the_careful_parser(lines: list[str]) -> None:
    def careful() -> list[Sample] | ExpositionError:
        out = []
        for i, line in enumerate(lines, 1):
            try:
                s = exposition._parse_careful(line, 3)
            except exposition._LineError as e:
                return ExpositionError(i, e.message)
            if s is not None:
                out.append(s)
        return out

    def fast() -> list[Sample] | ExpositionError:
        try:
            return parse("\n".join(lines), 3)
        except ExpositionError as e:
            return e

    want = careful()
    for _ in range(2):  # cold, then warm
        got = fast()
        if isinstance(want, ExpositionError):
            assert isinstance(got, ExpositionError) and str(got) == str(want)
        else:
            assert not isinstance(got, ExpositionError), got
            assert [(*s[:3], repr(s.value)) for s in got] == [(*s[:3], repr(s.value)) for s in want]
