"""Threshold rules over one scrape: a PromQL subset evaluated on a list of samples.

A rule sees the samples of ONE scrape (instant vectors only: no ranges, no ``rate``). Supported:

- selectors ``name{label="v", l2!="x", l3=~"re", l4!~"re"}`` (regexes are fully anchored, a missing
  label matches as ""), also ``{__name__=~"node_.*"}``;
- number literals (``10``, ``0.5``, ``1e9``, ``0x1f``, ``Inf``, ``NaN``) and unary ``-``/``+``;
- arithmetic ``+ - * / % ^`` and comparisons ``== != < > <= >=`` between a vector and a number or
  between two vectors (one-to-one matching on identical label sets, or ``on(...)`` /
  ``ignoring(...)``); a comparison filters (keeps the series where it holds, with the left-hand
  value; the series' value when the number is on the left) unless written ``bool``, which gives 0/1;
- ``and``, ``or``, ``unless`` (with ``on``/``ignoring``);
- aggregations ``sum``, ``min``, ``max``, ``avg``, ``count`` with ``by (...)`` or ``without (...)``,
  before or after the argument;
- parentheses, ``#`` comments, and PromQL's precedence: ``^`` (right-associative), unary minus,
  ``* / %``, ``+ -``, comparisons, ``and unless``, ``or``.

:func:`compile_rule` parses once and raises :class:`RuleError` naming the position;
:meth:`Rule.evaluate` runs on a :class:`SampleIndex` built once per scrape.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator

from opsdesk.metrics.samples import Labels, Sample

__all__ = [
    "Firing",
    "Rule",
    "RuleDefinition",
    "RuleError",
    "RuleEvaluationError",
    "SampleIndex",
    "Series",
    "compile_rule",
    "format_labels",
    "format_value",
    "render_summary",
]


class RuleError(ValueError):
    """A rule that cannot be parsed (or evaluated); ``pos`` is the 0-based offset in the expression."""

    def __init__(self, message: str, pos: int | None = None, expr: str | None = None) -> None:
        self.message = message
        self.pos = pos
        where = ""
        if pos is not None:
            if expr is not None and "\n" in expr[:pos]:
                line = expr.count("\n", 0, pos) + 1
                col = pos - expr.rfind("\n", 0, pos)
                where = f" at line {line}, column {col}"
            else:
                where = f" at position {pos + 1}"
        super().__init__(f"{message}{where}")


class RuleEvaluationError(RuleError):
    """A rule that parsed but cannot be evaluated on these samples (e.g. many-to-many matching)."""


class Series(NamedTuple):
    """One element of an instant vector. ``name`` is None once an operation dropped the metric name."""

    name: str | None
    labels: Labels
    value: float


class SampleIndex:
    """The samples of one scrape indexed by metric name: build once, evaluate every rule on it."""

    __slots__ = ("by_name", "samples")

    def __init__(self, samples: Sequence[Sample]) -> None:
        self.samples = samples
        by_name: dict[str, list[Sample]] = {}
        for s in samples:
            group = by_name.get(s.name)
            if group is None:
                by_name[s.name] = [s]
            else:
                group.append(s)
        self.by_name = by_name


# --- lexer ---------------------------------------------------------------------------------------


class Token(NamedTuple):
    kind: str  # NUM DUR STR IDENT OP ( ) { } [ ] , EOF
    text: str
    pos: int
    value: float | str | None = None


_IDENT = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
_NUMBER = re.compile(r"0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_SPACE = re.compile(r"(?:\s+|#[^\n]*)+")
_OPERATORS = ("==", "!=", "<=", ">=", "=~", "!~", "<", ">", "=", "+", "-", "*", "/", "%", "^")
_PUNCT = "(){}[],"
_ESCAPES = {
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
    "\\": "\\",
    "'": "'",
    '"': '"',
}
_HEX_ESCAPES = {"x": 2, "u": 4, "U": 8}


def _read_string(expr: str, start: int) -> tuple[str, int]:
    """A quoted string starting at ``start`` (Go escapes in "…" and '…', raw in `…`)."""
    quote = expr[start]
    i = start + 1
    if quote == "`":
        end = expr.find("`", i)
        if end < 0:
            raise RuleError("unterminated string", start, expr)
        return expr[i:end], end + 1
    out: list[str] = []
    while i < len(expr):
        c = expr[i]
        if c == quote:
            return "".join(out), i + 1
        if c == "\n":
            break
        if c != "\\":
            out.append(c)
            i += 1
            continue
        if i + 1 >= len(expr):
            break
        e = expr[i + 1]
        if e in _ESCAPES:
            out.append(_ESCAPES[e])
            i += 2
        elif e in _HEX_ESCAPES:
            digits = expr[i + 2 : i + 2 + _HEX_ESCAPES[e]]
            if len(digits) != _HEX_ESCAPES[e] or not all(d in "0123456789abcdefABCDEF" for d in digits):
                raise RuleError(f"bad escape \\{e} in string", i, expr)
            out.append(chr(int(digits, 16)))
            i += 2 + len(digits)
        else:
            raise RuleError(
                f"unknown escape \\{e} in string (write \\\\{e} for a literal backslash, "
                "e.g. in a regex, or use `backquotes`)",
                i,
                expr,
            )
    raise RuleError("unterminated string", start, expr)


def _tokenize(expr: str) -> list[Token]:
    tokens: list[Token] = []
    i, n = 0, len(expr)
    while True:
        m = _SPACE.match(expr, i)
        if m:
            i = m.end()
        if i >= n:
            tokens.append(Token("EOF", "", n))
            return tokens
        c = expr[i]
        if c.isdigit() or (c == "." and i + 1 < n and expr[i + 1].isdigit()):
            m = _NUMBER.match(expr, i)
            assert m is not None
            end = m.end()
            if end < n and (expr[end].isalnum() or expr[end] == "_"):
                tail = _IDENT.match(expr, end)
                word = expr[i : tail.end() if tail else end + 1]
                if re.fullmatch(r"(\d+(ms|[smhdwy]))+", word):
                    tokens.append(Token("DUR", word, i, word))
                    i += len(word)
                    continue
                raise RuleError(f"bad number {word!r}", i, expr)
            text = m.group()
            value = float(int(text, 16)) if text[:2] in ("0x", "0X") else float(text)
            tokens.append(Token("NUM", text, i, value))
            i = end
        elif c.isalpha() or c in "_:":
            m = _IDENT.match(expr, i)
            assert m is not None
            word = m.group()
            if word.lower() in ("inf", "nan"):
                tokens.append(Token("NUM", word, i, math.inf if word.lower() == "inf" else math.nan))
            else:
                tokens.append(Token("IDENT", word, i, word))
            i = m.end()
        elif c in "\"'`":
            value_s, end = _read_string(expr, i)
            tokens.append(Token("STR", expr[i:end], i, value_s))
            i = end
        elif c in _PUNCT:
            tokens.append(Token(c, c, i))
            i += 1
        else:
            for op in _OPERATORS:
                if expr.startswith(op, i):
                    tokens.append(Token("OP", op, i))
                    i += len(op)
                    break
            else:
                if c == "@":
                    raise RuleError("the @ modifier is not supported: a rule sees one scrape", i, expr)
                raise RuleError(f"unexpected character {c!r}", i, expr)


# --- values and operators ------------------------------------------------------------------------


def _div(a: float, b: float) -> float:
    try:
        return a / b
    except ZeroDivisionError:
        if a == 0 or math.isnan(a):
            return math.nan
        return math.copysign(math.inf, a) * math.copysign(1.0, b)


def _mod(a: float, b: float) -> float:
    try:
        return math.fmod(a, b)
    except (ValueError, ZeroDivisionError):
        return math.nan


def _pow(a: float, b: float) -> float:
    try:
        return math.pow(a, b)
    except OverflowError:
        negative = a < 0 and b.is_integer() and b % 2 == 1
        return -math.inf if negative else math.inf
    except (ValueError, ZeroDivisionError):
        return math.nan if not (a == 0 and b < 0) else math.inf


ARITHMETIC: dict[str, Callable[[float, float], float]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": _div,
    "%": _mod,
    "^": _pow,
}
COMPARISON: dict[str, Callable[[float, float], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    ">": operator.gt,
    "<=": operator.le,
    ">=": operator.ge,
}
SET_OPS = ("and", "or", "unless")
AGGREGATIONS = ("sum", "min", "max", "avg", "count")
_OTHER_AGGREGATIONS = ("stddev", "stdvar", "topk", "bottomk", "quantile", "count_values", "group", "limitk")
_PRECEDENCE = {
    "or": 1,
    "and": 2,
    "unless": 2,
    **{op: 3 for op in COMPARISON},
    "+": 4,
    "-": 4,
    "*": 5,
    "/": 5,
    "%": 5,
    "^": 6,
}
_KEYWORDS = {"by", "without", "on", "ignoring", "bool", "group_left", "group_right", "offset", *SET_OPS}
_LABEL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


# --- syntax tree ---------------------------------------------------------------------------------

Value = float | list[Series]


class Node:
    is_vector: bool = True
    pos: int = 0

    def eval(self, index: SampleIndex) -> Value:
        raise NotImplementedError


@dataclass
class Number(Node):
    value: float
    pos: int = 0
    is_vector = False

    def eval(self, index: SampleIndex) -> Value:
        return self.value


@dataclass
class Matcher:
    name: str
    op: str  # = != =~ !~
    value: str
    regex: re.Pattern[str] | None = None
    # Results of the regex by label value: values repeat across series and scrapes.
    _memo: dict[str, bool] = field(default_factory=dict, repr=False, compare=False)

    def matches(self, got: str) -> bool:
        if self.op == "=":
            return got == self.value
        if self.op == "!=":
            return got != self.value
        found = self._memo.get(got)
        if found is None:
            assert self.regex is not None
            found = self.regex.fullmatch(got) is not None
            if len(self._memo) >= _MEMO_MAX:
                self._memo.clear()
            self._memo[got] = found
        return found if self.op == "=~" else not found


_MEMO_MAX = 10_000
_new = tuple.__new__  # builds a Series without NamedTuple's slower keyword-capable __new__


def _label(labels: Labels, name: str) -> str:
    for k, v in labels:
        if k == name:
            return v
    return ""


@dataclass
class Selector(Node):
    metric: str | None
    matchers: list[Matcher]
    pos: int = 0

    def eval(self, index: SampleIndex) -> Value:
        name_matchers = [m for m in self.matchers if m.name == "__name__"]
        label_matchers = [m for m in self.matchers if m.name != "__name__"]
        if self.metric is not None:
            candidates: Iterable[Sample] = index.by_name.get(self.metric, ())
        elif eq := next((m for m in name_matchers if m.op == "="), None):
            candidates = index.by_name.get(eq.value, ())
        else:
            candidates = [
                s
                for name, group in index.by_name.items()
                if all(m.matches(name) for m in name_matchers)
                for s in group
            ]
        if not label_matchers:
            return [_new(Series, (s[0], s[1], s[3])) for s in candidates]
        if len(label_matchers) == 1:
            only = label_matchers[0]
            name, matches = only.name, only.matches
            return [_new(Series, (s[0], s[1], s[3])) for s in candidates if matches(_label(s[1], name))]
        return [
            _new(Series, (s[0], s[1], s[3]))
            for s in candidates
            if all(m.matches(_label(s[1], m.name)) for m in label_matchers)
        ]


@dataclass
class Negate(Node):
    operand: Node
    pos: int = 0

    def __post_init__(self) -> None:
        self.is_vector = self.operand.is_vector

    def eval(self, index: SampleIndex) -> Value:
        v = self.operand.eval(index)
        if isinstance(v, float):
            return -v
        return [_new(Series, (None, s.labels, -s.value)) for s in v]


@dataclass
class Matching:
    on: bool = False
    labels: tuple[str, ...] = ()
    explicit: bool = False  # on(...) or ignoring(...) was written

    def signature(self, labels: Labels) -> Labels:
        if not self.explicit:
            return labels
        names = self.labels
        if self.on:
            return tuple(p for p in labels if p[0] in names)
        return tuple(p for p in labels if p[0] not in names)

    def describe(self) -> str:
        if not self.explicit:
            return ""
        return f" {'on' if self.on else 'ignoring'}({', '.join(self.labels)})"


def format_labels(labels: Iterable[tuple[str, str]]) -> str:
    """``{a="1", b="x\\"y"}``: the canonical text of a label set (Prometheus quoting)."""
    return "{" + ", ".join(f'{k}="{_escape(v)}"' for k, v in labels) + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


@dataclass
class Binary(Node):
    op: str
    lhs: Node
    rhs: Node
    matching: Matching
    return_bool: bool = False
    pos: int = 0

    def __post_init__(self) -> None:
        self.is_vector = self.lhs.is_vector or self.rhs.is_vector

    def eval(self, index: SampleIndex) -> Value:
        left = self.lhs.eval(index)
        right = self.rhs.eval(index)
        if isinstance(left, float) and isinstance(right, float):
            return _scalar_op(self.op, left, right)
        if isinstance(right, float):
            assert isinstance(left, list)
            return self._vector_scalar(left, right, swapped=False)
        if isinstance(left, float):
            return self._vector_scalar(right, left, swapped=True)
        if self.op in SET_OPS:
            return self._set_op(left, right)
        return self._vector_vector(left, right)

    def _vector_scalar(self, vec: list[Series], scalar: float, swapped: bool) -> list[Series]:
        op = self.op
        if op in ARITHMETIC:
            fn = ARITHMETIC[op]
            if swapped:
                return [_new(Series, (None, s.labels, fn(scalar, s.value))) for s in vec]
            return [_new(Series, (None, s.labels, fn(s.value, scalar))) for s in vec]
        cmp = COMPARISON[op]
        out = []
        for s in vec:
            holds = cmp(scalar, s.value) if swapped else cmp(s.value, scalar)
            if self.return_bool:
                out.append(_new(Series, (None, s.labels, 1.0 if holds else 0.0)))
            elif holds:
                out.append(s)
        return out

    def _vector_vector(self, left: list[Series], right: list[Series]) -> list[Series]:
        m = self.matching
        by_sig: dict[Labels, Series] = {}
        for s in right:
            sig = m.signature(s.labels)
            if sig in by_sig:
                raise RuleEvaluationError(
                    f"many-to-many matching for {self.op!r}{m.describe()}: the right-hand side has "
                    f"several series for {format_labels(sig)} "
                    f"({_show(by_sig[sig])} and {_show(s)}); matching labels must be unique on each side",
                    self.pos,
                )
            by_sig[sig] = s
        matched: dict[Labels, Series] = {}
        arithmetic = ARITHMETIC.get(self.op)
        cmp = COMPARISON.get(self.op)
        out = []
        for s in left:
            sig = m.signature(s.labels)
            other = by_sig.get(sig)
            if other is None:
                continue
            if sig in matched:
                raise RuleEvaluationError(
                    f"many-to-one matching for {self.op!r}{m.describe()}: the left-hand side has "
                    f"several series for {format_labels(sig)} ({_show(matched[sig])} and {_show(s)}); "
                    "group_left/group_right are not supported",
                    self.pos,
                )
            matched[sig] = s
            labels = sig if m.explicit else s.labels
            if arithmetic is not None:
                out.append(_new(Series, (None, labels, arithmetic(s.value, other.value))))
                continue
            assert cmp is not None
            holds = cmp(s.value, other.value)
            if self.return_bool:
                out.append(_new(Series, (None, labels, 1.0 if holds else 0.0)))
            elif holds:
                name = None if m.explicit and m.on else s.name
                out.append(_new(Series, (name, labels, s.value)))
        return out

    def _set_op(self, left: list[Series], right: list[Series]) -> list[Series]:
        m = self.matching
        if self.op == "or":
            seen = {m.signature(s.labels) for s in left}
            return left + [s for s in right if m.signature(s.labels) not in seen]
        sigs = {m.signature(s.labels) for s in right}
        if self.op == "and":
            return [s for s in left if m.signature(s.labels) in sigs]
        return [s for s in left if m.signature(s.labels) not in sigs]


def _show(s: Series) -> str:
    return (s.name or "") + format_labels(s.labels)


def _scalar_op(op: str, a: float, b: float) -> float:
    if op in ARITHMETIC:
        return ARITHMETIC[op](a, b)
    return 1.0 if COMPARISON[op](a, b) else 0.0  # only reachable with ``bool``


@dataclass
class Aggregate(Node):
    op: str
    operand: Node
    labels: tuple[str, ...]
    without: bool
    pos: int = 0

    def eval(self, index: SampleIndex) -> Value:
        vec = self.operand.eval(index)
        assert isinstance(vec, list)
        names = self.labels
        groups: dict[Labels, list[float]] = {}
        for s in vec:
            if self.without:
                key = tuple(p for p in s.labels if p[0] not in names)
            else:
                key = tuple(p for p in s.labels if p[0] in names)
            group = groups.get(key)
            if group is None:
                groups[key] = [s.value]
            else:
                group.append(s.value)
        return [_new(Series, (None, key, _aggregate(self.op, values))) for key, values in groups.items()]


def _aggregate(op: str, values: list[float]) -> float:
    if op == "count":
        return float(len(values))
    if op == "sum":
        return math.fsum(values) if not any(math.isinf(v) for v in values) else sum(values)
    if op == "avg":
        total = math.fsum(values) if not any(math.isinf(v) for v in values) else sum(values)
        return total / len(values)
    # min/max ignore NaN unless every value is NaN, like Prometheus.
    real = [v for v in values if not math.isnan(v)]
    if not real:
        return math.nan
    return min(real) if op == "min" else max(real)


# --- parser --------------------------------------------------------------------------------------


class _Parser:
    def __init__(self, expr: str) -> None:
        self.expr = expr
        self.tokens = _tokenize(expr)
        self.i = 0

    def error(self, message: str, pos: int) -> RuleError:
        return RuleError(message, pos, self.expr)

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def peek(self, ahead: int = 1) -> Token:
        return self.tokens[min(self.i + ahead, len(self.tokens) - 1)]

    def advance(self) -> Token:
        tok = self.tokens[self.i]
        if tok.kind != "EOF":
            self.i += 1
        return tok

    def describe(self, tok: Token) -> str:
        return "end of expression" if tok.kind == "EOF" else repr(tok.text)

    def expect(self, kind: str, what: str) -> Token:
        tok = self.tok
        if tok.kind != kind:
            raise self.error(f"expected {what}, found {self.describe(tok)}", tok.pos)
        return self.advance()

    def parse(self) -> Node:
        if self.tok.kind == "EOF":
            raise self.error("empty expression", 0)
        node = self.binary(0)
        if self.tok.kind != "EOF":
            raise self.error(
                f"unexpected {self.describe(self.tok)} (expected an operator or the end)", self.tok.pos
            )
        return node

    def binary_op(self) -> str | None:
        tok = self.tok
        if tok.kind == "OP" and tok.text in _PRECEDENCE:
            return tok.text
        if tok.kind == "IDENT" and tok.text in SET_OPS:
            return tok.text
        return None

    def binary(self, min_prec: int) -> Node:
        left = self.unary()
        while (op := self.binary_op()) is not None and _PRECEDENCE[op] >= min_prec:
            op_tok = self.advance()
            return_bool = False
            if self.tok.kind == "IDENT" and self.tok.text == "bool":
                if op not in COMPARISON:
                    raise self.error(f"bool only modifies a comparison, not {op!r}", self.tok.pos)
                self.advance()
                return_bool = True
            matching = Matching()
            if self.tok.kind == "IDENT" and self.tok.text in ("on", "ignoring"):
                mod = self.advance()
                matching = Matching(on=mod.text == "on", labels=self.label_list(), explicit=True)
                if self.tok.kind == "IDENT" and self.tok.text in ("group_left", "group_right"):
                    raise self.error(f"{self.tok.text} (many-to-one matching) is not supported", self.tok.pos)
            elif self.tok.kind == "IDENT" and self.tok.text in ("group_left", "group_right"):
                raise self.error(f"{self.tok.text} needs on(...) or ignoring(...) before it", self.tok.pos)
            prec = _PRECEDENCE[op]
            right = self.binary(prec if op == "^" else prec + 1)
            left = self.make_binary(op, left, right, matching, return_bool, op_tok.pos)
        return left

    def make_binary(
        self, op: str, lhs: Node, rhs: Node, matching: Matching, return_bool: bool, pos: int
    ) -> Node:
        if op in SET_OPS and not (lhs.is_vector and rhs.is_vector):
            raise self.error(f"{op!r} needs series on both sides, not a number", pos)
        if matching.explicit and not (lhs.is_vector and rhs.is_vector):
            raise self.error("on(...)/ignoring(...) only apply between two sets of series", pos)
        if op in COMPARISON and not lhs.is_vector and not rhs.is_vector and not return_bool:
            raise self.error(f"comparing two numbers needs bool (e.g. 1 {op} bool 2)", pos)
        node = Binary(op, lhs, rhs, matching, return_bool, pos)
        if not node.is_vector:  # fold constants once
            value = node.eval(SampleIndex(()))
            assert isinstance(value, float)
            return Number(value, lhs.pos)
        return node

    def unary(self) -> Node:
        tok = self.tok
        if tok.kind == "OP" and tok.text in ("-", "+"):
            self.advance()
            operand = self.binary(_PRECEDENCE["^"])
            if tok.text == "+":
                return operand
            if isinstance(operand, Number):
                return Number(-operand.value, tok.pos)
            return Negate(operand, tok.pos)
        return self.primary()

    def primary(self) -> Node:
        tok = self.tok
        if tok.kind == "NUM":
            self.advance()
            assert isinstance(tok.value, float)
            return Number(tok.value, tok.pos)
        if tok.kind == "(":
            self.advance()
            node = self.binary(0)
            self.expect(")", "')'")
            return self.after_selector(node)
        if tok.kind == "{":
            return self.after_selector(self.selector(None, tok.pos))
        if tok.kind == "STR":
            raise self.error("a string is only allowed as a label value inside {...}", tok.pos)
        if tok.kind == "DUR":
            raise self.error(f"durations ({tok.text}) are not supported: a rule sees one scrape", tok.pos)
        if tok.kind == "IDENT":
            word = tok.text
            nxt = self.peek()
            if word in AGGREGATIONS and (
                nxt.kind == "(" or (nxt.kind == "IDENT" and nxt.text in ("by", "without"))
            ):
                return self.aggregation()
            if word in _OTHER_AGGREGATIONS and nxt.kind == "(":
                raise self.error(
                    f"aggregation {word!r} is not supported (use one of {', '.join(AGGREGATIONS)})",
                    tok.pos,
                )
            if nxt.kind == "(":
                raise self.error(
                    f"functions such as {word}() are not supported: a rule compares the series of one "
                    "scrape with arithmetic, comparisons and sum/min/max/avg/count",
                    tok.pos,
                )
            if word in _KEYWORDS:
                raise self.error(f"unexpected keyword {word!r}", tok.pos)
            self.advance()
            if self.tok.kind == "{":
                return self.after_selector(self.selector(word, tok.pos))
            return self.after_selector(Selector(word, [], tok.pos))
        if tok.kind == "EOF":
            raise self.error("unexpected end of expression", tok.pos)
        raise self.error(f"unexpected {tok.text!r}", tok.pos)

    def after_selector(self, node: Node) -> Node:
        tok = self.tok
        if tok.kind == "[":
            raise self.error("range selectors like [5m] are not supported: a rule sees one scrape", tok.pos)
        if tok.kind == "IDENT" and tok.text == "offset":
            raise self.error("offset is not supported: a rule sees one scrape", tok.pos)
        return node

    def selector(self, metric: str | None, pos: int) -> Selector:
        self.expect("{", "'{'")
        matchers: list[Matcher] = []
        while self.tok.kind != "}":
            name_tok = self.tok
            if name_tok.kind != "IDENT" or not _LABEL_NAME.fullmatch(name_tok.text):
                raise self.error(f"expected a label name, found {self.describe(name_tok)}", name_tok.pos)
            self.advance()
            op_tok = self.tok
            if op_tok.kind != "OP" or op_tok.text not in ("=", "!=", "=~", "!~"):
                raise self.error(
                    f"expected =, !=, =~ or !~ after {name_tok.text}, found {self.describe(op_tok)}",
                    op_tok.pos,
                )
            self.advance()
            value_tok = self.expect("STR", "a quoted label value")
            assert isinstance(value_tok.value, str)
            matcher = Matcher(name_tok.text, op_tok.text, value_tok.value)
            if op_tok.text in ("=~", "!~"):
                try:
                    matcher.regex = re.compile(value_tok.value)
                except re.error as exc:
                    raise self.error(
                        f"bad regular expression {value_tok.value!r}: {exc.msg}", value_tok.pos
                    ) from None
            matchers.append(matcher)
            if self.tok.kind == ",":
                self.advance()
            elif self.tok.kind != "}":
                raise self.error(f"expected ',' or '}}', found {self.describe(self.tok)}", self.tok.pos)
        self.advance()
        if metric is not None and any(m.name == "__name__" for m in matchers):
            raise self.error("the metric name is given twice (before {...} and as __name__)", pos)
        if metric is None and all(m.matches("") for m in matchers):
            raise self.error(
                "a selector needs a metric name or a matcher that does not match the empty string", pos
            )
        return Selector(metric, matchers, pos)

    def label_list(self) -> tuple[str, ...]:
        self.expect("(", "'(' and a list of label names")
        names: list[str] = []
        while self.tok.kind != ")":
            tok = self.tok
            if tok.kind != "IDENT" or not _LABEL_NAME.fullmatch(tok.text):
                raise self.error(f"expected a label name, found {self.describe(tok)}", tok.pos)
            names.append(tok.text)
            self.advance()
            if self.tok.kind == ",":
                self.advance()
            elif self.tok.kind != ")":
                raise self.error(f"expected ',' or ')', found {self.describe(self.tok)}", self.tok.pos)
        self.advance()
        return tuple(names)

    def aggregation(self) -> Node:
        op_tok = self.advance()
        grouping: tuple[str, ...] | None = None
        without = False
        if self.tok.kind == "IDENT" and self.tok.text in ("by", "without"):
            without = self.advance().text == "without"
            grouping = self.label_list()
        open_tok = self.expect("(", f"'(' after {op_tok.text}")
        if self.tok.kind == ")":
            raise self.error(f"{op_tok.text}() needs an expression", self.tok.pos)
        operand = self.binary(0)
        self.expect(")", "')'")
        if self.tok.kind == "IDENT" and self.tok.text in ("by", "without"):
            if grouping is not None:
                raise self.error("by/without is given twice", self.tok.pos)
            without = self.advance().text == "without"
            grouping = self.label_list()
        if not operand.is_vector:
            raise self.error(f"{op_tok.text}(...) needs series, not a number", open_tok.pos + 1)
        return Aggregate(op_tok.text, operand, grouping or (), without, op_tok.pos)


# --- the compiled rule ---------------------------------------------------------------------------


class Firing(NamedTuple):
    """One series for which a rule holds: its labels (metric name dropped) and value."""

    labels: Labels
    value: float


class Rule:
    """A compiled expression. Immutable: share it between threads and scrapes."""

    __slots__ = ("expr", "root")

    def __init__(self, expr: str, root: Node) -> None:
        self.expr = expr
        self.root = root

    def __repr__(self) -> str:
        return f"Rule({self.expr!r})"

    def evaluate(self, samples: SampleIndex | Sequence[Sample]) -> list[Series]:
        """The resulting series; :class:`RuleEvaluationError` when the samples make it ambiguous."""
        index = samples if isinstance(samples, SampleIndex) else SampleIndex(samples)
        result = self.root.eval(index)
        assert isinstance(result, list)
        return result

    def firing(self, samples: SampleIndex | Sequence[Sample]) -> list[Firing]:
        """Series where the rule holds, as alerts see them: without the metric name, one per label set."""
        seen: dict[Labels, Series] = {}
        for s in self.evaluate(samples):
            if s.labels in seen:
                raise RuleEvaluationError(
                    f"the result has several series with the labels {format_labels(s.labels)} once the "
                    f"metric name is dropped ({_show(seen[s.labels])} and {_show(s)})"
                )
            seen[s.labels] = s
        return [Firing(s.labels, s.value) for s in seen.values()]


@lru_cache(maxsize=2048)
def compile_rule(expr: str) -> Rule:
    """Parse ``expr`` once; :class:`RuleError` (with the position) when it is not a valid rule."""
    if len(expr) > 10_000:
        raise RuleError("expression longer than 10000 characters")
    root = _Parser(expr).parse()
    if not root.is_vector:
        raise RuleError(
            "the expression is a number, not a selection of series (compare series with it, "
            "e.g. node_load1 > 4)",
            0,
            expr,
        )
    return Rule(expr, root)


# --- rule definitions (config) -------------------------------------------------------------------

_PLACEHOLDER = re.compile(r"\{\{(.*?)\}\}", re.S)
_PLACEHOLDER_BODY = re.compile(r"\s*\$(?:(value)|labels\.([A-Za-z_][A-Za-z0-9_]*))\s*")


def format_value(v: float) -> str:
    """A value for people: ``4``, ``7.23457``, ``1500000000``, ``NaN``, ``+Inf``."""
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    if v.is_integer() and abs(v) < 1e15:
        return str(int(v))
    text = f"{v:.6g}"
    return f"{v:.0f}" if "e+" in text else text


def _check_template(template: str) -> None:
    for m in _PLACEHOLDER.finditer(template):
        if not _PLACEHOLDER_BODY.fullmatch(m.group(1)):
            raise ValueError(
                f"unknown placeholder {m.group()!r} at position {m.start() + 1}: "
                "use {{ $value }} or {{ $labels.NAME }}"
            )
    rest = _PLACEHOLDER.sub("", template)
    if "{{" in rest:
        raise ValueError("a placeholder opened with {{ is not closed with }}")


def render_summary(template: str, labels: Iterable[tuple[str, str]], value: float) -> str:
    """Replace ``{{ $value }}`` and ``{{ $labels.x }}`` (a missing label is empty). Not Jinja."""
    label_map = dict(labels)

    def sub(m: re.Match[str]) -> str:
        body = _PLACEHOLDER_BODY.fullmatch(m.group(1))
        if body is None:
            return m.group()
        if body.group(1):
            return format_value(value)
        return label_map.get(body.group(2), "")

    return _PLACEHOLDER.sub(sub, template)


class RuleDefinition(BaseModel):
    """A threshold rule in a check's config; ``expr`` is compiled when the config is validated."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        min_length=1,
        max_length=100,
        pattern=r"^[A-Za-z_][A-Za-z0-9_.:-]*$",
        description="Identifier, e.g. disk_low: names the alert (label alertname).",
    )
    expr: str = Field(
        min_length=1,
        max_length=10_000,
        description="e.g. node_load1 > 4, or node_filesystem_avail_bytes / node_filesystem_size_bytes < 0.1",
    )
    severity: Literal["info", "warning", "critical"] = "warning"
    summary: str = Field(
        default="",
        max_length=1000,
        description="Text of the alert; {{ $labels.x }} and {{ $value }} are replaced. Empty: generated.",
    )
    _rule: Rule | None = PrivateAttr(default=None)

    @field_validator("expr")
    @classmethod
    def _compiles(cls, v: str) -> str:
        try:
            compile_rule(v)
        except RuleError as exc:
            raise ValueError(str(exc)) from None
        return v

    @field_validator("summary")
    @classmethod
    def _template(cls, v: str) -> str:
        _check_template(v)
        return v

    @property
    def rule(self) -> Rule:
        if self._rule is None:
            self._rule = compile_rule(self.expr)
        return self._rule

    def summarize(self, labels: Labels, value: float) -> str:
        if self.summary:
            return render_summary(self.summary, labels, value)
        shown = [p for p in labels if p[0] not in ("instance", "job")]
        where = f" {format_labels(shown)}" if shown else ""
        return f"{self.name}{where}: value {format_value(value)}"
