"""HTML pages for the CMDB: services, configuration items and the relationships between them.

Services and CIs are two kinds of node with the same pages. Each route below only declares its URL and
form fields; the work is written once and told by a ``NodePages`` what differs between the kinds.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
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
from opsdesk.monitoring import views as monitoring_pages
from opsdesk.web.deps import Ctx, PathId, page
from opsdesk.web.render import back, render

router = APIRouter()

Errors = dict[str, str]
Node = Service | ConfigItem
MANY = 10_000  # every service and CI, for the relationship select
CI_CLASSES = [c.value for c in CIClass]


@dataclass(frozen=True)
class NodePages:
    """What the service pages and the CI pages do differently."""

    kind: NodeKind
    label: str  # mid-sentence: "service", "CI"
    title: str  # starting a flash message: "Service", "CI"
    nav: str  # also names the list page's path and template
    rename: dict[str, str]  # schema field -> form field, for the error messages
    get: Callable[[Session, int], Node]
    new: type[ServiceIn | CIIn]
    create: Callable[..., Node]
    change: type[ServiceUpdate | CIUpdate]
    update: Callable[..., Node]
    delete: Callable[..., None]
    listed: Callable[[Session, str, str], dict[str, Any]]  # (q, class) -> rows and monitor counts
    detail_extras: Callable[[Session, Any], dict[str, Any]]

    def url(self, node_id: int) -> str:
        return f"/{self.nav}/{node_id}"


# --- form helpers ------------------------------------------------------------------------------


def _safe_next(target: str, default: str) -> str:
    return target if target.startswith("/") and not target.startswith("//") else default


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


def _parsed_attributes(text: str, current: dict[str, Any], errors: Errors) -> dict[str, Any]:
    try:
        return parse_attributes(text, current)
    except ValueError as exc:
        errors["attributes"] = str(exc)
        # Empty, so the other fields are still validated and all mistakes show at once.
        return {}


def _schema_fields(form: dict[str, str]) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "name": form["name"],
        "description": form["description"],
        "owner_team_id": form["owner_team_id"] or None,
    }
    if "ci_class" in form:
        fields["class"] = form["ci_class"]  # the form cannot say "class": it names a Python parameter
    if "public_status" in form:  # services' edit form: a checkbox, sent only when ticked
        fields["public_status"] = form["public_status"] == "on"
    if "escalation_policy_id" in form:  # services' edit form: a select, "none" for none
        choice = form["escalation_policy_id"]
        fields["escalation_policy_id"] = None if choice in ("", "none") else choice
    return fields


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


def _node_form(
    name: Annotated[str, Form()] = "",
    description: Annotated[str, Form()] = "",
    owner_team_id: Annotated[str, Form()] = "",
) -> dict[str, str]:
    return {"name": name, "description": description, "owner_team_id": owner_team_id}


def _relationship_form(
    type: Annotated[str, Form()] = RelationType.depends_on.value,
    direction: Annotated[str, Form()] = "out",
    other: Annotated[str, Form()] = "",
    description: Annotated[str, Form()] = "",
) -> dict[str, str]:
    return {"type": type, "direction": direction, "other": other, "description": description}


FormText = Annotated[str, Form()]
NodeForm = Annotated[dict[str, str], Depends(_node_form)]
RelForm = Annotated[dict[str, str], Depends(_relationship_form)]
ViewerCtx = Annotated[Ctx, Depends(page())]
ManagerCtx = Annotated[Ctx, Depends(page(Role.manager))]


def _team_names(s: Session) -> tuple[list[Any], dict[int, str]]:
    teams = auth.list_teams(s, limit=1000)
    return teams, {t.id: t.name for t in teams}


# --- list pages --------------------------------------------------------------------------------


def _listed_services(s: Session, q: str, ci_class: str) -> dict[str, Any]:
    return {
        "services": service.list_services(s, limit=500, q=q or None),
        "monitor_counts": monitoring.count_by_node(s, "service"),
    }


def _listed_cis(s: Session, q: str, ci_class: str) -> dict[str, Any]:
    return {
        "cis": service.list_cis(s, limit=500, ci_class=ci_class or None, q=q or None),
        "monitor_counts": monitoring.count_by_node(s, "ci"),
        "classes": CI_CLASSES,
        "ci_class": ci_class,
    }


def _list_page(
    request: Request,
    ctx: Ctx,
    pages: NodePages,
    *,
    q: str = "",
    ci_class: str = "",
    status_code: int = 200,
    form: dict[str, str] | None = None,
    errors: Errors | None = None,
) -> HTMLResponse:
    with ctx.session() as s:
        teams, team_names = _team_names(s)
        listed = pages.listed(s, q, ci_class)
    return render(
        request,
        ctx,
        f"cmdb/{pages.nav}.html",
        status_code=status_code,
        nav=pages.nav,
        form=form or {},
        errors=errors or {},
        teams=teams,
        team_names=team_names,
        q=q,
        **listed,
    )


def _create_node(request: Request, ctx: Ctx, pages: NodePages, form: dict[str, str]) -> Response:
    errors: Errors = {}
    try:
        data = pages.new.model_validate(_schema_fields(form))
        with ctx.session() as s:
            node = pages.create(s, data, actor=ctx.actor, now=ctx.now())
            return back(pages.url(node.id), f"{pages.title} {node.name} created")
    except (ValidationError, OpsdeskError) as exc:
        status = _collect(exc, errors, rename=pages.rename, conflict_field="name")
    return _list_page(request, ctx, pages, status_code=status, form=form, errors=errors)


# --- detail pages ------------------------------------------------------------------------------


def _relationship_rows(s: Session, kind: NodeKind, node_id: PathId) -> list[dict[str, Any]]:
    rows = []
    for rel in service.list_relationships(s, node=(kind, node_id), limit=1000):
        d = service.relationship_dict(s, rel)
        outgoing = (d["source_type"], d["source_id"]) == (kind, node_id)
        end = "target" if outgoing else "source"
        other = PAGES[d[f"{end}_type"]]
        rows.append(
            {
                "id": d["id"],
                "type": d["type"],
                "label": d["type"].replace("_", " "),
                "outgoing": outgoing,
                "other_name": d[f"{end}_name"],
                "other_kind": other.label,
                "other_url": other.url(d[f"{end}_id"]),
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


def _node_context(s: Session, pages: NodePages, node: Node) -> dict[str, Any]:
    teams, team_names = _team_names(s)
    return {
        "node": node,
        "kind": pages.kind,
        "kind_label": pages.label,
        "base_url": pages.url(node.id),
        "owner_name": team_names.get(node.owner_team_id) if node.owner_team_id else None,
        "teams": teams,
        "relationships": _relationship_rows(s, pages.kind, node.id),
        "node_options": _node_options(s, pages.kind, node.id),
        "relation_types": [t.value for t in RelationType],
    }


def _service_extras(s: Session, svc: Service) -> dict[str, Any]:
    from opsdesk.oncall import escalation

    policies = escalation.list_policies(s)
    return {
        "policies": [(p.id, p.name) for p in policies],
        "policy_name": next((p.name for p in policies if p.id == svc.escalation_policy_id), None),
        "monitors": monitoring.list_monitors(s, service_id=svc.id, limit=500),
        "incidents": incidents.list_incidents(s, service_id=svc.id, status=list(incidents.OPEN), limit=100),
    }


def _ci_extras(s: Session, ci: ConfigItem) -> dict[str, Any]:
    return {"monitors": monitoring.list_monitors(s, ci_id=ci.id, limit=500), "classes": CI_CLASSES}


def _node_form_defaults(node: Node) -> dict[str, str]:
    form = {
        "name": node.name,
        "description": node.description,
        "owner_team_id": str(node.owner_team_id or ""),
        "attributes": format_attributes(node.attributes),
    }
    if isinstance(node, ConfigItem):
        form["ci_class"] = node.ci_class
    else:
        form["public_status"] = "on" if node.public_status else ""
        form["escalation_policy_id"] = str(node.escalation_policy_id or "")
    return form


def _detail_page(
    request: Request,
    ctx: Ctx,
    pages: NodePages,
    node_id: PathId,
    *,
    status_code: int = 200,
    form: dict[str, str] | None = None,
    errors: Errors | None = None,
    rel_form: dict[str, str] | None = None,
    rel_errors: Errors | None = None,
) -> HTMLResponse:
    with ctx.session() as s:
        node = pages.get(s, node_id)
        data = _node_context(s, pages, node) | pages.detail_extras(s, node)
        if pages.kind == "service":
            data |= monitoring_pages.service_uptime(s, node.id, ctx.now())
        form = form or _node_form_defaults(node)
    return render(
        request,
        ctx,
        "cmdb/node.html",
        status_code=status_code,
        nav=pages.nav,
        form=form,
        errors=errors or {},
        rel_form=rel_form or _relationship_form(),
        rel_errors=rel_errors or {},
        **data,
    )


def _update_node(
    request: Request, ctx: Ctx, pages: NodePages, node_id: PathId, form: dict[str, str]
) -> Response:
    errors: Errors = {}
    status = 422
    try:
        with ctx.session() as s:
            node = pages.get(s, node_id)
            attrs = _parsed_attributes(form["attributes"], node.attributes, errors)
            data = pages.change.model_validate({**_schema_fields(form), "attributes": attrs})
            if not errors:
                node = pages.update(s, node_id, data, actor=ctx.actor, now=ctx.now())
                return back(pages.url(node.id), f"{pages.title} {node.name} saved")
    except (ValidationError, OpsdeskError) as exc:
        status = _collect(exc, errors, rename=pages.rename, conflict_field="name")
    return _detail_page(request, ctx, pages, node_id, status_code=status, form=form, errors=errors)


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
    request: Request, ctx: Ctx, pages: NodePages, node_id: PathId, rel_form: dict[str, str]
) -> Response:
    with ctx.session() as s:
        pages.get(s, node_id)  # a missing node is a 404, not a form error
    errors: Errors = {}
    try:
        data = _relationship_in(pages.kind, node_id, **rel_form)
        with ctx.session() as s:
            d = service.relationship_dict(
                s, service.create_relationship(s, data, actor=ctx.actor, now=ctx.now())
            )
            label = d["type"].replace("_", " ")
            return back(pages.url(node_id), f"Added: {d['source_name']} {label} {d['target_name']}")
    except (ValidationError, OpsdeskError) as exc:
        status = _collect(exc, errors, rename=REL_RENAME, conflict_field="form")
    return _detail_page(
        request, ctx, pages, node_id, status_code=status, rel_form=rel_form, rel_errors=errors
    )


def _delete_node(ctx: Ctx, pages: NodePages, node_id: PathId) -> Response:
    try:
        with ctx.session() as s:
            name = pages.get(s, node_id).name
            pages.delete(s, node_id, actor=ctx.actor, now=ctx.now())
    except OpsdeskError as exc:
        if exc.status != 409:
            raise
        # Refused because something still depends on it: back to the page, which names what.
        return back(pages.url(node_id), exc.detail, kind="bad")
    return back(f"/{pages.nav}", f"{pages.title} {name} deleted")


SERVICES = NodePages(
    kind="service",
    label="service",
    title="Service",
    nav="services",
    rename={},
    get=service.get_service,
    new=ServiceIn,
    create=service.create_service,
    change=ServiceUpdate,
    update=service.update_service,
    delete=service.delete_service,
    listed=_listed_services,
    detail_extras=_service_extras,
)
CIS = NodePages(
    kind="ci",
    label="CI",
    title="CI",
    nav="cis",
    rename={"class": "ci_class"},
    get=service.get_ci,
    new=CIIn,
    create=service.create_ci,
    change=CIUpdate,
    update=service.update_ci,
    delete=service.delete_ci,
    listed=_listed_cis,
    detail_extras=_ci_extras,
)
PAGES = {pages.kind: pages for pages in (SERVICES, CIS)}


# --- routes: each service route sits next to its CI twin, as they differ only in what they pass ---


@router.get("/services", response_class=HTMLResponse)
def service_list(request: Request, ctx: ViewerCtx, q: str = "") -> HTMLResponse:
    return _list_page(request, ctx, SERVICES, q=q.strip())


@router.get("/cis", response_class=HTMLResponse)
def ci_list(
    request: Request, ctx: ViewerCtx, ci_class: Annotated[str, Query(alias="class")] = "", q: str = ""
) -> HTMLResponse:
    return _list_page(request, ctx, CIS, q=q.strip(), ci_class=ci_class.strip())


@router.post("/services", response_model=None)
def service_create(request: Request, ctx: ManagerCtx, form: NodeForm) -> Response:
    return _create_node(request, ctx, SERVICES, form)


@router.post("/cis", response_model=None)
def ci_create(request: Request, ctx: ManagerCtx, form: NodeForm, ci_class: FormText = "") -> Response:
    return _create_node(request, ctx, CIS, {**form, "ci_class": ci_class})


@router.get("/services/{service_id}", response_class=HTMLResponse)
def service_detail(request: Request, service_id: PathId, ctx: ViewerCtx) -> HTMLResponse:
    return _detail_page(request, ctx, SERVICES, service_id)


@router.get("/cis/{ci_id}", response_class=HTMLResponse)
def ci_detail(request: Request, ci_id: PathId, ctx: ViewerCtx) -> HTMLResponse:
    return _detail_page(request, ctx, CIS, ci_id)


@router.post("/services/{service_id}", response_model=None)
def service_update(
    request: Request,
    service_id: PathId,
    ctx: ManagerCtx,
    form: NodeForm,
    attributes: FormText = "",
    public_status: FormText = "",
    escalation_policy_id: Annotated[str | None, Form()] = None,
) -> Response:
    form = {**form, "attributes": attributes, "public_status": public_status}
    if escalation_policy_id is not None:  # absent (or empty): the policy is kept
        form["escalation_policy_id"] = escalation_policy_id
    return _update_node(request, ctx, SERVICES, service_id, form)


@router.post("/cis/{ci_id}", response_model=None)
def ci_update(
    request: Request,
    ci_id: PathId,
    ctx: ManagerCtx,
    form: NodeForm,
    ci_class: FormText = "",
    attributes: FormText = "",
) -> Response:
    return _update_node(request, ctx, CIS, ci_id, {**form, "ci_class": ci_class, "attributes": attributes})


@router.post("/services/{service_id}/relationships", response_model=None)
def service_add_relationship(
    request: Request, service_id: PathId, ctx: ManagerCtx, form: RelForm
) -> Response:
    return _add_relationship(request, ctx, SERVICES, service_id, form)


@router.post("/cis/{ci_id}/relationships", response_model=None)
def ci_add_relationship(request: Request, ci_id: PathId, ctx: ManagerCtx, form: RelForm) -> Response:
    return _add_relationship(request, ctx, CIS, ci_id, form)


@router.post("/services/{service_id}/delete")
def service_delete(service_id: PathId, ctx: ManagerCtx) -> Response:
    return _delete_node(ctx, SERVICES, service_id)


@router.post("/cis/{ci_id}/delete")
def ci_delete(ci_id: PathId, ctx: ManagerCtx) -> Response:
    return _delete_node(ctx, CIS, ci_id)


@router.post("/relationships/{rel_id}/delete")
def relationship_delete(rel_id: PathId, ctx: ManagerCtx, next: FormText = "") -> Response:
    with ctx.session() as s:
        d = service.relationship_dict(s, service.get_relationship(s, rel_id))
        service.delete_relationship(s, rel_id, actor=ctx.actor, now=ctx.now())
    default = PAGES[d["source_type"]].url(d["source_id"])
    label = d["type"].replace("_", " ")
    return back(_safe_next(next, default), f"Removed: {d['source_name']} {label} {d['target_name']}")
