"""HTML page of the metrics store: ``GET /metrics/explore``, the metrics explorer (viewer role).

The samples that Prometheus scrapes and SNMP checks store (each labelled ``job=<monitor name>``)
shown as charts. The form (a GET, so every view is a link) takes:

- ``name``: the metric, with autocomplete from the names the store knows (a datalist);
- ``job``: the monitor whose samples to show (an exact match on the ``job`` label);
- ``filters``: label filters, one per line (or comma separated, or a pasted PromQL ``{...}``):
  ``label=value``, ``label!=value``, ``label=~regex``, ``label!~regex``; an unquoted value after
  ``=`` also takes the matcher syntax of :mod:`opsdesk.metrics.store` (``!v``, ``~re``, ``!~re``),
  a double-quoted value is literal;
- ``range``: 1h, 6h, 24h, 7d or 30d back from now (default 1h), read with a fixed step per range
  (15 s, 1 min, 4 min, 30 min, 2 h: a few hundred points per line), so the store picks raw samples
  up to 24 h, 5-minute rollups for 7 days and 1-hour rollups for 30 days;
- ``agg``: how the samples within one step combine (avg, min, max, sum, count, last).

With a name: one uPlot chart with a line per series (the first :data:`MAX_LINES`; the page says
how many were left out), each named by the labels that tell the series apart (the labels all of
them share are shown once above), the resolution read, a table of the series with their last
value, and the label values of the series found as links that add a filter. With no name (or a
name no series has): the metric names known, grouped by their first word, with their number of
series, each a link that shows it; filtered by the job and label filters.

Bad input (a bad name, regex or filter line, an unknown range or aggregation, too many points)
re-renders the form with the message next to its field and status 422; an unreachable remote
store is said above the form, with status 502; nothing is a 500. Each page reads the series list
once (for the names and the datalist), so it costs about what ``/api/v1/metrics/series`` does.
"""

from __future__ import annotations

import itertools
import json
import math
import re
import statistics
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, cast
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from opsdesk.core.actor import Role
from opsdesk.core.errors import OpsdeskError
from opsdesk.metrics.api import get_store
from opsdesk.metrics.samples import Labels
from opsdesk.metrics.store import AGGS, LABEL_NAME, METRIC_NAME, Agg, MetricsStore, Series, parse_matchers
from opsdesk.web.deps import Ctx, page
from opsdesk.web.render import render

router = APIRouter(include_in_schema=False)

# range -> (label, span, step in seconds). The steps keep a line at a few hundred points at most.
RANGES: dict[str, tuple[str, timedelta, int]] = {
    "1h": ("last hour", timedelta(hours=1), 15),
    "6h": ("last 6 hours", timedelta(hours=6), 60),
    "24h": ("last 24 hours", timedelta(hours=24), 240),
    "7d": ("last 7 days", timedelta(days=7), 1800),
    "30d": ("last 30 days", timedelta(days=30), 7200),
}
DEFAULT_RANGE = "1h"
RESOLUTION_TEXT = {
    "raw": "raw samples",
    "5m": "5-minute rollups",
    "1h": "1-hour rollups",
    "remote": "remote store",
}
MAX_LINES = 20  # series drawn in the chart
MAX_SERIES = 2_000  # series one query may find
MAX_POINTS = 200_000  # points one query may read
SERIES_SCAN = 50_000  # series read to list the metric names
MAX_DATALIST = 1_000  # names offered for autocomplete
MAX_NAMES_LISTED = 400  # names listed when no name is chosen
MAX_LABEL_VALUES = 12  # values shown per label in "narrow by label"
NAME_MAX = 200
JOB_MAX = 200
FILTERS_MAX = 4_000
PALETTE = [
    "#0172ad", "#d9480f", "#2b8a3e", "#c2255c", "#6741d9", "#e67700", "#0c8599", "#5c940d",
    "#a61e4d", "#1864ab", "#862e9c", "#087f5b", "#f08c00", "#364fc7", "#c92a2a", "#495057",
    "#74b816", "#9c36b5", "#1098ad", "#e8590c",
]  # fmt: skip
_OP = r"(?:!=|=~|!~|=)"
ITEM = re.compile(rf"(?P<label>[^=!~]*?)\s*(?P<op>{_OP})\s*(?P<value>.*)", re.S)
NEXT_ITEM = re.compile(rf"\s*[a-zA-Z_][a-zA-Z0-9_]*\s*{_OP}")
FILTER_HELP = "one per line: label=value, label!=value, label=~regex, label!~regex"


@dataclass
class Explore:
    """What the form asked for, as typed (so a page with errors shows it again)."""

    name: str = ""
    job: str = ""
    filters: str = ""
    range: str = DEFAULT_RANGE
    agg: str = "avg"

    def url(self, **changes: str) -> str:
        values = {
            "name": self.name,
            "job": self.job,
            "filters": self.filters,
            "range": self.range,
            "agg": self.agg,
        }
        values.update(changes)
        if values["range"] == DEFAULT_RANGE:
            values["range"] = ""
        if values["agg"] == "avg":
            values["agg"] = ""
        query = urlencode({k: v for k, v in values.items() if v})
        return "/metrics/explore" + (f"?{query}" if query else "")


@dataclass
class Result:
    series_found: int
    shown: list[dict[str, Any]]
    left_out: int
    resolution: str
    common: list[tuple[str, str]]
    narrow: list[dict[str, Any]]
    chart: dict[str, Any]
    points: int = 0


@dataclass
class Page:
    q: Explore
    errors: dict[str, str] = field(default_factory=dict)
    result: Result | None = None
    message: str = ""
    names: list[tuple[str, list[tuple[str, int]]]] | None = None
    names_total: int = 0
    names_note: str = ""
    datalist: list[str] = field(default_factory=list)


# --- reading the form ----------------------------------------------------------------------------


def _items(line: str) -> list[str]:
    """A line split at the commas that start another ``label op value`` (outside quotes)."""
    out, start, quoted, i = [], 0, False, 0
    while i < len(line):
        ch = line[i]
        if quoted:
            if ch == "\\":
                i += 1
            elif ch == '"':
                quoted = False
        elif ch == '"':
            quoted = True
        elif ch == "," and NEXT_ITEM.match(line, i + 1):
            out.append(line[start:i])
            start = i + 1
        i += 1
    out.append(line[start:])
    return [x.strip() for x in out if x.strip()]


def _spec(op: str, value: str) -> str:
    """A PromQL-style operator and value as the store's matcher string."""
    quoted = value.startswith('"')
    if quoted:
        if len(value) < 2 or not value.endswith('"'):
            raise ValueError("a quoted value must end with its quote")
        try:
            value = str(json.loads(value))
        except ValueError:
            raise ValueError('a quoted value must end with its quote; escape quotes inside as \\"') from None
    if op == "=":
        return "=" + value if quoted else value
    if op == "!=":
        # "!~..." would read as a regex: a value starting with ~ is matched as an escaped regex.
        return "!~" + re.escape(value) if value.startswith("~") else "!" + value
    return ("~" if op == "=~" else "!~") + value


def parse_filters(text: str) -> tuple[dict[str, str], str]:
    """The label filters typed into the form as store matchers, and the error message (or "")."""
    matchers: dict[str, str] = {}
    problems: list[str] = []
    body = text.strip()
    if body.startswith("{") and body.endswith("}"):
        body = body[1:-1]
    lines = body.splitlines()
    for number, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        where = f"line {number}" if len(lines) > 1 else "filter"
        for item in _items(line):
            found = ITEM.fullmatch(item)
            if found is None:
                problems.append(f"{where}: “{item}” is not label=value (e.g. env=prod or host=~web-.*)")
                continue
            label, op, value = found.group("label").strip(), found.group("op"), found.group("value").strip()
            if label == "__name__":
                problems.append(f"{where}: the metric name goes in the Metric field")
                continue
            if not LABEL_NAME.fullmatch(label):
                shown = f"“{label}”" if label else "nothing"
                problems.append(f"{where}: {shown} before {op} is not a label name (letters, digits and _)")
                continue
            if label in matchers:
                problems.append(f"{where}: the label {label} is filtered twice")
                continue
            try:
                spec = _spec(op, value)
                parse_matchers({label: spec})
            except ValueError as exc:
                problems.append(f"{where} ({label}): {exc}")
                continue
            except OpsdeskError as exc:
                message = exc.errors[0].message if exc.errors else exc.detail
                problems.append(f"{where} ({label}): {message}")
                continue
            matchers[label] = spec
    return matchers, "; ".join(problems)


def _filter_line(label: str, value: str) -> str:
    """The filter line that matches exactly this label value."""
    plain = value == value.strip() and value[:1] not in ("!", "~", "=", '"', "") and "," not in value
    return f"{label}={value}" if plain else f"{label}={json.dumps(value, ensure_ascii=False)}"


def read_form(request: Request) -> tuple[Explore, dict[str, str], dict[str, str]]:
    """The form's values, the errors by field, and the matchers (job and filters together)."""
    params = request.query_params
    q = Explore(
        name=params.get("name", "").strip(),
        job=params.get("job", "").strip(),
        filters="\n".join(x for x in params.getlist("filters") if x.strip()).replace("\r\n", "\n"),
        range=params.get("range", "").strip() or DEFAULT_RANGE,
        agg=params.get("agg", "").strip() or "avg",
    )
    errors: dict[str, str] = {}
    if len(q.name) > NAME_MAX:
        errors["name"] = f"at most {NAME_MAX} characters"
    elif q.name and not METRIC_NAME.fullmatch(q.name):
        errors["name"] = "not a metric name: letters, digits, _ and :, not starting with a digit"
    if len(q.job) > JOB_MAX:
        errors["job"] = f"at most {JOB_MAX} characters"
    if q.range not in RANGES:
        errors["range"] = f"choose one of {', '.join(RANGES)}"
    if q.agg not in AGGS:
        errors["agg"] = f"choose one of {', '.join(AGGS)}"
    matchers: dict[str, str] = {}
    if len(q.filters) > FILTERS_MAX:
        errors["filters"] = f"at most {FILTERS_MAX:,} characters"
    else:
        matchers, problem = parse_filters(q.filters)
        if problem:
            errors["filters"] = problem
    if q.job:
        if "job" in matchers:
            errors["filters"] = "the job is also given in the Job field: give it once"
        else:
            matchers["job"] = "=" + q.job
    return q, errors, matchers


# --- building the page ---------------------------------------------------------------------------


def number_text(v: float) -> str:
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    if v.is_integer() and abs(v) < 1e15:
        return f"{int(v):,}"
    if abs(v) >= 1000:
        return f"{v:,.1f}"
    if abs(v) >= 0.01:
        return f"{v:.3f}".rstrip("0").rstrip(".")
    return f"{v:.3g}"


def _labels_text(pairs: list[tuple[str, str]] | Labels) -> str:
    return ", ".join(f"{k}={v}" for k, v in pairs)


def _gap_seconds(points: list[tuple[int, float]], step: int) -> float:
    """How far apart two points of a series may be and still be joined by its line: 2.5 times its
    usual spacing, so one missed scrape is bridged and a longer outage shows as a gap."""
    if len(points) < 2:
        return float(step)
    spacing = statistics.median(b[0] - a[0] for a, b in itertools.pairwise(points)) / 1000
    return max(2.5 * spacing, 2.0 * step)


def _finite(v: float) -> float | None:
    return v if math.isfinite(v) else None


def build_result(
    name: str, found: list[Series], step: int, filtered: set[str] | frozenset[str] = frozenset()
) -> Result:
    shown = found[:MAX_LINES]
    keys = sorted({k for s in shown for k, _ in s.labels})
    label_maps = [dict(s.labels) for s in shown]
    differing = [k for k in keys if len({m.get(k, "") for m in label_maps}) > 1]
    common = [(k, label_maps[0][k]) for k in keys if k not in differing and k in label_maps[0]]
    xs = sorted({ts for s in shown for ts, _ in s.points})
    index = {ts: i for i, ts in enumerate(xs)}
    lines, ys, rows = [], [], []
    for i, (s, labels) in enumerate(zip(shown, label_maps, strict=True)):
        color = PALETTE[i % len(PALETTE)]
        if len(shown) == 1:
            legend = _labels_text(s.labels) or name
        else:
            legend = _labels_text([(k, labels.get(k, "")) for k in differing])
        y: list[float | None] = [None] * len(xs)
        for ts, v in s.points:
            y[index[ts]] = _finite(v)
        ys.append(y)
        lines.append({"label": legend, "unit": "", "color": color, "gap": _gap_seconds(s.points, step)})
        last_ts, last = s.points[-1]
        rows.append(
            {
                "legend": legend,
                "labels": _labels_text(s.labels),
                "color": color,
                "last": number_text(last),
                "last_at": datetime.fromtimestamp(last_ts / 1000, UTC),
                "points": len(s.points),
            }
        )
    values: dict[str, Counter[str]] = {}
    for s in found:
        for k, value in s.labels:
            values.setdefault(k, Counter())[value] += 1
    narrow = [
        {
            "label": k,
            "pairs": sorted(c.items())[:MAX_LABEL_VALUES],
            "more": max(0, len(c) - MAX_LABEL_VALUES),
        }
        for k, c in sorted(values.items())
        if k not in filtered and (len(c) > 1 or sum(c.values()) < len(found))
    ]
    return Result(
        series_found=len(found),
        shown=rows,
        left_out=len(found) - len(shown),
        resolution=found[0].resolution,
        common=common,
        narrow=narrow,
        chart={"series": lines, "x": [ts / 1000 for ts in xs], "y": ys, "si": True},
        points=sum(len(s.points) for s in found),
    )


def group_names(counts: dict[str, int]) -> list[tuple[str, list[tuple[str, int]]]]:
    """Names grouped by their first word (``node_cpu_seconds_total`` under ``node``); groups of
    one name go together under "other", last."""
    groups: dict[str, list[tuple[str, int]]] = {}
    for name in sorted(counts):
        head = name.split("_", 1)[0] or name
        groups.setdefault(head, []).append((name, counts[name]))
    out = [(head, items) for head, items in groups.items() if len(items) > 1]
    other = [item for items in groups.values() if len(items) == 1 for item in items]
    if other:
        out.append(("other", other))
    return out


def _name_counts(store: MetricsStore, matchers: dict[str, str]) -> tuple[Counter[str], bool]:
    found = store.series("", matchers, limit=SERIES_SCAN + 1)
    return Counter(name for name, _ in found[:SERIES_SCAN]), len(found) > SERIES_SCAN


def _list_names(p: Page, counts: Counter[str], truncated: bool, containing: str = "") -> None:
    names = sorted(counts)
    if containing:
        near = [n for n in names if containing.lower() in n.lower()]
        names = near or names
    p.names_total = len(names)
    listed = names[:MAX_NAMES_LISTED]
    p.names = group_names({n: counts[n] for n in listed})
    notes = []
    if len(names) > len(listed):
        notes.append(
            f"{len(names) - len(listed):,} more names not listed: type part of one in the Metric field"
        )
    if truncated:
        notes.append(f"only the first {SERIES_SCAN:,} series were read")
    p.names_note = "; ".join(notes)


def explore(
    ctx: Ctx, store: MetricsStore, q: Explore, errors: dict[str, str], matchers: dict[str, str]
) -> Page:
    p = Page(q=q, errors=errors)
    if "filters" in errors or "job" in errors:
        return p
    counts, truncated = _name_counts(store, matchers)
    p.datalist = sorted(counts)[:MAX_DATALIST]
    if errors:
        return p
    if not q.name:
        _list_names(p, counts, truncated)
        return p
    _label, span, step = RANGES[q.range]
    end = ctx.now()
    found = store.query_range(q.name, matchers, end - span, end, step, agg=cast(Agg, q.agg))
    points = sum(len(s.points) for s in found)
    if len(found) > MAX_SERIES or points > MAX_POINTS:
        errors["filters"] = (
            f"too many points: {len(found):,} series with {points:,} points, more than {MAX_POINTS:,} "
            f"(or {MAX_SERIES:,} series): add label filters or choose a shorter range"
        )
        return p
    if found:
        p.result = build_result(q.name, found, step, set(matchers))
        return p
    known = store.series(q.name, matchers, limit=1)
    if known and known[0][0] == q.name:
        p.message = f"{q.name} has no samples in the {RANGES[q.range][0]}: choose a longer range."
    else:
        where = " with these filters" if matchers else ""
        p.message = f"No series called {q.name}{where}."
        _list_names(p, counts, truncated, containing=q.name)
    return p


def _field_of(exc: OpsdeskError) -> str:
    f = exc.errors[0].field if exc.errors else "form"
    if f in ("name", "agg", "range"):
        return f
    if f in ("start", "end", "step"):
        return "range"
    return "filters" if f != "form" else "form"


@router.get("/metrics/explore", response_class=HTMLResponse)
def metrics_explore(request: Request, ctx: Ctx = Depends(page(Role.viewer))) -> HTMLResponse:
    q, errors, matchers = read_form(request)
    try:
        p = explore(ctx, get_store(request), q, errors, matchers)
    except OpsdeskError as exc:
        if exc.status not in (400, 422, 502):
            raise
        field_name = _field_of(exc)
        if field_name == "form" or not exc.errors:
            errors[field_name] = exc.detail
        elif field_name == "filters":
            errors[field_name] = f"{exc.errors[0].field}: {exc.errors[0].message}"
        else:
            errors[field_name] = exc.errors[0].message
        p = Page(q=q, errors=errors)
        status = exc.status
    else:
        status = 422 if p.errors else 200
    return render(
        request,
        ctx,
        "metrics/explore.html",
        status_code=status,
        nav="metrics",
        p=p,
        q=q,
        errors=p.errors,
        ranges=[(key, label) for key, (label, _, _) in RANGES.items()],
        aggs=AGGS,
        range_label=RANGES[q.range][0] if q.range in RANGES else "",
        step_text=_step_text(RANGES[q.range][2]) if q.range in RANGES else "",
        resolution_text=RESOLUTION_TEXT,
        filter_help=FILTER_HELP,
        filter_line=_filter_line,
    )


def _step_text(seconds: int) -> str:
    if seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    if seconds % 60 == 0:
        return f"{seconds // 60} min"
    return f"{seconds} s"
