"""Request and response bodies of the silences, maintenance windows and alert rules API.

Matchers are accepted as objects ``{"name": "severity", "op": "=~", "value": "critical|error"}`` or
as strings in amtool syntax (``severity=~"critical|error"``; a string may also hold a list,
``{a="b", c=~"d"}``). Durations are ``90`` (seconds), ``"90s"``, ``"5m"``, ``"2h30m"``, ``"1d"``,
``"1w"`` or ISO 8601 (``"PT2H"``).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BeforeValidator,
    Field,
    StringConstraints,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from opsdesk.alerts.matchers import OPS, Matcher, parse_matchers
from opsdesk.core.schemas import DbId, In, Name, Out, ShortName, Text

# --- durations -----------------------------------------------------------------------------------

_UNITS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}
_DURATION = re.compile(r"(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")


def parse_duration(text: str | int) -> timedelta:
    """``"2h"``, ``"1h30m"``, ``"90m"``, ``"45s"``, ``"1d"``, ``"1w"`` or a number of seconds."""
    if isinstance(text, bool):
        raise ValueError("a duration is a number of seconds or text like 2h30m")
    if isinstance(text, int):
        return timedelta(seconds=text)
    t = str(text).strip().lower().replace(" ", "")
    if t.isdigit():
        return timedelta(seconds=int(t))
    found = _DURATION.fullmatch(t)
    if not t or not found or not any(found.groups()):
        raise ValueError(f"{text!r} is not a duration like 90s, 5m, 2h30m, 1d or 1w")
    sizes = _UNITS.values()
    return timedelta(seconds=sum(int(n) * size for n, size in zip(found.groups(), sizes, strict=True) if n))


def format_duration(seconds: float | None) -> str:
    """``5400`` → ``"1h30m"`` (the form :func:`parse_duration` reads)."""
    if seconds is None:
        return ""
    rest = int(seconds)
    if rest == 0:
        return "0s"
    out = ""
    for unit, size in _UNITS.items():
        n, rest = divmod(rest, size)
        if n:
            out += f"{n}{unit}"
    return out


def _duration_in(value: Any) -> Any:
    if isinstance(value, str) and not value.strip().upper().startswith("P"):
        return parse_duration(value)
    return value


def _seconds_in(value: Any) -> Any:
    if isinstance(value, str):
        return int(parse_duration(value).total_seconds())
    return value


Duration = Annotated[timedelta, BeforeValidator(_duration_in)]
WindowSeconds = Annotated[
    int,
    BeforeValidator(_seconds_in),
    Field(ge=0, le=7 * 86400, description="Seconds (or a duration like 5m); null: the default."),
]

# --- matchers ------------------------------------------------------------------------------------

LabelName = Annotated[
    str, StringConstraints(strip_whitespace=True, pattern=r"^[a-zA-Z_][a-zA-Z0-9_]*$", max_length=100)
]


class MatcherIn(In):
    name: LabelName
    op: Literal["=", "!=", "=~", "!~"] = "="
    value: Annotated[str, StringConstraints(max_length=1000)]

    model_config = In.model_config | {"str_strip_whitespace": False}

    @model_validator(mode="after")
    def _valid(self) -> MatcherIn:
        Matcher(self.name, self.op, self.value)  # an invalid regex is a ValueError naming the matcher
        return self

    def matcher(self) -> Matcher:
        return Matcher(self.name, self.op, self.value)


def _matcher_items(value: Any) -> Any:
    """Strings (amtool syntax) become objects; objects pass through to validation."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        return value
    out: list[Any] = []
    for i, item in enumerate(value, start=1):
        if isinstance(item, str):
            try:
                out += [m.as_json() for m in parse_matchers(item)]
            except ValueError as exc:
                raise ValueError(f"matcher {i}: {exc}") from None
        elif isinstance(item, dict | MatcherIn):
            out.append(item)
        else:
            raise ValueError(
                f'matcher {i} must be a string like name="value" or an object {{name, op, value}}'
            )
    return out


_MATCHER_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"type": "string", "description": "amtool syntax", "examples": ['severity=~"critical|error"']},
        {
            "type": "object",
            "properties": {
                "name": {"type": "string", "pattern": "^[a-zA-Z_][a-zA-Z0-9_]*$"},
                "op": {"type": "string", "enum": list(OPS), "default": "="},
                "value": {"type": "string"},
            },
            "required": ["name", "value"],
            "additionalProperties": False,
        },
    ]
}
MatcherItem = Annotated[MatcherIn, WithJsonSchema(_MATCHER_SCHEMA, mode="validation")]
Matchers = Annotated[
    list[MatcherItem],
    BeforeValidator(_matcher_items),
    Field(
        max_length=50,
        description='Objects {"name", "op", "value"} or strings like alertname="DiskFull", '
        'instance=~"db-.*".',
    ),
]


def to_matchers(items: list[MatcherIn]) -> list[Matcher]:
    return [m.matcher() for m in items]


class MatcherOut(Out):
    name: str
    op: str
    value: str


# --- silences ------------------------------------------------------------------------------------

SilenceState = Literal["active", "pending", "expired"]
Comment = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]


class SilenceIn(In):
    """A new silence: ``ends_at`` or ``duration`` (from ``starts_at``, default now)."""

    matchers: Matchers
    starts_at: AwareDatetime | None = None
    ends_at: AwareDatetime | None = None
    duration: Duration | None = None
    comment: Comment

    @model_validator(mode="after")
    def _one_end(self) -> SilenceIn:
        if (self.ends_at is None) == (self.duration is None):
            raise ValueError("give either ends_at or duration")
        return self


class SilenceUpdate(In):
    """Changes to a silence. New matchers on an active silence expire it and create a new one."""

    matchers: Matchers | None = None
    starts_at: AwareDatetime | None = None
    ends_at: AwareDatetime | None = None
    comment: Comment | None = None


class SilencePreviewIn(In):
    matchers: Matchers


class AlertBrief(Out):
    id: int
    summary: str
    severity: str
    source: str


class SilencePreview(Out):
    count: int = Field(description="Firing alerts the matchers would mute now.")
    sample: list[AlertBrief] = Field(default_factory=list, description="Up to 10 of them, newest first.")


class SilenceOut(Out):
    id: int
    matchers: list[MatcherOut]
    matchers_text: str
    state: SilenceState
    starts_at: datetime
    ends_at: datetime
    created_by: str
    comment: str
    created_at: datetime
    updated_at: datetime


# --- maintenance windows -------------------------------------------------------------------------


RRuleText = Annotated[str, StringConstraints(strip_whitespace=True, max_length=500)]
TimeZone = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]


class WindowIn(In):
    """A maintenance window on a service and/or a CI, given by id or by name."""

    name: Name
    service_id: DbId | None = None
    service: ShortName | None = Field(default=None, description="Service name (instead of service_id).")
    ci_id: DbId | None = None
    ci: Name | None = Field(default=None, description="CI name (instead of ci_id).")
    starts_at: AwareDatetime = Field(description="Start of the (first) occurrence.")
    ends_at: AwareDatetime = Field(description="End of the (first) occurrence; at most 7 days later.")
    rrule: RRuleText | None = Field(
        default=None, description="RFC 5545 recurrence, e.g. FREQ=WEEKLY;BYDAY=SU or FREQ=DAILY;COUNT=10."
    )
    timezone: TimeZone = Field(
        default="UTC", description="IANA time zone the recurrence is expanded in, e.g. Europe/Paris."
    )
    comment: Text = ""


class WindowUpdate(In):
    name: Name | None = None
    service_id: DbId | None = None
    service: ShortName | None = None
    ci_id: DbId | None = None
    ci: Name | None = None
    starts_at: AwareDatetime | None = None
    ends_at: AwareDatetime | None = None
    rrule: RRuleText | None = None
    timezone: TimeZone | None = None
    comment: Text | None = None


class Occurrence(Out):
    starts_at: datetime
    ends_at: datetime


class WindowOut(Out):
    id: int
    name: str
    service_id: int | None
    service: str | None
    ci_id: int | None
    ci: str | None
    starts_at: datetime
    ends_at: datetime
    rrule: str | None
    timezone: str
    comment: str
    created_by: str
    created_at: datetime
    updated_at: datetime
    in_progress: bool
    next_occurrence: Occurrence | None = Field(
        description="The occurrence in progress, else the next one; null when none is left."
    )


# --- alert rules ---------------------------------------------------------------------------------

LabelList = Annotated[list[LabelName], Field(max_length=20)]


def _unique(values: list[str] | None) -> list[str] | None:
    if values is not None and len(set(values)) != len(values):
        raise ValueError("a label is listed twice")
    return values


class RuleIn(In):
    name: ShortName
    position: Annotated[int, Field(ge=0, le=1_000_000)] = 100
    enabled: bool = True
    matchers: Matchers = Field(default_factory=list)
    fingerprint_labels: LabelList = Field(default_factory=list)
    group_by: LabelList = Field(default_factory=list)
    group_window_seconds: WindowSeconds | None = None
    reopen_window_seconds: WindowSeconds | None = None

    _check_unique = field_validator("fingerprint_labels", "group_by")(_unique)


class RuleUpdate(In):
    name: ShortName | None = None
    position: Annotated[int, Field(ge=0, le=1_000_000)] | None = None
    enabled: bool | None = None
    matchers: Matchers | None = None
    fingerprint_labels: LabelList | None = None
    group_by: LabelList | None = None
    group_window_seconds: WindowSeconds | None = None
    reopen_window_seconds: WindowSeconds | None = None

    _check_unique = field_validator("fingerprint_labels", "group_by")(_unique)


class RuleOut(Out):
    id: int
    name: str
    position: int
    enabled: bool
    matchers: list[MatcherOut]
    matchers_text: str
    fingerprint_labels: list[str]
    group_by: list[str]
    group_window_seconds: int | None
    reopen_window_seconds: int | None
    created_at: datetime
    updated_at: datetime
