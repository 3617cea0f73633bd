"""HTML pages for alerts, alert-source integrations and the noise-reduction report.

- ``GET /alerts``: the deduplicated alerts, newest first, 50 a page with cursor links (``before`` /
  ``after`` an id), filtered by status (firing by default, resolved, all), source, service,
  severity, muted or not, and a text search in the summary and labels (:func:`noise.find_alerts`).
- ``GET /alerts/{id}``: every field, the labels, the last 50 events deduplicated into it, the rule
  that matched, why it is muted (silences and maintenance windows, linked to their pages), a
  "Silence this" link to ``/silences/new`` prefilled with one matcher per label, and its incident.
- ``GET /alerts/noise``: events, alerts, incidents and muted alerts per day (a uPlot chart, log
  scale) and per source over the last 7/30/90/365 days (:func:`noise.report`).
- ``/integrations`` (manager): the alert sources with their own key (``POST /hooks/<key>``). The
  key and the hook URL holding it exist in plain text only in the answer to create and rotate:
  those answers are rendered directly (never a redirect, so the key is in no URL or history) with
  ``Cache-Control: no-store``, and show the setup steps of the integration's kind.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError
from sqlalchemy.orm import Session

from opsdesk.alerts import integrations, noise
from opsdesk.alerts import service as alerts
from opsdesk.alerts.hooks import IntegrationIn
from opsdesk.alerts.models import Alert, Integration, Severity
from opsdesk.alerts.sources import REGISTRY
from opsdesk.cmdb import service as cmdb
from opsdesk.core.actor import Role
from opsdesk.core.errors import OpsdeskError
from opsdesk.core.paging import parse_cursor
from opsdesk.web.deps import Ctx, PathId, QueryId, page
from opsdesk.web.render import back, render

router = APIRouter()

PAGE_SIZE = 50
EVENTS_SHOWN = 50
STATUSES = ["firing", "resolved", "all"]
SEVERITIES = [s.value for s in Severity]
NOISE_RANGES = [7, 30, 90, 365]
LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
NO_STORE = {"Cache-Control": "no-store"}


# --- the alert list ------------------------------------------------------------------------------


@dataclass
class Filters:
    status: str = "firing"
    source: str = ""
    service_id: int | None = None
    severity: str = ""
    muted: str = ""  # "", "yes", "no"
    q: str = ""

    @property
    def any(self) -> bool:
        return bool(self.source or self.service_id or self.severity or self.muted or self.q)

    def url(self, **changes: Any) -> str:
        values: dict[str, Any] = {
            "status": self.status,
            "source": self.source,
            "service_id": self.service_id,
            "severity": self.severity,
            "muted": self.muted,
            "q": self.q,
        }
        values.update(changes)
        if values["status"] == "firing":
            values["status"] = None
        query = urlencode({k: v for k, v in values.items() if v not in (None, "")})
        return "/alerts" + (f"?{query}" if query else "")


def _names(s: Session, alerts_: list[Alert]) -> tuple[dict[int, str], dict[int, str]]:
    """Service and CI names of the alerts shown (one lookup per distinct id, at most a page's)."""
    services: dict[int, str] = {}
    cis: dict[int, str] = {}
    for sid in {a.service_id for a in alerts_ if a.service_id}:
        try:
            services[sid] = cmdb.get_service(s, sid).name
        except OpsdeskError:
            continue
    for cid in {a.ci_id for a in alerts_ if a.ci_id}:
        try:
            cis[cid] = cmdb.get_ci(s, cid).name
        except OpsdeskError:
            continue
    return services, cis


@router.get("/alerts", response_class=HTMLResponse)
def alert_list(
    request: Request,
    ctx: Ctx = Depends(page()),
    status: Annotated[str, Query(max_length=20)] = "firing",
    source: Annotated[str, Query(max_length=100)] = "",
    service_id: QueryId = None,
    severity: Annotated[str, Query(max_length=20)] = "",
    muted: Annotated[str, Query(max_length=5)] = "",
    q: Annotated[str, Query(max_length=200)] = "",
    before: Annotated[str | None, Query(max_length=20)] = None,
    after: Annotated[str | None, Query(max_length=20)] = None,
) -> HTMLResponse:
    filters = Filters(
        status=status if status in STATUSES else "firing",
        source=source.strip(),
        service_id=service_id,
        severity=severity if severity in SEVERITIES else "",
        muted=muted if muted in ("yes", "no") else "",
        q=q.strip(),
    )
    before_id, after_id = parse_cursor(before), parse_cursor(after)
    with ctx.session() as s:

        def fetch(before_id: int | None, after_id: int | None, limit: int) -> list[Alert]:
            return noise.find_alerts(
                s,
                status=None if filters.status == "all" else filters.status,
                source=filters.source or None,
                service_id=filters.service_id,
                severity=filters.severity or None,
                muted={"yes": True, "no": False}.get(filters.muted),
                q=filters.q or None,
                before_id=before_id,
                after_id=after_id,
                limit=limit,
            )

        rows = fetch(before_id or None, after_id or None, PAGE_SIZE + 1)
        if after_id:  # newest first: the extra row, if any, is the newest and says "newer exist"
            newer, rows = len(rows) > PAGE_SIZE, rows[-PAGE_SIZE:]
            older = bool(rows) and bool(fetch(rows[-1].id, None, 1))
        else:
            older, rows = len(rows) > PAGE_SIZE, rows[:PAGE_SIZE]
            newer = bool(before_id) and bool(rows) and bool(fetch(None, rows[0].id, 1))
        service_names, ci_names = _names(s, rows)
        services = cmdb.list_services(s, limit=1000)
        sources = noise.sources(s)
    return render(
        request,
        ctx,
        "alerts/alert_list.html",
        nav="alerts",
        alerts=rows,
        filters=filters,
        statuses=STATUSES,
        severities=SEVERITIES,
        services=services,
        sources=sources,
        service_names=service_names,
        ci_names=ci_names,
        older_url=filters.url(before=rows[-1].id) if older and rows else None,
        newer_url=filters.url(after=rows[0].id) if newer and rows else None,
        paged=bool(before_id or after_id),
    )


# --- the noise-reduction report (before /alerts/{id}, which would take "noise" for an id) --------


@router.get("/alerts/noise", response_class=HTMLResponse)
def alert_noise(
    request: Request,
    ctx: Ctx = Depends(page()),
    days: Annotated[int, Query(ge=1, le=noise.MAX_DAYS)] = 30,
    source: Annotated[str, Query(max_length=100)] = "",
) -> HTMLResponse:
    with ctx.session() as s:
        report = noise.report(s, days=days, source=source, today=ctx.now().date())
        sources = noise.sources(s)
    per_day = report["days"]
    chart = {
        "x": [_epoch(d["day"]) for d in per_day],
        "series": [
            {"label": "events", "color": "#6e7781", "y": [d["events"] for d in per_day]},
            {"label": "alerts", "color": "#b26b00", "y": [d["alerts"] for d in per_day]},
            {"label": "incidents", "color": "#cf222e", "y": [d["incidents"] for d in per_day]},
            {"label": "muted", "color": "#0172ad", "y": [d["muted"] for d in per_day]},
        ],
    }
    return render(
        request,
        ctx,
        "alerts/noise.html",
        nav="alerts",
        report=report,
        chart=chart,
        days=days,
        ranges=NOISE_RANGES,
        source=report["source"] or "",
        sources=sources,
        has_data=report["total"]["events"] > 0 or bool(report["sources"]),
    )


def _epoch(day: date) -> int:
    return int(datetime.combine(day, time.min, tzinfo=UTC).timestamp())


# --- one alert -----------------------------------------------------------------------------------


def matcher_text(name: str, value: Any) -> str:
    """An Alertmanager equality matcher, ``name="value"``, the value quoted with its escapes."""
    text = str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'{name}="{text}"'


def silence_url(a: Alert) -> str:
    """``/silences/new`` prefilled with one matcher per label of the alert (labels whose names a
    matcher cannot hold are left out); an alert without labels is matched by its source."""
    pairs = [(k, v) for k, v in sorted(a.labels.items()) if LABEL_NAME.match(k)]
    if not pairs:
        pairs = [("source", a.source)]
    return "/silences/new?" + urlencode([("matcher", matcher_text(k, v)) for k, v in pairs])


@router.get("/alerts/{alert_id}", response_class=HTMLResponse)
def alert_detail(request: Request, alert_id: PathId, ctx: Ctx = Depends(page())) -> HTMLResponse:
    with ctx.session() as s:
        a = alerts.get_alert(s, alert_id)
        service_names, ci_names = _names(s, [a])
        events = noise.list_events(s, a.id, EVENTS_SHOWN)
        return render(
            request,
            ctx,
            "alerts/alert_detail.html",
            nav="alerts",
            a=a,
            service_name=service_names.get(a.service_id or 0),
            ci_name=ci_names.get(a.ci_id or 0),
            events=events,
            events_shown=EVENTS_SHOWN,
            silences=[int(x) for x in (a.muted_by or {}).get("silences", []) if str(x).isdigit()],
            windows=[int(x) for x in (a.muted_by or {}).get("maintenance", []) if str(x).isdigit()],
            silence_url=silence_url(a),
        )


# --- integrations --------------------------------------------------------------------------------


def _kinds() -> list[str]:
    return sorted(REGISTRY)


def _hook_url(ctx: Ctx, key: str) -> str:
    return f"{ctx.settings.base_url.rstrip('/')}/hooks/{key}"


def _integrations_page(
    request: Request,
    ctx: Ctx,
    *,
    status_code: int = 200,
    form: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    shown: dict[str, Any] | None = None,
) -> HTMLResponse:
    with ctx.session() as s:
        items = integrations.list_integrations(s)
        services = cmdb.list_services(s, limit=1000)
    names = {svc.id: svc.name for svc in services}
    resp = render(
        request,
        ctx,
        "alerts/integrations.html",
        status_code=status_code,
        nav="integrations",
        integrations=items,
        services=services,
        service_names=names,
        kinds=_kinds(),
        form={"name": "", "kind": "alertmanager", "service_id": "", **(form or {})},
        errors=errors or {},
        shown=shown,
    )
    if shown is not None:
        resp.headers.update(NO_STORE)
    return resp


def _shown(ctx: Ctx, i: Integration, key: str, what: str) -> dict[str, Any]:
    return {
        "what": what,
        "id": i.id,
        "name": i.name,
        "kind": i.kind,
        "signed": i.secret_encrypted is not None,
        "key": key,
        "url": _hook_url(ctx, key),
    }


@router.get("/integrations", response_class=HTMLResponse)
def integration_list(request: Request, ctx: Ctx = Depends(page(Role.manager))) -> HTMLResponse:
    return _integrations_page(request, ctx)


@router.post("/integrations", response_class=HTMLResponse)
def integration_create(
    request: Request,
    ctx: Ctx = Depends(page(Role.manager)),
    name: Annotated[str, Form(max_length=200)] = "",
    kind: Annotated[str, Form(max_length=50)] = "",
    secret: Annotated[str, Form(max_length=1000)] = "",
    service_id: Annotated[str, Form(max_length=20)] = "",
) -> HTMLResponse:
    form = {"name": name, "kind": kind, "service_id": service_id}
    errors: dict[str, str] = {}
    sid: int | None = None
    if service_id.strip():
        try:
            sid = int(service_id)
        except ValueError:
            errors["service_id"] = "not a service id"
    data: IntegrationIn | None = None
    try:
        data = IntegrationIn.model_validate(
            {"name": name, "kind": kind, "secret": secret if secret.strip() else None, "service_id": sid}
        )
    except ValidationError as exc:
        for e in exc.errors():
            field = str(e["loc"][0]) if e["loc"] else "form"
            errors.setdefault(field, str(e["msg"]).removeprefix("Value error, "))
    if kind not in REGISTRY:
        errors.setdefault("kind", f"one of {', '.join(_kinds())}")
    if errors or data is None:
        return _integrations_page(request, ctx, status_code=422, form=form, errors=errors)
    try:
        with ctx.session() as s:
            i, key = integrations.create_integration(
                s,
                name=data.name,
                kind=data.kind,
                secret=data.secret,
                service_id=data.service_id,
                actor=ctx.actor,
                now=ctx.now(),
            )
            shown = _shown(ctx, i, key, "created")
    except OpsdeskError as exc:
        if exc.status not in (409, 422):
            raise
        for fe in exc.errors:
            errors.setdefault(fe.field, fe.message)
        if not exc.errors:
            errors["name"] = exc.detail
        return _integrations_page(request, ctx, status_code=exc.status, form=form, errors=errors)
    return _integrations_page(request, ctx, shown=shown)


@router.post("/integrations/{integration_id}/rotate", response_class=HTMLResponse)
def integration_rotate(
    request: Request, integration_id: PathId, ctx: Ctx = Depends(page(Role.manager))
) -> HTMLResponse:
    with ctx.session() as s:
        i, key = integrations.rotate_key(s, integration_id, actor=ctx.actor, now=ctx.now())
        shown = _shown(ctx, i, key, "rotated")
    return _integrations_page(request, ctx, shown=shown)


@router.post("/integrations/{integration_id}/delete")
def integration_delete(integration_id: PathId, ctx: Ctx = Depends(page(Role.manager))) -> Response:
    with ctx.session() as s:
        name = integrations.get_integration(s, integration_id).name
        integrations.delete_integration(s, integration_id, actor=ctx.actor, now=ctx.now())
    return back("/integrations", f"Integration {name} deleted: its key no longer works")
