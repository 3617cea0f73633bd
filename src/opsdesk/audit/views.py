"""HTML page for the audit log: who changed what, newest first, with a readable before → after diff."""

from __future__ import annotations

import json
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse

from opsdesk.audit import service
from opsdesk.core.actor import Role
from opsdesk.web.deps import Ctx, QueryId, page
from opsdesk.web.render import render

router = APIRouter()

PER_PAGE = 50
MAX_VALUE = 120  # characters of one value shown in the diff; the full value is in the title
ACTION_CLASS = {"create": "ok", "delete": "bad", "revoke": "bad"}


def show_value(value: Any) -> str:
    """A value as a person reads it: strings bare, nothing as a dash, the rest as JSON."""
    if value is None:
        return "—"
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


def _short(text: str) -> str:
    return text if len(text) <= MAX_VALUE else text[: MAX_VALUE - 1] + "…"


def diff(before: dict[str, Any] | None, after: dict[str, Any] | None) -> list[dict[str, str]]:
    """The keys that changed, in the order they were recorded.

    An update lists ``key: old → new``; a create or a delete (one side missing) lists every key once.
    """
    if before is None or after is None:
        values = after if after is not None else before or {}
        return [{"key": k, "value": _short(show_value(v)), "full": show_value(v)} for k, v in values.items()]
    out = []
    for key in dict.fromkeys([*before, *after]):
        old, new = before.get(key), after.get(key)
        if old == new:
            continue
        out.append(
            {
                "key": key,
                "old": _short(show_value(old)),
                "new": _short(show_value(new)),
                "full": f"{show_value(old)} → {show_value(new)}",
            }
        )
    return out


def _url(**params: object) -> str:
    kept = {k: v for k, v in params.items() if v not in (None, "")}
    return "/audit" + ("?" + urlencode(kept) if kept else "")


@router.get("/audit", response_class=HTMLResponse)
def audit_list(
    request: Request,
    ctx: Ctx = Depends(page(Role.manager)),
    entity_type: Annotated[str, Query(max_length=40)] = "",
    entity_id: Annotated[str, Query(max_length=40)] = "",
    before_id: QueryId = None,
) -> HTMLResponse:
    entity_type, entity_id = entity_type.strip(), entity_id.strip()
    with ctx.session() as s:
        rows = service.list_entries(
            s,
            entity_type=entity_type or None,
            entity_id=entity_id or None,
            before_id=before_id,
            limit=PER_PAGE + 1,  # one more tells whether there is an older page
        )
        # Types for the filter select, from the log itself, so new kinds of entity show up by themselves.
        types = service.entity_types(s)
    more, rows = len(rows) > PER_PAGE, rows[:PER_PAGE]
    if entity_type and entity_type not in types:
        types.append(entity_type)
    entries = [
        {
            "id": e.id,
            "at": e.at,
            "actor": e.actor,
            "action": e.action,
            "action_class": ACTION_CLASS.get(e.action, "muted"),
            "entity_type": e.entity_type,
            "entity_id": e.entity_id,
            "entity_url": _url(entity_type=e.entity_type, entity_id=e.entity_id),
            "one_side": e.before is None or e.after is None,
            "changes": diff(e.before, e.after),
        }
        for e in rows
    ]
    return render(
        request,
        ctx,
        "audit/audit.html",
        nav="audit",
        entries=entries,
        entity_types=types,
        entity_type=entity_type,
        entity_id=entity_id,
        filtered=bool(entity_type or entity_id),
        newest_url=_url(entity_type=entity_type, entity_id=entity_id) if before_id else None,
        older_url=_url(entity_type=entity_type, entity_id=entity_id, before_id=rows[-1].id) if more else None,
    )
