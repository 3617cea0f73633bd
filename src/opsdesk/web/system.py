"""Health, metrics and the API documentation.

Module-level routes that read the app's state from the request: FastAPI caches dependency
callables in process-wide caches, so a closure over one app would keep every app alive.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from starlette.concurrency import run_in_threadpool

from opsdesk import __version__
from opsdesk.core import metrics
from opsdesk.web.deps import Ctx, api, page

router = APIRouter()
_viewer = api()


@router.get("/healthz", tags=["system"])
def healthz(request: Request) -> dict[str, str]:
    """Liveness and database reachability; open to anyone."""
    with request.app.state.db.engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    return {"status": "ok", "version": __version__}


@router.get("/metrics", tags=["system"], response_class=PlainTextResponse)
async def prometheus_metrics(request: Request) -> Response:
    """opsdesk's own counters in the Prometheus text format (bearer token unless made public)."""
    if not request.app.state.settings.metrics_public:
        await _viewer(request)
    state = request.app.state.state_registry
    body = generate_latest(metrics.REGISTRY) + await run_in_threadpool(generate_latest, state)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


@router.get("/api/openapi.json", include_in_schema=False)
async def openapi_document(request: Request, ctx: Ctx = Depends(_viewer)) -> JSONResponse:
    return JSONResponse(request.app.openapi())


@router.get("/api/docs", include_in_schema=False)
async def api_docs(ctx: Ctx = Depends(page())) -> HTMLResponse:
    # Served from the vendored swagger-ui-dist: no CDN, so the docs work on an air-gapped network.
    return get_swagger_ui_html(
        openapi_url="/api/openapi.json",
        title="opsdesk API",
        swagger_js_url="/static/vendor/swagger-ui-bundle.js",
        swagger_css_url="/static/vendor/swagger-ui.css",
        swagger_favicon_url="/static/favicon.svg",
    )
