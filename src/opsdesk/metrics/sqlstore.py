"""The built-in metrics store: time series in the opsdesk database (SQLite or PostgreSQL).

Tables (:mod:`opsdesk.metrics.models`, migration 0003):

- ``metric_series`` (id, name, labels JSON, series_key = blake2b-128 of name and sorted labels,
  unique): one row per series. Writers keep an in-memory ``(name, labels) -> id`` cache, so a
  batch costs one SELECT per 500 unseen series (plus one INSERT ... ON CONFLICT DO NOTHING and a
  re-SELECT for the new ones), and one statement for all its samples.
- ``metric_samples_recent`` (ts, series_id, value), primary key (ts, series_id): the write
  buffer, clustered by time, so a flush appends at one end of one B-tree.
- ``metric_samples`` (series_id, ts, value), primary key (series_id, ts): the raw samples,
  clustered per series for range reads. Writing here directly would dirty one page per series per
  flush (measured on SQLite with 20,000 series: ~60k samples/s, against ~600k/s for the buffer);
  :meth:`SQLMetricsStore.maintain` moves closed 5-minute buckets of the buffer here in series
  order instead, one page write per series per move.
- ``metric_rollups_5m`` and ``metric_rollups_1h`` (series_id, bucket start, min, max, sum, count,
  last value): 5-minute buckets built from raw samples, 1-hour buckets from 5-minute buckets, so
  both are exact (avg = sum / count).
- ``metric_rollup_marks`` (resolution, done_until): buckets before ``done_until`` are built.

All sample, buffer and rollup tables are ``WITHOUT ROWID`` on SQLite; timestamps are ms since
the epoch (UTC) everywhere.

Writing. A sample for a (series, ts) already stored replaces it: **the last value wins** (also
within one batch, in batch order, and over a sample already moved out of the buffer). ``NaN``
values (including Prometheus staleness markers) are skipped: SQLite cannot store them, and a gap
says the same. Samples whose name is empty or longer than 200 characters are skipped with a
warning. SQLite takes ``INSERT OR REPLACE`` through ``executemany``; PostgreSQL one ``INSERT ...
SELECT FROM unnest(arrays) ON CONFLICT DO UPDATE``. Call :meth:`SQLMetricsStore.write` from the
one writer of the database (the prober's batched flush); it is thread-safe, and blocking (call it
from a thread, not the event loop).

Housekeeping (:meth:`SQLMetricsStore.maintain`, to run every minute or so, from one process
only). A 5-minute bucket is closed once it ended ``grace_seconds`` (60 s) ago; then it is moved
out of the buffer and rolled up. Each run also rebuilds the buckets of the ``lookback_seconds``
(15 min) before its mark, so late or replaced samples of that window are counted; rebuilding is
an upsert of the same values, so running maintain twice changes nothing. Samples later than that
are stored and read at raw resolution but not counted in the rollups. Work is done in chunks (1
hour of raw data, 1 day of 5-minute buckets) of one transaction each, with the mark moved in the
same transaction, skipping stretches without data: a crash loses no progress and a long pause
costs no empty work. Retention deletes raw samples older than ``raw_retention_days`` (default 7),
5-minute buckets older than 90 days and 1-hour buckets older than 400 days, but never data a
rollup has yet to read. Series with no data left are deleted, and the writer cache is dropped
then (and every ``cache_ttl_seconds`` anyway). If maintain never runs, nothing is lost and
queries stay right, but the buffer grows and rollups are computed on every query.

Reading. :meth:`SQLMetricsStore.query_range` picks the resolution (unless told):

- with a ``step``: raw if step < 300 s and ``start`` is within raw retention, else 5-minute if
  step < 3600 s and ``start`` is within 5-minute retention, else 1-hour;
- without: raw if the range is at most 1 day and within raw retention, else 5-minute if it is at
  most 31 days and within 5-minute retention, else 1-hour.

Raw reads merge the buffer with the series-clustered table. Rollup buckets not built yet (the
last minutes, or everything before the first maintain) are computed from the finer data on the
fly, so a chart at any resolution reaches "now". Points of a rollup resolution are stamped with
the bucket start; with a ``step`` larger than the resolution, buckets are merged into steps
aligned to multiples of the step since the epoch (a step bucket starting before ``start`` is
included whole). Label matching is done in Python over the series of one name (see
:mod:`opsdesk.metrics.store`), so a name with very many series is slower to query.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from math import isnan
from operator import itemgetter
from typing import Any

import orjson
from sqlalchemy import Connection, select, text
from sqlalchemy.dialects import postgresql, sqlite

from opsdesk.core.clock import Clock, SystemClock
from opsdesk.core.db import Database
from opsdesk.core.errors import invalid
from opsdesk.core.settings import Settings
from opsdesk.metrics.models import (
    MetricRollup1h,
    MetricRollup5m,
    MetricRollupMark,
    MetricSample,
    MetricSampleRecent,
    MetricSeries,
)
from opsdesk.metrics.samples import Labels, Sample, labels_of
from opsdesk.metrics.store import (
    AGGS,
    RESOLUTIONS,
    Agg,
    Resolution,
    Series,
    matches_all,
    parse_matchers,
)

log = logging.getLogger("opsdesk.metrics")

SECOND = 1000
MINUTE = 60 * SECOND
FIVE_MINUTES = 5 * MINUTE
HOUR = 60 * MINUTE
DAY = 24 * HOUR
NAME_MAX = 200
CHUNK_IDS = 500  # ids per IN (...) list
MAINTAIN_COUNTS = (
    "moved",
    "rollup_5m",
    "rollup_1h",
    "deleted_raw",
    "deleted_5m",
    "deleted_1h",
    "deleted_series",
)

_KEY, _TS, _VALUE = itemgetter(0, 1), itemgetter(2), itemgetter(3)

# (ts, min, max, sum, count, last): a raw sample or a rollup bucket, the unit of folding.
Row = tuple[int, float, float, float, int, float]


def series_key(name: str, labels: Labels) -> str:
    return hashlib.blake2b(orjson.dumps([name, labels]), digest_size=16).hexdigest()


def to_ms(when: datetime) -> int:
    if when.tzinfo is None:
        raise ValueError("naive datetime given to the metrics store")
    return int(when.timestamp() * 1000)


def _floor(ts: int, width: int) -> int:
    return ts - ts % width


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _value(agg: str, mn: float, mx: float, sm: float, n: int, last: float) -> float:
    if agg == "avg":
        return sm / n
    if agg == "min":
        return mn
    if agg == "max":
        return mx
    if agg == "sum":
        return sm
    if agg == "count":
        return float(n)
    return last


def fold(rows: Iterable[Row], width: int, agg: str) -> list[tuple[int, float]]:
    """Merge time-sorted rows into buckets of ``width`` ms aligned to the epoch."""
    out: list[tuple[int, float]] = []
    cur = -1
    amn = amx = asm = alast = 0.0
    an = 0
    for ts, mn, mx, sm, n, last in rows:
        b = ts - ts % width
        if b != cur:
            if an:
                out.append((cur, _value(agg, amn, amx, asm, an, alast)))
            cur, amn, amx, asm, an, alast = b, mn, mx, sm, n, last
        else:
            if mn < amn:
                amn = mn
            if mx > amx:
                amx = mx
            asm += sm
            an += n
            alast = last
    if an:
        out.append((cur, _value(agg, amn, amx, asm, an, alast)))
    return out


# --- rollup statements ---------------------------------------------------------------------------
# The series table drives the join so that each series' range is read through the primary key
# (SQLite needs CROSS JOIN to keep that order; PostgreSQL plans it itself). The trailing
# "WHERE true" keeps SQLite's parser from reading ON CONFLICT as a join constraint.

_ROLLUP_5M = """
INSERT INTO metric_rollups_5m (series_id, bucket, min_value, max_value, sum_value, sample_count, last_value)
SELECT a.series_id, a.bucket, a.mn, a.mx, a.sm, a.n, s.value
FROM (
    SELECT m.series_id AS series_id, m.ts - (m.ts % 300000) AS bucket, MIN(m.value) AS mn,
           MAX(m.value) AS mx, SUM(m.value) AS sm, COUNT(*) AS n, MAX(m.ts) AS last_ts
    FROM metric_series ser {join} metric_samples m ON m.series_id = ser.id
    WHERE m.ts >= :lo AND m.ts < :hi
    GROUP BY m.series_id, m.ts - (m.ts % 300000)
) a JOIN metric_samples s ON s.series_id = a.series_id AND s.ts = a.last_ts
WHERE true
ON CONFLICT (series_id, bucket) DO UPDATE SET
    min_value = excluded.min_value, max_value = excluded.max_value, sum_value = excluded.sum_value,
    sample_count = excluded.sample_count, last_value = excluded.last_value
"""

_ROLLUP_1H = """
INSERT INTO metric_rollups_1h (series_id, bucket, min_value, max_value, sum_value, sample_count, last_value)
SELECT a.series_id, a.bucket, a.mn, a.mx, a.sm, a.n, r.last_value
FROM (
    SELECT f.series_id AS series_id, f.bucket - (f.bucket % 3600000) AS bucket,
           MIN(f.min_value) AS mn, MAX(f.max_value) AS mx, SUM(f.sum_value) AS sm,
           SUM(f.sample_count) AS n, MAX(f.bucket) AS last_bucket
    FROM metric_series ser {join} metric_rollups_5m f ON f.series_id = ser.id
    WHERE f.bucket >= :lo AND f.bucket < :hi
    GROUP BY f.series_id, f.bucket - (f.bucket % 3600000)
) a JOIN metric_rollups_5m r ON r.series_id = a.series_id AND r.bucket = a.last_bucket
WHERE true
ON CONFLICT (series_id, bucket) DO UPDATE SET
    min_value = excluded.min_value, max_value = excluded.max_value, sum_value = excluded.sum_value,
    sample_count = excluded.sample_count, last_value = excluded.last_value
"""

_PG_INSERT_SAMPLES = """
INSERT INTO metric_samples_recent (ts, series_id, value)
SELECT DISTINCT ON (t.ts, t.series_id) t.ts, t.series_id, t.value
FROM unnest(%s::bigint[], %s::integer[], %s::float8[]) WITH ORDINALITY AS t(ts, series_id, value, ord)
ORDER BY t.ts, t.series_id, t.ord DESC
ON CONFLICT (ts, series_id) DO UPDATE SET value = excluded.value
"""

_PG_INSERT_SERIES = """
INSERT INTO metric_series (name, labels, series_key)
SELECT t.n, t.l::jsonb, t.k
FROM unnest(CAST(:n AS text[]), CAST(:l AS text[]), CAST(:k AS text[])) AS t(n, l, k)
ON CONFLICT (series_key) DO NOTHING
"""
_PG_LOOKUP_SERIES = "SELECT series_key, id FROM metric_series WHERE series_key = ANY(CAST(:keys AS text[]))"

_SQLITE_INSERT_SAMPLES = (
    "INSERT OR REPLACE INTO metric_samples_recent (ts, series_id, value) VALUES (?, ?, ?)"
)

# Moving the buffer into the series-clustered table, in series order: each series' page is
# written once per move, with all its samples of the slice.
_COMPACT = """
INSERT INTO metric_samples (series_id, ts, value)
SELECT series_id, ts, value FROM metric_samples_recent WHERE ts >= :lo AND ts < :hi
ORDER BY series_id, ts
ON CONFLICT (series_id, ts) DO UPDATE SET value = excluded.value
"""
_COMPACT_DELETE = "DELETE FROM metric_samples_recent WHERE ts >= :lo AND ts < :hi"

# The first timestamp at or after :a, per series through the primary key (no index on time).
_NEXT_TS = {
    "metric_samples_recent": "SELECT MIN(ts) FROM metric_samples_recent WHERE ts >= :a",
    "metric_samples": (
        "SELECT MIN((SELECT MIN(m.ts) FROM metric_samples m WHERE m.series_id = s.id AND m.ts >= :a)) "
        "FROM metric_series s"
    ),
    "metric_rollups_5m": (
        "SELECT MIN((SELECT MIN(f.bucket) FROM metric_rollups_5m f WHERE f.series_id = s.id "
        "AND f.bucket >= :a)) FROM metric_series s"
    ),
}
_DELETE_OLD = "DELETE FROM {table} WHERE series_id IN (SELECT id FROM metric_series) AND {col} < :cut"
_DELETE_EMPTY_SERIES = """
DELETE FROM metric_series WHERE
    NOT EXISTS (SELECT 1 FROM metric_samples m WHERE m.series_id = metric_series.id)
    AND metric_series.id NOT IN (SELECT b.series_id FROM metric_samples_recent b)
    AND NOT EXISTS (SELECT 1 FROM metric_rollups_5m f WHERE f.series_id = metric_series.id)
    AND NOT EXISTS (SELECT 1 FROM metric_rollups_1h h WHERE h.series_id = metric_series.id)
"""


class SQLMetricsStore:
    """See the module docstring. One instance per process; share it between threads."""

    def __init__(
        self,
        db: Database,
        *,
        clock: Clock | None = None,
        raw_retention_days: int = 7,
        rollup_5m_retention_days: int = 90,
        rollup_1h_retention_days: int = 400,
        grace_seconds: int = 60,
        lookback_seconds: int = 900,
        cache_ttl_seconds: float = 86_400,
        max_cached_series: int = 1_000_000,
    ) -> None:
        self.db = db
        self.clock: Clock = clock or SystemClock()
        self.raw_retention_ms = raw_retention_days * DAY
        self.rollup_5m_retention_ms = rollup_5m_retention_days * DAY
        self.rollup_1h_retention_ms = rollup_1h_retention_days * DAY
        self.grace_ms = grace_seconds * SECOND
        self.lookback_ms = _floor(lookback_seconds * SECOND, FIVE_MINUTES)
        self.cache_ttl_seconds = cache_ttl_seconds
        self.max_cached_series = max_cached_series
        self._sqlite = db.is_sqlite
        self._join = "CROSS JOIN" if self._sqlite else "JOIN"
        self._cache: dict[tuple[str, Labels], int] = {}
        self._cache_born = time.monotonic()
        self._lock = threading.Lock()

    @classmethod
    def from_settings(
        cls, settings: Settings, db: Database, *, clock: Clock | None = None
    ) -> SQLMetricsStore:
        return cls(
            db,
            clock=clock,
            raw_retention_days=settings.metrics_raw_retention_days,
            rollup_5m_retention_days=settings.metrics_5m_retention_days,
            rollup_1h_retention_days=settings.metrics_1h_retention_days,
        )

    # --- writing ---------------------------------------------------------------------------------

    def write(self, samples: Sequence[Sample]) -> int:
        if not samples:
            return 0
        with self._lock:
            if (
                time.monotonic() - self._cache_born > self.cache_ttl_seconds
                or len(self._cache) > self.max_cached_series
            ):
                self._clear_cache()
            # The common case (every series known, no NaN) runs in C: map/zip, no Python loop.
            sids = list(map(self._cache.get, map(_KEY, samples)))
            unknown: list[Sample] = []
            rows: list[tuple[int, int, float]]
            if None not in sids and not any(map(isnan, map(_VALUE, samples))):
                rows = list(zip(map(_TS, samples), sids, map(_VALUE, samples), strict=True))  # type: ignore[arg-type]
            else:
                rows = []
                for sid, s in zip(sids, samples, strict=True):
                    if sid is None:
                        unknown.append(s)
                    elif s[3] == s[3]:  # not NaN
                        rows.append((s[2], sid, s[3]))
            append = rows.append
            new_ids: dict[tuple[str, Labels], int] = {}
            with self.db.engine.begin() as conn:
                if unknown:
                    new_ids = self._resolve(conn, {s[:2] for s in unknown})
                    for s in unknown:
                        sid = new_ids.get(s[:2])
                        if sid is not None and s[3] == s[3]:
                            append((s[2], sid, s[3]))
                if rows:
                    self._insert(conn, rows)
            self._cache.update(new_ids)  # only once committed
            return len(rows)

    def _clear_cache(self) -> None:
        self._cache = {}
        self._cache_born = time.monotonic()

    def _insert(self, conn: Connection, rows: list[tuple[int, int, float]]) -> None:
        cur = conn.connection.cursor()
        try:
            if self._sqlite:
                cur.executemany(_SQLITE_INSERT_SAMPLES, rows)
            else:
                cur.execute(
                    _PG_INSERT_SAMPLES,
                    ([r[0] for r in rows], [r[1] for r in rows], [float(r[2]) for r in rows]),
                )
        finally:
            cur.close()

    def _resolve(self, conn: Connection, keys: Iterable[tuple[str, Labels]]) -> dict[tuple[str, Labels], int]:
        """Ids of these series, creating the missing ones."""
        by_key: dict[str, tuple[str, Labels]] = {}
        for name, labels in keys:
            if len(name) > NAME_MAX or not name:
                log.warning("metrics: skipping samples of a series with a bad name: %.80r", name)
                continue
            by_key[series_key(name, labels)] = (name, labels)
        found = self._lookup(conn, list(by_key))
        missing = [k for k in by_key if k not in found]
        if missing:
            if self._sqlite:
                conn.execute(
                    sqlite.insert(MetricSeries).on_conflict_do_nothing(index_elements=["series_key"]),
                    [{"name": by_key[k][0], "labels": dict(by_key[k][1]), "series_key": k} for k in missing],
                )
            else:  # one statement, not one per series
                names = [by_key[k][0] for k in missing]
                docs = [orjson.dumps(dict(by_key[k][1])).decode() for k in missing]
                conn.execute(text(_PG_INSERT_SERIES), {"n": names, "l": docs, "k": missing})
            found.update(self._lookup(conn, missing))
        return {by_key[k]: sid for k, sid in found.items()}

    def _lookup(self, conn: Connection, keys: list[str]) -> dict[str, int]:
        if not self._sqlite:
            return {k: sid for k, sid in conn.execute(text(_PG_LOOKUP_SERIES), {"keys": keys})}
        found: dict[str, int] = {}
        for chunk in _chunks(keys, CHUNK_IDS):
            q = select(MetricSeries.series_key, MetricSeries.id).where(MetricSeries.series_key.in_(chunk))
            found.update({k: sid for k, sid in conn.execute(q)})
        return found

    # --- reading ---------------------------------------------------------------------------------

    def pick_resolution(self, start: datetime, end: datetime, step: int | None) -> Resolution:
        """The resolution :meth:`query_range` reads for this range and step (see module doc)."""
        now = to_ms(self.clock.now())
        lo, span = to_ms(start), to_ms(end) - to_ms(start)
        raw_ok = lo >= now - self.raw_retention_ms
        five_ok = lo >= now - self.rollup_5m_retention_ms
        if step is not None:
            if step < 300 and raw_ok:
                return "raw"
            if step < 3600 and five_ok:
                return "5m"
            return "1h"
        if span <= DAY and raw_ok:
            return "raw"
        if span <= 31 * DAY and five_ok:
            return "5m"
        return "1h"

    def query_range(
        self,
        name: str,
        matchers: Mapping[str, str] | None,
        start: datetime,
        end: datetime,
        step: int | None = None,
        *,
        agg: Agg = "avg",
        resolution: Resolution | None = None,
    ) -> list[Series]:
        ms = parse_matchers(matchers)
        if agg not in AGGS:
            raise invalid("agg", f"must be one of {', '.join(AGGS)}")
        if resolution is not None and resolution not in RESOLUTIONS:
            raise invalid("resolution", f"must be one of {', '.join(RESOLUTIONS)}")
        if step is not None and step < 1:
            raise invalid("step", "must be at least 1 second")
        lo, hi = to_ms(start), to_ms(end)
        if hi < lo:
            raise invalid("end", "must not be before start")
        res: Resolution = resolution or self.pick_resolution(start, end, step)
        native = {"raw": 0, "5m": FIVE_MINUTES, "1h": HOUR}[res]
        width = max(native, (step or 0) * SECOND)
        lo_a = _floor(lo, width) if width else lo

        with self.db.engine.connect() as conn:
            wanted = self._series_for(conn, name, ms)
            if not wanted:
                return []
            ids = list(wanted)
            marks = self._marks(conn)
            wm5, wm1h = marks.get("5m", 0), marks.get("1h", 0)
            rows: dict[int, list[Row]] = {sid: [] for sid in ids}
            if res == "1h":
                self._rollup_rows(conn, MetricRollup1h, ids, lo_a, min(hi, wm1h - 1), rows)
                self._rollup_rows(conn, MetricRollup5m, ids, max(lo_a, wm1h), min(hi, wm5 - 1), rows)
                self._raw_rows(conn, ids, max(lo_a, wm5), hi, rows)
            elif res == "5m":
                self._rollup_rows(conn, MetricRollup5m, ids, lo_a, min(hi, wm5 - 1), rows)
                self._raw_rows(conn, ids, max(lo_a, wm5), hi, rows)
            else:
                self._raw_rows(conn, ids, lo_a, hi, rows)

        out: list[Series] = []
        for sid, (sname, labels) in wanted.items():
            got = rows[sid]
            if not got:
                continue
            points = [(r[0], r[5]) for r in got] if width == 0 else fold(got, width, agg)
            out.append(Series(sname, labels, points, res))
        out.sort(key=lambda x: x.labels)
        return out

    def _series_for(self, conn: Connection, name: str, ms: Sequence[Any]) -> dict[int, tuple[str, Labels]]:
        q = select(MetricSeries.id, MetricSeries.labels).where(MetricSeries.name == name)
        return {sid: (name, labels_of(labels)) for sid, labels in conn.execute(q) if matches_all(ms, labels)}

    @staticmethod
    def _raw_rows(conn: Connection, ids: list[int], lo: int, hi: int, into: dict[int, list[Row]]) -> None:
        """Raw samples in [lo, hi]: the series-clustered table plus the write buffer (which
        holds the newer value when both have one timestamp)."""
        if hi < lo:
            return
        t = MetricSample.__table__.c
        b = MetricSampleRecent.__table__.c
        for chunk in _chunks(ids, CHUNK_IDS):
            q = (
                select(t.series_id, t.ts, t.value)
                .where(t.series_id.in_(chunk), t.ts >= lo, t.ts <= hi)
                .order_by(t.series_id, t.ts)
            )
            for sid, ts, v in conn.execute(q):
                into[sid].append((ts, v, v, v, 1, v))
            q = (
                select(b.series_id, b.ts, b.value)
                .where(b.ts >= lo, b.ts <= hi, b.series_id.in_(chunk))
                .order_by(b.series_id, b.ts)
            )
            buffered: dict[int, list[Row]] = {}
            for sid, ts, v in conn.execute(q):
                buffered.setdefault(sid, []).append((ts, v, v, v, 1, v))
            for sid, extra in buffered.items():
                have = into[sid]
                if have and have[-1][0] >= extra[0][0]:  # interleaved in time: merge, buffer wins
                    merged = {r[0]: r for r in have}
                    merged.update((r[0], r) for r in extra)
                    have[:] = sorted(merged.values())
                else:
                    have.extend(extra)

    @staticmethod
    def _rollup_rows(
        conn: Connection,
        model: type[MetricRollup5m] | type[MetricRollup1h],
        ids: list[int],
        lo: int,
        hi: int,
        into: dict[int, list[Row]],
    ) -> None:
        if hi < lo:
            return
        t = model.__table__.c
        for chunk in _chunks(ids, CHUNK_IDS):
            q = (
                select(
                    t.series_id, t.bucket, t.min_value, t.max_value, t.sum_value, t.sample_count, t.last_value
                )
                .where(t.series_id.in_(chunk), t.bucket >= lo, t.bucket <= hi)
                .order_by(t.series_id, t.bucket)
            )
            for sid, *row in conn.execute(q):
                into[sid].append(tuple(row))

    def series(
        self, name_prefix: str = "", matchers: Mapping[str, str] | None = None, *, limit: int = 10_000
    ) -> list[tuple[str, Labels]]:
        ms = parse_matchers(matchers)
        q = select(MetricSeries.name, MetricSeries.labels)
        if name_prefix:
            q = q.where(MetricSeries.name.startswith(name_prefix, autoescape=True))
        with self.db.engine.connect() as conn:
            found = [(name, labels_of(labels)) for name, labels in conn.execute(q) if matches_all(ms, labels)]
        found.sort()
        return found[:limit]

    # --- housekeeping ----------------------------------------------------------------------------

    @staticmethod
    def _marks(conn: Connection) -> dict[str, int]:
        q = select(MetricRollupMark.resolution, MetricRollupMark.done_until)
        return {r: d for r, d in conn.execute(q)}

    def _set_mark(self, conn: Connection, resolution: str, done_until: int) -> None:
        ins = (sqlite.insert if self._sqlite else postgresql.insert)(MetricRollupMark).values(
            resolution=resolution, done_until=done_until
        )
        conn.execute(
            ins.on_conflict_do_update(
                index_elements=["resolution"], set_={"done_until": ins.excluded.done_until}
            )
        )

    def maintain(self, now: datetime) -> dict[str, int]:
        """Move closed buckets out of the write buffer, build the closed rollup buckets and
        apply retention. Returns row counts: ``moved`` (samples out of the buffer),
        ``rollup_5m`` / ``rollup_1h`` (buckets written, rebuilt ones included), ``deleted_raw``,
        ``deleted_5m``, ``deleted_1h``, ``deleted_series``."""
        now_ms = to_ms(now)
        counts = dict.fromkeys(MAINTAIN_COUNTS, 0)
        with self.db.engine.connect() as conn:
            marks = self._marks(conn)
        wm5, wm1h = marks.get("5m"), marks.get("1h")
        hi5 = _floor(now_ms - self.grace_ms, FIVE_MINUTES)

        # 1. The write buffer's closed buckets into the series-clustered table; what is newer
        #    waits for the next run.
        def move(conn: Connection, a: int, b: int) -> int:
            n = int(conn.execute(text(_COMPACT), {"lo": a, "hi": b}).rowcount)
            conn.execute(text(_COMPACT_DELETE), {"lo": a, "hi": b})
            return n

        counts["moved"] = self._sweep("metric_samples_recent", 0, hi5, FIVE_MINUTES, HOUR, move)

        # 2. 5-minute buckets from raw samples, rebuilding the lookback window before the mark.
        #    The marks stay unset until there is data, so a first backfill is rolled up whole.
        sql5 = text(_ROLLUP_5M.format(join=self._join))

        def roll5(conn: Connection, a: int, b: int) -> int:
            n = int(conn.execute(sql5, {"lo": a, "hi": b}).rowcount)
            self._set_mark(conn, "5m", max(wm5 or 0, b))
            return n

        lo5 = 0 if wm5 is None else wm5 - self.lookback_ms
        counts["rollup_5m"] = self._sweep("metric_samples", lo5, hi5, FIVE_MINUTES, HOUR, roll5)
        if (wm5 is not None or counts["rollup_5m"]) and hi5 > (wm5 or 0):
            wm5 = hi5
            with self.db.engine.begin() as conn:
                self._set_mark(conn, "5m", wm5)

        # 3. 1-hour buckets from 5-minute buckets, up to the last hour the 5-minute mark covers.
        if wm5 is not None:
            hi1 = _floor(wm5, HOUR)
            sql1 = text(_ROLLUP_1H.format(join=self._join))

            def roll1(conn: Connection, a: int, b: int) -> int:
                n = int(conn.execute(sql1, {"lo": a, "hi": b}).rowcount)
                self._set_mark(conn, "1h", max(wm1h or 0, b))
                return n

            lo1 = 0 if wm1h is None else _floor(min(wm1h, wm5 - self.lookback_ms), HOUR)
            counts["rollup_1h"] = self._sweep("metric_rollups_5m", lo1, hi1, HOUR, DAY, roll1)
            if (wm1h is not None or counts["rollup_1h"]) and hi1 > (wm1h or 0):
                wm1h = hi1
                with self.db.engine.begin() as conn:
                    self._set_mark(conn, "1h", wm1h)

        # 4. Retention, never deleting what a rollup has yet to read or may rebuild.
        cuts = {"deleted_1h": ("metric_rollups_1h", "bucket", now_ms - self.rollup_1h_retention_ms)}
        if wm5 is not None:
            cut = min(now_ms - self.raw_retention_ms, wm5 - self.lookback_ms)
            cuts["deleted_raw"] = ("metric_samples", "ts", cut)
        if wm1h is not None:
            cut = min(now_ms - self.rollup_5m_retention_ms, wm1h - HOUR)
            cuts["deleted_5m"] = ("metric_rollups_5m", "bucket", cut)
        for key, (table, col, cut) in cuts.items():
            with self.db.engine.begin() as conn:
                sql = text(_DELETE_OLD.format(table=table, col=col))
                counts[key] = int(conn.execute(sql, {"cut": cut}).rowcount)
        if counts["deleted_raw"] or counts["deleted_5m"] or counts["deleted_1h"]:
            with self._lock, self.db.engine.begin() as conn:
                counts["deleted_series"] = int(conn.execute(text(_DELETE_EMPTY_SERIES)).rowcount)
                if counts["deleted_series"]:
                    self._clear_cache()
        return counts

    def _sweep(
        self,
        table: str,
        lo: int,
        hi: int,
        align: int,
        chunk: int,
        work: Callable[[Connection, int, int], int],
    ) -> int:
        """Run ``work(conn, a, b)`` over [lo, hi) in chunks of at most ``chunk`` ms, one
        transaction each, skipping stretches where ``table`` holds no data."""
        done = 0
        a = lo
        while a < hi:
            with self.db.engine.connect() as conn:
                nxt = conn.execute(text(_NEXT_TS[table]), {"a": a}).scalar()
            if nxt is None or nxt >= hi:
                break
            a = max(a, _floor(int(nxt), align))
            b = min(a + chunk, hi)
            with self.db.engine.begin() as conn:
                done += work(conn, a, b)
            a = b
        return done

    def close(self) -> None:
        with self._lock:
            self._clear_cache()
