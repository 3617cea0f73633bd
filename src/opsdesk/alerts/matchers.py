"""Alertmanager label matchers: ``name="value"``, ``name!="value"``, ``name=~"regex"``, ``name!~"regex"``.

Semantics are Alertmanager's:

- a label the alert does not have is the empty string (so ``team=""`` matches alerts without a
  ``team`` label, and ``team!=""`` those that have one);
- regular expressions are fully anchored: ``name=~"db-.*"`` is ``^(?:db-.*)$`` (``db-1`` matches,
  ``old-db-1`` does not); patterns are compiled once and cached;
- ``!=`` and ``!~`` are the negations of ``=`` and ``=~``.

Text syntax (amtool's): ``name=value`` or with a quoted value ``name!="with spaces, commas"``;
inside quotes ``\\"`` is a quote, ``\\\\`` a backslash and ``\\n`` a newline, and any other
backslash is kept as it is (so ``"\\d+"`` is the regex ``\\d+``). Label names are
``[a-zA-Z_][a-zA-Z0-9_]*``. :func:`parse_matchers` also takes a list: ``{a="b", c=~"d"}`` or
``a=b, c=~d``. ``str(matcher)`` always quotes, and :func:`parse_matcher` reads it back.

The stored (JSON) form is ``[{"name": ..., "op": ..., "value": ...}]``: :func:`to_json` and
:func:`from_json`.

The pipeline calls :meth:`Matcher.matches` / :func:`matches_all` for every alert: they touch no
database and compile nothing (the pattern is compiled when the matcher is built).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

OPS = ("=", "!=", "=~", "!~")
NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_OPS_LONGEST_FIRST = ("=~", "!=", "!~", "=")
_ESCAPES = {"n": "\n", '"': '"', "\\": "\\"}


@functools.lru_cache(maxsize=4096)
def _compile(pattern: str) -> re.Pattern[str]:
    # fullmatch below is the anchoring: ``^(?:pattern)$`` without Python's "$ before a final \n".
    return re.compile(f"(?:{pattern})")


@dataclass(frozen=True)
class Matcher:
    """One label matcher. Building one validates it (``ValueError`` with a clear message)."""

    name: str
    op: str  # "=", "!=", "=~", "!~"
    value: str
    _regex: re.Pattern[str] | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not NAME.fullmatch(self.name):
            raise ValueError(f"{self.name!r} is not a label name ([a-zA-Z_][a-zA-Z0-9_]*)")
        if self.op not in OPS:
            raise ValueError(f"{self.op!r} is not an operator (=, !=, =~ or !~)")
        if not isinstance(self.value, str):
            raise ValueError(f"the value of {self.name} must be a string")
        if self.op in ("=~", "!~"):
            try:
                regex = _compile(self.value)
            except re.error as exc:
                raise ValueError(f"{self}: invalid regular expression: {exc.msg}") from None
            object.__setattr__(self, "_regex", regex)

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether ``labels`` satisfy this matcher (a missing label is the empty string)."""
        v = labels.get(self.name)
        if v is None:
            v = ""
        elif not isinstance(v, str):
            v = str(v)
        if self._regex is None:
            return (v == self.value) == (self.op == "=")
        return (self._regex.fullmatch(v) is not None) == (self.op == "=~")

    @property
    def matches_empty(self) -> bool:
        """Whether an alert without this label would match (Alertmanager refuses silences made
        only of such matchers: they would mute everything)."""
        return self.matches({})

    def __str__(self) -> str:
        return f"{self.name}{self.op}{quote(self.value)}"

    def as_json(self) -> dict[str, str]:
        return {"name": self.name, "op": self.op, "value": self.value}


def quote(value: str) -> str:
    """``value`` in double quotes, with ``\\``, ``"`` and newlines escaped."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def matches_all(matchers: Sequence[Matcher], labels: Mapping[str, str]) -> bool:
    """Every matcher matches (an empty list matches everything)."""
    return all(m.matches(labels) for m in matchers)


# --- parsing ---------------------------------------------------------------------------------------


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def error(self, message: str) -> ValueError:
        return ValueError(f"{message} (at character {self.pos + 1} of {self.text!r})")

    def skip_space(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def at_end(self) -> bool:
        return self.pos >= len(self.text)

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def matcher(self, stop: str) -> Matcher:
        """One matcher; an unquoted value runs up to a character of ``stop`` or the end."""
        self.skip_space()
        found = NAME.match(self.text, self.pos)
        if not found:
            if self.at_end():
                raise self.error('expected a matcher like name="value"')
            raise self.error(f"expected a label name, found {self.peek()!r}")
        name = found.group()
        self.pos = found.end()
        self.skip_space()
        for op in _OPS_LONGEST_FIRST:
            if self.text.startswith(op, self.pos):
                self.pos += len(op)
                break
        else:
            raise self.error(f"expected =, !=, =~ or !~ after {name!r}")
        self.skip_space()
        value = self.quoted() if self.peek() == '"' else self.bare(stop)
        return Matcher(name, op, value)

    def quoted(self) -> str:
        start = self.pos
        self.pos += 1
        out: list[str] = []
        while self.pos < len(self.text):
            c = self.text[self.pos]
            if c == "\\" and self.pos + 1 < len(self.text):
                nxt = self.text[self.pos + 1]
                out.append(_ESCAPES.get(nxt, "\\" + nxt))
                self.pos += 2
                continue
            if c == '"':
                self.pos += 1
                return "".join(out)
            out.append(c)
            self.pos += 1
        self.pos = start
        raise self.error('unterminated quoted value: a closing " is missing')

    def bare(self, stop: str) -> str:
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] not in stop:
            c = self.text[self.pos]
            if c in '"{':
                raise self.error(f"unexpected {c!r} in an unquoted value; put the value in double quotes")
            self.pos += 1
        return self.text[start : self.pos].rstrip()


def parse_matcher(text: str) -> Matcher:
    """One matcher in amtool syntax: ``name=value``, ``name!="quoted value"``, ``name=~"db-.*"``."""
    if not isinstance(text, str):
        raise ValueError('a matcher must be a string like name="value"')
    p = _Parser(text)
    m = p.matcher(stop=",")
    p.skip_space()
    if not p.at_end():
        raise p.error(f"unexpected {p.peek()!r} after the matcher {m}; give one matcher")
    return m


def parse_matchers(text: str) -> list[Matcher]:
    """A list of matchers: ``{a="b", c=~"d"}``, ``a=b, c=~d`` or a single one. ``{}`` is empty."""
    if not isinstance(text, str):
        raise ValueError('matchers must be a string like {name="value", other=~"regex"}')
    p = _Parser(text)
    p.skip_space()
    braced = p.peek() == "{"
    if braced:
        p.pos += 1
    out: list[Matcher] = []
    while True:
        p.skip_space()
        if braced and p.peek() == "}":
            p.pos += 1
            break
        if p.at_end():
            if braced:
                raise p.error("a closing } is missing")
            if not out:
                raise p.error('expected a matcher like name="value"')
            break
        out.append(p.matcher(stop=",}" if braced else ","))
        p.skip_space()
        if p.peek() == ",":
            p.pos += 1
            continue
        if braced and p.peek() == "}":
            p.pos += 1
            break
        if p.at_end() and not braced:
            break
        if p.at_end():
            raise p.error("a closing } is missing")
        raise p.error(f"expected ',' between matchers, found {p.peek()!r}")
    p.skip_space()
    if not p.at_end():
        raise p.error(f"unexpected {p.peek()!r} after the closing }}")
    return out


def format_matchers(matchers: Iterable[Matcher]) -> str:
    """``{a="b", c=~"d"}``: the form :func:`parse_matchers` reads."""
    return "{" + ", ".join(str(m) for m in matchers) + "}"


# --- JSON and validation -------------------------------------------------------------------------


def to_json(matchers: Iterable[Matcher]) -> list[dict[str, str]]:
    return [m.as_json() for m in matchers]


def from_json(items: list[dict[str, str]]) -> list[Matcher]:
    """The stored form back to matchers (``ValueError`` naming the item at fault)."""
    if not isinstance(items, list):
        raise ValueError("matchers must be a list of {name, op, value} objects")
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, dict) or set(item) != {"name", "op", "value"}:
            raise ValueError(f"matcher {i + 1} must be an object with exactly name, op and value")
        try:
            out.append(Matcher(item["name"], item["op"], item["value"]))
        except ValueError as exc:
            raise ValueError(f"matcher {i + 1}: {exc}") from None
    return out


def require_selective(matchers: Sequence[Matcher]) -> None:
    """Alertmanager's rule for silences: at least one matcher, and at least one that does not
    match the empty string, so a silence cannot mute every alert."""
    if not matchers:
        raise ValueError("at least one matcher is needed")
    if all(m.matches_empty for m in matchers):
        raise ValueError(
            'at least one matcher must not match the empty string (e.g. alertname="DiskFull"); '
            f"{format_matchers(matchers)} would match every alert"
        )
