"""The FastAPI application: JSON API under /api/v1, HTML pages, health and metrics."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from jinja2 import ChoiceLoader, FileSystemLoader
from starlette.types import ASGIApp, Receive, Scope, Send

from opsdesk import __version__
from opsdesk.alerts.admin_api import router as alert_admin_router
from opsdesk.alerts.api import router as alerts_router
from opsdesk.alerts.fastpath import EventsEndpoint
from opsdesk.alerts.hooks import hook_router
from opsdesk.alerts.hooks import router as integrations_router
from opsdesk.alerts.service import NormalizedEvent, RawEvents, store_events, write_events
from opsdesk.ascode.api import router as ascode_router
from opsdesk.audit.api import router as audit_router
from opsdesk.auth.api import router as auth_router
from opsdesk.cmdb.api import router as cmdb_router
from opsdesk.core.clock import Clock, SystemClock
from opsdesk.core.db import Database
from opsdesk.core.settings import Settings
from opsdesk.incidents.api import router as incidents_router
from opsdesk.incidents.postmortem_api import router as postmortems_router
from opsdesk.metrics import views as metrics_views
from opsdesk.metrics.api import router as metrics_router
from opsdesk.monitoring import ping
from opsdesk.monitoring.api import router as monitoring_router
from opsdesk.monitoring.heartbeat import Ping, record_pings
from opsdesk.monitoring.probe_api import router as probe_router
from opsdesk.oncall.api import feeds as oncall_feeds
from opsdesk.oncall.api import router as oncall_router
from opsdesk.oncall.escalation_api import actions as act_links
from opsdesk.oncall.escalation_api import router as escalation_router
from opsdesk.oncall.load_api import router as oncall_load_router
from opsdesk.runtime.health import state_registry
from opsdesk.runtime.roles import BACKGROUND_ROLES, Runtime
from opsdesk.runtime.writer import BatchWriter
from opsdesk.web import errors, filters, system, views
from opsdesk.web.middleware import BodyLimitMiddleware, MetricsMiddleware, SecurityHeadersMiddleware

PKG = Path(__file__).resolve().parent.parent
STATIC = Path(__file__).resolve().parent / "static"


def templates() -> Jinja2Templates:
    dirs = [PKG / "web" / "templates"] + [
        p for p in sorted(PKG.glob("*/templates")) if p.parent.name != "web"
    ]
    t = Jinja2Templates(directory=str(dirs[0]))
    t.env.loader = ChoiceLoader([FileSystemLoader(str(d)) for d in dirs])
    filters.install(t.env)
    return t


class OpsdeskApp(FastAPI):
    """The application, with its hottest routes answered before the framework.

    ``POST /api/v1/events`` (its happy path, :mod:`opsdesk.alerts.fastpath`) and ``/ping/...``
    (:mod:`opsdesk.monitoring.ping`) run ahead of FastAPI's own wrappers and every middleware:
    at thousands of requests a second those cost more CPU than the work itself (decision 0013).
    Everything else, and every refusal on those paths, goes through the whole stack.
    """

    hot: ASGIApp | None = None
    events: EventsEndpoint | None = None  # also taken by uvicorn's protocol (opsdesk.web.fastlane)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.hot is not None and scope["type"] == "http":
            scope["app"] = self
            await self.hot(scope, receive, send)
        else:
            await self.framework(scope, receive, send)

    async def framework(self, scope: Scope, receive: Receive, send: Send) -> None:
        await super().__call__(scope, receive, send)


def create_app(
    settings: Settings | None = None,
    *,
    db: Database | None = None,
    clock: Clock | None = None,
    roles: set[str] | None = None,
) -> OpsdeskApp:
    """Build the app. ``roles`` are the background roles started with it (default: from settings)."""
    settings = settings or Settings()
    settings.configure_secrets()
    db = db or Database(settings.database_url)
    clock = clock or SystemClock()
    wanted = settings.role_set if roles is None else roles
    background = {r for r in wanted if r in BACKGROUND_ROLES}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = Runtime(settings, db, clock, background)
        app.state.runtime = runtime
        app.state.metrics_store = runtime.store
        dialect = db.engine.dialect
        writer: BatchWriter[NormalizedEvent | RawEvents, Any] = BatchWriter(
            db,
            lambda s, items: store_events(s, items, now=clock.now()),
            driver_write=lambda dbapi, items: write_events(dbapi, dialect, items, now=clock.now()),
            on_commit=runtime.wake_pipeline,
        )
        app.state.event_writer = writer
        writer.start()
        ping_writer: BatchWriter[Ping, bool] = BatchWriter(db, record_pings, on_commit=runtime.wake_pipeline)
        app.state.ping_writer = ping_writer
        ping_writer.start()
        await runtime.start()
        try:
            yield
        finally:
            await runtime.stop()
            writer.stop()
            ping_writer.stop()

    app = OpsdeskApp(
        title="opsdesk",
        version=__version__,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.db = db
    app.state.clock = clock
    app.state.templates = templates()

    errors.install(app)
    # Pages with 90-day uptime bars are large and very repetitive: compressed about tenfold.
    app.add_middleware(GZipMiddleware, minimum_size=2000)
    app.add_middleware(MetricsMiddleware)
    app.add_middleware(SecurityHeadersMiddleware)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    # Ahead of the framework: the hottest routes (see OpsdeskApp).
    app.events = EventsEndpoint(app.framework, max_body_bytes=settings.max_body_bytes)
    app.hot = ping.PingEndpoint(app.events, max_body_bytes=settings.max_body_bytes)

    for router in (
        auth_router,
        cmdb_router,
        monitoring_router,
        probe_router,
        alerts_router,
        alert_admin_router,
        integrations_router,
        incidents_router,
        postmortems_router,
        audit_router,
        ascode_router,
        metrics_router,
        oncall_router,
        escalation_router,
        oncall_load_router,
    ):
        app.include_router(router, prefix="/api/v1")

    app.state.state_registry = state_registry(db, clock)
    app.include_router(system.router)
    app.include_router(hook_router)  # /hooks/<key>: the integration key is the credential
    app.include_router(oncall_feeds)  # /ical/<token>.ics: the token is the credential
    app.include_router(act_links)  # /act/<token>: a signed, expiring, single-use link
    app.include_router(views.router)
    app.include_router(metrics_views.router)
    if STATIC.is_dir():
        app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    return app
