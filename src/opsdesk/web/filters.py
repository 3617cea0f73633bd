"""Jinja filters shared by every page."""

from __future__ import annotations

from datetime import UTC, datetime

from jinja2 import Environment

STATUS_CLASS = {
    "up": "ok",
    "resolved": "ok",
    "down": "bad",
    "triggered": "bad",
    "firing": "bad",
    "acknowledged": "warn",
    "degraded": "warn",
    "unreachable": "muted",
    "unknown": "muted",
    "paused": "muted",
    "critical": "bad",
    "error": "bad",
    "warning": "warn",
    "info": "muted",
}


def ago(value: datetime | None, now: datetime | None = None) -> str:
    if value is None:
        return "never"
    now = now or datetime.now(UTC)
    secs = int((now - value).total_seconds())
    if secs < 0:
        secs = -secs
        suffix = "from now"
    else:
        suffix = "ago"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if secs >= size:
            return f"{secs // size} {unit} {suffix}"
    return f"{secs} s {suffix}"


def dt(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value else "—"


def ms(value: float | None) -> str:
    """A duration in milliseconds: one decimal below 10 ms, whole numbers above."""
    if value is None:
        return "—"
    return f"{value:.1f} ms" if value < 10 else f"{value:.0f} ms"


def install(env: Environment) -> None:
    env.filters["ms"] = ms
    env.filters["ago"] = ago
    env.filters["dt"] = dt
    env.filters["status_class"] = lambda v: STATUS_CLASS.get(str(v), "muted")
