"""Heartbeat: a passive check. A cron job, backup or batch job calls its ping URL; the monitor goes
down when no success arrives in time, or at once when the job reports a failure.

Two ways to say "in time", as Healthchecks.io does:

- a **period**: the monitor's ``interval_seconds`` (a job that runs every hour has period 3600);
  the deadline is the last success + period + ``grace_seconds``;
- a **cron schedule** (``schedule: "0 2 * * *"`` in ``timezone``): the deadline is the first run
  the schedule names after the last success, + ``grace_seconds``.

A ``/start`` signal says a run began: the run must then finish within ``grace_seconds``, and the
success that ends it records the run's duration. Nothing is probed, so the prober never claims a
heartbeat monitor; :mod:`opsdesk.monitoring.heartbeat` takes the pings and finds missed deadlines.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadCronError, croniter
from pydantic import Field, field_validator

from opsdesk.monitoring.checks.base import CheckConfig, CheckOutcome, CheckType, ProbeContext, register


class HeartbeatConfig(CheckConfig):
    grace_seconds: int = Field(default=300, ge=0, le=7 * 86_400)
    schedule: str | None = Field(default=None, max_length=200, description="A cron expression (5 fields).")
    timezone: str = Field(default="UTC", max_length=64)

    @field_validator("schedule")
    @classmethod
    def _cron(cls, v: str | None) -> str | None:
        if v is None or not v.strip():
            return None
        v = " ".join(v.split())
        if len(v.split(" ")) != 5:
            raise ValueError(
                "write a cron expression of 5 fields: minute hour day-of-month month day-of-week"
            )
        try:
            croniter(v)
        except (CroniterBadCronError, ValueError, KeyError) as exc:
            raise ValueError(f"not a valid cron expression: {exc}") from None
        return v

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r} (use an IANA name such as Europe/Paris)") from None
        return v


def next_deadline(cfg: HeartbeatConfig, period_seconds: int, after: datetime) -> datetime:
    """When a job that last succeeded at ``after`` is overdue."""
    grace = timedelta(seconds=cfg.grace_seconds)
    if cfg.schedule:
        tz = ZoneInfo(cfg.timezone)
        nxt: datetime = croniter(cfg.schedule, after.astimezone(tz)).get_next(datetime)
        return nxt.astimezone(after.tzinfo) + grace
    return after + timedelta(seconds=period_seconds) + grace


@register
class HeartbeatCheck(CheckType):
    name = "heartbeat"
    config_model = HeartbeatConfig
    passive = True

    def validate_target(self, target: str) -> str:
        # Nothing is contacted: the target only describes the job (e.g. "nightly backup on db1").
        return target.strip()

    async def run(self, target: str, config: Any, timeout: float, ctx: ProbeContext) -> CheckOutcome:
        raise RuntimeError("heartbeat monitors are passive: they are never probed")
