from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from opsdesk.audit import service
from opsdesk.core.actor import Role
from opsdesk.core.paging import next_cursor, parse_cursor
from opsdesk.core.schemas import Out, Page
from opsdesk.web.deps import Ctx, api

router = APIRouter(tags=["audit"])


class AuditOut(Out):
    id: int
    at: datetime
    actor: str
    action: str
    entity_type: str
    entity_id: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None


@router.get("/audit", response_model=Page[AuditOut])
def list_audit(
    ctx: Ctx = Depends(api(Role.manager)),
    entity_type: str | None = None,
    entity_id: str | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> object:
    """The audit log, newest first."""
    with ctx.session() as s:
        rows = service.list_entries(
            s,
            entity_type=entity_type,
            entity_id=entity_id,
            before_id=parse_cursor(cursor) or None,
            limit=limit,
        )
        return {"items": rows, "next_cursor": next_cursor(rows, limit)}
