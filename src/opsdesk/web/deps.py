"""Request context and authentication: bearer tokens for the API, session cookies (+ CSRF) for pages."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Path, Query, Request
from fastapi.security import HTTPBearer
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from opsdesk.auth import service as auth
from opsdesk.core.actor import Actor, Role
from opsdesk.core.clock import Clock
from opsdesk.core.db import Database
from opsdesk.core.errors import OpsdeskError, forbidden, unauthorized
from opsdesk.core.schemas import ID_MAX
from opsdesk.core.security import constant_time_equals
from opsdesk.core.settings import Settings

SESSION_COOKIE = "opsdesk_session"

PathId = Annotated[int, Path(ge=1, le=ID_MAX, description="Numeric id")]
QueryId = Annotated[int | None, Query(ge=1, le=ID_MAX)]
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


# Declares the bearer scheme in the OpenAPI document (the "Authorize" button in /api/docs);
# identify() below does the checking, for tokens and session cookies alike.
_BEARER = HTTPBearer(
    auto_error=False, description="An API token from `opsdesk token create` or the Tokens page."
)


class LoginRequired(Exception):
    """A page was asked for without a session: send the browser to the login page."""


@dataclass
class Ctx:
    db: Database
    clock: Clock
    settings: Settings
    actor: Actor
    csrf_token: str = ""
    user_name: str = ""

    def now(self) -> datetime:
        return self.clock.now()

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self.db.session() as s:
            yield s


@dataclass
class _Who:
    actor: Actor
    csrf: str
    name: str
    via_cookie: bool


def _lookup_token(db: Database, clock: Clock, token: str) -> _Who | None:
    with db.session() as s:
        user = auth.user_for_token(s, token, now=clock.now())
        return _Who(auth.actor_for(user), "", user.name, False) if user else None


def _lookup_session(db: Database, clock: Clock, token: str) -> _Who | None:
    with db.session() as s:
        ws = auth.session_for(s, token, now=clock.now())
        return _Who(auth.actor_for(ws.user), ws.csrf_token, ws.user.name, True) if ws else None


async def identify(request: Request) -> _Who | None:
    app = request.app.state
    header = request.headers.get("authorization", "")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise unauthorized("the Authorization header must be 'Bearer <token>'")
        who = await run_in_threadpool(_lookup_token, app.db, app.clock, token.strip())
        if who is None:
            raise unauthorized("invalid or revoked API token")
        return who
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        return await run_in_threadpool(_lookup_session, app.db, app.clock, cookie)
    return None


async def _check_csrf(request: Request, who: _Who) -> None:
    if not who.via_cookie or request.method in SAFE_METHODS:
        return
    sent = request.headers.get("x-csrf-token", "")
    if not sent and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        form = await request.form()
        sent = str(form.get("csrf_token", ""))
    if not sent or not constant_time_equals(sent, who.csrf):
        raise OpsdeskError(
            detail="missing or wrong CSRF token; reload the page", status=403, title="Forbidden"
        )


def _ctx(request: Request, who: _Who) -> Ctx:
    st = request.app.state
    return Ctx(st.db, st.clock, st.settings, who.actor, who.csrf, who.name)


def api(role: Role = Role.viewer) -> Callable[[Request], Awaitable[Ctx]]:
    """Dependency for JSON routes: a bearer token or a session (with CSRF on writes) of ``role`` or above."""

    async def dep(request: Request, _bearer: object = Depends(_BEARER)) -> Ctx:
        who = await identify(request)
        if who is None:
            raise unauthorized()
        await _check_csrf(request, who)
        if not who.actor.can(role):
            raise forbidden(f"this needs the {role.value} role or above; you are {who.actor.role.value}")
        return _ctx(request, who)

    return dep


def page(role: Role = Role.viewer) -> Callable[[Request], Awaitable[Ctx]]:
    """Dependency for HTML pages: a session, else a redirect to the login page."""

    async def dep(request: Request) -> Ctx:
        try:
            who = await identify(request)
        except OpsdeskError:
            who = None
        if who is None:
            raise LoginRequired()
        await _check_csrf(request, who)
        if not who.actor.can(role):
            raise forbidden(f"this needs the {role.value} role or above; you are {who.actor.role.value}")
        return _ctx(request, who)

    return dep


def system_ctx(request: Request) -> tuple[Database, Clock, Settings]:
    st = request.app.state
    return st.db, st.clock, st.settings
