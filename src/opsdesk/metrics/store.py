"""The metrics store interface, label matchers, and the factory that picks a store from settings.

Two stores implement :class:`MetricsStore`:

- :class:`opsdesk.metrics.sqlstore.SQLMetricsStore` (the default): samples in the opsdesk database,
  raw plus 5-minute and 1-hour rollups, each with its own retention.
- :class:`opsdesk.metrics.remote.PrometheusRemoteStore`: remote-write to a Prometheus-compatible
  server (Prometheus, VictoriaMetrics, Mimir...) and reads through its HTTP query API; chosen when
  ``metrics_remote_write_url`` and ``metrics_remote_query_url`` are both set.

Conventions shared by both:

- Timestamps are milliseconds since the Unix epoch (UTC) in samples and in results; ``start`` and
  ``end`` of a query are timezone-aware datetimes and both ends are inclusive.
- **Matchers** are a ``dict`` from label name to a string whose first characters choose the
  operator, like PromQL's ``=``, ``!=``, ``=~``, ``!~``:

  ============  ==================================================
  ``"v"``        the label equals ``v``
  ``"!v"``       the label does not equal ``v``
  ``"~re"``      the label matches the regular expression (fully anchored)
  ``"!~re"``     the label does not match it
  ``"=v"``       the label equals ``v`` exactly (to match a value that starts with ``!``/``~``/``=``)
  ============  ==================================================

  As in PromQL, a missing label matches as the empty string. Regexes are Python's ``re`` on the
  SQL store and RE2 on a remote store; keep to the common subset.
- ``NaN`` values (Prometheus staleness markers included) are not stored by the SQL store.
- Query results are a list of :class:`Series`, sorted by labels, each with points sorted by time.
  ``agg`` says how points are combined when several samples fall into one step or rollup bucket:
  ``avg`` (default), ``min``, ``max``, ``sum``, ``count`` or ``last``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Literal, NamedTuple, Protocol, get_args

from opsdesk.core.errors import invalid
from opsdesk.metrics.samples import Labels, Sample

if TYPE_CHECKING:
    from opsdesk.core.clock import Clock
    from opsdesk.core.db import Database
    from opsdesk.core.settings import Settings

Agg = Literal["avg", "min", "max", "sum", "count", "last"]
AGGS: tuple[str, ...] = get_args(Agg)
Resolution = Literal["raw", "5m", "1h"]
RESOLUTIONS: tuple[str, ...] = get_args(Resolution)

METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


@dataclass(slots=True)
class Series:
    """One series of a query result. ``resolution`` is where the points came from: ``raw``,
    ``5m``, ``1h`` (SQL store) or ``remote``."""

    name: str
    labels: Labels
    points: list[tuple[int, float]] = field(default_factory=list)
    resolution: str = "raw"


class Matcher(NamedTuple):
    label: str
    op: Literal["=", "!=", "=~", "!~"]
    value: str
    regex: re.Pattern[str] | None

    def matches(self, labels: Mapping[str, str]) -> bool:
        got = labels.get(self.label, "")
        if self.regex is not None:
            hit = self.regex.fullmatch(got) is not None
            return hit if self.op == "=~" else not hit
        return (got == self.value) if self.op == "=" else (got != self.value)


def parse_matchers(matchers: Mapping[str, str] | None) -> list[Matcher]:
    """Matchers in the ``dict`` form described above; raises a 422 :class:`OpsdeskError` naming
    the label for a bad label name or regex."""
    out: list[Matcher] = []
    for label, spec in (matchers or {}).items():
        if not LABEL_NAME.fullmatch(label) or label == "__name__":
            raise invalid(label, "not a valid label name (the metric name is given separately)")
        op: Literal["=", "!=", "=~", "!~"]
        if spec.startswith("!~"):
            op, value = "!~", spec[2:]
        elif spec.startswith("!"):
            op, value = "!=", spec[1:]
        elif spec.startswith("~"):
            op, value = "=~", spec[1:]
        elif spec.startswith("="):
            op, value = "=", spec[1:]
        else:
            op, value = "=", spec
        regex = None
        if op in ("=~", "!~"):
            try:
                regex = re.compile(value)
            except re.error as e:
                raise invalid(label, f"not a valid regular expression: {e}") from None
        out.append(Matcher(label, op, value, regex))
    return out


def matches_all(matchers: Sequence[Matcher], labels: Mapping[str, str]) -> bool:
    return all(m.matches(labels) for m in matchers)


class MetricsStore(Protocol):
    """Where samples go and where charts, SLOs and reports read them from."""

    def write(self, samples: Sequence[Sample]) -> int:
        """Store a batch (hundreds to tens of thousands of samples); returns how many were stored.
        A sample for a (series, timestamp) already stored replaces it: the last value wins."""
        ...

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
        """The series called ``name`` that match ``matchers``, with their points in [start, end].
        ``step`` (seconds) gives one point per step, aligned to multiples of the step since the
        epoch; ``None`` gives the stored points. The resolution is picked from the range and step
        unless given (the SQL store only)."""
        ...

    def series(
        self, name_prefix: str = "", matchers: Mapping[str, str] | None = None, *, limit: int = 10_000
    ) -> list[tuple[str, Labels]]:
        """Known series whose name starts with ``name_prefix`` and that match ``matchers``,
        sorted by name and labels, at most ``limit``."""
        ...

    def maintain(self, now: datetime) -> dict[str, int]:
        """Housekeeping to run periodically: build rollups, apply retention. Returns counts."""
        ...

    def close(self) -> None: ...


def make_store(settings: Settings, db: Database | None = None, *, clock: Clock | None = None) -> MetricsStore:
    """The remote store when both remote URLs are set, else the SQL store on ``db``."""
    if settings.metrics_remote_write_url or settings.metrics_remote_query_url:
        if not (settings.metrics_remote_write_url and settings.metrics_remote_query_url):
            raise ValueError("set both metrics_remote_write_url and metrics_remote_query_url, or neither")
        from opsdesk.metrics.remote import PrometheusRemoteStore

        return PrometheusRemoteStore.from_settings(settings)
    if db is None:
        raise ValueError("the SQL metrics store needs the database")
    from opsdesk.metrics.sqlstore import SQLMetricsStore

    return SQLMetricsStore.from_settings(settings, db, clock=clock)
