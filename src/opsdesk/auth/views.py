"""HTML pages for teams and their members, users, and API tokens."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError
from sqlalchemy.orm import Session

from opsdesk.auth import service
from opsdesk.auth.models import Team
from opsdesk.auth.schemas import TeamIn, TeamUpdate, TokenIn, UserIn, UserUpdate
from opsdesk.cmdb import service as cmdb
from opsdesk.core.actor import Role
from opsdesk.core.errors import OpsdeskError, forbidden, invalid
from opsdesk.core.security import generate_password
from opsdesk.web.deps import Ctx, PathId, page
from opsdesk.web.render import back, render

router = APIRouter()

Errors = dict[str, str]
MANY = 10_000


def _collect(exc: ValidationError | OpsdeskError, errors: Errors, conflict_field: str = "name") -> int:
    """Put the messages of ``exc`` under form field names; return the status to answer with.

    A conflict without field errors goes under ``conflict_field`` (for a team: its taken name).
    """
    if isinstance(exc, ValidationError):
        for e in exc.errors():
            errors.setdefault(str(e["loc"][0]) if e["loc"] else "form", e["msg"])
        return 422
    if exc.status not in (409, 422):
        raise exc
    if exc.errors:
        for fe in exc.errors:
            errors.setdefault(fe.field, fe.message)
    else:
        errors[conflict_field] = exc.detail
    return exc.status


def _members(team: Team) -> list[dict[str, Any]]:
    users = sorted((m.user for m in team.members), key=lambda u: u.name.lower())
    return [{"id": u.id, "name": u.name, "email": u.email, "role": u.role, "active": u.active} for u in users]


def _users(s: Session) -> list[dict[str, Any]]:
    users = service.list_users(s, limit=MANY)
    return [
        {"id": u.id, "name": u.name, "email": u.email, "active": u.active}
        for u in sorted(users, key=lambda u: u.name.lower())
    ]


def _teams_context(ctx: Ctx) -> dict[str, Any]:
    with ctx.session() as s:
        teams = [
            {"id": t.id, "name": t.name, "description": t.description, "members": _members(t)}
            for t in service.list_teams(s, limit=1000)
        ]
        return {"teams": teams, "users": _users(s)}


@router.get("/teams", response_class=HTMLResponse)
def team_list(request: Request, ctx: Ctx = Depends(page())) -> HTMLResponse:
    return render(
        request,
        ctx,
        "auth/teams.html",
        nav="teams",
        form={"member_ids": []},
        errors={},
        **_teams_context(ctx),
    )


@dataclass
class TeamForm:
    """The fields of the team create and edit forms."""

    name: Annotated[str, Form()] = ""
    description: Annotated[str, Form()] = ""
    member_ids: Annotated[list[str] | None, Form()] = None

    def values(self) -> dict[str, Any]:
        members = [m for m in self.member_ids or [] if m]
        return {"name": self.name, "description": self.description, "member_ids": members}


@router.post("/teams", response_model=None)
def team_create(
    request: Request, ctx: Ctx = Depends(page(Role.manager)), fields: TeamForm = Depends()
) -> Response:
    form = fields.values()
    errors: Errors = {}
    try:
        data = TeamIn.model_validate(form)
        with ctx.session() as s:
            team = service.create_team(s, data, actor=ctx.actor, now=ctx.now())
            return back(f"/teams/{team.id}", f"Team {team.name} created")
    except (ValidationError, OpsdeskError) as exc:
        status = _collect(exc, errors)
    return render(
        request,
        ctx,
        "auth/teams.html",
        status_code=status,
        nav="teams",
        form=form,
        errors=errors,
        **_teams_context(ctx),
    )


def _team_page(
    request: Request,
    ctx: Ctx,
    team_id: PathId,
    *,
    status_code: int = 200,
    form: dict[str, Any] | None = None,
    errors: Errors | None = None,
) -> HTMLResponse:
    with ctx.session() as s:
        team = service.get_team(s, team_id)
        members = _members(team)
        data = {
            "team": team,
            "members": members,
            "users": _users(s),
            "services": cmdb.list_services(s, owner_team_id=team.id, limit=500),
            "cis": cmdb.list_cis(s, owner_team_id=team.id, limit=500),
        }
        form = form or {
            "name": team.name,
            "description": team.description,
            "member_ids": [str(m["id"]) for m in members],
        }
    return render(
        request,
        ctx,
        "auth/team.html",
        status_code=status_code,
        nav="teams",
        form=form,
        errors=errors or {},
        **data,
    )


@router.get("/teams/{team_id}", response_class=HTMLResponse)
def team_detail(request: Request, team_id: PathId, ctx: Ctx = Depends(page())) -> HTMLResponse:
    return _team_page(request, ctx, team_id)


@router.post("/teams/{team_id}", response_model=None)
def team_update(
    request: Request, team_id: PathId, ctx: Ctx = Depends(page(Role.manager)), fields: TeamForm = Depends()
) -> Response:
    form = fields.values()
    errors: Errors = {}
    try:
        data = TeamUpdate.model_validate(form)
        with ctx.session() as s:
            team = service.update_team(s, team_id, data, actor=ctx.actor, now=ctx.now())
            return back(f"/teams/{team.id}", f"Team {team.name} saved")
    except (ValidationError, OpsdeskError) as exc:
        status = _collect(exc, errors)
    return _team_page(request, ctx, team_id, status_code=status, form=form, errors=errors)


@router.post("/teams/{team_id}/delete")
def team_delete(team_id: PathId, ctx: Ctx = Depends(page(Role.manager))) -> Response:
    try:
        with ctx.session() as s:
            name = service.get_team(s, team_id).name
            service.delete_team(s, team_id, actor=ctx.actor, now=ctx.now())
    except OpsdeskError as exc:
        if exc.status != 409:
            raise
        return back(f"/teams/{team_id}", exc.detail, kind="bad")
    return back("/teams", f"Team {name} deleted")


# --- users -------------------------------------------------------------------------------------

ROLES = [r.value for r in Role]
NO_STORE = {"Cache-Control": "no-store"}  # for pages that show a secret once


def _user_rows(s: Session) -> list[dict[str, Any]]:
    users = service.list_users(s, limit=MANY)
    return [
        {
            "id": u.id,
            "email": u.email,
            "name": u.name,
            "role": u.role,
            "active": u.active,
            "created_at": u.created_at,
        }
        for u in sorted(users, key=lambda u: (u.name.lower(), u.email))
    ]


def _users_page(
    request: Request, ctx: Ctx, *, status_code: int = 200, form: dict[str, Any], errors: Errors
) -> HTMLResponse:
    with ctx.session() as s:
        users = _user_rows(s)
    return render(
        request,
        ctx,
        "auth/users.html",
        status_code=status_code,
        nav="users",
        users=users,
        roles=ROLES,
        form=form,
        errors=errors,
    )


@router.get("/users", response_class=HTMLResponse)
def user_list(request: Request, ctx: Ctx = Depends(page(Role.admin))) -> HTMLResponse:
    return _users_page(request, ctx, form={"role": Role.viewer.value}, errors={})


@router.post("/users", response_model=None)
def user_create(
    request: Request,
    ctx: Ctx = Depends(page(Role.admin)),
    email: Annotated[str, Form()] = "",
    name: Annotated[str, Form()] = "",
    role: Annotated[str, Form()] = Role.viewer.value,
    password: Annotated[str, Form()] = "",
) -> Response:
    form = {"email": email, "name": name, "role": role}  # the password is never sent back
    errors: Errors = {}
    generated = generate_password() if not password else None
    try:
        data = UserIn.model_validate(
            {"email": email, "name": name, "role": role, "password": password or generated}
        )
        with ctx.session() as s:
            user = service.create_user(s, data, actor=ctx.actor, now=ctx.now())
            user_id, label = user.id, user.email
            if generated is None:
                return back(f"/users/{user_id}", f"User {label} created")
    except (ValidationError, OpsdeskError) as exc:
        status = _collect(exc, errors, conflict_field="email")
        return _users_page(request, ctx, status_code=status, form=form, errors=errors)
    # A generated password is shown once, in this answer only: never in a redirect URL.
    resp = _user_page(
        request, ctx, user_id, status_code=201, new_password=generated, flash=f"User {label} created"
    )
    resp.headers.update(NO_STORE)
    return resp


def _user_page(
    request: Request,
    ctx: Ctx,
    user_id: PathId,
    *,
    status_code: int = 200,
    form: dict[str, Any] | None = None,
    errors: Errors | None = None,
    **extra: Any,
) -> HTMLResponse:
    with ctx.session() as s:
        user = service.get_user(s, user_id)
        teams = sorted(((m.team.id, m.team.name) for m in user.memberships), key=lambda t: t[1].lower())
        active_tokens = sum(1 for t in service.list_tokens(s, user_id=user.id) if t.revoked_at is None)
        form = form or {"name": user.name, "role": user.role, "active": user.active}
    return render(
        request,
        ctx,
        "auth/user.html",
        status_code=status_code,
        nav="users",
        user=user,
        teams=teams,
        active_tokens=active_tokens,
        roles=ROLES,
        form=form,
        errors=errors or {},
        **extra,
    )


@router.get("/users/{user_id}", response_class=HTMLResponse)
def user_detail(request: Request, user_id: PathId, ctx: Ctx = Depends(page(Role.admin))) -> HTMLResponse:
    return _user_page(request, ctx, user_id)


@router.post("/users/{user_id}", response_model=None)
def user_update(
    request: Request,
    user_id: PathId,
    ctx: Ctx = Depends(page(Role.admin)),
    name: Annotated[str, Form()] = "",
    role: Annotated[str, Form()] = "",
    active: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
) -> Response:
    form = {"name": name, "role": role, "active": bool(active)}
    url = f"/users/{user_id}"
    if user_id == ctx.actor.id and not active:
        # Deactivating yourself would end your own session in the middle of the page.
        return back(url, "you cannot deactivate your own account", kind="bad")
    errors: Errors = {}
    try:
        data = UserUpdate.model_validate(
            {"name": name, "role": role, "active": bool(active), "password": password or None}
        )
        with ctx.session() as s:
            user = service.update_user(s, user_id, data, actor=ctx.actor, now=ctx.now())
            label, new_role = user.email, user.role
    except (ValidationError, OpsdeskError) as exc:
        if isinstance(exc, OpsdeskError) and exc.status == 409:
            return back(url, exc.detail, kind="bad")  # e.g. the last admin
        status = _collect(exc, errors)
        return _user_page(request, ctx, user_id, status_code=status, form=form, errors=errors)
    if user_id == ctx.actor.id and new_role != Role.admin.value:
        return back("/", f"You are now {new_role}")  # this page needs the admin role you just gave up
    return back(url, f"User {label} saved")


@router.post("/users/{user_id}/delete")
def user_delete(user_id: PathId, ctx: Ctx = Depends(page(Role.admin))) -> Response:
    try:
        with ctx.session() as s:
            label = service.get_user(s, user_id).email
            service.delete_user(s, user_id, actor=ctx.actor, now=ctx.now())
    except OpsdeskError as exc:
        if exc.status != 409:
            raise
        return back(f"/users/{user_id}", exc.detail, kind="bad")
    return back("/users", f"User {label} deleted")


# --- API tokens --------------------------------------------------------------------------------


def _tokens_page(
    request: Request,
    ctx: Ctx,
    *,
    status_code: int = 200,
    form: dict[str, Any] | None = None,
    errors: Errors | None = None,
    **extra: Any,
) -> HTMLResponse:
    admin = ctx.actor.can(Role.admin)
    with ctx.session() as s:
        rows = service.list_tokens(s, user_id=None if admin else (ctx.actor.id or 0))
        tokens = [
            {
                "id": t.id,
                "name": t.name,
                "user_id": t.user_id,
                "user_email": t.user.email,
                "prefix": t.prefix,
                "created_at": t.created_at,
                "last_used_at": t.last_used_at,
                "revoked_at": t.revoked_at,
                "mine": t.user_id == ctx.actor.id,
            }
            for t in reversed(rows)  # newest first
        ]
        users = [u for u in _users(s) if u["active"]] if admin else []
    return render(
        request,
        ctx,
        "auth/tokens.html",
        status_code=status_code,
        nav="tokens",
        tokens=tokens,
        users=users,
        admin=admin,
        form=form or {"name": "", "user_id": str(ctx.actor.id or "")},
        errors=errors or {},
        **extra,
    )


@router.get("/tokens", response_class=HTMLResponse)
def token_list(request: Request, ctx: Ctx = Depends(page())) -> HTMLResponse:
    return _tokens_page(request, ctx)


@router.post("/tokens", response_model=None)
def token_create(
    request: Request,
    ctx: Ctx = Depends(page(Role.responder)),
    name: Annotated[str, Form()] = "",
    user_id: Annotated[str, Form()] = "",
) -> Response:
    form = {"name": name, "user_id": user_id}
    errors: Errors = {}
    try:
        data = TokenIn.model_validate({"name": name, "user_id": user_id or None})
        owner_id = data.user_id or ctx.actor.id or 0
        if owner_id != ctx.actor.id and not ctx.actor.can(Role.admin):
            raise forbidden("only an admin can create tokens for other users")
        with ctx.session() as s:
            try:
                owner = service.get_user(s, owner_id)
            except OpsdeskError as exc:
                raise invalid("user_id", "no such user") from exc
            if not owner.active:
                raise invalid("user_id", "this user is inactive; a token would not work")
            token, plain = service.create_token(s, owner, data.name, actor=ctx.actor, now=ctx.now())
            created = {"name": token.name, "token": plain, "user_email": owner.email}
    except (ValidationError, OpsdeskError) as exc:
        status = _collect(exc, errors)
        return _tokens_page(request, ctx, status_code=status, form=form, errors=errors)
    # The plain token is shown once, in this answer only: never in a redirect URL or a flash.
    resp = _tokens_page(
        request, ctx, status_code=201, created=created, flash=f"Token {created['name']} created"
    )
    resp.headers.update(NO_STORE)
    return resp


@router.post("/tokens/{token_id}/revoke")
def token_revoke(token_id: PathId, ctx: Ctx = Depends(page(Role.responder))) -> Response:
    with ctx.session() as s:
        token = service.revoke_token(s, token_id, actor=ctx.actor, now=ctx.now())
        label = token.name
    return back("/tokens", f"Token {label} revoked")
