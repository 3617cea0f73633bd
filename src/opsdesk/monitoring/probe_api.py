"""Remote probes over HTTP: management for admins, and the two routes a probe calls with its own
token (``Authorization: Bearer odp_...``), which opens nothing else."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from opsdesk.core.actor import Role
from opsdesk.core.errors import unauthorized
from opsdesk.core.schemas import Out
from opsdesk.monitoring import probes
from opsdesk.web.deps import Ctx, PathId, api

log = logging.getLogger("opsdesk.probes")
router = APIRouter(tags=["probes"])


class ProbeIn(BaseModel):
    location: str = Field(min_length=1, max_length=63)


class ProbeOut(Out):
    id: int
    location: str
    created_at: Any
    last_seen_at: Any
    last_address: str
    version: str
    last_seq: int


class ProbeCreated(ProbeOut):
    token: str = Field(description="Shown once: give it to `opsdesk probe --token`.")


@router.get("/probes", response_model=list[ProbeOut])
def list_probes(ctx: Ctx = Depends(api())) -> object:
    with ctx.session() as s:
        return probes.list_probes(s)


@router.post("/probes", response_model=ProbeCreated, status_code=201)
def create_probe(data: ProbeIn, ctx: Ctx = Depends(api(Role.admin))) -> object:
    with ctx.session() as s:
        p, token = probes.create_probe(s, data.location, actor=ctx.actor, now=ctx.now())
        return {**ProbeOut.model_validate(p).model_dump(), "token": token}


@router.delete("/probes/{probe_id}", status_code=204)
def delete_probe(probe_id: PathId, ctx: Ctx = Depends(api(Role.admin))) -> Response:
    with ctx.session() as s:
        probes.delete_probe(s, probe_id, actor=ctx.actor, now=ctx.now())
    return Response(status_code=204)


@dataclass
class ProbeCtx:
    probe_id: int
    location: str


async def probe_auth(request: Request) -> ProbeCtx:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.startswith("odp_"):
        raise unauthorized("a probe authenticates with 'Authorization: Bearer odp_...'")
    db = request.app.state.db

    def lookup() -> ProbeCtx | None:
        with db.session() as s:
            p = probes.probe_for_token(s, token.strip())
            return None if p is None else ProbeCtx(p.id, p.location)

    found = await run_in_threadpool(lookup)
    if found is None:
        raise unauthorized("unknown or deleted probe token")
    return found


@router.get("/probe/assignments")
def assignments(request: Request, who: ProbeCtx = Depends(probe_auth)) -> object:
    """The monitors this probe's location runs (with their credentials)."""
    with request.app.state.db.session() as s:
        last_seq = probes.get_probe(s, who.probe_id).last_seq
        return {
            "location": who.location,
            "last_seq": last_seq,
            "monitors": probes.assignments(s, who.location),
        }


@router.post("/probe/results")
def post_results(request: Request, data: probes.ResultsIn, who: ProbeCtx = Depends(probe_auth)) -> object:
    """Results in sequence order; those already taken (a replay) are skipped."""
    app = request.app
    with app.state.db.session() as s:
        probe = probes.get_probe(s, who.probe_id)
        address = request.client.host if request.client else ""
        taken, last_seq, samples, transitions = probes.take_results(
            s, probe, data, now=app.state.clock.now(), address=address
        )
    runtime = getattr(app.state, "runtime", None)
    if transitions and runtime is not None:
        runtime.wake_pipeline()
    store = getattr(app.state, "metrics_store", None)
    if samples and store is not None:
        try:
            store.write(samples)
        except Exception:
            log.exception("storing %d samples from probe %s failed", len(samples), who.location)
    return {"taken": taken, "last_seq": last_seq}
