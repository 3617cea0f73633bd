from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from opsdesk.cmdb import service
from opsdesk.cmdb.schemas import (
    CIIn,
    CIOut,
    CIUpdate,
    NodeKind,
    RelationshipIn,
    RelationshipOut,
    ServiceIn,
    ServiceOut,
    ServiceUpdate,
)
from opsdesk.core.actor import Role
from opsdesk.core.errors import invalid
from opsdesk.core.paging import next_cursor, parse_cursor
from opsdesk.core.schemas import Page
from opsdesk.web.deps import Ctx, PathId, QueryId, api

router = APIRouter()
Limit = Annotated[int, Query(ge=1, le=500)]


@router.get("/services", response_model=Page[ServiceOut], tags=["cmdb"])
def list_services(
    ctx: Ctx = Depends(api()), q: str | None = None, cursor: str | None = None, limit: Limit = 100
) -> object:
    with ctx.session() as s:
        rows = service.list_services(s, after_id=parse_cursor(cursor), limit=limit, q=q)
        return {"items": rows, "next_cursor": next_cursor(rows, limit)}


@router.post("/services", response_model=ServiceOut, status_code=201, tags=["cmdb"])
def create_service(data: ServiceIn, ctx: Ctx = Depends(api(Role.manager))) -> object:
    with ctx.session() as s:
        return service.create_service(s, data, actor=ctx.actor, now=ctx.now())


@router.get("/services/{service_id}", response_model=ServiceOut, tags=["cmdb"])
def get_service(service_id: PathId, ctx: Ctx = Depends(api())) -> object:
    with ctx.session() as s:
        return service.get_service(s, service_id)


@router.patch("/services/{service_id}", response_model=ServiceOut, tags=["cmdb"])
def update_service(service_id: PathId, data: ServiceUpdate, ctx: Ctx = Depends(api(Role.manager))) -> object:
    with ctx.session() as s:
        return service.update_service(s, service_id, data, actor=ctx.actor, now=ctx.now())


@router.delete("/services/{service_id}", status_code=204, tags=["cmdb"])
def delete_service(service_id: PathId, ctx: Ctx = Depends(api(Role.manager))) -> Response:
    with ctx.session() as s:
        service.delete_service(s, service_id, actor=ctx.actor, now=ctx.now())
    return Response(status_code=204)


@router.get("/cis", response_model=Page[CIOut], response_model_by_alias=True, tags=["cmdb"])
def list_cis(
    ctx: Ctx = Depends(api()),
    ci_class: Annotated[str | None, Query(alias="class")] = None,
    q: str | None = None,
    cursor: str | None = None,
    limit: Limit = 100,
) -> object:
    with ctx.session() as s:
        rows = service.list_cis(s, after_id=parse_cursor(cursor), limit=limit, ci_class=ci_class, q=q)
        return {"items": rows, "next_cursor": next_cursor(rows, limit)}


@router.post("/cis", response_model=CIOut, status_code=201, tags=["cmdb"])
def create_ci(data: CIIn, ctx: Ctx = Depends(api(Role.manager))) -> object:
    with ctx.session() as s:
        return service.create_ci(s, data, actor=ctx.actor, now=ctx.now())


@router.get("/cis/{ci_id}", response_model=CIOut, tags=["cmdb"])
def get_ci(ci_id: PathId, ctx: Ctx = Depends(api())) -> object:
    with ctx.session() as s:
        return service.get_ci(s, ci_id)


@router.patch("/cis/{ci_id}", response_model=CIOut, tags=["cmdb"])
def update_ci(ci_id: PathId, data: CIUpdate, ctx: Ctx = Depends(api(Role.manager))) -> object:
    with ctx.session() as s:
        return service.update_ci(s, ci_id, data, actor=ctx.actor, now=ctx.now())


@router.delete("/cis/{ci_id}", status_code=204, tags=["cmdb"])
def delete_ci(ci_id: PathId, ctx: Ctx = Depends(api(Role.manager))) -> Response:
    with ctx.session() as s:
        service.delete_ci(s, ci_id, actor=ctx.actor, now=ctx.now())
    return Response(status_code=204)


@router.get("/relationships", response_model=Page[RelationshipOut], tags=["cmdb"])
def list_relationships(
    ctx: Ctx = Depends(api()),
    node_type: NodeKind | None = None,
    node_id: QueryId = None,
    cursor: str | None = None,
    limit: Limit = 100,
) -> object:
    """All relationships, or those touching one service or CI (``node_type`` and ``node_id``)."""
    if (node_type is None) != (node_id is None):
        raise invalid("node_id", "give node_type and node_id together")
    node = (node_type, node_id) if node_type is not None and node_id is not None else None
    with ctx.session() as s:
        rows = service.list_relationships(s, node=node, after_id=parse_cursor(cursor), limit=limit)
        return {
            "items": [service.relationship_dict(s, r) for r in rows],
            "next_cursor": next_cursor(rows, limit),
        }


@router.post("/relationships", response_model=RelationshipOut, status_code=201, tags=["cmdb"])
def create_relationship(data: RelationshipIn, ctx: Ctx = Depends(api(Role.manager))) -> object:
    with ctx.session() as s:
        rel = service.create_relationship(s, data, actor=ctx.actor, now=ctx.now())
        return service.relationship_dict(s, rel)


@router.get("/relationships/{rel_id}", response_model=RelationshipOut, tags=["cmdb"])
def get_relationship(rel_id: PathId, ctx: Ctx = Depends(api())) -> object:
    with ctx.session() as s:
        return service.relationship_dict(s, service.get_relationship(s, rel_id))


@router.delete("/relationships/{rel_id}", status_code=204, tags=["cmdb"])
def delete_relationship(rel_id: PathId, ctx: Ctx = Depends(api(Role.manager))) -> Response:
    with ctx.session() as s:
        service.delete_relationship(s, rel_id, actor=ctx.actor, now=ctx.now())
    return Response(status_code=204)
