"""Login, logout and the dashboard; the domain pages are mounted from each domain's views.py."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from opsdesk.alerts.admin_views import router as alert_admin_pages
from opsdesk.alerts.views import router as alert_pages
from opsdesk.audit.views import router as audit_pages
from opsdesk.auth import service as auth
from opsdesk.auth.views import router as auth_pages
from opsdesk.cmdb import service as cmdb
from opsdesk.cmdb.views import router as cmdb_pages
from opsdesk.incidents import service as incidents
from opsdesk.incidents.postmortem_views import router as postmortem_pages
from opsdesk.incidents.statuspage import router as status_pages
from opsdesk.incidents.views import router as incident_pages
from opsdesk.monitoring import service as monitoring
from opsdesk.monitoring.views import router as monitor_pages
from opsdesk.oncall.escalation_views import router as escalation_pages
from opsdesk.oncall.load_views import router as oncall_load_pages
from opsdesk.oncall.views import router as oncall_pages
from opsdesk.web.deps import SESSION_COOKIE, Ctx, page
from opsdesk.web.render import render

router = APIRouter(include_in_schema=False)
router.include_router(incident_pages)
router.include_router(postmortem_pages)
router.include_router(status_pages)
router.include_router(alert_pages)
router.include_router(alert_admin_pages)
router.include_router(monitor_pages)
router.include_router(oncall_load_pages)  # before oncall_pages: /oncall/load is not a schedule id
router.include_router(oncall_pages)
router.include_router(escalation_pages)
router.include_router(cmdb_pages)
router.include_router(auth_pages)
router.include_router(audit_pages)


def _safe_next(target: str) -> str:
    # Only same-site paths: never an absolute URL an attacker could put in ?next=.
    return target if target.startswith("/") and not target.startswith("//") else "/"


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str = "/") -> HTMLResponse:
    return render(request, None, "login.html", next=_safe_next(next), email="", error=None)


@router.post("/login")
async def login(
    request: Request,
    email: Annotated[str, Form(max_length=254)],
    password: Annotated[str, Form(max_length=1000)],
    next: Annotated[str, Form()] = "/",
) -> Response:
    st = request.app.state

    def attempt() -> str | None:
        with st.db.session() as s:
            user = auth.authenticate(s, email, password)
            if user is None:
                return None
            token, _ = auth.create_session(s, user, now=st.clock.now(), hours=st.settings.session_hours)
            return token

    token = await run_in_threadpool(attempt)
    if token is None:
        return render(
            request,
            None,
            "login.html",
            status_code=401,
            next=_safe_next(next),
            email=email,
            error="Wrong e-mail or password.",
        )
    resp = RedirectResponse(_safe_next(next), status_code=303)
    resp.set_cookie(
        SESSION_COOKIE,
        token,
        httponly=True,
        samesite="lax",
        max_age=st.settings.session_hours * 3600,
        secure=st.settings.base_url.startswith("https://"),
    )
    return resp


@router.post("/logout")
def logout(request: Request, ctx: Ctx = Depends(page())) -> Response:
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        with ctx.session() as s:
            auth.end_session(s, cookie)
    resp = RedirectResponse("/login", status_code=303)
    resp.delete_cookie(SESSION_COOKIE)
    return resp


def _dashboard_data(ctx: Ctx) -> dict[str, Any]:
    with ctx.session() as s:
        open_incidents = incidents.list_incidents(s, status=list(incidents.OPEN), limit=50)
        monitors = monitoring.list_monitors(s, limit=500)
        services = {svc.id: svc.name for svc in cmdb.list_services(s, limit=500)}
    counts: dict[str, int] = {}
    for m in monitors:
        counts[m.status] = counts.get(m.status, 0) + 1
    return {
        "incidents": open_incidents,
        "monitors": sorted(monitors, key=lambda m: (m.status != "down", m.status != "unknown", m.name)),
        "counts": counts,
        "services": services,
    }


@router.get("/", response_class=HTMLResponse)
def dashboard(request: Request, ctx: Ctx = Depends(page())) -> HTMLResponse:
    return render(request, ctx, "dashboard.html", nav="dashboard", **_dashboard_data(ctx))


@router.get("/partials/dashboard", response_class=HTMLResponse)
def dashboard_partial(request: Request, ctx: Ctx = Depends(page())) -> HTMLResponse:
    return render(request, ctx, "dashboard_body.html", **_dashboard_data(ctx))
