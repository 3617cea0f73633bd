"""Escalation levels as text, for the policy pages and ``opsdesk policy``.

One level per line (or per ``--level``): the minutes to wait before the next level, a colon, then
its targets separated by commas::

    5: schedule Primary, user ann@example.org
    10: team DBA

A target is ``schedule NAME``, ``user E-MAIL``, ``team NAME`` (or ``KIND #ID``); a bare e-mail
address is a user. ``5 min:`` and ``5m:`` are read as ``5:``.
"""

from __future__ import annotations

import re
from typing import Any

from opsdesk.oncall.schemas import LevelIn, TargetIn

KINDS = ("schedule", "user", "team")
RIGHT = "\u2192"  # an arrow between the steps of a summary
HELP = (
    "one level per line: minutes to wait before the next level, a colon, then targets separated by commas, "
    'e.g. "5: schedule Primary, user ann@example.org, team DBA"'
)
_HEAD = re.compile(r"^\s*(\d+)\s*(?:m|min|mins|minutes?)?\s*:(.*)$", re.IGNORECASE)
_LEVEL_ERROR = re.compile(r"^levels\.(\d+)(?:\.targets\.(\d+))?")


class LevelError(ValueError):
    """A level that cannot be read; ``str()`` says which line and why."""


def parse_target(text: str, where: str) -> TargetIn:
    """``schedule Primary``, ``user ann@example.org``, ``team DBA``, ``user #3``, ``ann@example.org``."""
    kind, _, rest = text.strip().partition(" ")
    kind, rest = kind.lower().rstrip(":"), rest.strip()
    if kind.endswith("s") and kind[:-1] in KINDS:
        kind = kind[:-1]
    if kind not in KINDS:
        if "@" in text and " " not in text.strip():
            return TargetIn(type="user", ref=text.strip().lower())
        raise LevelError(
            f"{where}: {text.strip()!r} is not a target: write schedule NAME, user E-MAIL or team NAME"
        )
    if not rest:
        raise LevelError(f"{where}: {kind} needs a name")
    if rest.startswith("#") and rest[1:].isdigit():
        return TargetIn(type=kind, id=int(rest[1:]))
    if len(rest) > 254:
        raise LevelError(f"{where}: the name is too long")
    return TargetIn(type=kind, ref=rest.lower() if kind == "user" else rest)


def parse_level(text: str, where: str) -> LevelIn:
    m = _HEAD.match(text)
    if m is None:
        raise LevelError(f"{where}: {text.strip()!r}: {HELP}")
    minutes = int(m.group(1))
    if not 1 <= minutes <= 1440:
        raise LevelError(f"{where}: wait from 1 to 1440 minutes, not {minutes}")
    parts = [p for p in (x.strip() for x in m.group(2).split(",")) if p]
    if not parts:
        raise LevelError(f"{where}: no targets after the colon: name a schedule, user or team to page")
    if len(parts) > 20:
        raise LevelError(f"{where}: at most 20 targets a level")
    targets = [parse_target(p, f"{where}, target {j + 1}") for j, p in enumerate(parts)]
    return LevelIn(timeout_minutes=minutes, targets=targets)


def parse_levels(text: str | list[str]) -> list[LevelIn]:
    """Levels from lines (blank lines are skipped); :class:`LevelError` names the bad one."""
    lines = text.splitlines() if isinstance(text, str) else text
    out: list[LevelIn] = []
    for raw in lines:
        if not raw.strip() or raw.strip().startswith("#"):
            continue
        out.append(parse_level(raw, f"level {len(out) + 1}"))
    if not out:
        raise LevelError(f"give at least one level: {HELP}")
    if len(out) > 10:
        raise LevelError("at most 10 levels")
    return out


def level_where(field: str) -> str:
    """``levels.1.targets.0`` (a service error's field) as ``level 2, target 1``."""
    m = _LEVEL_ERROR.match(field)
    if m is None:
        return field
    where = f"level {int(m.group(1)) + 1}"
    if m.group(2) is not None:
        where += f", target {int(m.group(2)) + 1}"
    return where


def target_text(t: dict[str, Any]) -> str:
    """A target of :func:`opsdesk.oncall.escalation.as_dict` as it is typed; a deleted one by id."""
    if t["name"].endswith("(deleted)"):
        return f"{t['type']} #{t['id']}"
    return f"{t['type']} {t['name']}"


def levels_text(levels: list[dict[str, Any]]) -> str:
    """The text form of a policy's levels (what the edit form starts with)."""
    return "\n".join(
        f"{lv['timeout_minutes']}: " + ", ".join(target_text(t) for t in lv["targets"]) for lv in levels
    )


def summary(levels: list[dict[str, Any]]) -> str:
    """``1: schedule Primary → 5 min → 2: user ann@example.org → 10 min``."""
    parts = []
    for i, lv in enumerate(levels, 1):
        parts.append(f"{i}: " + ", ".join(f"{t['type']} {t['name']}" for t in lv["targets"]))
        parts.append(f"{lv['timeout_minutes']} min")
    return f" {RIGHT} ".join(parts)
