"""Postmortem pages.

- ``GET /incidents/{id}/postmortem``: the sections (a form while draft or in review, text once
  published), the status buttons and the action items with an add form.
- ``GET /postmortems``: every postmortem with its incident, priority, status, open action items and
  publication date.
- ``GET /action-items``: action items across postmortems, overdue ones highlighted; ``mine=1``
  keeps the signed-in user's.

Sections are shown as escaped text with their line breaks (no Markdown rendering).
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError

from opsdesk.core.actor import Role
from opsdesk.core.errors import OpsdeskError
from opsdesk.incidents import postmortems as pms
from opsdesk.incidents import service as incidents
from opsdesk.web.deps import Ctx, PathId, page
from opsdesk.web.render import back, render

router = APIRouter()

Errors = dict[str, str]
FormText = Annotated[str, Form()]
STATUS_LABEL = {"draft": "draft", "in_review": "in review", "published": "published"}
STATUS_CLASS = {"draft": "muted", "in_review": "warn", "published": "ok"}
PRIORITY_CLASS = {"P1": "bad", "P2": "bad", "P3": "warn", "P4": "muted", "P5": "muted"}


def _users(ctx: Ctx) -> list[Any]:
    from opsdesk.auth import service as auth

    with ctx.session() as s:
        return [u for u in auth.list_users(s, limit=10_000) if u.active]


def _postmortem_page(
    request: Request,
    ctx: Ctx,
    incident_id: int,
    *,
    status_code: int = 200,
    form: dict[str, str] | None = None,
    errors: Errors | None = None,
    item_form: dict[str, str] | None = None,
    item_errors: Errors | None = None,
) -> HTMLResponse:
    now = ctx.now()
    with ctx.session() as s:
        inc = incidents.get_incident(s, incident_id)
        pm = pms.get_for_incident(s, inc.id)
        items = pms.list_action_items(s, postmortem_id=pm.id, now=now) if pm else []
        owners = pms.user_names(s, [i.owner_id for i in items], email=False)
        data: dict[str, Any] = {
            "inc": inc,
            "pm": pm,
            "items": items,
            "owners": owners,
            "overdue": {i.id for i in items if pms.is_overdue(i, now)},
            "missing": pms.missing_to_publish(pm) if pm else [],
            "form": form or ({f: getattr(pm, f) for f in pms.SECTIONS} if pm else {}),
        }
    return render(
        request,
        ctx,
        "incidents/postmortem.html",
        status_code=status_code,
        nav="postmortems",
        sections=pms.SECTIONS,
        labels=pms.LABELS,
        guidance=pms.GUIDANCE,
        status_label=STATUS_LABEL,
        status_class=STATUS_CLASS,
        priority_class=PRIORITY_CLASS,
        users=_users(ctx),
        errors=errors or {},
        item_form=item_form or {},
        item_errors=item_errors or {},
        **data,
    )


@router.get("/incidents/{incident_id}/postmortem", response_class=HTMLResponse)
def postmortem_page(request: Request, incident_id: PathId, ctx: Ctx = Depends(page())) -> HTMLResponse:
    return _postmortem_page(request, ctx, incident_id)


def _url(incident_id: int) -> str:
    return f"/incidents/{incident_id}/postmortem"


@router.post("/incidents/{incident_id}/postmortem/start")
def postmortem_start(incident_id: PathId, ctx: Ctx = Depends(page(Role.responder))) -> Response:
    with ctx.session() as s:
        _, created = pms.start(s, incident_id, actor=ctx.actor, now=ctx.now())
    return back(_url(incident_id), "Postmortem started" if created else None)


@router.post("/incidents/{incident_id}/postmortem", response_model=None)
def postmortem_save(
    request: Request,
    incident_id: PathId,
    ctx: Ctx = Depends(page(Role.responder)),
    summary: FormText = "",
    impact: FormText = "",
    timeline: FormText = "",
    root_cause: FormText = "",
    went_well: FormText = "",
    went_badly: FormText = "",
) -> Response:
    # Textareas send CRLF line ends: store LF, so an unchanged section stays unchanged.
    form = {
        f: v.replace("\r\n", "\n")
        for f, v in zip(
            pms.SECTIONS, (summary, impact, timeline, root_cause, went_well, went_badly), strict=True
        )
    }
    errors: Errors = {}
    try:
        data = pms.PostmortemUpdate.model_validate(form)
        with ctx.session() as s:
            pms.update_sections(s, incident_id, data, actor=ctx.actor, now=ctx.now())
        return back(_url(incident_id), "Postmortem saved")
    except ValidationError as exc:
        for e in exc.errors():
            errors.setdefault(str(e["loc"][0]) if e["loc"] else "form", e["msg"])
        status = 422
    except OpsdeskError as exc:
        if exc.status not in (409, 422):
            raise
        errors["form"] = exc.detail
        status = exc.status
    return _postmortem_page(request, ctx, incident_id, status_code=status, form=form, errors=errors)


@router.post("/incidents/{incident_id}/postmortem/status", response_model=None)
def postmortem_status(
    request: Request, incident_id: PathId, ctx: Ctx = Depends(page(Role.responder)), status: FormText = ""
) -> Response:
    try:
        with ctx.session() as s:
            pm = pms.set_status(s, incident_id, status, actor=ctx.actor, now=ctx.now())
            label = STATUS_LABEL[pm.status]
        return back(_url(incident_id), f"Postmortem is now {label}")
    except OpsdeskError as exc:
        if exc.status not in (409, 422):
            raise
        errors = {e.field: e.message for e in exc.errors}
        errors["form"] = exc.detail
        return _postmortem_page(request, ctx, incident_id, status_code=exc.status, errors=errors)


def _parse_date(text: str) -> date | str | None:
    text = text.strip()
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        return text  # left to the schema, which names the field


@router.post("/incidents/{incident_id}/postmortem/action-items", response_model=None)
def action_item_add(
    request: Request,
    incident_id: PathId,
    ctx: Ctx = Depends(page(Role.responder)),
    title: FormText = "",
    owner_id: FormText = "",
    due_date: FormText = "",
) -> Response:
    item_form = {"title": title, "owner_id": owner_id, "due_date": due_date}
    errors: Errors = {}
    try:
        with ctx.session() as s:
            pm = pms.require_for_incident(s, incident_id)
            data = pms.ActionItemIn.model_validate(
                {
                    "postmortem_id": pm.id,
                    "title": title,
                    "owner_id": owner_id.strip() or None,
                    "due_date": _parse_date(due_date),
                }
            )
            pms.add_action_item(s, data, actor=ctx.actor, now=ctx.now())
        return back(_url(incident_id) + "#action-items", "Action item added")
    except ValidationError as exc:
        for e in exc.errors():
            errors.setdefault(str(e["loc"][0]) if e["loc"] else "form", e["msg"])
        status = 422
    except OpsdeskError as exc:
        if exc.status != 422:
            raise
        errors.update({e.field: e.message for e in exc.errors} or {"form": exc.detail})
        status = 422
    return _postmortem_page(
        request, ctx, incident_id, status_code=status, item_form=item_form, item_errors=errors
    )


def _next(next: str, default: str) -> str:
    return next if next.startswith("/") and not next.startswith("//") else default


def _item_incident(ctx: Ctx, item_id: int) -> int:
    with ctx.session() as s:
        return pms.get_postmortem(s, pms.get_action_item(s, item_id).postmortem_id).incident_id


@router.post("/action-items/{action_item_id}/done")
def action_item_done(
    action_item_id: PathId, ctx: Ctx = Depends(page(Role.responder)), next: FormText = ""
) -> Response:
    with ctx.session() as s:
        item = pms.mark_done(s, action_item_id, actor=ctx.actor, now=ctx.now())
        title = item.title
    target = _next(next, _url(_item_incident(ctx, action_item_id)) + "#action-items")
    return back(target, f"Done: {title}")


@router.post("/action-items/{action_item_id}/reopen")
def action_item_reopen(
    action_item_id: PathId, ctx: Ctx = Depends(page(Role.responder)), next: FormText = ""
) -> Response:
    with ctx.session() as s:
        item = pms.reopen_item(s, action_item_id, actor=ctx.actor, now=ctx.now())
        title = item.title
    target = _next(next, _url(_item_incident(ctx, action_item_id)) + "#action-items")
    return back(target, f"Reopened: {title}")


@router.post("/action-items/{action_item_id}/delete")
def action_item_delete(
    action_item_id: PathId, ctx: Ctx = Depends(page(Role.responder)), next: FormText = ""
) -> Response:
    incident_id = _item_incident(ctx, action_item_id)
    with ctx.session() as s:
        title = pms.get_action_item(s, action_item_id).title
        pms.delete_action_item(s, action_item_id, actor=ctx.actor, now=ctx.now())
    return back(_next(next, _url(incident_id) + "#action-items"), f"Deleted: {title}")


@router.get("/postmortems", response_class=HTMLResponse)
def postmortem_list(request: Request, ctx: Ctx = Depends(page()), status: str = "") -> HTMLResponse:
    wanted = status if status in STATUS_LABEL else ""
    with ctx.session() as s:
        rows = pms.list_postmortems(s, status=wanted or None, limit=500)
        incs = pms.incidents_for(s, [pm.id for pm in rows])
        counts = pms.open_item_counts(s, [pm.id for pm in rows])
    return render(
        request,
        ctx,
        "incidents/postmortems.html",
        nav="postmortems",
        rows=[(pm, incs[pm.id], counts.get(pm.id, 0)) for pm in rows],
        status=wanted,
        status_label=STATUS_LABEL,
        status_class=STATUS_CLASS,
        priority_class=PRIORITY_CLASS,
    )


ITEM_TABS = {"open": "Open", "overdue": "Overdue", "done": "Done", "all": "All"}


@router.get("/action-items", response_class=HTMLResponse)
def action_item_list(
    request: Request, ctx: Ctx = Depends(page()), show: str = "open", mine: str = ""
) -> HTMLResponse:
    show = show if show in ITEM_TABS else "open"
    only_mine = mine in ("1", "true", "on") and ctx.actor.id is not None
    now = ctx.now()
    with ctx.session() as s:
        rows = pms.list_action_items(
            s,
            status={"open": pms.ITEM_OPEN, "done": pms.ITEM_DONE}.get(show),
            overdue=show == "overdue",
            owner_id=ctx.actor.id if only_mine else None,
            now=now,
        )
        incs = pms.incidents_for(s, [i.postmortem_id for i in rows])
        owners = pms.user_names(s, [i.owner_id for i in rows], email=False)
    return render(
        request,
        ctx,
        "incidents/postmortem_items.html",
        nav="postmortems",
        items=rows,
        incs=incs,
        owners=owners,
        overdue={i.id for i in rows if pms.is_overdue(i, now)},
        show=show,
        mine=only_mine,
        tabs=ITEM_TABS,
        today=now.date(),
    )
