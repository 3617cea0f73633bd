"""HTML pages for monitors.

- ``GET /monitors``: one page of 50 monitors, filtered (state tab, search, type, service), sorted
  and counted in the database by ``service.list_page``; each row has a 90-day uptime bar read from
  ``monitor_daily`` for that page's monitors only (one query), so the page costs the same at 10 or
  10,000 monitors.
- ``GET /monitors/new`` and the edit form on the detail page: the fields of each check type are
  generated from its pydantic ``config_model`` (see :func:`config_fields`), so a check type
  registered in ``checks/`` gets its form with no change here. Switching the type fetches the
  fields from ``/monitors/new/fields`` (htmx); without JavaScript a "Choose type" button reloads.
- ``GET /monitors/{id}``: state, availability / downtime / outages / response-time percentiles
  for 24 h, 7 d, 30 d and a chosen range, the latency chart, the state history, rule findings,
  per-location state, and for heartbeats the ping URL with curl examples.

The colours of the uptime bar, per UTC day, from the share of that day's checks that succeeded:
green 100 %; light green 99.9 % or more (a blip: one failed check of 1,440 is 99.93 %); amber
99 % or more (at most about 15 minutes of failures in the day); red below 99 %; grey when the
monitor ran no check that day.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

import yaml
from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, Response
from markupsafe import Markup, escape
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from opsdesk.alerts.models import Severity
from opsdesk.cmdb import service as cmdb
from opsdesk.core.actor import Role
from opsdesk.core.errors import OpsdeskError
from opsdesk.monitoring import service, stats
from opsdesk.monitoring.checks import REGISTRY, CheckType, get_check_type
from opsdesk.monitoring.checks.base import CheckConfig
from opsdesk.monitoring.models import LOCAL, CheckResult, LocationState, Monitor
from opsdesk.monitoring.schemas import MonitorIn, MonitorUpdate
from opsdesk.web.deps import Ctx, PathId, QueryId, page
from opsdesk.web.render import back, render

router = APIRouter()

PAGE_SIZE = 50
BAR_DAYS = 90
STATES = ["down", "unreachable", "degraded", "up", "unknown", "paused"]
UPTIME_RANGES = [("24 hours", timedelta(hours=24)), ("7 days", timedelta(days=7)),
                 ("30 days", timedelta(days=30))]  # fmt: skip
MAX_RANGE_DAYS = 400
COMMON_FIELDS = (
    "name",
    "target",
    "interval_seconds",
    "timeout_seconds",
    "failures_before_down",
    "service_id",
    "severity",
)
# What the target of each built-in type looks like. A new type may declare ``target_placeholder``
# and ``target_help`` class attributes instead; without them it gets the generic description.
TARGET_HINTS: dict[str, tuple[str, str]] = {
    "http": ("https://example.org/health", "The URL to request (http:// or https://)."),
    "tcp": ("db1.example.org:5432", "host:port; up when a connection opens."),
    "tls": ("example.org:443", "host or host:port (default 443) whose certificate is checked."),
    "ping": ("10.0.0.1", "A host name or IP address."),
    "dns": ("example.org", "The name to resolve."),
    "heartbeat": ("nightly backup on db1", "Describes the job; nothing is contacted: the job calls in."),
    "prometheus": ("http://10.0.0.5:9100/metrics", "The exporter's metrics URL."),
    "snmp": ("switch1.example.org", "host or host:port (default 161)."),
}
GENERIC_TARGET_HELP = str(MonitorIn.model_fields["target"].description or "")


# --- small formatting helpers --------------------------------------------------------------------


def percent_text(value: float | None, perfect: bool = False) -> str:
    """A share shown with two decimals, rounded down so that 99.996 % never reads as 100 %."""
    if value is None:
        return "—"
    if perfect or value >= 100:
        return "100 %" if perfect else "99.99 %"
    return f"{math.floor(value * 100) / 100:.2f} %"


def duration_text(seconds: float) -> str:
    secs = round(seconds)
    if secs < 60:
        return f"{secs} s"
    days, rest = divmod(secs, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        return f"{days} d {hours} h" if hours else f"{days} d"
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{minutes} min"


def bar_class(checks: int, failures: int) -> str:
    if checks == 0:
        return "none"
    if failures == 0:
        return "ok"
    share = 100.0 * (checks - failures) / checks
    if share >= 99.9:
        return "minor"
    return "warn" if share >= 99.0 else "bad"


def day_title(d: stats.Day) -> str:
    if d.checks == 0:
        return f"{d.day.isoformat()}: no data"
    share = 100.0 * (d.checks - d.failures) / d.checks
    return (
        f"{d.day.isoformat()}: {percent_text(share, d.failures == 0)} "
        f"({d.failures:,} of {d.checks:,} checks failed)"
    )


def uptime_bar(days: list[stats.Day]) -> Markup:
    """The 90 day segments as flex items, oldest first, each with its tooltip (built here rather
    than in a template loop: 50 rows of 90 days is the bulk of the list page)."""
    checks = sum(d.checks for d in days)
    failures = sum(d.failures for d in days)
    label = "no data" if not checks else percent_text(stats.range_uptime(days), failures == 0)
    cells = "".join(
        f'<i class="{bar_class(d.checks, d.failures)}" title="{escape(day_title(d))}"></i>' for d in days
    )
    return Markup(
        f'<span class="uptime-bar" role="img" aria-label="{len(days)}-day uptime {label}">{cells}</span>'
    )


def range_uptime_text(days: list[stats.Day]) -> str:
    return percent_text(stats.range_uptime(days), not any(d.failures for d in days))


# --- the config form, generated from each check type's pydantic model ---------------------------

MISSING: Any = object()
SCALARS = {"string", "integer", "number", "boolean"}
UNITS = {"_ms": "ms", "_seconds": "s", "_bytes": "bytes", "_percent": "%", "_days": "days"}
ACRONYMS = {"json", "tls", "url", "ca", "dns", "http", "snmp", "oid", "rtt", "ip", "sni", "tcp", "api"}
LONG_TEXT = 2000  # strings allowed to be longer than this get a textarea


@dataclass
class ConfigField:
    """One field of a check type's config, as the form shows it.

    ``kind``: text | longtext (a textarea) | password | number | bool | select | multi (one value
    or a comma list) | lines (a list of plain values, one per line) | yaml (anything structured:
    YAML or JSON).
    """

    key: str
    kind: str
    label: str
    help: str = ""
    default: Any = None
    nullable: bool = False
    required: bool = False
    options: list[Any] = field(default_factory=list)
    attrs: dict[str, Any] = field(default_factory=dict)
    placeholder: str = ""
    secret: bool = False

    @property
    def input(self) -> str:
        return f"config.{self.key}"

    @property
    def wide(self) -> bool:
        return self.kind in ("yaml", "lines", "longtext")


def _label(key: str) -> str:
    unit = ""
    for suffix, name in UNITS.items():
        if key.endswith(suffix) and key != suffix[1:]:
            key, unit = key.removesuffix(suffix), f" ({name})"
            break
    words = [w.upper() if w in ACRONYMS else w for w in key.split("_") if w]
    if not words:
        return key
    text = " ".join(words)
    return text[:1].upper() + text[1:] + unit


def _resolve(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    for _ in range(10):
        if "$ref" in node:
            node = {
                **defs.get(node["$ref"].rsplit("/", 1)[-1], {}),
                **{k: v for k, v in node.items() if k != "$ref"},
            }
        elif "allOf" in node and len(node["allOf"]) == 1:
            node = {**_resolve(node["allOf"][0], defs), **{k: v for k, v in node.items() if k != "allOf"}}
        else:
            break
    return node


def _is_scalar(node: dict[str, Any], defs: dict[str, Any]) -> bool:
    node = _resolve(node, defs)
    if "anyOf" in node or "oneOf" in node:
        return all(_is_scalar(v, defs) for v in node.get("anyOf") or node.get("oneOf") or [])
    return node.get("type") in SCALARS or "enum" in node


def _skeleton(item: dict[str, Any], defs: dict[str, Any]) -> str:
    """A placeholder showing the shape of a list of objects: ``- oid: …`` lines."""
    props = list(item.get("properties", {}))
    keys = [k for k in item.get("required", []) if k in props] or props[:2]
    if not keys:
        return ""
    return "\n".join(("- " if i == 0 else "  ") + f"{k}: …" for i, k in enumerate(keys[:3]))


def _field_from_schema(
    key: str, prop: dict[str, Any], defs: dict[str, Any], *, required: bool, secret: bool
) -> ConfigField:
    variants = [_resolve(v, defs) for v in prop.get("anyOf") or prop.get("oneOf") or [_resolve(prop, defs)]]
    nullable = any(v.get("type") == "null" for v in variants)
    real = [v for v in variants if v.get("type") != "null"]
    notes: list[str] = []
    f = ConfigField(
        key=key, kind="yaml", label=_label(key), nullable=nullable, required=required, secret=secret
    )
    f.default = prop.get("default")
    if len(real) == 1:
        v = real[0]
        kind = v.get("type")
        if "enum" in v or "const" in v:
            f.kind = "select"
            f.options = list(v.get("enum") or [v.get("const")])
        elif kind == "boolean":
            f.kind = "bool"
        elif kind in ("integer", "number"):
            f.kind = "number"
            f.attrs["step"] = "1" if kind == "integer" else "any"
            if "minimum" in v:
                f.attrs["min"] = v["minimum"]
            if "maximum" in v:
                f.attrs["max"] = v["maximum"]
            if "exclusiveMinimum" in v:
                notes.append(f"more than {v['exclusiveMinimum']:g}")
            if "exclusiveMaximum" in v:
                notes.append(f"less than {v['exclusiveMaximum']:g}")
        elif kind == "string":
            f.kind = "longtext" if v.get("maxLength", LONG_TEXT) > LONG_TEXT else "text"
            if "maxLength" in v:
                f.attrs["maxlength"] = v["maxLength"]
        elif kind == "array":
            item = _resolve(v.get("items", {}), defs)
            if _is_scalar(item, defs):
                f.kind = "lines"
                if item.get("enum"):
                    notes.append("one of " + ", ".join(map(str, item["enum"])))
            else:
                f.placeholder = _skeleton(item, defs)
        elif kind == "object" and _resolve(v.get("additionalProperties") or {}, defs).get("type") in SCALARS:
            f.placeholder = "key: value"
    elif real and all(
        _is_scalar(v, defs) or (v.get("type") == "array" and _is_scalar(v.get("items", {}), defs))
        for v in real
    ):
        f.kind = "multi"
        if any(v.get("type") == "array" for v in real):
            f.attrs["list"] = True
            notes.append("several: separate them with commas")
    desc = str(prop.get("description") or "")
    if secret:
        f.kind = "password" if f.kind in ("text", "multi", "yaml") else f.kind
        notes = [] if "secret" in desc.lower() else ["secret: encrypted at rest"]
    elif f.kind == "yaml":
        notes.append("YAML or JSON")
    elif f.kind == "lines":
        notes.insert(0, "one per line")
    if not secret and f.kind not in ("bool", "select") and f.default not in (None, "", [], {}):
        notes.append(f"default {_display(f, f.default)}")
    f.help = " · ".join([x for x in [desc, *notes] if x])
    return f


def config_fields(check: CheckType) -> list[ConfigField]:
    """The form fields of a check type, in the order of its config model."""
    return list(_fields_of(check.config_model, tuple(check.secret_fields)))


@functools.lru_cache(maxsize=64)
def _fields_of(model: type[CheckConfig], secret_fields: tuple[str, ...]) -> tuple[ConfigField, ...]:
    schema = model.model_json_schema()
    defs = schema.get("$defs", {})
    required = set(schema.get("required", []))
    return tuple(
        _field_from_schema(key, prop, defs, required=key in required, secret=key in secret_fields)
        for key, prop in schema.get("properties", {}).items()
    )


def _display(f: ConfigField, value: Any) -> str:
    """A config value as the form's input shows it."""
    if value is None:
        return ""
    if f.kind == "lines" and isinstance(value, list):
        return "\n".join(str(x) for x in value)
    if f.kind == "multi" and isinstance(value, list):
        return ", ".join(str(x) for x in value)
    if f.kind == "yaml":
        if value in ({}, [], ""):
            return ""
        if not isinstance(value, dict | list):
            return str(value)
        return str(
            yaml.safe_dump(value, sort_keys=False, allow_unicode=True, default_flow_style=False)
        ).rstrip()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer() and f.attrs.get("step") == "1":
        return str(int(value))
    return str(value)


def _parse(f: ConfigField, values: list[str]) -> tuple[Any, str | None]:
    """A submitted field to its config value: (value or MISSING for "not given", error)."""
    if f.kind == "bool":
        return "true" in values, None
    raw = values[-1] if values else ""
    text = raw.strip()
    if not text:
        return MISSING, None
    if f.kind == "lines":
        return [line.strip() for line in raw.splitlines() if line.strip()], None
    if f.kind == "longtext":
        return raw.replace("\r\n", "\n"), None
    if f.kind == "yaml" or (f.kind == "multi" and text[:1] in "[{"):
        try:
            return yaml.safe_load(raw), None
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" (line {mark.line + 1})" if mark is not None else ""
            problem = getattr(exc, "problem", None) or "cannot parse"
            return MISSING, f"not valid YAML or JSON: {problem}{where}"
    if f.kind == "multi" and f.attrs.get("list") and "," in text:
        return [x.strip() for x in text.split(",") if x.strip()], None
    if f.kind == "select":
        for option in f.options:
            if str(option) == text:
                return option, None
    return text, None


def parse_config(
    check: CheckType, form: FormData, current: dict[str, Any] | None = None
) -> tuple[dict[str, Any], dict[str, str]]:
    """The config a submitted form describes, and the errors of fields that could not be read.

    On edit (``current`` given) a field the form did not send keeps its value, an emptied field
    goes back to its default, and an empty secret keeps the stored secret (the service fills it).
    """
    config = dict(current or {})
    errors: dict[str, str] = {}
    for f in config_fields(check):
        if f.input not in form:
            continue
        value, error = _parse(f, [str(v) for v in form.getlist(f.input)])
        if error:
            errors[f.input] = error
        elif value is MISSING:
            config.pop(f.key, None)
        else:
            config[f.key] = value
    for name in form.getlist("clear_secret"):
        if name in check.secret_fields:
            config[str(name)] = None
    return config, errors


def _field_views(
    check: CheckType,
    *,
    config: dict[str, Any] | None = None,
    submitted: FormData | None = None,
    errors: dict[str, str],
    secrets_set: list[str] | None = None,
) -> list[dict[str, Any]]:
    """What the template needs per field: the field, its shown value, its error."""
    views = []
    for f in config_fields(check):
        if submitted is not None and f.input in submitted:
            sent = [str(v) for v in submitted.getlist(f.input)]
            value = "" if f.secret else (sent[-1] if sent else "")
            checked = "true" in sent
        else:
            current = (config or {}).get(f.key, f.default) if config is not None else f.default
            value = "" if f.secret else _display(f, current)
            checked = bool(current)
        views.append(
            {
                "f": f,
                "value": value,
                "checked": checked,
                "error": errors.get(f.input, ""),
                "secret_set": f.secret and f.key in (secrets_set or []),
            }
        )
    return views


def config_summary(m: Monitor) -> list[tuple[str, str]]:
    """The check settings that differ from their defaults, secrets left out, for the facts list."""
    check = get_check_type(m.type)
    if check is None:
        return [(k, str(v)) for k, v in sorted(m.config.items()) if v not in (None, "", [], {})]
    out = []
    for f in config_fields(check):
        value = m.config.get(f.key, f.default)
        if f.secret or value in (None, "", [], {}) or value == f.default:
            continue
        text = " ".join(_display(f, value).split())
        out.append((f.key, text if len(text) <= 80 else text[:79] + "…"))
    return out


def _target_hint(name: str, check: CheckType) -> tuple[str, str]:
    placeholder, help_text = TARGET_HINTS.get(name, ("", GENERIC_TARGET_HELP))
    return (
        str(getattr(check, "target_placeholder", placeholder)),
        str(getattr(check, "target_help", help_text)),
    )


def type_form(
    name: str,
    *,
    config: dict[str, Any] | None = None,
    submitted: FormData | None = None,
    errors: dict[str, str] | None = None,
    secrets_set: list[str] | None = None,
    target: str = "",
) -> dict[str, Any]:
    """The context of ``_type_fields.html``: the type, its target hint and its config fields."""
    check = REGISTRY[name]
    placeholder, help_text = _target_hint(name, check)
    return {
        "type_name": name,
        "passive": check.passive,
        "target": target,
        "target_error": (errors or {}).get("target", ""),
        "target_placeholder": placeholder,
        "target_help": help_text,
        "fields": _field_views(
            check, config=config, submitted=submitted, errors=errors or {}, secrets_set=secrets_set
        ),
    }


def _type_names() -> list[str]:
    return sorted(REGISTRY)


def _common(form: FormData) -> dict[str, Any]:
    """The monitor's own fields from the form; on edit only those sent, and blank numbers are
    "not given" (the default on create, unchanged on edit)."""
    out: dict[str, Any] = {}
    for key in COMMON_FIELDS:
        if key not in form:
            continue
        value = str(form.get(key) or "").strip()
        if key == "service_id":
            out[key] = value or None
        elif key in ("name", "target") or value:
            out[key] = value
    return out


def _error_field(loc: str, shown: set[str]) -> tuple[str, str]:
    """A service error location (``config.oids.0.oid``) to the form field that shows it and the
    part of the location that is below that field."""
    parts = loc.split(".")
    if loc in ("config", "config."):  # the config as a whole (a rule across fields)
        return "form", ""
    if parts[0] == "config" and len(parts) > 1 and parts[1]:
        name = f"config.{parts[1]}"
        return (name, ".".join(parts[2:])) if name in shown else ("form", loc)
    return (parts[0], "") if parts[0] in shown else ("form", loc)


def _collect(exc: ValidationError | OpsdeskError, errors: dict[str, str], shown: set[str]) -> int:
    """Put the messages of ``exc`` next to their fields; return the status to answer with."""
    items: list[tuple[str, str]] = []
    if isinstance(exc, ValidationError):
        items = [(".".join(str(p) for p in e["loc"]) or "form", e["msg"]) for e in exc.errors()]
        status = 422
    else:
        if exc.status not in (400, 409, 422):
            raise exc
        status = exc.status
        items = [(fe.field, fe.message) for fe in exc.errors]
        if not items:
            items = [("name" if exc.status == 409 else "form", exc.detail)]
    for loc, message in items:
        msg = message.removeprefix("Value error, ")
        name, below = _error_field(loc, shown)
        text = f"{below}: {msg}" if below else msg
        if name in errors and name == "form":
            errors[name] = f"{errors[name]}; {text}"
        else:
            errors.setdefault(name, text)
    return status


def _shown_fields(check: CheckType) -> set[str]:
    return {*COMMON_FIELDS, *(f.input for f in config_fields(check))}


async def _form(request: Request) -> FormData:
    """The posted form, read in the event loop (the sync handler then runs in the thread pool)."""
    return await request.form()


PostedForm = Annotated[FormData, Depends(_form)]


# --- the list page -------------------------------------------------------------------------------


@dataclass
class Filters:
    status: str = ""
    q: str = ""
    type: str = ""
    service_id: int | None = None
    sort: str = "name"
    page: int = 1

    def url(self, **changes: Any) -> str:
        values = {
            "status": self.status,
            "q": self.q,
            "type": self.type,
            "service_id": self.service_id,
            "sort": self.sort,
            "page": self.page,
        }
        values.update(changes)
        if values["sort"] == "name":
            values["sort"] = None
        if values["page"] in (1, None):
            values["page"] = None
        query = urlencode({k: v for k, v in values.items() if v not in (None, "")})
        return "/monitors" + (f"?{query}" if query else "")


def _rows(s: Session, monitors: list[Monitor], now: datetime) -> list[dict[str, Any]]:
    bars = stats.daily_bars(s, [m.id for m in monitors], now.date(), BAR_DAYS)
    rows = []
    for m in monitors:
        check = get_check_type(m.type)
        bar = bars.get(m.id, [])
        rows.append(
            {
                "m": m,
                "stale": service.is_stale(m, now) and not (check is not None and check.passive),
                "bar": uptime_bar(bar),
                "uptime": range_uptime_text(bar),
            }
        )
    return rows


def _service_names(s: Session, services: list[Any], monitors: list[Monitor]) -> dict[int, str]:
    names = {svc.id: svc.name for svc in services}
    for sid in {m.service_id for m in monitors if m.service_id and m.service_id not in names}:
        try:
            names[sid] = cmdb.get_service(s, sid).name
        except OpsdeskError:
            continue
    return names


def list_context(ctx: Ctx, filters: Filters) -> dict[str, Any]:
    now = ctx.now()
    with ctx.session() as s:

        def fetch(pg: int) -> service.MonitorPage:
            return service.list_page(
                s,
                status=filters.status or None,
                q=filters.q or None,
                type_name=filters.type or None,
                service_id=filters.service_id,
                sort=filters.sort,
                offset=(pg - 1) * PAGE_SIZE,
                limit=PAGE_SIZE,
            )

        result = fetch(filters.page)
        pages = max(1, math.ceil(result.total / PAGE_SIZE))
        if filters.page > pages:
            filters.page = pages
            result = fetch(pages)
        services = cmdb.list_services(s, limit=1000)
        rows = _rows(s, result.items, now)
        names = _service_names(s, services, result.items)
    return {
        "rows": rows,
        "total": result.total,
        "counts": result.counts,
        "all_count": sum(result.counts.values()),
        "states": STATES,
        "filters": filters,
        "pages": pages,
        "first_index": (filters.page - 1) * PAGE_SIZE + 1,
        "services": services,
        "service_names": names,
        "types": _type_names(),
        "sorts": list(service.SORTS),
    }


@router.get("/monitors", response_class=HTMLResponse)
def monitor_list(
    request: Request,
    ctx: Ctx = Depends(page()),
    status: Annotated[str, Query(max_length=20)] = "",
    q: Annotated[str, Query(max_length=200)] = "",
    type_name: Annotated[str, Query(alias="type", max_length=50)] = "",
    service_id: QueryId = None,
    sort: Annotated[str, Query(max_length=20)] = "name",
    pg: Annotated[int, Query(alias="page", ge=1, le=1_000_000)] = 1,
) -> HTMLResponse:
    filters = Filters(
        status=status if status in STATES else "",
        q=q.strip(),
        type=type_name if type_name in REGISTRY else "",
        service_id=service_id,
        sort=sort if sort in service.SORTS else "name",
        page=pg,
    )
    return render(request, ctx, "monitoring/list.html", nav="monitors", **list_context(ctx, filters))


@router.post("/monitors/bulk")
def monitor_bulk(
    ctx: Ctx = Depends(page(Role.manager)),
    action: Annotated[Literal["pause", "resume"], Form()] = "pause",
    ids: Annotated[list[int] | None, Form()] = None,
    next_url: Annotated[str, Form(alias="next")] = "",
) -> Response:
    target = next_url if next_url.startswith("/monitors") and not next_url.startswith("//") else "/monitors"
    if not ids:
        return back(target, "Select monitors first", kind="warn")
    with ctx.session() as s:
        changed = service.set_enabled(s, ids, action == "resume", actor=ctx.actor, now=ctx.now())
    done = "resumed" if action == "resume" else "paused"
    return back(target, f"{len(changed)} monitor(s) {done}")


# --- add -----------------------------------------------------------------------------------------


def _new_page(
    request: Request,
    ctx: Ctx,
    type_name: str,
    *,
    submitted: FormData | None = None,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    errors = errors or {}
    with ctx.session() as s:
        services = cmdb.list_services(s, limit=1000)
    sent = {k: str(submitted.get(k) or "") for k in COMMON_FIELDS if k in submitted} if submitted else {}
    form = {
        "name": "",
        "interval_seconds": "60",
        "timeout_seconds": "10",
        "failures_before_down": "3",
        "service_id": "",
        "severity": Severity.critical.value,
        **sent,
    }
    return render(
        request,
        ctx,
        "monitoring/new.html",
        status_code=status_code,
        nav="monitors",
        form=form,
        errors=errors,
        services=services,
        severities=[sv.value for sv in Severity],
        types=_type_names(),
        **type_form(type_name, submitted=submitted, errors=errors, target=sent.get("target", "")),
    )


def _chosen_type(name: str) -> str:
    return name if name in REGISTRY else ("http" if "http" in REGISTRY else _type_names()[0])


@router.get("/monitors/new", response_class=HTMLResponse)
def monitor_new(
    request: Request,
    ctx: Ctx = Depends(page(Role.manager)),
    type_name: Annotated[str, Query(alias="type", max_length=50)] = "http",
) -> HTMLResponse:
    return _new_page(request, ctx, _chosen_type(type_name))


@router.get("/monitors/new/fields", response_class=HTMLResponse)
def monitor_new_fields(
    request: Request,
    ctx: Ctx = Depends(page(Role.manager)),
    type_name: Annotated[str, Query(alias="type", max_length=50)] = "http",
    target: Annotated[str, Query(max_length=2000)] = "",
) -> HTMLResponse:
    """The fields of one check type: swapped into the add form when the type select changes."""
    return render(
        request, ctx, "monitoring/_type_fields.html", **type_form(_chosen_type(type_name), target=target)
    )


@router.post("/monitors", response_model=None)
def monitor_create(request: Request, form: PostedForm, ctx: Ctx = Depends(page(Role.manager))) -> Response:
    type_name = str(form.get("type") or "http")
    check = get_check_type(type_name)
    if check is None:
        errors = {"form": f"unknown check type {type_name!r}"}
        return _new_page(
            request, ctx, _chosen_type(type_name), submitted=form, errors=errors, status_code=422
        )
    shown = _shown_fields(check)
    config, errors = parse_config(check, form)
    common = _common(form)
    status = 422
    if not errors:
        try:  # the target and the config, checked first so that every mistake shows at once
            service.validate_definition(type_name, str(common.get("target", "")), config)
        except OpsdeskError as exc:
            status = _collect(exc, errors, shown)
    try:
        data = MonitorIn.model_validate({**common, "type": type_name, "config": config})
    except ValidationError as exc:
        status = _collect(exc, errors, shown)
    if not errors:
        try:
            with ctx.session() as s:
                m = service.create_monitor(s, data, actor=ctx.actor, now=ctx.now())
                return back(f"/monitors/{m.id}", f"Monitor {m.name} created")
        except (ValidationError, OpsdeskError) as exc:
            status = _collect(exc, errors, shown)
    return _new_page(request, ctx, type_name, submitted=form, errors=errors, status_code=status)


# --- detail and edit -----------------------------------------------------------------------------


@dataclass
class CustomRange:
    start: str = ""
    end: str = ""
    errors: dict[str, str] = field(default_factory=dict)
    bounds: tuple[datetime, datetime] | None = None


def parse_custom_range(start: str, end: str, now: datetime, created: datetime | None = None) -> CustomRange:
    """Whole UTC days from ``start`` to ``end`` (both included, the end capped at now)."""
    r = CustomRange(start.strip(), end.strip())
    if not r.start and not r.end:
        return r
    days: dict[str, date] = {}
    for name, text in (("start", r.start), ("end", r.end)):
        if not text:
            r.errors[name] = "give both a start and an end date"
            continue
        try:
            days[name] = date.fromisoformat(text)
        except ValueError:
            r.errors[name] = "not a date: write it as YYYY-MM-DD"
    if r.errors:
        return r
    first, last = days["start"], days["end"]
    if first > last:
        r.errors["end"] = "the end is before the start"
    elif first > now.date():
        r.errors["start"] = "the start is in the future"
    elif (last - first).days + 1 > MAX_RANGE_DAYS:
        r.errors["end"] = f"at most {MAX_RANGE_DAYS} days"
    if r.errors:
        return r
    lo = datetime.combine(first, time.min, tzinfo=now.tzinfo)
    hi = min(datetime.combine(last + timedelta(days=1), time.min, tzinfo=now.tzinfo), now)
    r.bounds = (lo, hi)
    return r


def _uptime_row(s: Session, mid: int, label: str, start: datetime, end: datetime) -> dict[str, Any]:
    a = stats.availability(s, [mid], start, end)[mid]
    return {
        "label": label,
        "availability": percent_text(a.percent, a.down_seconds == 0),
        "known": a.known_seconds > 0,
        "downtime": duration_text(a.down_seconds),
        "outages": a.outages,
        "latency": stats.latency(s, [mid], start, end),
    }


def _history_rows(changes: list[Any], now: datetime) -> list[dict[str, Any]]:
    """Newest first; each with how long the state it entered lasted (until the next change)."""
    rows = []
    until = now
    for c in changes:
        rows.append(
            {"c": c, "lasted": duration_text((until - c.at).total_seconds()), "ongoing": until is now}
        )
        until = c.at
    return rows


def _locations(s: Session, m: Monitor) -> list[dict[str, Any]]:
    if m.locations == [LOCAL]:
        return []
    found = {
        ls.location: ls for ls in s.scalars(select(LocationState).where(LocationState.monitor_id == m.id))
    }
    return [{"location": loc, "state": found.get(loc)} for loc in m.locations]


def _heartbeat(ctx: Ctx, m: Monitor) -> dict[str, Any] | None:
    if m.type != "heartbeat" or not m.ping_key:
        return None
    url = f"{ctx.settings.base_url}/ping/{m.ping_key}"
    curl = "curl -fsS -m 10 --retry 5"
    return {
        "url": url,
        "examples": [
            ("When the job succeeds", f"{curl} {url}"),
            ("When it starts (measures the run; it must end within the grace time)", f"{curl} {url}/start"),
            ("When it fails", f"{curl} {url}/fail"),
            ("With the job's exit status (0 is success)", f"your-job.sh; {curl} {url}/$?"),
        ],
    }


def edit_values(m: Monitor) -> dict[str, str]:
    return {
        "name": m.name,
        "target": m.target,
        "interval_seconds": str(m.interval_seconds),
        "timeout_seconds": f"{m.timeout_seconds:g}",
        "failures_before_down": str(m.failures_before_down),
        "service_id": str(m.service_id or ""),
        "severity": m.severity,
    }


def _detail(
    request: Request,
    ctx: Ctx,
    monitor_id: int,
    *,
    status_code: int = 200,
    submitted: FormData | None = None,
    errors: dict[str, str] | None = None,
    start: str = "",
    end: str = "",
) -> HTMLResponse:
    now = ctx.now()
    errors = errors or {}
    with ctx.session() as s:
        m = service.get_monitor(s, monitor_id)
        svc = cmdb.get_service(s, m.service_id) if m.service_id else None
        results = service.recent_results(s, m.id, 200)
        services = cmdb.list_services(s, limit=1000)
        uptime = [_uptime_row(s, m.id, label, now - span, now) for label, span in UPTIME_RANGES]
        custom = parse_custom_range(start, end, now)
        if custom.bounds:
            lo, hi = custom.bounds
            uptime.append(_uptime_row(s, m.id, f"{custom.start} to {custom.end}", lo, hi))
        history = _history_rows(stats.history(s, m.id, 100), now)
        locations = _locations(s, m)
        bar = stats.daily_bars(s, [m.id], now.date(), BAR_DAYS)[m.id]
    if custom.errors and status_code == 200:
        status_code = 422
    check = get_check_type(m.type)
    form = edit_values(m)
    if submitted is not None:
        form.update({k: str(submitted.get(k) or "") for k in COMMON_FIELDS if k in submitted})
    edit = (
        type_form(
            m.type,
            config=m.config,
            submitted=submitted,
            errors=errors,
            secrets_set=m.secrets_set,
            target=form["target"],
        )
        if check is not None
        else None
    )
    firing = dict((m.check_state or {}).get("firing") or {})
    return render(
        request,
        ctx,
        "monitoring/detail.html",
        status_code=status_code,
        nav="monitors",
        m=m,
        service=svc,
        services=services,
        severities=[sv.value for sv in Severity],
        results=results[:20],
        latency_chart=_latency_chart(results),
        stale=service.is_stale(m, now) and not (check is not None and check.passive),
        flap_percent=service.flap_percent(m.recent),
        uptime=uptime,
        custom=custom,
        history=history,
        locations=locations,
        firing=sorted(firing.items()),
        config_summary=config_summary(m),
        heartbeat=_heartbeat(ctx, m),
        bar=uptime_bar(bar),
        bar_uptime=range_uptime_text(bar),
        form=form,
        errors=errors,
        edit=edit,
    )


@router.get("/monitors/{monitor_id}", response_class=HTMLResponse)
def monitor_detail(
    request: Request,
    monitor_id: PathId,
    ctx: Ctx = Depends(page()),
    start: Annotated[str, Query(max_length=20)] = "",
    end: Annotated[str, Query(max_length=20)] = "",
) -> HTMLResponse:
    return _detail(request, ctx, monitor_id, start=start, end=end)


@router.post("/monitors/{monitor_id}", response_model=None)
def monitor_update(
    request: Request, monitor_id: PathId, form: PostedForm, ctx: Ctx = Depends(page(Role.manager))
) -> Response:
    with ctx.session() as s:
        m = service.get_monitor(s, monitor_id)  # a missing monitor is a 404, not a form error
        type_name, current, stored, target = m.type, dict(m.config), dict(m.secrets), m.target
    check = service.check_type(type_name)
    shown = _shown_fields(check)
    config, errors = parse_config(check, form, current)
    values = {**_common(form), "config": config}
    status = 422
    if not errors:
        try:
            service.validate_definition(type_name, str(values.get("target", target)), config, stored)
        except OpsdeskError as exc:
            status = _collect(exc, errors, shown)
    try:
        data = MonitorUpdate.model_validate(values)
    except ValidationError as exc:
        status = _collect(exc, errors, shown)
    if not errors:
        try:
            with ctx.session() as s:
                m = service.update_monitor(s, monitor_id, data, actor=ctx.actor, now=ctx.now())
                return back(f"/monitors/{m.id}", f"Monitor {m.name} saved")
        except (ValidationError, OpsdeskError) as exc:
            status = _collect(exc, errors, shown)
    return _detail(request, ctx, monitor_id, status_code=status, submitted=form, errors=errors)


def _latency_chart(results: list[CheckResult]) -> dict[str, Any]:
    """Response time of successful checks, and failed checks as red marks on the time axis."""
    ordered = list(reversed(results))
    return {
        "series": [
            {"label": "response time", "unit": "ms", "color": "#0172ad"},
            {"label": "failed", "unit": "", "color": "#cf222e", "points": True},
        ],
        "x": [r.at.timestamp() for r in ordered],
        "y": [
            [round(r.latency_ms, 1) if r.ok and r.latency_ms is not None else None for r in ordered],
            [0 if not r.ok else None for r in ordered],
        ],
    }


@router.post("/monitors/{monitor_id}/pause")
def monitor_pause(monitor_id: PathId, ctx: Ctx = Depends(page(Role.manager))) -> Response:
    with ctx.session() as s:
        m = service.update_monitor(
            s, monitor_id, MonitorUpdate(enabled=False), actor=ctx.actor, now=ctx.now()
        )
        return back(f"/monitors/{m.id}", f"{m.name} paused")


@router.post("/monitors/{monitor_id}/resume")
def monitor_resume(monitor_id: PathId, ctx: Ctx = Depends(page(Role.manager))) -> Response:
    with ctx.session() as s:
        m = service.update_monitor(s, monitor_id, MonitorUpdate(enabled=True), actor=ctx.actor, now=ctx.now())
        return back(f"/monitors/{m.id}", f"{m.name} resumed")


@router.post("/monitors/{monitor_id}/delete")
def monitor_delete(monitor_id: PathId, ctx: Ctx = Depends(page(Role.manager))) -> Response:
    with ctx.session() as s:
        name = service.get_monitor(s, monitor_id).name
        service.delete_monitor(s, monitor_id, actor=ctx.actor, now=ctx.now())
    return back("/monitors", f"Monitor {name} deleted")


# --- the service page's uptime section (included by cmdb/node.html) ------------------------------


def service_uptime(s: Session, service_id: int, now: datetime) -> dict[str, Any]:
    """Context for ``monitoring/_service_uptime.html``: the service's availability for 24 h, 7 d and
    30 d (down while any of its monitors is down), and each of its monitors' 90-day bar."""
    ranges = []
    for label, span in UPTIME_RANGES:
        a = stats.service_availability(s, service_id, now - span, now)
        ranges.append(
            {
                "label": label,
                "availability": percent_text(a.percent, a.down_seconds == 0),
                "downtime": duration_text(a.down_seconds),
                "outages": a.outages,
            }
        )
    monitors = service.list_monitors(s, service_id=service_id, limit=500)
    return {"service_uptime": {"ranges": ranges, "rows": _rows(s, monitors, now)}}
