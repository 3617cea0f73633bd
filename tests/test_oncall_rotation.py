"""The on-call computation (no database): rotations, restrictions, layers, overrides, gaps, and
daylight-saving changes in both directions."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opsdesk.oncall.rotation import Layer, Override, Schedule, Window

BERLIN = ZoneInfo("Europe/Berlin")
NY = ZoneInfo("America/New_York")
A, B, C = 1, 2, 3


def local(tz: ZoneInfo, *args: int) -> datetime:
    return datetime(*args, tzinfo=tz).astimezone(UTC)  # type: ignore[misc]


def who(sched: Schedule, t: datetime) -> int | None:
    return sched.on_call(t).user_id


def test_weekly_rotation_hands_off_at_local_time_across_spring_forward() -> None:
    # Berlin springs forward on Sunday 2026-03-29 (02:00 -> 03:00).
    start = local(BERLIN, 2026, 3, 16, 9, 0)  # a Monday, 09:00 CET (08:00 UTC)
    sched = Schedule("Europe/Berlin", [Layer((A, B), start, 1, "weeks", name="primary")])
    final = sched.final(start, local(BERLIN, 2026, 4, 6, 9, 0))  # three local weeks
    assert [(sh.user_id, sh.start.astimezone(BERLIN).strftime("%a %H:%M")) for sh in final] == [
        (A, "Mon 09:00"),
        (B, "Mon 09:00"),
        (A, "Mon 09:00"),
    ]
    # In UTC the handoff moved an hour earlier: 08:00 UTC before the change, 07:00 UTC after.
    assert [sh.start.hour for sh in final] == [8, 8, 7]
    # The turn spanning the change is 167 real hours long.
    assert final[1].end - final[1].start == timedelta(hours=167)
    # Just before and after the local handoff on 2026-03-30.
    assert who(sched, local(BERLIN, 2026, 3, 30, 8, 59)) == B
    assert who(sched, local(BERLIN, 2026, 3, 30, 9, 0)) == A


def test_daily_rotation_across_fall_back_is_25_hours_that_day() -> None:
    # New York falls back on Sunday 2026-11-01 (02:00 EDT -> 01:00 EST).
    start = local(NY, 2026, 10, 30, 18, 0)
    sched = Schedule("America/New_York", [Layer((A, B, C), start, 1, "days")])
    final = sched.final(start, local(NY, 2026, 11, 3, 18, 0))  # four local days
    lengths = [sh.end - sh.start for sh in final]
    assert [sh.user_id for sh in final] == [A, B, C, A]
    assert lengths == [timedelta(hours=24), timedelta(hours=25), timedelta(hours=24), timedelta(hours=24)]
    assert all(sh.start.astimezone(NY).hour == 18 for sh in final)


def test_hour_rotation_is_elapsed_time_not_wall_time() -> None:
    start = local(BERLIN, 2026, 3, 28, 20, 0)
    sched = Schedule("Europe/Berlin", [Layer((A, B), start, 12, "hours")])
    final = sched.final(start, start + timedelta(hours=48))
    assert all(sh.end - sh.start == timedelta(hours=12) for sh in final)
    # After the change the wall-clock handoff is an hour later: 21:00 instead of 20:00.
    assert final[-1].start.astimezone(BERLIN).hour == 9
    assert final[2].start.astimezone(BERLIN).hour == 21


def test_handoff_at_a_time_skipped_by_spring_forward() -> None:
    # A daily handoff at 02:30 local: on 2026-03-29 02:30 does not exist in Berlin.
    start = local(BERLIN, 2026, 3, 27, 2, 30)
    sched = Schedule("Europe/Berlin", [Layer((A, B), start, 1, "days")])
    final = sched.final(start, local(BERLIN, 2026, 3, 31, 2, 30))
    walls = [sh.start.astimezone(BERLIN).strftime("%d %H:%M") for sh in final]
    assert walls == ["27 02:30", "28 02:30", "29 03:30", "30 02:30"]
    assert all(a.end == b.start for a, b in itertools.pairwise(final))  # no gap, no overlap


def test_business_hours_restriction_and_a_layer_below() -> None:
    start = local(BERLIN, 2026, 10, 19, 0, 0)  # Monday
    day = Layer(
        (A,),
        start,
        1,
        "weeks",
        (Window.parse(["mon", "tue", "wed", "thu", "fri"], "09:00", "17:00"),),
        name="day",
    )
    base = Layer((B, C), start, 1, "days", name="base")
    sched = Schedule("Europe/Berlin", [base, day])
    assert who(sched, local(BERLIN, 2026, 10, 20, 10, 0)) == A  # Tuesday 10:00: the business-hours layer
    assert who(sched, local(BERLIN, 2026, 10, 20, 18, 0)) == C  # Tuesday 18:00: the base rotation
    assert who(sched, local(BERLIN, 2026, 10, 24, 10, 0)) == C  # Saturday: base (day 5 → C)
    # Across fall back (Sunday 25th) the window stays 09:00 to 17:00 local on Monday 26th.
    shifts = day.shifts(BERLIN, local(BERLIN, 2026, 10, 26, 0, 0), local(BERLIN, 2026, 10, 27, 0, 0))
    assert [(s.start.astimezone(BERLIN).hour, s.end.astimezone(BERLIN).hour) for s in shifts] == [(9, 17)]
    assert shifts[0].start.hour == 8  # 09:00 CET is 08:00 UTC


def test_overnight_window_and_gaps_flagged() -> None:
    start = local(BERLIN, 2026, 6, 1, 0, 0)
    nights = Layer((A, B), start, 1, "weeks", (Window.parse([], "22:00", "06:00"),), name="nights")
    sched = Schedule("Europe/Berlin", [nights])
    gaps = sched.gaps(local(BERLIN, 2026, 6, 2, 0, 0), local(BERLIN, 2026, 6, 3, 0, 0))
    assert [(g.start.astimezone(BERLIN).hour, g.end.astimezone(BERLIN).hour) for g in gaps] == [(6, 22)]
    assert who(sched, local(BERLIN, 2026, 6, 2, 23, 0)) == A
    assert who(sched, local(BERLIN, 2026, 6, 2, 12, 0)) is None


def test_overrides_win_and_the_later_override_wins() -> None:
    start = local(BERLIN, 2026, 1, 5, 9, 0)
    sched = Schedule(
        "Europe/Berlin",
        [Layer((A, B), start, 1, "weeks")],
        [
            Override(C, local(BERLIN, 2026, 1, 6, 12, 0), local(BERLIN, 2026, 1, 6, 18, 0)),
            Override(B, local(BERLIN, 2026, 1, 6, 14, 0), local(BERLIN, 2026, 1, 6, 15, 0)),
        ],
    )
    final = sched.final(local(BERLIN, 2026, 1, 6, 0, 0), local(BERLIN, 2026, 1, 7, 0, 0))
    assert [(sh.user_id, sh.source, sh.start.astimezone(BERLIN).hour) for sh in final] == [
        (A, "", 0),
        (C, "override", 12),
        (B, "override", 14),
        (C, "override", 15),
        (A, "", 18),
    ]


def test_before_the_rotation_starts_and_after_it_ends_is_a_gap() -> None:
    start = local(BERLIN, 2026, 5, 4, 9, 0)
    layer = Layer((A,), start, 1, "days", end=start + timedelta(days=2))
    sched = Schedule("Europe/Berlin", [layer])
    final = sched.final(start - timedelta(days=1), start + timedelta(days=3))
    assert [(sh.user_id, sh.end - sh.start) for sh in final] == [
        (None, timedelta(days=1)),
        (A, timedelta(days=2)),
        (None, timedelta(days=1)),
    ]


@pytest.mark.parametrize(
    ("days", "start", "end", "error"),
    [
        (["funday"], "09:00", "17:00", "weekday"),
        ([], "9", "17:00", "time of day"),
        ([], "24:00", "17:00", "time of day"),
        ([], "09:00", "25:00", "time of day"),
    ],
)
def test_bad_windows_are_refused(days: list[str], start: str, end: str, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        Window.parse(days, start, end)


def test_bad_layers_are_refused() -> None:
    with pytest.raises(ValueError, match="turn_unit"):
        Layer((A,), datetime(2026, 1, 1, tzinfo=UTC), 1, "months")
    with pytest.raises(ValueError, match="turn_length"):
        Layer((A,), datetime(2026, 1, 1, tzinfo=UTC), 0, "days")


ZONES = ["Europe/Berlin", "America/New_York", "Australia/Sydney", "Asia/Kolkata", "UTC"]


@settings(max_examples=150, deadline=None)
@given(
    zone=st.sampled_from(ZONES),
    offset_hours=st.integers(min_value=0, max_value=24 * 365),
    length=st.integers(min_value=1, max_value=14),
    unit=st.sampled_from(["hours", "days", "weeks"]),
    people=st.integers(min_value=1, max_value=5),
)
def test_a_rotation_covers_every_moment_once_in_turn_order(
    zone: str, offset_hours: int, length: int, unit: str, people: int
) -> None:
    """Across any year, in any zone: shifts tile the range with no gap or overlap, each person follows
    the one before in order, and a wall-clock rotation hands off at the same local time every turn."""
    tz = ZoneInfo(zone)
    start = datetime(2026, 1, 1, 9, 30, tzinfo=tz).astimezone(UTC)
    layer = Layer(tuple(range(1, people + 1)), start, length, unit)
    lo = start + timedelta(hours=offset_hours)
    hi = lo + timedelta(days=60)
    shifts = layer.shifts(tz, lo, hi)
    assert shifts[0].start == lo and shifts[-1].end == hi
    assert all(a.end == b.start for a, b in itertools.pairwise(shifts))
    if people > 1:
        assert all(b.user_id == a.user_id % people + 1 for a, b in itertools.pairwise(shifts))
    if unit != "hours":
        assert {sh.start.astimezone(tz).strftime("%H:%M") for sh in shifts[1:]} <= {"09:30"}
    for sh in shifts:
        assert layer.turn_at(sh.start, tz) == layer.turn_at(sh.end - timedelta(microseconds=1), tz)
