"""Alertmanager label matchers: parsing, semantics (anchoring, missing labels), JSON form."""

from __future__ import annotations

import re

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from opsdesk.alerts.matchers import (
    Matcher,
    format_matchers,
    from_json,
    matches_all,
    parse_matcher,
    parse_matchers,
    require_selective,
    to_json,
)

# --- parsing -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("alertname=DiskFull", Matcher("alertname", "=", "DiskFull")),
        ('alertname="DiskFull"', Matcher("alertname", "=", "DiskFull")),
        ('job!="node exporter"', Matcher("job", "!=", "node exporter")),
        ('instance=~"db-.*"', Matcher("instance", "=~", "db-.*")),
        ("instance!~db-.*", Matcher("instance", "!~", "db-.*")),
        ('  severity =~ "critical|error"  ', Matcher("severity", "=~", "critical|error")),
        ("team=", Matcher("team", "=", "")),
        ('team=""', Matcher("team", "=", "")),
        ("summary=Disk almost full", Matcher("summary", "=", "Disk almost full")),
        ('a="say \\"hi\\""', Matcher("a", "=", 'say "hi"')),
        ('a="back\\\\slash"', Matcher("a", "=", "back\\slash")),
        ('a="two\\nlines"', Matcher("a", "=", "two\nlines")),
        ('a=~"\\d+"', Matcher("a", "=~", "\\d+")),  # an unknown escape keeps its backslash
        ('a="x,y}"', Matcher("a", "=", "x,y}")),
        ("_private=1", Matcher("_private", "=", "1")),
    ],
)
def test_parse_matcher(text: str, expected: Matcher) -> None:
    assert parse_matcher(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "expected a matcher"),
        ("1abc=x", "expected a label name"),
        ("a-b=x", "expected =, !=, =~ or !~"),
        ("alertname", "expected =, !=, =~ or !~"),
        ('a="open', "unterminated quoted value"),
        ('a="x" trailing', "unexpected 't'"),
        ("a=b, c=d", "give one matcher"),
        ('a=b"c', "put the value in double quotes"),
        ('a=~"(unclosed"', 'a=~"(unclosed": invalid regular expression'),
        ('a!~"[z-a]"', "invalid regular expression"),
    ],
)
def test_parse_matcher_errors_are_clear(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_matcher(text)


def test_parse_matcher_refuses_non_strings() -> None:
    with pytest.raises(ValueError, match="must be a string"):
        parse_matcher(42)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "text",
    [
        '{alertname="DiskFull", instance=~"db-.*"}',
        '{alertname="DiskFull",instance=~"db-.*",}',
        'alertname=DiskFull, instance=~"db-.*"',
        " { alertname = DiskFull , instance =~ db-.* } ",
    ],
)
def test_parse_matchers_list_forms(text: str) -> None:
    assert parse_matchers(text) == [Matcher("alertname", "=", "DiskFull"), Matcher("instance", "=~", "db-.*")]


def test_parse_matchers_empty_braces_and_errors() -> None:
    assert parse_matchers("{}") == []
    for bad, message in [
        ('{a="b"', "a closing } is missing"),
        ('{a="b" c="d"}', "expected ','"),
        ('{a="b"} x', "after the closing }"),
        ("", "expected a matcher"),
        ("a=b,,c=d", "expected a label name"),
    ]:
        with pytest.raises(ValueError, match=re.escape(message)):
            parse_matchers(bad)


# --- semantics -----------------------------------------------------------------------------------


def test_equality_and_negation() -> None:
    labels = {"alertname": "DiskFull", "severity": "critical"}
    assert Matcher("alertname", "=", "DiskFull").matches(labels)
    assert not Matcher("alertname", "!=", "DiskFull").matches(labels)
    assert Matcher("alertname", "!=", "diskfull").matches(labels)  # case-sensitive
    assert not Matcher("alertname", "=", "Disk").matches(labels)


def test_regexes_are_fully_anchored() -> None:
    m = Matcher("instance", "=~", "db-.*")
    assert m.matches({"instance": "db-1"})
    assert not m.matches({"instance": "old-db-1"})
    assert not m.matches({"instance": "db-1\n"})  # Python's "$" would allow this newline
    assert Matcher("severity", "=~", "critical|error").matches({"severity": "error"})
    assert not Matcher("severity", "=~", "critical|error").matches({"severity": "errors"})
    assert Matcher("instance", "!~", "db-.*").matches({"instance": "web-db-1"})
    assert not Matcher("instance", "!~", "db-.*").matches({"instance": "db-2"})


def test_a_missing_label_is_the_empty_string() -> None:
    assert Matcher("team", "=", "").matches({})
    assert not Matcher("team", "!=", "").matches({})
    assert Matcher("team", "=~", ".*").matches({})
    assert not Matcher("team", "=~", ".+").matches({})
    assert Matcher("team", "!~", ".+").matches({})
    assert not Matcher("team", "=", "ops").matches({"other": "ops"})
    assert Matcher("team", "!=", "ops").matches({})


def test_non_string_label_values_are_compared_as_text() -> None:
    assert Matcher("code", "=", "503").matches({"code": 503})  # type: ignore[dict-item]


def test_matches_all_and_empty_list() -> None:
    ms = parse_matchers('{alertname="DiskFull", instance=~"db-.*"}')
    assert matches_all(ms, {"alertname": "DiskFull", "instance": "db-7"})
    assert not matches_all(ms, {"alertname": "DiskFull", "instance": "web-7"})
    assert matches_all([], {"anything": "x"})


def test_building_validates() -> None:
    for args, message in [
        (("bad-name", "=", "x"), "not a label name"),
        (("a", "==", "x"), "not an operator"),
        (("a", "=~", "(("), "invalid regular expression"),
        (("a", "=", 5), "must be a string"),
    ]:
        with pytest.raises(ValueError, match=message):
            Matcher(*args)  # type: ignore[arg-type]


def test_regexes_are_compiled_once_per_pattern() -> None:
    a, b = Matcher("x", "=~", "compiled-once-.*"), Matcher("y", "!~", "compiled-once-.*")
    assert a._regex is b._regex


def test_equal_matchers_hash_alike() -> None:
    assert {Matcher("a", "=~", "b.*"), Matcher("a", "=~", "b.*")} == {Matcher("a", "=~", "b.*")}


# --- JSON and the silence rule -------------------------------------------------------------------


def test_json_round_trip_and_errors() -> None:
    ms = [Matcher("a", "=", "b"), Matcher("c", "!~", "d|e")]
    stored = to_json(ms)
    assert stored == [{"name": "a", "op": "=", "value": "b"}, {"name": "c", "op": "!~", "value": "d|e"}]
    assert from_json(stored) == ms
    with pytest.raises(ValueError, match="matcher 2: "):
        from_json([{"name": "a", "op": "=", "value": "b"}, {"name": "c", "op": "=~", "value": "("}])
    with pytest.raises(ValueError, match="exactly name, op and value"):
        from_json([{"name": "a", "value": "b"}])
    with pytest.raises(ValueError, match="must be a list"):
        from_json({"name": "a"})  # type: ignore[arg-type]


def test_a_silence_needs_a_matcher_that_does_not_match_the_empty_string() -> None:
    require_selective([Matcher("alertname", "=", "DiskFull")])
    require_selective([Matcher("team", "=", ""), Matcher("job", "=~", ".+")])
    with pytest.raises(ValueError, match="at least one matcher is needed"):
        require_selective([])
    with pytest.raises(ValueError, match="would match every alert"):
        require_selective([Matcher("team", "=", ""), Matcher("job", "=~", ".*"), Matcher("x", "!=", "y")])


def test_format_matchers() -> None:
    text = format_matchers([Matcher("a", "=", 'say "hi"'), Matcher("b", "=~", "x|y")])
    assert text == '{a="say \\"hi\\"", b=~"x|y"}'
    assert parse_matchers(text) == [Matcher("a", "=", 'say "hi"'), Matcher("b", "=~", "x|y")]


# --- properties ----------------------------------------------------------------------------------

names = st.from_regex(r"[a-zA-Z_][a-zA-Z0-9_]{0,20}", fullmatch=True)
values = st.text(max_size=40)


def _valid(op: str, value: str) -> bool:
    try:
        Matcher("x", op, value)
    except ValueError:
        return False
    return True


@given(name=names, op=st.sampled_from(["=", "!=", "=~", "!~"]), value=values)
def test_str_round_trips_through_the_parser(name: str, op: str, value: str) -> None:
    assume(_valid(op, value))
    m = Matcher(name, op, value)
    assert parse_matcher(str(m)) == m
    assert parse_matchers(format_matchers([m, m])) == [m, m]
    assert from_json(to_json([m])) == [m]


@given(name=names, value=values, other=values)
def test_negation_is_the_complement(name: str, value: str, other: str) -> None:
    labels = {name: other}
    assert Matcher(name, "=", value).matches(labels) != Matcher(name, "!=", value).matches(labels)
    pattern = re.escape(value)
    assert Matcher(name, "=~", pattern).matches(labels) == (other == value)
    assert Matcher(name, "=~", pattern).matches(labels) != Matcher(name, "!~", pattern).matches(labels)


@given(name=names, value=values)
def test_missing_label_behaves_as_empty(name: str, value: str) -> None:
    assume(_valid("=~", value))
    for op in ("=", "!=", "=~", "!~"):
        m = Matcher(name, op, value)
        assert m.matches({}) == m.matches({name: ""})
