"""``/api/v1/silences``, ``/api/v1/maintenance-windows`` and ``/api/v1/alert-rules``.

Silences are for the people on call: a responder creates, edits and expires them. Maintenance
windows and dedup/grouping rules are configuration: a manager writes them. Everyone reads.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from opsdesk.alerts import rules, silences
from opsdesk.alerts.admin_schemas import (
    RuleIn,
    RuleOut,
    RuleUpdate,
    SilenceIn,
    SilenceOut,
    SilencePreview,
    SilencePreviewIn,
    SilenceState,
    SilenceUpdate,
    WindowIn,
    WindowOut,
    WindowUpdate,
    to_matchers,
)
from opsdesk.changes import maintenance
from opsdesk.core.actor import Role
from opsdesk.core.paging import next_cursor, parse_cursor
from opsdesk.core.schemas import Page
from opsdesk.web.deps import Ctx, PathId, QueryId, api

router = APIRouter()
Limit = Annotated[int, Query(ge=1, le=500)]

# --- silences ------------------------------------------------------------------------------------


@router.get("/silences", response_model=Page[SilenceOut], tags=["silences"])
def list_silences(
    ctx: Ctx = Depends(api()),
    state: SilenceState | None = None,
    cursor: str | None = None,
    limit: Limit = 100,
) -> object:
    """Silences, newest first; ``state`` is ``active``, ``pending`` or ``expired`` (from the time now)."""
    now = ctx.now()
    with ctx.session() as s:
        rows = silences.list_silences(
            s, now=now, state=state, before_id=parse_cursor(cursor) or None, limit=limit
        )
        return {"items": [silences.as_dict(x, now) for x in rows], "next_cursor": next_cursor(rows, limit)}


@router.post("/silences", response_model=SilenceOut, status_code=201, tags=["silences"])
def create_silence(data: SilenceIn, ctx: Ctx = Depends(api(Role.responder))) -> object:
    """Mute the alerts matching every matcher, from ``starts_at`` (default now) until ``ends_at`` or
    for ``duration``. At least one matcher must not match the empty string."""
    now = ctx.now()
    with ctx.session() as s:
        return silences.as_dict(silences.create(s, data, actor=ctx.actor, now=now), now)


@router.post("/silences/preview", response_model=SilencePreview, tags=["silences"])
def preview_silence(data: SilencePreviewIn, ctx: Ctx = Depends(api())) -> object:
    """How many firing alerts these matchers would mute now (nothing is saved)."""
    with ctx.session() as s:
        count, sample = silences.affected(s, to_matchers(data.matchers), ctx.now())
        return {"count": count, "sample": sample}


@router.get("/silences/{silence_id}", response_model=SilenceOut, tags=["silences"])
def get_silence(silence_id: PathId, ctx: Ctx = Depends(api())) -> object:
    with ctx.session() as s:
        return silences.as_dict(silences.get(s, silence_id), ctx.now())


@router.patch("/silences/{silence_id}", response_model=SilenceOut, tags=["silences"])
def update_silence(
    silence_id: PathId, data: SilenceUpdate, ctx: Ctx = Depends(api(Role.responder))
) -> object:
    """Change the comment or the end; anything of a pending silence. New matchers on an active
    silence expire it and answer with the silence created in its place (a new id)."""
    now = ctx.now()
    with ctx.session() as s:
        return silences.as_dict(silences.update(s, silence_id, data, actor=ctx.actor, now=now), now)


@router.delete("/silences/{silence_id}", status_code=204, tags=["silences"])
def expire_silence(silence_id: PathId, ctx: Ctx = Depends(api(Role.responder))) -> Response:
    """Expire the silence now (it stays listed as expired)."""
    with ctx.session() as s:
        silences.expire(s, silence_id, actor=ctx.actor, now=ctx.now())
    return Response(status_code=204)


# --- maintenance windows -------------------------------------------------------------------------


@router.get("/maintenance-windows", response_model=Page[WindowOut], tags=["maintenance"])
def list_windows(
    ctx: Ctx = Depends(api()),
    service_id: QueryId = None,
    ci_id: QueryId = None,
    cursor: str | None = None,
    limit: Limit = 100,
) -> object:
    now = ctx.now()
    with ctx.session() as s:
        rows = maintenance.list_windows(
            s, after_id=parse_cursor(cursor), limit=limit, service_id=service_id, ci_id=ci_id
        )
        return {
            "items": [maintenance.as_dict(s, w, now) for w in rows],
            "next_cursor": next_cursor(rows, limit),
        }


@router.post("/maintenance-windows", response_model=WindowOut, status_code=201, tags=["maintenance"])
def create_window(data: WindowIn, ctx: Ctx = Depends(api(Role.manager))) -> object:
    now = ctx.now()
    with ctx.session() as s:
        return maintenance.as_dict(s, maintenance.create(s, data, actor=ctx.actor, now=now), now)


@router.get("/maintenance-windows/{window_id}", response_model=WindowOut, tags=["maintenance"])
def get_window(window_id: PathId, ctx: Ctx = Depends(api())) -> object:
    with ctx.session() as s:
        return maintenance.as_dict(s, maintenance.get(s, window_id), ctx.now())


@router.patch("/maintenance-windows/{window_id}", response_model=WindowOut, tags=["maintenance"])
def update_window(window_id: PathId, data: WindowUpdate, ctx: Ctx = Depends(api(Role.manager))) -> object:
    now = ctx.now()
    with ctx.session() as s:
        return maintenance.as_dict(s, maintenance.update(s, window_id, data, actor=ctx.actor, now=now), now)


@router.delete("/maintenance-windows/{window_id}", status_code=204, tags=["maintenance"])
def delete_window(window_id: PathId, ctx: Ctx = Depends(api(Role.manager))) -> Response:
    with ctx.session() as s:
        maintenance.delete(s, window_id, actor=ctx.actor, now=ctx.now())
    return Response(status_code=204)


# --- alert rules ---------------------------------------------------------------------------------


@router.get("/alert-rules", response_model=list[RuleOut], tags=["alert rules"])
def list_rules(ctx: Ctx = Depends(api())) -> object:
    """Every rule in the order the pipeline tries them: position, then id."""
    with ctx.session() as s:
        return [rules.as_dict(r) for r in rules.list_rules(s)]


@router.post("/alert-rules", response_model=RuleOut, status_code=201, tags=["alert rules"])
def create_rule(data: RuleIn, ctx: Ctx = Depends(api(Role.manager))) -> object:
    with ctx.session() as s:
        return rules.as_dict(rules.create(s, data, actor=ctx.actor, now=ctx.now()))


@router.get("/alert-rules/{rule_id}", response_model=RuleOut, tags=["alert rules"])
def get_rule(rule_id: PathId, ctx: Ctx = Depends(api())) -> object:
    with ctx.session() as s:
        return rules.as_dict(rules.get(s, rule_id))


@router.patch("/alert-rules/{rule_id}", response_model=RuleOut, tags=["alert rules"])
def update_rule(rule_id: PathId, data: RuleUpdate, ctx: Ctx = Depends(api(Role.manager))) -> object:
    with ctx.session() as s:
        return rules.as_dict(rules.update(s, rule_id, data, actor=ctx.actor, now=ctx.now()))


@router.delete("/alert-rules/{rule_id}", status_code=204, tags=["alert rules"])
def delete_rule(rule_id: PathId, ctx: Ctx = Depends(api(Role.manager))) -> Response:
    with ctx.session() as s:
        rules.delete(s, rule_id, actor=ctx.actor, now=ctx.now())
    return Response(status_code=204)
