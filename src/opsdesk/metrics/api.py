"""JSON API of the metrics store: ``/api/v1/metrics/series`` and ``/api/v1/metrics/query_range``.

Both need the viewer role. Label matchers are the query parameters that are not the route's own
(``?host=web-1&env=!staging&path=~/api/.*``), with the value syntax of
:mod:`opsdesk.metrics.store` (``v``, ``!v``, ``~re``, ``!~re``, ``=v``); each label at most once.
Times (``start``, ``end``) are RFC 3339 with a timezone (``2026-03-02T09:00:00Z``) or Unix
seconds; ``end`` defaults to now and ``start`` to one hour before ``end``. Non-finite values are
``null`` in the JSON. A name no series has (or no ``name``) answers an empty result.

Bounds, each a 422 problem naming the field: a range of at most 400 days; with a ``step``, at
most 11,000 points per series (as Prometheus); at most 2,000 series and 1,000,000 points in one
answer (add matchers, a step or a shorter range). An unreachable remote store is a 502 problem.

The store is ``app.state.metrics_store`` when the runtime set one, else one made from the
settings on first use (and kept there).
"""

from __future__ import annotations

import math
import threading
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Query, Request, Response

from opsdesk.core.errors import invalid
from opsdesk.metrics.store import METRIC_NAME, Agg, MetricsStore, Resolution, make_store
from opsdesk.web.deps import Ctx, api

router = APIRouter(prefix="/metrics", tags=["metrics"])

MAX_RANGE = timedelta(days=400)
MAX_POINTS_PER_SERIES = 11_000
MAX_SERIES = 2_000
MAX_POINTS = 1_000_000
QUERY_RANGE_PARAMS = {"name", "start", "end", "step", "agg", "resolution"}
SERIES_PARAMS = {"match", "limit"}

_lock = threading.Lock()


def get_store(request: Request) -> MetricsStore:
    state = request.app.state
    store: MetricsStore | None = getattr(state, "metrics_store", None)
    if store is None:
        with _lock:
            store = getattr(state, "metrics_store", None)
            if store is None:
                store = make_store(state.settings, state.db, clock=state.clock)
                state.metrics_store = store
    return store


def _json(body: Any) -> Response:
    # orjson writes NaN and the infinities as null.
    return Response(orjson.dumps(body), media_type="application/json")


def _matchers(request: Request, own: set[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in request.query_params.multi_items():
        if key in own:
            continue
        if key in out:
            raise invalid(key, "give each label matcher once")
        out[key] = value
    return out


def _time(field: str, raw: str | None, default: datetime) -> datetime:
    if raw is None or raw == "":
        return default
    try:
        seconds = float(raw)
    except ValueError:
        pass
    else:
        if not math.isfinite(seconds) or not 0 <= seconds < 253402300800:
            raise invalid(field, "Unix seconds out of range")
        return datetime.fromtimestamp(seconds, UTC)
    try:
        when = datetime.fromisoformat(raw)
    except ValueError:
        raise invalid(field, "not an RFC 3339 time or Unix seconds") from None
    if when.tzinfo is None:
        raise invalid(field, "give a timezone (Z or +hh:mm)")
    return when.astimezone(UTC)


def _iso(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


@router.get("/series")
def list_series(
    request: Request,
    ctx: Ctx = Depends(api()),
    match: Annotated[str, Query(max_length=200, description="Metric name prefix")] = "",
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> Response:
    """Known series whose name starts with ``match``; other parameters are label matchers."""
    matchers = _matchers(request, SERIES_PARAMS)
    found = get_store(request).series(match, matchers, limit=limit + 1)
    return _json(
        {
            "series": [{"name": name, "labels": dict(labels)} for name, labels in found[:limit]],
            "truncated": len(found) > limit,
        }
    )


@router.get("/query_range")
def query_range(
    request: Request,
    ctx: Ctx = Depends(api()),
    name: Annotated[str, Query(max_length=200, description="Metric name")] = "",
    start: Annotated[str | None, Query(description="RFC 3339 or Unix seconds; default end - 1h")] = None,
    end: Annotated[str | None, Query(description="RFC 3339 or Unix seconds; default now")] = None,
    step: Annotated[int | None, Query(ge=1, le=31 * 86400, description="Seconds per point")] = None,
    agg: Annotated[Agg, Query(description="How samples in one step or bucket combine")] = "avg",
    resolution: Annotated[Resolution | None, Query(description="Force raw, 5m or 1h")] = None,
) -> Response:
    """Points of the series called ``name`` in [start, end]; other parameters are label matchers."""
    matchers = _matchers(request, QUERY_RANGE_PARAMS)
    t_end = _time("end", end, ctx.now())
    t_start = _time("start", start, t_end - timedelta(hours=1))
    if t_end < t_start:
        raise invalid("end", "must not be before start")
    if t_end - t_start > MAX_RANGE:
        raise invalid("start", f"the range is longer than {MAX_RANGE.days} days")
    if step is not None:
        n = int((t_end - t_start).total_seconds() // step) + 1
        if n > MAX_POINTS_PER_SERIES:
            too_many = f"{n} points per series is more than {MAX_POINTS_PER_SERIES}"
            raise invalid("step", f"{too_many}: give a larger step or a shorter range")
    if name and not METRIC_NAME.fullmatch(name):
        raise invalid("name", "not a valid metric name ([a-zA-Z_:][a-zA-Z0-9_:]*)")
    body: dict[str, Any] = {
        "name": name,
        "start": _iso(t_start),
        "end": _iso(t_end),
        "step": step,
        "agg": agg,
        "resolution": None,
        "series": [],
    }
    if not name:
        return _json(body)
    found = get_store(request).query_range(
        name, matchers, t_start, t_end, step, agg=agg, resolution=resolution
    )
    if len(found) > MAX_SERIES:
        raise invalid("name", f"{len(found)} series match, more than {MAX_SERIES}: add label matchers")
    total = sum(len(x.points) for x in found)
    if total > MAX_POINTS:
        too_many = f"{total} points is more than {MAX_POINTS}"
        raise invalid("step", f"{too_many}: give a step, matchers or a shorter range")
    body["resolution"] = found[0].resolution if found else None
    body["series"] = [{"name": x.name, "labels": dict(x.labels), "points": x.points} for x in found]
    return _json(body)
