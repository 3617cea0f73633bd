"""Request and response bodies of ``/api/v1/schedules``."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, Field, field_validator, model_validator

from opsdesk.core.schemas import DbId, In, Out, ShortName, Text
from opsdesk.oncall.rotation import UNITS, Window


def _zone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"{name!r} is not an IANA time zone (e.g. Europe/Berlin, America/New_York, UTC)"
        ) from None
    return name


TimeZone = Annotated[str, Field(min_length=1, max_length=64), AfterValidator(_zone)]
# A participant is a user id or an e-mail address.
UserRef = Annotated[int | str, Field(union_mode="left_to_right")]


class WindowIn(In):
    days: list[str] = Field(default_factory=list, max_length=7, description="mon … sun; empty: every day")
    start: str = Field(description="local time of day, HH:MM")
    end: str = Field(description="local time of day, HH:MM (24:00 allowed); at or before start: the next day")

    def window(self) -> Window:
        return Window.parse(self.days, self.start, self.end)

    @model_validator(mode="after")
    def _valid(self) -> WindowIn:
        self.window()  # ValueError names what is wrong
        return self


class LayerIn(In):
    name: ShortName = "Layer"
    participants: list[UserRef] = Field(min_length=1, max_length=100)
    rotation_start: datetime = Field(
        description="the first handoff; without an offset it is read in the schedule's time zone"
    )
    turn_length: int = Field(1, ge=1, le=1000)
    turn_unit: str = Field("weeks", description="hours (elapsed time), days or weeks (wall-clock days)")
    restrictions: list[WindowIn] = Field(default_factory=list, max_length=50)
    ends_at: datetime | None = None

    @field_validator("turn_unit")
    @classmethod
    def _unit(cls, v: str) -> str:
        if v not in UNITS:
            raise ValueError(f"must be one of {', '.join(UNITS)}")
        return v


class ScheduleIn(In):
    name: ShortName
    description: Text = ""
    time_zone: TimeZone = "UTC"
    team_id: DbId | None = None
    layers: list[LayerIn] = Field(
        default_factory=list, max_length=20, description="lowest first; later layers win"
    )


class ScheduleUpdate(In):
    name: ShortName | None = None
    description: Text | None = None
    time_zone: TimeZone | None = None
    team_id: DbId | None = None
    layers: list[LayerIn] | None = Field(None, max_length=20, description="replaces every layer")


class OverrideIn(In):
    user: UserRef
    starts_at: datetime
    ends_at: datetime
    note: Annotated[str, Field(max_length=500)] = ""


class UserBrief(Out):
    id: int
    name: str
    email: str


class WindowOut(Out):
    days: list[str]
    start: str
    end: str


class LayerOut(Out):
    id: int
    position: int
    name: str
    participants: list[UserBrief]
    rotation_start: datetime
    turn_length: int
    turn_unit: str
    restrictions: list[WindowOut]
    ends_at: datetime | None


class ShiftOut(Out):
    start: datetime
    end: datetime
    user: UserBrief | None = Field(description="null: nobody is on call (a gap)")
    source: str = Field(description="the layer's name, 'override', or '' for a gap")


class ScheduleOut(Out):
    id: int
    name: str
    description: str
    time_zone: str
    team_id: int | None
    layers: list[LayerOut]
    on_call_now: ShiftOut
    next_gap: ShiftOut | None = Field(description="the first time nobody is on call in the next 14 days")
    created_at: datetime
    updated_at: datetime


class OverrideOut(Out):
    id: int
    schedule_id: int
    user: UserBrief
    starts_at: datetime
    ends_at: datetime
    note: str
    created_by: str
    created_at: datetime


class LayerShiftsOut(Out):
    name: str
    shifts: list[ShiftOut]


class ShiftsOut(Out):
    start: datetime
    end: datetime
    time_zone: str
    final: list[ShiftOut]
    layers: list[LayerShiftsOut] = Field(description="each layer's own shifts, lowest first")
    gaps: list[ShiftOut]


class FeedOut(Out):
    url: str
    path: str


class ImportOut(Out):
    events: int
    mode: str = Field(
        description="'layer': a rotation was recognised; 'overrides': each shift became an override"
    )
    layer: LayerOut | None = None
    overrides: int = 0
    unmatched: list[str] = Field(description="event summaries no user could be found for (not imported)")


# --- escalation policies -------------------------------------------------------------------------


class TargetIn(In):
    type: str = Field(description="user, schedule or team")
    id: DbId | None = None
    ref: Annotated[str, Field(max_length=254)] | None = Field(
        None, description="instead of id: a user's e-mail, a schedule's or a team's name"
    )

    @model_validator(mode="after")
    def _one(self) -> TargetIn:
        if self.type not in ("user", "schedule", "team"):
            raise ValueError("type must be user, schedule or team")
        if (self.id is None) == (self.ref is None):
            raise ValueError("give exactly one of id and ref")
        return self


class LevelIn(In):
    timeout_minutes: int = Field(30, ge=1, le=1440, description="wait this long before the next level")
    targets: list[TargetIn] = Field(min_length=1, max_length=20)


class PolicyIn(In):
    name: ShortName
    description: Text = ""
    repeat: int = Field(0, ge=0, le=9, description="run the whole policy this many more times")
    levels: list[LevelIn] = Field(min_length=1, max_length=10)


class PolicyUpdate(In):
    name: ShortName | None = None
    description: Text | None = None
    repeat: int | None = Field(None, ge=0, le=9)
    levels: list[LevelIn] | None = Field(None, min_length=1, max_length=10)


class TargetOut(Out):
    type: str
    id: int
    name: str


class LevelOut(Out):
    position: int
    timeout_minutes: int
    targets: list[TargetOut]


class PolicyOut(Out):
    id: int
    name: str
    description: str
    repeat: int
    levels: list[LevelOut]
    services: list[str]
    created_at: datetime
    updated_at: datetime


class EscalationOut(Out):
    incident_id: int
    policy_id: int | None
    policy: str | None
    state: str
    run: int
    level: int
    round: int
    next_at: datetime | None
    steps: int
    started_at: datetime
    stopped_at: datetime | None
    reason: str
