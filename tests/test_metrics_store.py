"""The built-in SQL metrics store, on SQLite and PostgreSQL (the ``db`` fixture runs both)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event, select

from opsdesk.core.clock import ManualClock
from opsdesk.core.db import Database
from opsdesk.core.errors import OpsdeskError
from opsdesk.core.settings import Settings
from opsdesk.metrics.models import (
    MetricRollup1h,
    MetricRollup5m,
    MetricRollupMark,
    MetricSample,
    MetricSampleRecent,
    MetricSeries,
)
from opsdesk.metrics.samples import Sample, labels_of
from opsdesk.metrics.sqlstore import SQLMetricsStore, to_ms
from opsdesk.metrics.store import make_store

# The clock fixture says 2026-03-02 09:00 UTC; the data of most tests is the hour before 08:00.
T0 = datetime(2026, 3, 2, 7, 0, tzinfo=UTC)
MS = to_ms(T0)
SEC, MIN, HOUR, DAY = 1000, 60_000, 3_600_000, 86_400_000


def s(ts_ms: int, value: float, name: str = "cpu", **labels: str) -> Sample:
    return Sample(name, labels_of(labels or {"host": "a"}), ts_ms, value)


def at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


@pytest.fixture
def store(db: Database, clock: ManualClock) -> SQLMetricsStore:
    return SQLMetricsStore(db, clock=clock)


def table(db: Database, model: Any) -> list[tuple[Any, ...]]:
    t = model.__table__
    with db.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(select(t).order_by(*t.primary_key.columns))]


def points(store: SQLMetricsStore, lo: int, hi: int, **kw: Any) -> dict[str, list[tuple[int, float]]]:
    """{host: points} of the ``cpu`` series."""
    matchers = kw.pop("matchers", None)
    step = kw.pop("step", None)
    out = store.query_range("cpu", matchers, at(lo), at(hi), step, **kw)
    return {dict(x.labels).get("host", ""): x.points for x in out}


# --- writing -------------------------------------------------------------------------------------


def test_write_then_read_raw(store: SQLMetricsStore) -> None:
    n = store.write(
        [s(MS, 1.0), s(MS + 15 * SEC, 2.5), s(MS, 7.0, host="b"), s(MS, 3.0, name="mem", host="a")]
    )

    assert n == 4
    out = store.query_range("cpu", None, T0, T0 + timedelta(minutes=1))
    assert [(x.name, x.labels, x.points, x.resolution) for x in out] == [
        ("cpu", (("host", "a"),), [(MS, 1.0), (MS + 15 * SEC, 2.5)], "raw"),
        ("cpu", (("host", "b"),), [(MS, 7.0)], "raw"),
    ]


def test_range_ends_are_inclusive_and_unknown_metric_is_empty(store: SQLMetricsStore) -> None:
    store.write([s(MS - 1, 0.0), s(MS, 1.0), s(MS + MIN, 2.0), s(MS + MIN + 1, 3.0)])

    assert points(store, MS, MS + MIN) == {"a": [(MS, 1.0), (MS + MIN, 2.0)]}
    assert store.query_range("nope", None, T0, T0 + timedelta(hours=1)) == []
    assert store.query_range("cpu", {"host": "zzz"}, T0, T0 + timedelta(hours=1)) == []


def test_duplicate_timestamp_last_value_wins(store: SQLMetricsStore, clock: ManualClock) -> None:
    # Within one batch, across batches, and across the buffer and the series-clustered table.
    store.write([s(MS, 1.0), s(MS, 2.0), s(MS + SEC, 5.0)])
    store.write([s(MS + SEC, 6.0)])
    assert points(store, MS, MS + MIN) == {"a": [(MS, 2.0), (MS + SEC, 6.0)]}

    store.maintain(clock.now())  # moves both samples out of the buffer
    assert table(store.db, MetricSampleRecent) == []
    store.write([s(MS, 3.0)])  # a correction after the move: read from the buffer, still wins
    assert points(store, MS, MS + MIN) == {"a": [(MS, 3.0), (MS + SEC, 6.0)]}

    store.maintain(clock.now())
    assert points(store, MS, MS + MIN) == {"a": [(MS, 3.0), (MS + SEC, 6.0)]}
    sid = table(store.db, MetricSeries)[0][0]
    assert table(store.db, MetricSample) == [(sid, MS, 3.0), (sid, MS + SEC, 6.0)]


def test_nan_is_skipped_and_infinities_kept(store: SQLMetricsStore) -> None:
    n = store.write(
        [s(MS, math.nan), s(MS + SEC, math.inf), s(MS + 2 * SEC, -math.inf), s(MS + 3 * SEC, 1.0)]
    )

    assert n == 3
    assert points(store, MS, MS + MIN) == {
        "a": [(MS + SEC, math.inf), (MS + 2 * SEC, -math.inf), (MS + 3 * SEC, 1.0)]
    }


def test_a_big_batch_resolves_new_series_in_a_few_statements(store: SQLMetricsStore) -> None:
    batch = [s(MS + i // 5000 * SEC, float(i), host=f"h{i % 5000}") for i in range(50_000)]
    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    event.listen(store.db.engine, "before_cursor_execute", count)
    try:
        assert store.write(batch) == 50_000
        first = len(statements)
        statements.clear()
        assert store.write([x._replace(ts_ms=x.ts_ms + HOUR) for x in batch]) == 50_000
    finally:
        event.remove(store.db.engine, "before_cursor_execute", count)

    # 5,000 new series: a SELECT and a re-SELECT in chunks of 500, one multi-row INSERT (the
    # samples go through the raw DBAPI cursor: one executemany or one unnest statement).
    assert first <= 2 * 10 + 10, statements
    assert statements == []  # every series cached: no SQL statement but the samples' own
    assert len(table(store.db, MetricSeries)) == 5000
    assert len(table(store.db, MetricSampleRecent)) == 100_000


def test_writing_is_shared_between_stores_of_one_database(db: Database, clock: ManualClock) -> None:
    one, two = SQLMetricsStore(db, clock=clock), SQLMetricsStore(db, clock=clock)
    one.write([s(MS, 1.0)])
    two.write([s(MS + SEC, 2.0)])  # finds the series the other one created

    assert len(table(db, MetricSeries)) == 1
    assert points(one, MS, MS + MIN) == {"a": [(MS, 1.0), (MS + SEC, 2.0)]}


# --- matchers and series -------------------------------------------------------------------------


@pytest.fixture
def fleet(store: SQLMetricsStore) -> SQLMetricsStore:
    store.write(
        [
            s(MS, 1.0, host="web-1", env="prod"),
            s(MS, 2.0, host="web-2", env="prod"),
            s(MS, 3.0, host="db-1", env="staging"),
            s(MS, 4.0, host="odd"),  # no env label at all
            s(MS, 5.0, host="~tilde"),
            s(MS, 6.0, name="cpu_seconds_total", host="web-1"),
            s(MS, 7.0, name="disk_free", host="web-1"),
            s(MS, 8.0, name="a%b_c", host="x"),
        ]
    )
    return store


@pytest.mark.parametrize(
    ("matchers", "hosts"),
    [
        ({}, ["db-1", "odd", "web-1", "web-2", "~tilde"]),
        ({"env": "prod"}, ["web-1", "web-2"]),
        ({"env": "!prod"}, ["db-1", "odd", "~tilde"]),
        ({"host": "~web-.*"}, ["web-1", "web-2"]),
        ({"host": "~web"}, []),  # anchored, like PromQL
        ({"host": "!~web-.*|db-1"}, ["odd", "~tilde"]),
        ({"env": ""}, ["odd", "~tilde"]),  # a missing label matches as ""
        ({"env": "~.+"}, ["db-1", "web-1", "web-2"]),
        ({"host": "=~tilde"}, ["~tilde"]),  # "=" escapes a value that starts with ~ or !
        ({"env": "prod", "host": "!web-2"}, ["web-1"]),
    ],
)
def test_label_matchers(fleet: SQLMetricsStore, matchers: dict[str, str], hosts: list[str]) -> None:
    out = fleet.query_range("cpu", matchers, T0, T0 + timedelta(minutes=5))

    assert sorted(dict(x.labels)["host"] for x in out) == hosts
    assert [x.labels for x in out] == sorted(x.labels for x in out)


@pytest.mark.parametrize(
    ("matchers", "field"),
    [({"host": "~(unclosed"}, "host"), ({"__name__": "cpu"}, "__name__"), ({"bad-label": "x"}, "bad-label")],
)
def test_bad_matchers_are_a_422_naming_the_label(
    fleet: SQLMetricsStore, matchers: dict[str, str], field: str
) -> None:
    with pytest.raises(OpsdeskError) as e:
        fleet.query_range("cpu", matchers, T0, T0 + timedelta(minutes=5))

    assert e.value.status == 422
    assert e.value.errors[0].field == field


def test_series_by_prefix_and_matchers(fleet: SQLMetricsStore) -> None:
    assert fleet.series("cpu_") == [("cpu_seconds_total", (("host", "web-1"),))]
    assert fleet.series("", {"host": "web-1"}) == [
        ("cpu", (("env", "prod"), ("host", "web-1"))),
        ("cpu_seconds_total", (("host", "web-1"),)),
        ("disk_free", (("host", "web-1"),)),
    ]
    assert [n for n, _ in fleet.series("cpu", {"env": "prod"})] == ["cpu", "cpu"]
    assert fleet.series("a%") == [("a%b_c", (("host", "x"),))]  # LIKE wildcards are literal
    assert fleet.series("a_") == []
    assert len(fleet.series()) == 8
    assert len(fleet.series(limit=3)) == 3
    assert fleet.series("nothing") == []


# --- rollups -------------------------------------------------------------------------------------

# Values either side of the 5-minute and 1-hour bucket edges, for host a; host b has one sample.
EDGES = [
    (0, 1.0),
    (5 * MIN - 1, 5.0),  # last millisecond of the first 5-minute bucket
    (5 * MIN, 2.0),  # first of the second
    (5 * MIN + SEC, 10.0),
    (HOUR - 1, 7.0),  # last of the hour (bucket 55 min)
    (HOUR, 3.0),  # first of the next hour
    (HOUR + 2 * MIN, -4.0),
]


@pytest.fixture
def edges(store: SQLMetricsStore) -> SQLMetricsStore:
    store.write([s(MS + off, v) for off, v in EDGES] + [s(MS + 7 * MIN, 100.0, host="b")])
    return store


FIVE_MIN_EXPECTED = {  # bucket offset: (min, max, sum, count, last)
    0: (1.0, 5.0, 6.0, 2, 5.0),
    5 * MIN: (2.0, 10.0, 12.0, 2, 10.0),
    55 * MIN: (7.0, 7.0, 7.0, 1, 7.0),
    HOUR: (-4.0, 3.0, -1.0, 2, -4.0),
}
HOUR_EXPECTED = {0: (1.0, 10.0, 25.0, 5, 7.0), HOUR: (-4.0, 3.0, -1.0, 2, -4.0)}
AGG_INDEX = {"min": 0, "max": 1, "sum": 2, "count": 3, "last": 4}


def expected(buckets: dict[int, tuple[float, float, float, int, float]], agg: str) -> list[tuple[int, float]]:
    out = []
    for off, row in sorted(buckets.items()):
        value = row[2] / row[3] if agg == "avg" else float(row[AGG_INDEX[agg]])
        out.append((MS + off, value))
    return out


@pytest.mark.parametrize("agg", ["avg", "min", "max", "sum", "count", "last"])
@pytest.mark.parametrize("maintained", [False, True], ids=["on-the-fly", "rolled-up"])
def test_rollups_across_bucket_edges(
    edges: SQLMetricsStore, clock: ManualClock, agg: str, maintained: bool
) -> None:
    if maintained:
        counts = edges.maintain(clock.now())
        # Host b has one bucket each; the hour from 08:00 is still open at 09:00 (the 5-minute
        # mark is at 08:55), so the 1-hour answer for it is made from 5-minute buckets.
        assert counts["rollup_5m"] == 5 and counts["rollup_1h"] == 2
        assert counts["moved"] == len(EDGES) + 1

    five = points(edges, MS, MS + 2 * HOUR, resolution="5m", agg=agg)
    hour = points(edges, MS, MS + 2 * HOUR, resolution="1h", agg=agg)

    assert five["a"] == expected(FIVE_MIN_EXPECTED, agg)
    assert hour["a"] == expected(HOUR_EXPECTED, agg)
    assert five["b"] == [(MS + 5 * MIN, 1.0 if agg == "count" else 100.0)]


def test_rollup_tables_hold_min_max_sum_count_last(edges: SQLMetricsStore, clock: ManualClock) -> None:
    edges.maintain(clock.now() + timedelta(hours=1))  # both hours closed
    a = next(r[0] for r in table(edges.db, MetricSeries) if r[2] == {"host": "a"})

    five = {r[1] - MS: r[2:] for r in table(edges.db, MetricRollup5m) if r[0] == a}
    hour = {r[1] - MS: r[2:] for r in table(edges.db, MetricRollup1h) if r[0] == a}

    assert five == FIVE_MIN_EXPECTED
    assert hour == HOUR_EXPECTED


def test_maintain_is_incremental_and_idempotent(edges: SQLMetricsStore, clock: ManualClock) -> None:
    edges.maintain(clock.now())
    before = [table(edges.db, m) for m in (MetricSample, MetricRollup5m, MetricRollup1h, MetricRollupMark)]

    again = edges.maintain(clock.now())

    assert again["moved"] == 0
    assert again["rollup_1h"] <= 3  # only the lookback window is rebuilt, with the same values
    assert [
        table(edges.db, m) for m in (MetricSample, MetricRollup5m, MetricRollup1h, MetricRollupMark)
    ] == before

    # Next hour: only new buckets (and the lookback window) are built.
    edges.write([s(MS + 2 * HOUR + 10 * MIN, 42.0)])
    clock.advance(hours=1)
    counts = edges.maintain(clock.now())
    assert counts["moved"] == 1
    marks = dict(table(edges.db, MetricRollupMark))
    assert marks == {"5m": to_ms(clock.now()) - 5 * MIN, "1h": to_ms(clock.now()) - HOUR}
    assert points(edges, MS + 2 * HOUR, MS + 3 * HOUR, resolution="5m") == {
        "a": [(MS + 2 * HOUR + 10 * MIN, 42.0)]
    }


def test_open_buckets_wait_and_late_samples_in_the_lookback_are_counted(
    store: SQLMetricsStore, clock: ManualClock
) -> None:
    now = to_ms(clock.now())
    store.write([s(now - 2 * MIN, 1.0), s(now - 30 * SEC, 2.0)])  # the open bucket [now-5m, now)

    counts = store.maintain(clock.now())

    assert counts["moved"] == 0  # not closed (and 60 s of grace): stays in the buffer
    assert table(store.db, MetricRollup5m) == []
    assert points(store, now - 5 * MIN, now, resolution="5m") == {"a": [(now - 5 * MIN, 1.5)]}

    clock.advance(minutes=10)
    store.maintain(clock.now())
    store.write([s(now - 4 * MIN, 6.0)])  # late, but within the 15-minute lookback
    clock.advance(minutes=5)
    store.maintain(clock.now())

    assert [r[2:] for r in table(store.db, MetricRollup5m)] == [(1.0, 6.0, 9.0, 3, 2.0)]


def test_resolution_is_picked_from_range_and_step(store: SQLMetricsStore, clock: ManualClock) -> None:
    now = clock.now()
    pick = store.pick_resolution

    assert pick(now - timedelta(hours=6), now, None) == "raw"
    assert pick(now - timedelta(days=2), now, None) == "5m"
    assert pick(now - timedelta(days=40), now, None) == "1h"
    assert pick(now - timedelta(hours=1), now, 60) == "raw"
    assert pick(now - timedelta(hours=1), now, 300) == "5m"
    assert pick(now - timedelta(hours=1), now, 3600) == "1h"
    assert pick(now - timedelta(days=8), now - timedelta(days=8) + timedelta(hours=1), 60) == "5m"
    assert pick(now - timedelta(days=100), now - timedelta(days=99), None) == "1h"


def test_step_merges_points_into_aligned_steps(edges: SQLMetricsStore) -> None:
    raw = points(edges, MS, MS + 10 * MIN, step=600, agg="max")
    auto = edges.query_range("cpu", {"host": "a"}, at(MS), at(MS + 2 * HOUR), 3600)

    assert raw == {"a": [(MS, 10.0)], "b": [(MS, 100.0)]}
    assert auto[0].resolution == "1h"
    assert auto[0].points == [(MS, 5.0), (MS + HOUR, -0.5)]


def test_bad_query_arguments(store: SQLMetricsStore) -> None:
    for kwargs, field in [
        ({"step": 0}, "step"),
        ({"agg": "median"}, "agg"),
        ({"resolution": "1m"}, "resolution"),
    ]:
        with pytest.raises(OpsdeskError) as e:
            store.query_range("cpu", None, T0, T0 + timedelta(hours=1), **kwargs)
        assert e.value.errors[0].field == field
    with pytest.raises(OpsdeskError) as e:
        store.query_range("cpu", None, T0, T0 - timedelta(seconds=1))
    assert e.value.errors[0].field == "end"


# --- retention -----------------------------------------------------------------------------------


def test_retention_per_resolution_then_the_series_goes(store: SQLMetricsStore, clock: ManualClock) -> None:
    store.write([s(MS, 1.0), s(MS + SEC, 3.0)])
    store.maintain(clock.now())

    counts = store.maintain(T0 + timedelta(days=8))
    assert counts["deleted_raw"] == 2 and counts["deleted_5m"] == 0
    assert table(store.db, MetricSample) == []
    assert points(store, MS, MS + HOUR, resolution="5m") == {"a": [(MS, 2.0)]}

    counts = store.maintain(T0 + timedelta(days=91))
    assert counts["deleted_5m"] == 1 and counts["deleted_1h"] == 0
    assert points(store, MS, MS + HOUR, resolution="5m") == {}
    assert points(store, MS, MS + HOUR, resolution="1h") == {"a": [(MS, 2.0)]}

    counts = store.maintain(T0 + timedelta(days=401))
    assert counts["deleted_1h"] == 1 and counts["deleted_series"] == 1
    assert table(store.db, MetricSeries) == []

    # The writer's cache was dropped with the series: writing again recreates it.
    store.write([s(MS + 401 * DAY, 5.0)])
    assert len(table(store.db, MetricSeries)) == 1


def test_retention_never_deletes_what_is_not_rolled_up(store: SQLMetricsStore) -> None:
    store.write([s(MS, 1.0)])

    counts = store.maintain(T0 + timedelta(days=30))  # first run, long after: rolls up, then deletes

    assert counts["rollup_5m"] == 1 and counts["deleted_raw"] == 1
    assert points(store, MS, MS + HOUR, resolution="5m") == {"a": [(MS, 1.0)]}


def test_retention_settings_and_factory(db: Database, clock: ManualClock, tmp_path: Any) -> None:
    settings = Settings(data_dir=tmp_path, metrics_raw_retention_days=1, metrics_5m_retention_days=2)
    store = make_store(settings, db, clock=clock)
    assert isinstance(store, SQLMetricsStore)
    store.write([s(MS, 1.0)])
    store.maintain(clock.now())

    assert store.maintain(T0 + timedelta(days=1, hours=1))["deleted_raw"] == 1
    assert store.maintain(T0 + timedelta(days=2, hours=2))["deleted_5m"] == 1
    assert store.pick_resolution(T0, T0 + timedelta(hours=1), None) == "raw"
