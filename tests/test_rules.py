"""The rule language: a PromQL subset over the samples of one scrape."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from opsdesk.metrics.rules import (
    RuleDefinition,
    RuleError,
    RuleEvaluationError,
    SampleIndex,
    compile_rule,
    format_value,
    render_summary,
)
from opsdesk.metrics.samples import Sample, labels_of

TS = 1_700_000_000_000


def s(name: str, value: float, **labels: str) -> Sample:
    return Sample(name, labels_of(labels), TS, float(value))


def run(expr: str, samples: list[Sample]) -> dict[tuple[str | None, tuple[tuple[str, str], ...]], float]:
    return {(x.name, x.labels): x.value for x in compile_rule(expr).evaluate(samples)}


def values(expr: str, samples: list[Sample]) -> list[float]:
    return [x.value for x in compile_rule(expr).evaluate(samples)]


def lab(**labels: str) -> tuple[tuple[str, str], ...]:
    return labels_of(labels)


# A realistic slice of node_exporter: three filesystems, one of them tmpfs, and load averages.
NODE = [
    s("node_filesystem_avail_bytes", 4.2e9, device="/dev/sda1", fstype="ext4", mountpoint="/"),
    s("node_filesystem_size_bytes", 50e9, device="/dev/sda1", fstype="ext4", mountpoint="/"),
    s("node_filesystem_avail_bytes", 400e9, device="/dev/sdb1", fstype="xfs", mountpoint="/data"),
    s("node_filesystem_size_bytes", 1000e9, device="/dev/sdb1", fstype="xfs", mountpoint="/data"),
    s("node_filesystem_avail_bytes", 1e6, device="tmpfs", fstype="tmpfs", mountpoint="/run"),
    s("node_filesystem_size_bytes", 800e6, device="tmpfs", fstype="tmpfs", mountpoint="/run"),
    s("node_filesystem_avail_bytes", 0, device="ramfs", fstype="ramfs", mountpoint="/mnt/r"),
    s("node_filesystem_size_bytes", 0, device="ramfs", fstype="ramfs", mountpoint="/mnt/r"),
    s("node_load1", 5.5),
    s("node_load5", 3.25),
    s("node_load15", 1.0),
    s("up", 1, job="node"),
    s("up", 0, job="db"),
]


# --- the examples users write ---------------------------------------------------------------------


def test_filesystem_free_below_ten_percent():
    expr = 'node_filesystem_avail_bytes{fstype!~"tmpfs|ramfs"} / node_filesystem_size_bytes * 100 < 10'
    out = compile_rule(expr).evaluate(NODE)
    assert len(out) == 1
    assert out[0].labels == lab(device="/dev/sda1", fstype="ext4", mountpoint="/")
    assert out[0].value == pytest.approx(8.4)
    assert out[0].name is None  # arithmetic drops the metric name


def test_threshold_and_up_style_rules():
    assert run("node_load1 > 4", NODE) == {("node_load1", ()): 5.5}
    assert run("node_load1 > 6", NODE) == {}
    assert run("up == 0", NODE) == {("up", lab(job="db")): 0.0}


# --- selectors ------------------------------------------------------------------------------------


def test_label_matchers():
    fs = "node_filesystem_size_bytes"
    assert len(run(f'{fs}{{fstype="xfs"}}', NODE)) == 1
    assert len(run(f'{fs}{{fstype!="xfs"}}', NODE)) == 3
    assert len(run(f'{fs}{{fstype=~"ext.|xfs"}}', NODE)) == 2
    assert len(run(f'{fs}{{fstype!~"tmpfs|ramfs"}}', NODE)) == 2
    # regexes are anchored: "ext" does not match "ext4"
    assert run(f'{fs}{{fstype=~"ext"}}', NODE) == {}
    # several matchers all apply; a trailing comma is fine
    assert len(run(f'{fs}{{fstype=~".*fs", device!="ramfs",}}', NODE)) == 2
    # single quotes and raw backquotes
    assert len(run(f"{fs}{{mountpoint='/data'}}", NODE)) == 1
    assert len(run(f"{fs}{{mountpoint=~`/d\\w+`}}", NODE)) == 1


def test_missing_label_matches_as_empty():
    assert run('up{job=""}', NODE) == {}
    assert run('node_load1{job=""}', NODE) == {("node_load1", ()): 5.5}
    assert run('node_load1{job!="x"}', NODE) == {("node_load1", ()): 5.5}
    assert run('node_load1{job=~"x|"}', NODE) == {("node_load1", ()): 5.5}


def test_name_matchers_and_unknown_metric():
    assert {n for n, _ in run('{__name__=~"node_load.*"}', NODE)} == {
        "node_load1",
        "node_load5",
        "node_load15",
    }
    assert run('{__name__="node_load5"}', NODE) == {("node_load5", ()): 3.25}
    assert run("no_such_metric > 0", NODE) == {}


def test_metric_names_with_colons():
    data = [s("job:http_requests:rate5m", 12, job="api")]
    assert run("job:http_requests:rate5m > 10", data) == {("job:http_requests:rate5m", lab(job="api")): 12}


# --- operators ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("node_load5 + 1", 4.25),
        ("node_load5 - 1", 2.25),
        ("node_load5 * 2", 6.5),
        ("node_load5 / 2", 1.625),
        ("node_load5 % 2", 1.25),
        ("node_load5 ^ 2", 10.5625),
        ("1 - node_load5", -2.25),
        ("13 / node_load5", 4.0),
        ("2 ^ node_load15", 2.0),
        ("-node_load5", -3.25),
        ("+node_load5", 3.25),
    ],
)
def test_arithmetic_between_vector_and_number(expr: str, expected: float):
    out = compile_rule(expr).evaluate(NODE)
    assert [x.value for x in out] == [pytest.approx(expected)]
    assert out[0].name == ("node_load5" if expr.startswith("+") else None)  # arithmetic drops the name


@pytest.mark.parametrize(
    ("expr", "holds"),
    [
        ("node_load5 > 3", True),
        ("node_load5 > 3.25", False),
        ("node_load5 >= 3.25", True),
        ("node_load5 < 3.25", False),
        ("node_load5 <= 3.25", True),
        ("node_load5 == 3.25", True),
        ("node_load5 != 3.25", False),
        ("3 < node_load5", True),
        ("4 < node_load5", False),
    ],
)
def test_comparison_filters_and_keeps_the_series_value(expr: str, holds: bool):
    assert run(expr, NODE) == ({("node_load5", ()): 3.25} if holds else {})


def test_bool_comparisons_give_zero_or_one():
    assert run("node_load5 > bool 3", NODE) == {(None, ()): 1.0}
    assert run("node_load5 < bool 3", NODE) == {(None, ()): 0.0}
    assert run("2 < bool node_load5", NODE) == {(None, ()): 1.0}
    # bool between numbers folds to a number, usable in arithmetic
    assert values("node_load5 * (1 < bool 2)", NODE) == [3.25]


def test_vector_to_vector_one_to_one_on_identical_labels():
    data = [
        s("used", 30, dev="a"),
        s("total", 100, dev="a"),
        s("used", 90, dev="b"),
        s("total", 100, dev="b"),
        s("used", 1, dev="c"),  # no partner: dropped
    ]
    assert run("used / total", data) == {(None, lab(dev="a")): 0.3, (None, lab(dev="b")): 0.9}
    assert run("used > total * 0.5", data) == {("used", lab(dev="b")): 90}
    assert run("used < bool total * 0.5", data) == {(None, lab(dev="a")): 1.0, (None, lab(dev="b")): 0.0}


def test_on_and_ignoring():
    data = [
        s("errors", 5, method="get", code="500"),
        s("errors", 2, method="post", code="500"),
        s("requests", 100, method="get"),
        s("requests", 10, method="post"),
    ]
    # the documented PromQL example: ignoring(code) matches and drops the ignored label
    assert run("errors / ignoring(code) requests", data) == {
        (None, lab(method="get")): 0.05,
        (None, lab(method="post")): 0.2,
    }
    # on(method) keeps only the listed labels
    assert run("errors / on(method) requests > 0.1", data) == {(None, lab(method="post")): 0.2}
    # without a modifier nothing matches: the label sets differ
    assert run("errors / requests", data) == {}


def test_many_to_many_is_an_evaluation_error():
    data = [s("a", 1, x="1", y="1"), s("a", 2, x="1", y="2"), s("b", 1, x="1")]
    with pytest.raises(RuleEvaluationError, match="left-hand side has several series"):
        compile_rule("a + on(x) b").evaluate(data)
    with pytest.raises(RuleEvaluationError, match="right-hand side has several series"):
        compile_rule("b + on(x) a").evaluate(data)


def test_set_operators():
    data = [s("a", 1, i="1"), s("a", 2, i="2"), s("b", 10, i="2"), s("b", 30, i="3")]
    assert run("a and b", data) == {("a", lab(i="2")): 2}
    assert run("a unless b", data) == {("a", lab(i="1")): 1}
    assert run("a or b", data) == {("a", lab(i="1")): 1, ("a", lab(i="2")): 2, ("b", lab(i="3")): 30}
    assert run("a and on() b", data) == {("a", lab(i="1")): 1, ("a", lab(i="2")): 2}
    assert run("a unless ignoring(i) b", data) == {}
    # a common alerting idiom: a condition that only counts where another series exists
    assert run("a > 1 and on(i) b < 20", data) == {("a", lab(i="2")): 2}


# --- aggregations ---------------------------------------------------------------------------------


def test_aggregations():
    fs = "node_filesystem_size_bytes"
    assert values(f"count({fs})", NODE) == [4]
    assert values(f"sum({fs})", NODE) == [pytest.approx(1050.8e9)]
    assert values(f"min({fs})", NODE) == [0]
    assert values(f"max({fs})", NODE) == [1000e9]
    assert values(f"avg({fs})", NODE) == [pytest.approx(1050.8e9 / 4)]
    assert run("count by (job) (up)", NODE) == {(None, lab(job="node")): 1, (None, lab(job="db")): 1}
    assert run("sum(up) by (job)", NODE) == {(None, lab(job="node")): 1, (None, lab(job="db")): 0}
    out = run(f'sum without (device, mountpoint) ({fs}{{fstype=~"ext4|xfs"}})', NODE)
    assert out == {(None, lab(fstype="ext4")): 50e9, (None, lab(fstype="xfs")): 1000e9}
    assert values("sum(no_such_metric)", NODE) == []
    assert run("count(up == 0) > 0", NODE) == {(None, ()): 1}


def test_aggregation_of_an_expression_with_grouping_and_filter():
    data = [
        s("cpu", 0.9, host="a", cpu="0"),
        s("cpu", 0.7, host="a", cpu="1"),
        s("cpu", 0.1, host="b", cpu="0"),
    ]
    assert run("avg by (host) (cpu) > 0.5", data) == {(None, lab(host="a")): pytest.approx(0.8)}


# --- precedence and numbers -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("node_load15 + 2 * 3", 7),
        ("(node_load15 + 2) * 3", 9),
        ("node_load15 * 2 ^ 3 ^ 2", 512),  # ^ is right-associative
        ("node_load15 * -2 ^ 2", -4),  # unary minus binds looser than ^
        ("node_load15 - 1 - 1", -1),  # left-associative
        ("node_load15 * 12 / 2 / 3", 2),
        ("node_load15 * 7 % 4 * 2", 6),
        ("node_load15 * 1e3", 1000),
        ("node_load15 * 0x10", 16),
        ("node_load15 * .5", 0.5),
        ("node_load15 + 2 > 2", 3),  # arithmetic before comparison
    ],
)
def test_precedence(expr: str, expected: float):
    assert values(expr, NODE) == [pytest.approx(expected)]


def test_comparison_binds_tighter_than_and_which_binds_tighter_than_or():
    data = [s("a", 1, i="1"), s("a", 5, i="2"), s("b", 5, i="1")]
    # (a > 2) or ((b > 2) and a) -- and before or
    assert run("a > 2 or b > 2 and a", data) == {("a", lab(i="2")): 5, ("b", lab(i="1")): 5}


def test_comments_and_whitespace():
    expr = """
        # disks filling up
        node_filesystem_avail_bytes{fstype!~"tmpfs|ramfs"}
          / node_filesystem_size_bytes   # ratio
          < 0.1
    """
    assert len(compile_rule(expr).evaluate(NODE)) == 1


# --- NaN and infinities ---------------------------------------------------------------------------


def test_nan_and_division_by_zero():
    # ramfs: 0/0 is NaN, and NaN compares false (the series is not reported) ...
    ratio = 'node_filesystem_avail_bytes{fstype="ramfs"} / node_filesystem_size_bytes'
    out = values(ratio, NODE)
    assert len(out) == 1 and math.isnan(out[0])
    assert values(ratio + " < 0.1", NODE) == []
    assert values(ratio + " > 0.1", NODE) == []
    assert values(ratio + " == NaN", NODE) == []
    # ... except with != (like PromQL)
    assert len(values(ratio + " != 0", NODE)) == 1
    assert values("node_load1 / 0", NODE) == [math.inf]
    assert values("-node_load1 / 0", NODE) == [-math.inf]
    assert values("node_load1 > Inf", NODE) == []
    assert values("node_load1 < +Inf", NODE) == [5.5]
    assert math.isnan(values("node_load1 % 0", NODE)[0])


def test_nan_samples_in_aggregations():
    data = [s("x", math.nan, i="1"), s("x", 2, i="2"), s("x", 5, i="3")]
    assert values("max(x)", data) == [5]
    assert values("min(x)", data) == [2]
    assert math.isnan(values("sum(x)", data)[0])
    assert values("count(x)", data) == [3]
    assert math.isnan(values("max(x{i='1'})", data)[0])


# --- errors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "fragment", "position"),
    [
        ("", "empty expression", 1),
        ("node_load1 >", "unexpected end of expression", 13),
        ("node_load1 > > 4", "unexpected '>'", 14),
        ("node_load1 4", "unexpected '4'", 12),
        ("(node_load1 > 4", "expected ')'", 16),
        ("node_load1{job=node}", "expected a quoted label value", 16),
        ('node_load1{job=="x"}', "expected =, !=, =~ or !~", 15),
        ('node_load1{job="x"', "expected ',' or '}'", 19),
        ('node_load1{job="x}', "unterminated string", 16),
        ('x{a=~"("}', "bad regular expression", 6),
        ('x{a="\\."}', "unknown escape", 6),
        ("rate(x[5m]) > 1", "functions such as rate() are not supported", 1),
        ("x[5m] > 1", "range selectors", 2),
        ("x offset 5m > 1", "offset is not supported", 3),
        ("topk(3, x)", "aggregation 'topk' is not supported", 1),
        ("1 > 2", "needs bool", 3),
        ("4", "is a number", 1),
        ("x and 1", "needs series on both sides", 3),
        ("x + on(a) 1", "only apply between two sets of series", 3),
        ("x + on(a) group_left y", "group_left", 11),
        ("x + bool 1", "bool only modifies a comparison", 5),
        ('{a=""}', "does not match the empty string", 1),
        ("sum(2)", "needs series", 5),
        ("sum()", "needs an expression", 5),
        ("sum by (a) (x) by (b)", "given twice", 16),
        ("x $ 1", "unexpected character '$'", 3),
        ("5m", "durations", 1),
        ("x * 1.2.3", "unexpected", 8),
        ("by", "unexpected keyword 'by'", 1),
    ],
)
def test_errors_name_the_position(expr: str, fragment: str, position: int):
    with pytest.raises(RuleError) as caught:
        compile_rule(expr)
    assert fragment in str(caught.value)
    assert caught.value.pos == position - 1
    assert f"at position {position}" in str(caught.value)


def test_errors_in_multi_line_expressions_give_line_and_column():
    with pytest.raises(RuleError, match="at line 2, column 5"):
        compile_rule("node_load1\n  > > 4")


def test_evaluation_error_for_duplicate_label_sets_once_the_name_is_dropped():
    rule = compile_rule('{__name__=~"node_load.*"} > 0')
    assert len(rule.evaluate(NODE)) == 3
    with pytest.raises(RuleEvaluationError, match="several series with the labels"):
        rule.firing(NODE)


# --- evaluation on an index, property: arithmetic agrees with Python --------------------------------


def test_index_is_reusable_across_rules():
    index = SampleIndex(NODE)
    assert [f.value for f in compile_rule("node_load1 > 4").firing(index)] == [5.5]
    assert [f.labels for f in compile_rule("up == 0").firing(index)] == [lab(job="db")]
    assert compile_rule("node_load1 > 4") is compile_rule("node_load1 > 4")  # compiled once


finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)


@given(a=finite, b=finite, c=finite)
def test_arithmetic_matches_python(a: float, b: float, c: float):
    data = [s("a", a), s("b", b)]
    assert values(f"a + b * {c!r}", data) == [pytest.approx(a + b * c)]
    assert values(f"(a - b) * {c!r}", data) == [pytest.approx((a - b) * c)]
    assert len(values(f"a > {c!r}", data)) == (1 if a > c else 0)
    assert len(values("a <= b", data)) == (1 if a <= b else 0)


# --- definitions and summaries ---------------------------------------------------------------------


class Holder(BaseModel):
    rules: list[RuleDefinition]


def test_definition_defaults_and_summary():
    rd = RuleDefinition(
        name="disk_low",
        expr='node_filesystem_avail_bytes{fstype!~"tmpfs|ramfs"} / node_filesystem_size_bytes * 100 < 10',
        summary="{{ $labels.mountpoint }} has {{$value}}% free ({{ $labels.nope }})",
    )
    assert rd.severity == "warning"
    [f] = rd.rule.firing(NODE)
    assert rd.summarize(f.labels, f.value) == "/ has 8.4% free ()"
    generated = RuleDefinition(name="load_high", expr="node_load1 > 4")
    [g] = generated.rule.firing(NODE)
    assert generated.summarize(g.labels, g.value) == "load_high: value 5.5"


def test_invalid_definitions_are_field_errors():
    with pytest.raises(ValidationError) as caught:
        Holder.model_validate(
            {"rules": [{"name": "ok", "expr": "up == 0"}, {"name": "bad", "expr": "node_load1 >"}]}
        )
    [err] = caught.value.errors()
    assert err["loc"] == ("rules", 1, "expr")
    assert "unexpected end of expression at position 13" in err["msg"]
    for bad in (
        {"name": "", "expr": "up"},
        {"name": "has space", "expr": "up"},
        {"name": "x", "expr": "up", "severity": "fatal"},
        {"name": "x", "expr": "up", "summary": "{{ .Value }}"},
        {"name": "x", "expr": "up", "summary": "{{ $value"},
        {"name": "x", "expr": "up", "for": "5m"},
    ):
        with pytest.raises(ValidationError):
            RuleDefinition.model_validate(bad)


def test_render_summary_and_value_format():
    labels = lab(mountpoint="/", device="/dev/sda1")
    assert render_summary("{{ $labels.device }} on {{ $labels.mountpoint }}", labels, 1) == "/dev/sda1 on /"
    assert render_summary("no placeholders", labels, 1) == "no placeholders"
    assert [format_value(v) for v in (4.0, 7.234567891, 1.5e9, 0.000123, math.nan, -math.inf)] == [
        "4",
        "7.23457",
        "1500000000",
        "0.000123",
        "NaN",
        "-Inf",
    ]
