"""Tables of the built-in SQL metrics store (see :mod:`opsdesk.metrics.sqlstore` for the design).

Compact on purpose: a sample is (series_id, ts, value) in a table clustered on its primary key
(``WITHOUT ROWID`` on SQLite), so a series' range is one contiguous B-tree walk. The sample and
rollup tables carry no foreign key to ``metric_series``: checking one per inserted row would cost
the hot path, and a series row is only deleted once no table holds data for it any more.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, Double, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from opsdesk.core.db import Base


class MetricSeries(Base):
    """One series: a metric name and a label set, with a short id the samples refer to."""

    __tablename__ = "metric_series"
    __table_args__ = (Index("ix_metric_series_name", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    labels: Mapped[dict[str, Any]]
    # blake2b-128 (hex) of the name and the sorted labels: the unique identity of the series.
    series_key: Mapped[str] = mapped_column(String(32), unique=True)


class MetricSample(Base):
    """A raw sample. ``ts`` is milliseconds since the Unix epoch (UTC)."""

    __tablename__ = "metric_samples"
    __table_args__ = {"sqlite_with_rowid": False}

    series_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    ts: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    value: Mapped[float] = mapped_column(Double)


class MetricSampleRecent(Base):
    """The write buffer: samples as written, clustered by time, so a flush of one sample per
    series appends to one end of one B-tree instead of dirtying one page per series.
    ``maintain`` moves closed 5-minute buckets of it into ``metric_samples`` in bulk."""

    __tablename__ = "metric_samples_recent"
    __table_args__ = {"sqlite_with_rowid": False}

    ts: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    series_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    value: Mapped[float] = mapped_column(Double)


class _RollupColumns:
    """One bucket of one series: ``bucket`` is the bucket's start in ms since the epoch."""

    series_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    bucket: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    min_value: Mapped[float] = mapped_column(Double)
    max_value: Mapped[float] = mapped_column(Double)
    sum_value: Mapped[float] = mapped_column(Double)
    sample_count: Mapped[int] = mapped_column(Integer)
    last_value: Mapped[float] = mapped_column(Double)  # the value of the latest sample in the bucket


class MetricRollup5m(_RollupColumns, Base):
    __tablename__ = "metric_rollups_5m"
    __table_args__ = {"sqlite_with_rowid": False}


class MetricRollup1h(_RollupColumns, Base):
    __tablename__ = "metric_rollups_1h"
    __table_args__ = {"sqlite_with_rowid": False}


class MetricRollupMark(Base):
    """How far each rollup has been built: buckets before ``done_until`` (ms) are complete."""

    __tablename__ = "metric_rollup_marks"

    resolution: Mapped[str] = mapped_column(String(8), primary_key=True)  # "5m" or "1h"
    done_until: Mapped[int] = mapped_column(BigInteger)
