"""Postmortems and action items over JSON: responders write, viewers read.

- ``GET/POST/PATCH /api/v1/incidents/{ref}/postmortem``: read, start (201, or 200 with the one that
  exists), edit sections.
- ``POST /api/v1/incidents/{ref}/postmortem/status``: ``{"status": "in_review" | "published" |
  "draft"}``; reopening a published one needs a manager.
- ``GET/POST /api/v1/action-items``, ``PATCH/DELETE /api/v1/action-items/{id}``.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from opsdesk.core.actor import Role
from opsdesk.core.errors import invalid
from opsdesk.core.schemas import Out
from opsdesk.incidents import postmortems as pms
from opsdesk.incidents import service as incidents
from opsdesk.incidents.models import ActionItem
from opsdesk.web.deps import Ctx, PathId, QueryId, api

router = APIRouter(tags=["postmortems"])


class ActionItemOut(Out):
    id: int
    postmortem_id: int
    title: str
    owner_id: int | None
    due_date: date | None
    status: str
    done_at: datetime | None
    created_at: datetime
    updated_at: datetime
    incident_id: int | None = None
    overdue: bool = False


class PostmortemOut(Out):
    id: int
    incident_id: int
    incident_key: str
    status: str
    summary: str
    impact: str
    timeline: str
    root_cause: str
    went_well: str
    went_badly: str
    author_id: int | None
    created_at: datetime
    updated_at: datetime
    published_at: datetime | None
    missing_to_publish: list[str]
    action_items: list[ActionItemOut]


class ActionItemList(Out):
    items: list[ActionItemOut]


def _postmortem(ctx: Ctx, incident_id: int) -> dict[str, object]:
    now = ctx.now()
    with ctx.session() as s:
        pm = pms.require_for_incident(s, incident_id)
        items = pms.list_action_items(s, postmortem_id=pm.id, now=now)
        out: dict[str, object] = {f: getattr(pm, f) for f in PostmortemOut.model_fields if hasattr(pm, f)}
        out["incident_key"] = f"INC-{pm.incident_id}"
        out["missing_to_publish"] = pms.missing_to_publish(pm)
        out["action_items"] = [_item(i, pm.incident_id, now) for i in items]
        return out


def _item(item: ActionItem, incident_id: int | None, now: datetime) -> ActionItemOut:
    out = ActionItemOut.model_validate(item)
    out.incident_id = incident_id
    out.overdue = pms.is_overdue(item, now)
    return out


@router.get("/incidents/{ref}/postmortem", response_model=PostmortemOut)
def get_postmortem(ref: str, ctx: Ctx = Depends(api())) -> object:
    """The incident's postmortem with its action items (404 when it has none yet)."""
    return _postmortem(ctx, incidents.parse_key(ref))


@router.post("/incidents/{ref}/postmortem", response_model=PostmortemOut, status_code=201)
def start_postmortem(ref: str, response: Response, ctx: Ctx = Depends(api(Role.responder))) -> object:
    """Start the postmortem now (it is drafted anyway when the incident resolves). 201 when
    created, 200 with the existing one otherwise."""
    incident_id = incidents.parse_key(ref)
    with ctx.session() as s:
        _, created = pms.start(s, incident_id, actor=ctx.actor, now=ctx.now())
    if not created:
        response.status_code = 200
    return _postmortem(ctx, incident_id)


@router.patch("/incidents/{ref}/postmortem", response_model=PostmortemOut)
def update_postmortem(
    ref: str, body: pms.PostmortemUpdate, ctx: Ctx = Depends(api(Role.responder))
) -> object:
    """Edit sections (draft or in review only): send the ones that change."""
    incident_id = incidents.parse_key(ref)
    with ctx.session() as s:
        pms.update_sections(s, incident_id, body, actor=ctx.actor, now=ctx.now())
    return _postmortem(ctx, incident_id)


@router.post("/incidents/{ref}/postmortem/status", response_model=PostmortemOut)
def set_postmortem_status(
    ref: str, body: pms.StatusChange, ctx: Ctx = Depends(api(Role.responder))
) -> object:
    """draft → in_review → published; in_review → draft; published → draft (managers)."""
    incident_id = incidents.parse_key(ref)
    with ctx.session() as s:
        pms.set_status(s, incident_id, body.status, actor=ctx.actor, now=ctx.now())
    return _postmortem(ctx, incident_id)


@router.get("/action-items", response_model=ActionItemList)
def list_action_items(
    ctx: Ctx = Depends(api()),
    status: Annotated[str | None, Query(description="open or done")] = None,
    owner_id: QueryId = None,
    overdue: Annotated[bool, Query(description="open and due before today (UTC)")] = False,
    postmortem_id: QueryId = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 500,
) -> object:
    """Action items of every postmortem, soonest due first."""
    if status is not None and status not in (pms.ITEM_OPEN, pms.ITEM_DONE):
        raise invalid("status", f"{status!r} is not one of open, done")
    now = ctx.now()
    with ctx.session() as s:
        rows = pms.list_action_items(
            s,
            status=status,
            owner_id=owner_id,
            overdue=overdue,
            postmortem_id=postmortem_id,
            now=now,
            limit=limit,
        )
        incs = pms.incidents_for(s, [i.postmortem_id for i in rows])
        return {"items": [_item(i, incs[i.postmortem_id].id, now) for i in rows]}


@router.post("/action-items", response_model=ActionItemOut, status_code=201)
def add_action_item(body: pms.ActionItemIn, ctx: Ctx = Depends(api(Role.responder))) -> object:
    now = ctx.now()
    with ctx.session() as s:
        item = pms.add_action_item(s, body, actor=ctx.actor, now=now)
        return _item(item, pms.get_postmortem(s, item.postmortem_id).incident_id, now)


@router.patch("/action-items/{item_id}", response_model=ActionItemOut)
def update_action_item(
    item_id: PathId, body: pms.ActionItemUpdate, ctx: Ctx = Depends(api(Role.responder))
) -> object:
    """Change title, owner or due date, or set ``status`` to done / open."""
    now = ctx.now()
    with ctx.session() as s:
        item = pms.update_action_item(s, item_id, body, actor=ctx.actor, now=now)
        return _item(item, pms.get_postmortem(s, item.postmortem_id).incident_id, now)


@router.delete("/action-items/{item_id}", status_code=204)
def delete_action_item(item_id: PathId, ctx: Ctx = Depends(api(Role.responder))) -> Response:
    with ctx.session() as s:
        pms.delete_action_item(s, item_id, actor=ctx.actor, now=ctx.now())
    return Response(status_code=204)
