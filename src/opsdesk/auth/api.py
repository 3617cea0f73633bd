from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from opsdesk.auth import service
from opsdesk.auth.models import Team
from opsdesk.auth.schemas import (
    TeamIn,
    TeamOut,
    TeamUpdate,
    TokenCreated,
    TokenIn,
    TokenOut,
    UserIn,
    UserOut,
    UserUpdate,
)
from opsdesk.core.actor import Role
from opsdesk.core.errors import forbidden, invalid
from opsdesk.core.paging import next_cursor, parse_cursor
from opsdesk.core.schemas import Page
from opsdesk.web.deps import Ctx, PathId, api

router = APIRouter()
Limit = Annotated[int, Query(ge=1, le=500)]


@router.get("/me", response_model=UserOut, tags=["users"])
def me(ctx: Ctx = Depends(api())) -> object:
    with ctx.session() as s:
        return service.get_user(s, ctx.actor.id or 0)


@router.get("/users", response_model=Page[UserOut], tags=["users"])
def list_users(ctx: Ctx = Depends(api()), cursor: str | None = None, limit: Limit = 100) -> object:
    with ctx.session() as s:
        rows = service.list_users(s, after_id=parse_cursor(cursor), limit=limit)
        return {"items": rows, "next_cursor": next_cursor(rows, limit)}


@router.post("/users", response_model=UserOut, status_code=201, tags=["users"])
def create_user(data: UserIn, ctx: Ctx = Depends(api(Role.admin))) -> object:
    with ctx.session() as s:
        return service.create_user(s, data, actor=ctx.actor, now=ctx.now())


@router.get("/users/{user_id}", response_model=UserOut, tags=["users"])
def get_user(user_id: PathId, ctx: Ctx = Depends(api())) -> object:
    with ctx.session() as s:
        return service.get_user(s, user_id)


@router.patch("/users/{user_id}", response_model=UserOut, tags=["users"])
def update_user(user_id: PathId, data: UserUpdate, ctx: Ctx = Depends(api(Role.viewer))) -> object:
    own_profile = user_id == ctx.actor.id and data.role is None and data.active is None
    if not own_profile and not ctx.actor.can(Role.admin):
        raise forbidden("only an admin can change other users, roles or activation")
    with ctx.session() as s:
        if data.password is not None and user_id == ctx.actor.id:
            # A stolen token or an unattended session must not be enough to take over the login.
            user = service.get_user(s, user_id)
            if service.authenticate(s, user.email, data.current_password or "") is None:
                raise invalid(
                    "current_password", "is missing or wrong; it is needed to change your own password"
                )
        return service.update_user(s, user_id, data, actor=ctx.actor, now=ctx.now())


@router.delete("/users/{user_id}", status_code=204, tags=["users"])
def delete_user(user_id: PathId, ctx: Ctx = Depends(api(Role.admin))) -> Response:
    with ctx.session() as s:
        service.delete_user(s, user_id, actor=ctx.actor, now=ctx.now())
    return Response(status_code=204)


def _team_out(team: Team) -> dict[str, object]:
    out = TeamOut.model_validate(
        {
            **{k: getattr(team, k) for k in ("id", "name", "description", "created_at")},
            "member_ids": service.team_member_ids(team),
        }
    )
    return out.model_dump()


@router.get("/teams", response_model=Page[TeamOut], tags=["teams"])
def list_teams(ctx: Ctx = Depends(api()), cursor: str | None = None, limit: Limit = 100) -> object:
    with ctx.session() as s:
        rows = service.list_teams(s, after_id=parse_cursor(cursor), limit=limit)
        return {"items": [_team_out(t) for t in rows], "next_cursor": next_cursor(rows, limit)}


@router.post("/teams", response_model=TeamOut, status_code=201, tags=["teams"])
def create_team(data: TeamIn, ctx: Ctx = Depends(api(Role.manager))) -> object:
    with ctx.session() as s:
        return _team_out(service.create_team(s, data, actor=ctx.actor, now=ctx.now()))


@router.get("/teams/{team_id}", response_model=TeamOut, tags=["teams"])
def get_team(team_id: PathId, ctx: Ctx = Depends(api())) -> object:
    with ctx.session() as s:
        return _team_out(service.get_team(s, team_id))


@router.patch("/teams/{team_id}", response_model=TeamOut, tags=["teams"])
def update_team(team_id: PathId, data: TeamUpdate, ctx: Ctx = Depends(api(Role.manager))) -> object:
    with ctx.session() as s:
        return _team_out(service.update_team(s, team_id, data, actor=ctx.actor, now=ctx.now()))


@router.delete("/teams/{team_id}", status_code=204, tags=["teams"])
def delete_team(team_id: PathId, ctx: Ctx = Depends(api(Role.manager))) -> Response:
    with ctx.session() as s:
        service.delete_team(s, team_id, actor=ctx.actor, now=ctx.now())
    return Response(status_code=204)


@router.get("/tokens", response_model=list[TokenOut], tags=["tokens"])
def list_tokens(ctx: Ctx = Depends(api())) -> object:
    """Your tokens; an admin sees everyone's."""
    with ctx.session() as s:
        return service.list_tokens(s, user_id=None if ctx.actor.can(Role.admin) else ctx.actor.id)


@router.post("/tokens", response_model=TokenCreated, status_code=201, tags=["tokens"])
def create_token(data: TokenIn, ctx: Ctx = Depends(api(Role.responder))) -> object:
    """Create a token for yourself, or (admin) for another user. The token is shown only in this answer."""
    user_id = data.user_id or ctx.actor.id or 0
    if user_id != ctx.actor.id and not ctx.actor.can(Role.admin):
        raise forbidden("only an admin can create tokens for other users")
    with ctx.session() as s:
        user = service.get_user(s, user_id)
        token, plain = service.create_token(s, user, data.name, actor=ctx.actor, now=ctx.now())
        return {**TokenOut.model_validate(token).model_dump(), "token": plain}


@router.delete("/tokens/{token_id}", status_code=204, tags=["tokens"])
def revoke_token(token_id: PathId, ctx: Ctx = Depends(api(Role.responder))) -> Response:
    with ctx.session() as s:
        service.revoke_token(s, token_id, actor=ctx.actor, now=ctx.now())
    return Response(status_code=204)
