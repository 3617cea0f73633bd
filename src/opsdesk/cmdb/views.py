"""HTML pages for the CMDB: services, configuration items and the relationships between them."""

from __future__ import annotations

import json
from collections import Counter
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError
from sqlalchemy.orm import Session

from opsdesk.auth import service as auth
from opsdesk.cmdb import service
from opsdesk.cmdb.models import CIClass, ConfigItem, RelationType, Service
from opsdesk.cmdb.schemas import CIIn, CIUpdate, NodeKind, RelationshipIn, ServiceIn, ServiceUpdate
from opsdesk.core.actor import Role
from opsdesk.core.errors import OpsdeskError, invalid
from opsdesk.incidents import service as incidents
from opsdesk.monitoring import service as monitoring
from opsdesk.web.deps import Ctx, PathId, page
from opsdesk.web.render import back, render

router = APIRouter()

Errors = dict[str, str]
MANY = 10_000  # enough rows for counting on a list page
KIND_LABEL = {"service": "service", "ci": "CI"}


# --- form helpers ------------------------------------------------------------------------------


def _safe_next(target: str, default: str) -> str:
    return target if target.startswith("/") and not target.startswith("//") else default


def _node_url(kind: str, node_id: PathId) -> str:
    return f"/services/{node_id}" if kind == "service" else f"/cis/{node_id}"


def _attr_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def format_attributes(attrs: dict[str, Any]) -> str:
    return "\n".join(f"{k}={_attr_text(v)}" for k, v in attrs.items())


def parse_attributes(text: str, current: dict[str, Any] | None = None) -> dict[str, Any]:
    """``key=value`` lines to a dict; a value left as shown keeps its original (maybe non-string) type."""
    current = current or {}
    out: dict[str, Any] = {}
    for n, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        key, sep, value = line.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key:
            raise ValueError(f"line {n}: expected key=value")
        if key in out:
            raise ValueError(f"line {n}: {key!r} is given twice")
        out[key] = current[key] if key in current and _attr_text(current[key]) == value else value
    return out


def _collect(
    exc: ValidationError | OpsdeskError, errors: Errors, *, rename: dict[str, str], conflict_field: str
) -> int:
    """Put the messages of ``exc`` under form field names; return the status to answer with."""
    if isinstance(exc, ValidationError):
        for e in exc.errors():
            name = str(e["loc"][0]) if e["loc"] else "form"
            errors.setdefault(rename.get(name, name), e["msg"])
        return 422
    if exc.status not in (409, 422):
        raise exc
    if exc.errors:
        for fe in exc.errors:
            errors.setdefault(rename.get(fe.field, fe.field), fe.message)
    else:
        errors[conflict_field] = exc.detail
    return exc.status


def _team_names(s: Session) -> tuple[list[Any], dict[int, str]]:
    teams = auth.list_teams(s, limit=1000)
    return teams, {t.id: t.name for t in teams}


# --- shared detail-page pieces -----------------------------------------------------------------


def _relationship_rows(s: Session, kind: NodeKind, node_id: PathId) -> list[dict[str, Any]]:
    rows = []
    for rel in service.list_relationships(s, node=(kind, node_id), limit=1000):
        d = service.relationship_dict(s, rel)
        outgoing = (d["source_type"], d["source_id"]) == (kind, node_id)
        end = "target" if outgoing else "source"
        other_kind, other_id = d[f"{end}_type"], d[f"{end}_id"]
        rows.append(
            {
                "id": d["id"],
                "type": d["type"],
                "label": d["type"].replace("_", " "),
                "outgoing": outgoing,
                "other_name": d[f"{end}_name"],
                "other_kind": KIND_LABEL[other_kind],
                "other_url": _node_url(other_kind, other_id),
                "description": d["description"],
            }
        )
    return rows


def _node_options(s: Session, kind: NodeKind, node_id: PathId) -> dict[str, list[tuple[str, str]]]:
    services = [
        (f"service:{x.id}", x.name)
        for x in service.list_services(s, limit=MANY)
        if (kind, node_id) != ("service", x.id)
    ]
    cis = [
        (f"ci:{x.id}", f"{x.name} ({x.ci_class})")
        for x in service.list_cis(s, limit=MANY)
        if (kind, node_id) != ("ci", x.id)
    ]
    return {"Services": services, "Configuration items": cis}


def _node_context(s: Session, kind: NodeKind, node: Service | ConfigItem) -> dict[str, Any]:
    teams, team_names = _team_names(s)
    return {
        "node": node,
        "kind": kind,
        "kind_label": KIND_LABEL[kind],
        "base_url": _node_url(kind, node.id),
        "owner_name": team_names.get(node.owner_team_id) if node.owner_team_id else None,
        "teams": teams,
        "relationships": _relationship_rows(s, kind, node.id),
        "node_options": _node_options(s, kind, node.id),
        "relation_types": [t.value for t in RelationType],
    }


def _rel_form_defaults() -> dict[str, str]:
    return {"type": RelationType.depends_on.value, "direction": "out", "other": "", "description": ""}


def _node_form_defaults(node: Service | ConfigItem) -> dict[str, str]:
    form = {
        "name": node.name,
        "description": node.description,
        "owner_team_id": str(node.owner_team_id or ""),
        "attributes": format_attributes(node.attributes),
    }
    if isinstance(node, ConfigItem):
        form["ci_class"] = node.ci_class
    return form


def _relationship_in(
    kind: NodeKind, node_id: PathId, type: str, direction: str, other: str, description: str
) -> RelationshipIn:
    other_kind, _, other_id = other.partition(":")
    if other_kind not in ("service", "ci") or not other_id.isdigit():
        raise invalid("other", "choose the other end of the relationship")
    this = {"type": kind, "id": node_id}
    that = {"type": other_kind, "id": int(other_id)}
    src, tgt = (this, that) if direction != "in" else (that, this)
    return RelationshipIn.model_validate(
        {
            "type": type,
            "source_type": src["type"],
            "source_id": src["id"],
            "target_type": tgt["type"],
            "target_id": tgt["id"],
            "description": description,
        }
    )


REL_RENAME = {"source_type": "other", "source_id": "other", "target_type": "other", "target_id": "other"}


def _add_relationship(
    ctx: Ctx, kind: NodeKind, node_id: PathId, form: dict[str, str]
) -> Response | tuple[Errors, int]:
    """Create the relationship and redirect back, or return the form errors and the status."""
    errors: Errors = {}
    try:
        data = _relationship_in(
            kind, node_id, form["type"], form["direction"], form["other"], form["description"]
        )
        with ctx.session() as s:
            rel = service.create_relationship(s, data, actor=ctx.actor, now=ctx.now())
            d = service.relationship_dict(s, rel)
    except (ValidationError, OpsdeskError) as exc:
        return errors, _collect(exc, errors, rename=REL_RENAME, conflict_field="form")
    label = d["type"].replace("_", " ")
    return back(_node_url(kind, node_id), f"Added: {d['source_name']} {label} {d['target_name']}")


def _delete_node(ctx: Ctx, kind: NodeKind, node_id: PathId) -> Response:
    try:
        with ctx.session() as s:
            if kind == "service":
                name = service.get_service(s, node_id).name
                service.delete_service(s, node_id, actor=ctx.actor, now=ctx.now())
            else:
                name = service.get_ci(s, node_id).name
                service.delete_ci(s, node_id, actor=ctx.actor, now=ctx.now())
    except OpsdeskError as exc:
        if exc.status != 409:
            raise
        return back(_node_url(kind, node_id), exc.detail, kind="bad")
    return back(
        "/services" if kind == "service" else "/cis",
        f"{'Service' if kind == 'service' else 'CI'} {name} deleted",
    )


# --- services ----------------------------------------------------------------------------------


def _services_context(ctx: Ctx, q: str) -> dict[str, Any]:
    with ctx.session() as s:
        teams, team_names = _team_names(s)
        counts = Counter(m.service_id for m in monitoring.list_monitors(s, limit=MANY) if m.service_id)
        return {
            "services": service.list_services(s, limit=500, q=q or None),
            "teams": teams,
            "team_names": team_names,
            "monitor_counts": counts,
            "q": q,
        }


@router.get("/services", response_class=HTMLResponse)
def service_list(request: Request, ctx: Ctx = Depends(page()), q: str = "") -> HTMLResponse:
    return render(
        request,
        ctx,
        "cmdb/services.html",
        nav="services",
        form={},
        errors={},
        **_services_context(ctx, q.strip()),
    )


@router.post("/services", response_model=None)
def service_create(
    request: Request,
    ctx: Ctx = Depends(page(Role.manager)),
    name: Annotated[str, Form()] = "",
    description: Annotated[str, Form()] = "",
    owner_team_id: Annotated[str, Form()] = "",
) -> Response:
    form = {"name": name, "description": description, "owner_team_id": owner_team_id}
    errors: Errors = {}
    try:
        data = ServiceIn.model_validate(
            {"name": name, "description": description, "owner_team_id": owner_team_id or None}
        )
        with ctx.session() as s:
            svc = service.create_service(s, data, actor=ctx.actor, now=ctx.now())
            return back(f"/services/{svc.id}", f"Service {svc.name} created")
    except (ValidationError, OpsdeskError) as exc:
        status = _collect(exc, errors, rename={}, conflict_field="name")
    return render(
        request,
        ctx,
        "cmdb/services.html",
        status_code=status,
        nav="services",
        form=form,
        errors=errors,
        **_services_context(ctx, ""),
    )


def _service_page(
    request: Request,
    ctx: Ctx,
    service_id: PathId,
    *,
    status_code: int = 200,
    form: dict[str, str] | None = None,
    errors: Errors | None = None,
    rel_form: dict[str, str] | None = None,
    rel_errors: Errors | None = None,
) -> HTMLResponse:
    with ctx.session() as s:
        svc = service.get_service(s, service_id)
        data = _node_context(s, "service", svc)
        data["monitors"] = monitoring.list_monitors(s, service_id=svc.id, limit=500)
        data["incidents"] = incidents.list_incidents(
            s, service_id=svc.id, status=list(incidents.OPEN), limit=100
        )
        form = form or _node_form_defaults(svc)
    return render(
        request,
        ctx,
        "cmdb/service.html",
        status_code=status_code,
        nav="services",
        form=form,
        errors=errors or {},
        rel_form=rel_form or _rel_form_defaults(),
        rel_errors=rel_errors or {},
        **data,
    )


@router.get("/services/{service_id}", response_class=HTMLResponse)
def service_detail(request: Request, service_id: PathId, ctx: Ctx = Depends(page())) -> HTMLResponse:
    return _service_page(request, ctx, service_id)


@router.post("/services/{service_id}", response_model=None)
def service_update(
    request: Request,
    service_id: PathId,
    ctx: Ctx = Depends(page(Role.manager)),
    name: Annotated[str, Form()] = "",
    description: Annotated[str, Form()] = "",
    owner_team_id: Annotated[str, Form()] = "",
    attributes: Annotated[str, Form()] = "",
) -> Response:
    form = {
        "name": name,
        "description": description,
        "owner_team_id": owner_team_id,
        "attributes": attributes,
    }
    errors: Errors = {}
    status = 422
    try:
        with ctx.session() as s:
            svc = service.get_service(s, service_id)
            try:
                attrs = parse_attributes(attributes, svc.attributes)
            except ValueError as exc:
                errors["attributes"] = str(exc)
                attrs = {}
            data = ServiceUpdate.model_validate(
                {
                    "name": name,
                    "description": description,
                    "owner_team_id": owner_team_id or None,
                    "attributes": attrs,
                }
            )
            if not errors:
                svc = service.update_service(s, service_id, data, actor=ctx.actor, now=ctx.now())
                return back(f"/services/{svc.id}", f"Service {svc.name} saved")
    except (ValidationError, OpsdeskError) as exc:
        status = _collect(exc, errors, rename={}, conflict_field="name")
    return _service_page(request, ctx, service_id, status_code=status, form=form, errors=errors)


@router.post("/services/{service_id}/relationships", response_model=None)
def service_add_relationship(
    request: Request,
    service_id: PathId,
    ctx: Ctx = Depends(page(Role.manager)),
    type: Annotated[str, Form()] = RelationType.depends_on.value,
    direction: Annotated[str, Form()] = "out",
    other: Annotated[str, Form()] = "",
    description: Annotated[str, Form()] = "",
) -> Response:
    rel_form = {"type": type, "direction": direction, "other": other, "description": description}
    with ctx.session() as s:
        service.get_service(s, service_id)
    done = _add_relationship(ctx, "service", service_id, rel_form)
    if isinstance(done, Response):
        return done
    errors, status = done
    return _service_page(request, ctx, service_id, status_code=status, rel_form=rel_form, rel_errors=errors)


@router.post("/services/{service_id}/delete")
def service_delete(service_id: PathId, ctx: Ctx = Depends(page(Role.manager))) -> Response:
    return _delete_node(ctx, "service", service_id)


# --- configuration items -----------------------------------------------------------------------


def _cis_context(ctx: Ctx, ci_class: str, q: str) -> dict[str, Any]:
    with ctx.session() as s:
        teams, team_names = _team_names(s)
        counts = Counter(m.ci_id for m in monitoring.list_monitors(s, limit=MANY) if m.ci_id)
        return {
            "cis": service.list_cis(s, limit=500, ci_class=ci_class or None, q=q or None),
            "teams": teams,
            "team_names": team_names,
            "monitor_counts": counts,
            "classes": [c.value for c in CIClass],
            "ci_class": ci_class,
            "q": q,
        }


@router.get("/cis", response_class=HTMLResponse)
def ci_list(
    request: Request,
    ctx: Ctx = Depends(page()),
    ci_class: Annotated[str, Query(alias="class")] = "",
    q: str = "",
) -> HTMLResponse:
    return render(
        request,
        ctx,
        "cmdb/cis.html",
        nav="cis",
        form={},
        errors={},
        **_cis_context(ctx, ci_class.strip(), q.strip()),
    )


CI_RENAME = {"class": "ci_class"}


@router.post("/cis", response_model=None)
def ci_create(
    request: Request,
    ctx: Ctx = Depends(page(Role.manager)),
    name: Annotated[str, Form()] = "",
    ci_class: Annotated[str, Form()] = "",
    description: Annotated[str, Form()] = "",
    owner_team_id: Annotated[str, Form()] = "",
) -> Response:
    form = {"name": name, "ci_class": ci_class, "description": description, "owner_team_id": owner_team_id}
    errors: Errors = {}
    try:
        data = CIIn.model_validate(
            {
                "name": name,
                "class": ci_class,
                "description": description,
                "owner_team_id": owner_team_id or None,
            }
        )
        with ctx.session() as s:
            ci = service.create_ci(s, data, actor=ctx.actor, now=ctx.now())
            return back(f"/cis/{ci.id}", f"CI {ci.name} created")
    except (ValidationError, OpsdeskError) as exc:
        status = _collect(exc, errors, rename=CI_RENAME, conflict_field="name")
    return render(
        request,
        ctx,
        "cmdb/cis.html",
        status_code=status,
        nav="cis",
        form=form,
        errors=errors,
        **_cis_context(ctx, "", ""),
    )


def _monitors_on_ci(s: Session, ci_id: PathId) -> list[Any]:
    return [m for m in monitoring.list_monitors(s, limit=MANY) if m.ci_id == ci_id]


def _ci_page(
    request: Request,
    ctx: Ctx,
    ci_id: PathId,
    *,
    status_code: int = 200,
    form: dict[str, str] | None = None,
    errors: Errors | None = None,
    rel_form: dict[str, str] | None = None,
    rel_errors: Errors | None = None,
) -> HTMLResponse:
    with ctx.session() as s:
        ci = service.get_ci(s, ci_id)
        data = _node_context(s, "ci", ci)
        data["monitors"] = _monitors_on_ci(s, ci.id)
        data["classes"] = [c.value for c in CIClass]
        form = form or _node_form_defaults(ci)
    return render(
        request,
        ctx,
        "cmdb/ci.html",
        status_code=status_code,
        nav="cis",
        form=form,
        errors=errors or {},
        rel_form=rel_form or _rel_form_defaults(),
        rel_errors=rel_errors or {},
        **data,
    )


@router.get("/cis/{ci_id}", response_class=HTMLResponse)
def ci_detail(request: Request, ci_id: PathId, ctx: Ctx = Depends(page())) -> HTMLResponse:
    return _ci_page(request, ctx, ci_id)


@router.post("/cis/{ci_id}", response_model=None)
def ci_update(
    request: Request,
    ci_id: PathId,
    ctx: Ctx = Depends(page(Role.manager)),
    name: Annotated[str, Form()] = "",
    ci_class: Annotated[str, Form()] = "",
    description: Annotated[str, Form()] = "",
    owner_team_id: Annotated[str, Form()] = "",
    attributes: Annotated[str, Form()] = "",
) -> Response:
    form = {
        "name": name,
        "ci_class": ci_class,
        "description": description,
        "owner_team_id": owner_team_id,
        "attributes": attributes,
    }
    errors: Errors = {}
    status = 422
    try:
        with ctx.session() as s:
            ci = service.get_ci(s, ci_id)
            try:
                attrs = parse_attributes(attributes, ci.attributes)
            except ValueError as exc:
                errors["attributes"] = str(exc)
                attrs = {}
            data = CIUpdate.model_validate(
                {
                    "name": name,
                    "class": ci_class,
                    "description": description,
                    "owner_team_id": owner_team_id or None,
                    "attributes": attrs,
                }
            )
            if not errors:
                ci = service.update_ci(s, ci_id, data, actor=ctx.actor, now=ctx.now())
                return back(f"/cis/{ci.id}", f"CI {ci.name} saved")
    except (ValidationError, OpsdeskError) as exc:
        status = _collect(exc, errors, rename=CI_RENAME, conflict_field="name")
    return _ci_page(request, ctx, ci_id, status_code=status, form=form, errors=errors)


@router.post("/cis/{ci_id}/relationships", response_model=None)
def ci_add_relationship(
    request: Request,
    ci_id: PathId,
    ctx: Ctx = Depends(page(Role.manager)),
    type: Annotated[str, Form()] = RelationType.depends_on.value,
    direction: Annotated[str, Form()] = "out",
    other: Annotated[str, Form()] = "",
    description: Annotated[str, Form()] = "",
) -> Response:
    rel_form = {"type": type, "direction": direction, "other": other, "description": description}
    with ctx.session() as s:
        service.get_ci(s, ci_id)
    done = _add_relationship(ctx, "ci", ci_id, rel_form)
    if isinstance(done, Response):
        return done
    errors, status = done
    return _ci_page(request, ctx, ci_id, status_code=status, rel_form=rel_form, rel_errors=errors)


@router.post("/cis/{ci_id}/delete")
def ci_delete(ci_id: PathId, ctx: Ctx = Depends(page(Role.manager))) -> Response:
    return _delete_node(ctx, "ci", ci_id)


# --- relationships -----------------------------------------------------------------------------


@router.post("/relationships/{rel_id}/delete")
def relationship_delete(
    rel_id: PathId, ctx: Ctx = Depends(page(Role.manager)), next: Annotated[str, Form()] = ""
) -> Response:
    with ctx.session() as s:
        d = service.relationship_dict(s, service.get_relationship(s, rel_id))
        service.delete_relationship(s, rel_id, actor=ctx.actor, now=ctx.now())
    default = _node_url(d["source_type"], d["source_id"])
    label = d["type"].replace("_", " ")
    return back(_safe_next(next, default), f"Removed: {d['source_name']} {label} {d['target_name']}")
