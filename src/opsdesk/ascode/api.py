from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import PlainTextResponse
from starlette.concurrency import run_in_threadpool

from opsdesk.ascode import service
from opsdesk.core.actor import Role
from opsdesk.web.deps import Ctx, api

router = APIRouter(tags=["config as code"])

_BODY_DOC: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"application/yaml": {"schema": {"type": "string"}}, "application/json": {"schema": {}}},
    }
}


@router.post("/apply", openapi_extra=_BODY_DOC)
async def apply_document(
    request: Request, ctx: Ctx = Depends(api(Role.manager)), dry_run: bool = False
) -> object:
    """Create or update what the YAML (or JSON) document describes; ``dry_run`` reports and changes nothing.

    Errors name the document's line and field. ``${VAR}`` in strings is not expanded here (it is in the CLI).
    """
    text = (await request.body()).decode("utf-8", "replace")

    def run() -> dict[str, Any]:
        doc, lines = service.parse(text, env={})
        with ctx.db.sessionmaker() as s:
            s.begin()
            report = service.apply(s, doc, lines, actor=ctx.actor, now=ctx.now())
            s.rollback() if dry_run else s.commit()
        return {
            "dry_run": dry_run,
            "summary": {a: report.count(a) for a in ("created", "updated", "unchanged")},
            "changes": [{"kind": k, "name": n, "action": a} for k, n, a in report.changes],
        }

    return await run_in_threadpool(run)


@router.get("/export", response_class=PlainTextResponse)
def export_document(ctx: Ctx = Depends(api())) -> PlainTextResponse:
    """The current setup as a YAML document for ``apply`` (secrets are never exported)."""
    with ctx.session() as s:
        return PlainTextResponse(service.dump(service.export(s)), media_type="application/yaml")
