from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError

from opsdesk.cmdb import service as cmdb
from opsdesk.core.actor import Role
from opsdesk.core.errors import OpsdeskError
from opsdesk.monitoring import service
from opsdesk.monitoring.models import CheckResult
from opsdesk.monitoring.schemas import MonitorIn, MonitorUpdate
from opsdesk.web.deps import Ctx, PathId, page
from opsdesk.web.render import back, render

router = APIRouter()


def _list_context(ctx: Ctx, status: str | None) -> dict[str, Any]:
    with ctx.session() as s:
        return {
            "monitors": (monitors := service.list_monitors(s, status=status or None, limit=500)),
            "stale_ids": {m.id for m in monitors if service.is_stale(m, ctx.now())},
            "services": cmdb.list_services(s, limit=500),
            "status": status or "",
        }


@router.get("/monitors", response_class=HTMLResponse)
def monitor_list(request: Request, ctx: Ctx = Depends(page()), status: str | None = None) -> HTMLResponse:
    data = _list_context(ctx, status)
    names = {svc.id: svc.name for svc in data["services"]}
    return render(
        request, ctx, "monitoring/list.html", nav="monitors", service_names=names, form={}, errors={}, **data
    )


@dataclass
class MonitorForm:
    """The fields of the add and edit forms, as typed; validation happens in the schemas."""

    name: Annotated[str, Form()] = ""
    target: Annotated[str, Form()] = ""
    expected_status: Annotated[str, Form()] = "200"
    interval_seconds: Annotated[str, Form()] = "60"
    timeout_seconds: Annotated[str, Form()] = "10"
    failures_before_down: Annotated[str, Form()] = "3"
    service_id: Annotated[str, Form()] = ""

    def values(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "target": self.target,
            "config": {"expected_status": self.expected_status},
            "interval_seconds": self.interval_seconds,
            "timeout_seconds": self.timeout_seconds,
            "failures_before_down": self.failures_before_down,
            "service_id": self.service_id or None,
        }


def _form_errors(exc: ValidationError | OpsdeskError) -> tuple[int, dict[str, str]]:
    """The HTTP status and a field → message map for re-rendering a form."""
    errors: dict[str, str] = {}
    if isinstance(exc, ValidationError):
        for e in exc.errors():
            loc = [str(p) for p in e["loc"] if p != "config"]
            errors[loc[0] if loc else "form"] = e["msg"]
        return 422, errors
    for fe in exc.errors:
        errors[fe.field.removeprefix("config.")] = fe.message
    if not exc.errors:
        errors["form"] = exc.detail
    return exc.status, errors


@router.post("/monitors", response_model=None)
def monitor_create(
    request: Request, ctx: Ctx = Depends(page(Role.manager)), form: MonitorForm = Depends()
) -> Response:
    try:
        data = MonitorIn.model_validate({**form.values(), "type": "http"})
        with ctx.session() as s:
            m = service.create_monitor(s, data, actor=ctx.actor, now=ctx.now())
            return back(f"/monitors/{m.id}", f"Monitor {m.name} created")
    except (ValidationError, OpsdeskError) as exc:
        status, errors = _form_errors(exc)
    data_ctx = _list_context(ctx, None)
    names = {svc.id: svc.name for svc in data_ctx["services"]}
    return render(
        request,
        ctx,
        "monitoring/list.html",
        status_code=status,
        nav="monitors",
        service_names=names,
        form=asdict(form),
        errors=errors,
        **data_ctx,
    )


@router.post("/monitors/bulk")
def monitor_bulk(
    ctx: Ctx = Depends(page(Role.manager)),
    action: Annotated[Literal["pause", "resume"], Form()] = "pause",
    ids: Annotated[list[int] | None, Form()] = None,
) -> Response:
    if not ids:
        return back("/monitors", "Select monitors first", kind="warn")
    with ctx.session() as s:
        changed = service.set_enabled(s, ids, action == "resume", actor=ctx.actor, now=ctx.now())
    done = "resumed" if action == "resume" else "paused"
    return back("/monitors", f"{len(changed)} monitor(s) {done}")


@router.post("/monitors/{monitor_id}", response_model=None)
def monitor_update(
    request: Request,
    monitor_id: PathId,
    ctx: Ctx = Depends(page(Role.manager)),
    form: MonitorForm = Depends(),
) -> Response:
    try:
        with ctx.session() as s:
            values = form.values()
            # The form edits a few settings; the rest of the config (assertions set through the API) stays.
            values["config"] = {**service.get_monitor(s, monitor_id).config, **values["config"]}
            data = MonitorUpdate.model_validate(values)
            m = service.update_monitor(s, monitor_id, data, actor=ctx.actor, now=ctx.now())
            return back(f"/monitors/{m.id}", f"Monitor {m.name} saved")
    except (ValidationError, OpsdeskError) as exc:
        if isinstance(exc, OpsdeskError) and exc.status == 404:
            raise
        status, errors = _form_errors(exc)
    return _detail(request, ctx, monitor_id, status_code=status, form=asdict(form), errors=errors)


@router.get("/monitors/{monitor_id}", response_class=HTMLResponse)
def monitor_detail(request: Request, monitor_id: PathId, ctx: Ctx = Depends(page())) -> HTMLResponse:
    return _detail(request, ctx, monitor_id)


def _detail(
    request: Request,
    ctx: Ctx,
    monitor_id: int,
    *,
    status_code: int = 200,
    form: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
) -> HTMLResponse:
    with ctx.session() as s:
        m = service.get_monitor(s, monitor_id)
        svc = cmdb.get_service(s, m.service_id) if m.service_id else None
        results = service.recent_results(s, m.id, 200)
        services = cmdb.list_services(s, limit=500)
    if form is None:
        form = {
            "name": m.name,
            "target": m.target,
            "expected_status": m.config.get("expected_status", 200),
            "interval_seconds": m.interval_seconds,
            "timeout_seconds": m.timeout_seconds,
            "failures_before_down": m.failures_before_down,
            "service_id": str(m.service_id or ""),
        }
    return render(
        request,
        ctx,
        "monitoring/detail.html",
        status_code=status_code,
        nav="monitors",
        m=m,
        service=svc,
        services=services,
        results=results[:20],
        latency_chart=_latency_chart(results),
        stale=service.is_stale(m, ctx.now()),
        form=form,
        errors=errors or {},
    )


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
