"""HTML pages for teams and their members."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError
from sqlalchemy.orm import Session

from opsdesk.auth import service
from opsdesk.auth.models import Team
from opsdesk.auth.schemas import TeamIn, TeamUpdate
from opsdesk.cmdb import service as cmdb
from opsdesk.core.actor import Role
from opsdesk.core.errors import OpsdeskError
from opsdesk.web.deps import Ctx, page
from opsdesk.web.render import back, render

router = APIRouter()

Errors = dict[str, str]
MANY = 10_000


def _collect(exc: ValidationError | OpsdeskError, errors: Errors) -> int:
    """Put the messages of ``exc`` under form field names; return the status to answer with."""
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
        errors["name"] = exc.detail  # the only conflict a team form can cause: a taken name
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


def _form(name: str, description: str, member_ids: list[str] | None) -> dict[str, Any]:
    return {"name": name, "description": description, "member_ids": [m for m in member_ids or [] if m]}


@router.post("/teams", response_model=None)
def team_create(
    request: Request,
    ctx: Ctx = Depends(page(Role.manager)),
    name: Annotated[str, Form()] = "",
    description: Annotated[str, Form()] = "",
    member_ids: Annotated[list[str] | None, Form()] = None,
) -> Response:
    form = _form(name, description, member_ids)
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
    team_id: int,
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
            # Read-only listing; the service layer has no owner filter, so filter here.
            "services": [x for x in cmdb.list_services(s, limit=MANY) if x.owner_team_id == team.id],
            "cis": [x for x in cmdb.list_cis(s, limit=MANY) if x.owner_team_id == team.id],
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
def team_detail(request: Request, team_id: int, ctx: Ctx = Depends(page())) -> HTMLResponse:
    return _team_page(request, ctx, team_id)


@router.post("/teams/{team_id}", response_model=None)
def team_update(
    request: Request,
    team_id: int,
    ctx: Ctx = Depends(page(Role.manager)),
    name: Annotated[str, Form()] = "",
    description: Annotated[str, Form()] = "",
    member_ids: Annotated[list[str] | None, Form()] = None,
) -> Response:
    form = _form(name, description, member_ids)
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
def team_delete(team_id: int, ctx: Ctx = Depends(page(Role.manager))) -> Response:
    try:
        with ctx.session() as s:
            name = service.get_team(s, team_id).name
            service.delete_team(s, team_id, actor=ctx.actor, now=ctx.now())
    except OpsdeskError as exc:
        if exc.status != 409:
            raise
        return back(f"/teams/{team_id}", exc.detail, kind="bad")
    return back("/teams", f"Team {name} deleted")
