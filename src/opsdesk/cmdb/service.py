"""Services, configuration items and the relationships between them."""

from __future__ import annotations

import weakref
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from opsdesk.audit import service as audit
from opsdesk.cmdb.models import ConfigItem, Relationship, RelationType, Service
from opsdesk.cmdb.schemas import CIIn, CIUpdate, NodeKind, RelationshipIn, ServiceIn, ServiceUpdate
from opsdesk.core.actor import Actor
from opsdesk.core.errors import OpsdeskError, conflict, invalid, not_found

SERVICE_FIELDS = [
    "name",
    "description",
    "owner_team_id",
    "escalation_policy_id",
    "attributes",
    "public_status",
]
CI_FIELDS = ["name", "ci_class", "description", "owner_team_id", "attributes"]
# Edges whose target the source needs: the target cannot be deleted while they exist.
DEPENDENCY_TYPES = (RelationType.depends_on.value, RelationType.runs_on.value)


def _check_team(s: Session, team_id: int | None) -> None:
    if team_id is None:
        return
    from opsdesk.auth import service as auth

    try:
        auth.get_team(s, team_id)
    except OpsdeskError:
        raise invalid("owner_team_id", f"no team with id {team_id}") from None


def _check_policy(s: Session, policy_id: int | None) -> None:
    if policy_id is None:
        return
    from opsdesk.oncall.models import EscalationPolicy

    if s.get(EscalationPolicy, policy_id) is None:
        raise invalid("escalation_policy_id", f"no escalation policy with id {policy_id}")


def _refuse_nulls(changes: dict[str, Any], fields: tuple[str, ...]) -> None:
    for f in fields:
        if f in changes and changes[f] is None:
            raise invalid("class" if f == "ci_class" else f, "must not be null")


def _like(q: str) -> str:
    """A LIKE pattern that matches ``q`` literally anywhere (``%`` and ``_`` are not wildcards)."""
    return "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


# --- services ----------------------------------------------------------------------------------


def get_service(s: Session, service_id: int) -> Service:
    svc = s.get(Service, service_id)
    if svc is None:
        raise not_found("service", service_id)
    return svc


def get_service_by_name(s: Session, name: str) -> Service | None:
    return s.scalar(select(Service).where(Service.name == name))


def service_ids_by_name(s: Session, names: set[str]) -> dict[str, int]:
    if not names:
        return {}
    return {n: i for n, i in s.execute(select(Service.name, Service.id).where(Service.name.in_(names)))}


def ci_ids_by_name(s: Session, names: set[str]) -> dict[str, int]:
    if not names:
        return {}
    return {
        n: i for n, i in s.execute(select(ConfigItem.name, ConfigItem.id).where(ConfigItem.name.in_(names)))
    }


def list_services(
    s: Session, *, after_id: int = 0, limit: int = 100, q: str | None = None, owner_team_id: int | None = None
) -> list[Service]:
    query = select(Service).where(Service.id > after_id).order_by(Service.id).limit(limit)
    if owner_team_id is not None:
        query = query.where(Service.owner_team_id == owner_team_id)
    if q:
        query = query.where(Service.name.ilike(_like(q), escape="\\"))
    return list(s.scalars(query))


def create_service(s: Session, data: ServiceIn, *, actor: Actor, now: datetime) -> Service:
    if get_service_by_name(s, data.name) is not None:
        raise conflict(f"a service named {data.name!r} already exists")
    _check_team(s, data.owner_team_id)
    _check_policy(s, data.escalation_policy_id)
    svc = Service(**data.model_dump(), created_at=now, updated_at=now)
    s.add(svc)
    s.flush()
    audit.created(s, "service", svc.id, audit.snapshot(svc, SERVICE_FIELDS), actor=actor, at=now)
    return svc


def update_service(
    s: Session, service_id: int, data: ServiceUpdate, *, actor: Actor, now: datetime
) -> Service:
    svc = get_service(s, service_id)
    before = audit.snapshot(svc, SERVICE_FIELDS)
    changes = data.model_dump(exclude_unset=True)
    _refuse_nulls(changes, ("name", "description", "attributes", "public_status"))
    if changes.get("name") and changes["name"] != svc.name and get_service_by_name(s, changes["name"]):
        raise conflict(f"a service named {changes['name']!r} already exists")
    if "owner_team_id" in changes:
        _check_team(s, changes["owner_team_id"])
    if "escalation_policy_id" in changes:
        _check_policy(s, changes["escalation_policy_id"])
    for k, v in changes.items():
        setattr(svc, k, v)
    svc.updated_at = now
    audit.updated(s, "service", svc.id, before, audit.snapshot(svc, SERVICE_FIELDS), actor=actor, at=now)
    return svc


def delete_service(s: Session, service_id: int, *, actor: Actor, now: datetime) -> None:
    svc = get_service(s, service_id)
    _refuse_if_needed(s, "service", svc.id, svc.name)
    _delete_edges(s, "service", svc.id, actor=actor, now=now)
    audit.deleted(s, "service", svc.id, audit.snapshot(svc, SERVICE_FIELDS), actor=actor, at=now)
    s.delete(svc)


# --- configuration items -----------------------------------------------------------------------


def get_ci(s: Session, ci_id: int) -> ConfigItem:
    ci = s.get(ConfigItem, ci_id)
    if ci is None:
        raise not_found("CI", ci_id)
    return ci


def get_ci_by_name(s: Session, name: str) -> ConfigItem | None:
    return s.scalar(select(ConfigItem).where(ConfigItem.name == name))


def list_cis(
    s: Session,
    *,
    after_id: int = 0,
    limit: int = 100,
    ci_class: str | None = None,
    q: str | None = None,
    owner_team_id: int | None = None,
) -> list[ConfigItem]:
    query = select(ConfigItem).where(ConfigItem.id > after_id).order_by(ConfigItem.id).limit(limit)
    if owner_team_id is not None:
        query = query.where(ConfigItem.owner_team_id == owner_team_id)
    if ci_class:
        query = query.where(ConfigItem.ci_class == ci_class)
    if q:
        query = query.where(ConfigItem.name.ilike(_like(q), escape="\\"))
    return list(s.scalars(query))


def create_ci(s: Session, data: CIIn, *, actor: Actor, now: datetime) -> ConfigItem:
    if get_ci_by_name(s, data.name) is not None:
        raise conflict(f"a CI named {data.name!r} already exists")
    _check_team(s, data.owner_team_id)
    values = data.model_dump()
    values["ci_class"] = data.ci_class.value
    ci = ConfigItem(**values, created_at=now, updated_at=now)
    s.add(ci)
    s.flush()
    audit.created(s, "ci", ci.id, audit.snapshot(ci, CI_FIELDS), actor=actor, at=now)
    return ci


def update_ci(s: Session, ci_id: int, data: CIUpdate, *, actor: Actor, now: datetime) -> ConfigItem:
    ci = get_ci(s, ci_id)
    before = audit.snapshot(ci, CI_FIELDS)
    changes: dict[str, Any] = data.model_dump(exclude_unset=True)
    _refuse_nulls(changes, ("name", "ci_class", "description", "attributes"))
    if changes.get("name") and changes["name"] != ci.name and get_ci_by_name(s, changes["name"]):
        raise conflict(f"a CI named {changes['name']!r} already exists")
    if "owner_team_id" in changes:
        _check_team(s, changes["owner_team_id"])
    if "ci_class" in changes:
        changes["ci_class"] = changes["ci_class"].value
    for k, v in changes.items():
        setattr(ci, k, v)
    ci.updated_at = now
    audit.updated(s, "ci", ci.id, before, audit.snapshot(ci, CI_FIELDS), actor=actor, at=now)
    return ci


def delete_ci(s: Session, ci_id: int, *, actor: Actor, now: datetime) -> None:
    ci = get_ci(s, ci_id)
    _refuse_if_needed(s, "ci", ci.id, ci.name)
    _delete_edges(s, "ci", ci.id, actor=actor, now=now)
    audit.deleted(s, "ci", ci.id, audit.snapshot(ci, CI_FIELDS), actor=actor, at=now)
    s.delete(ci)


# --- relationships -----------------------------------------------------------------------------


def _node(s: Session, kind: NodeKind, node_id: int, field: str) -> Service | ConfigItem:
    obj: Service | ConfigItem | None = (
        s.get(Service, node_id) if kind == "service" else s.get(ConfigItem, node_id)
    )
    if obj is None:
        raise invalid(field, f"no {kind} with id {node_id}")
    return obj


def _cols(kind: NodeKind, end: str) -> Any:
    return getattr(Relationship, f"{end}_{'service' if kind == 'service' else 'ci'}_id")


def get_relationship(s: Session, rel_id: int) -> Relationship:
    rel = s.get(Relationship, rel_id)
    if rel is None:
        raise not_found("relationship", rel_id)
    return rel


def list_relationships(
    s: Session, *, node: tuple[NodeKind, int] | None = None, after_id: int = 0, limit: int = 500
) -> list[Relationship]:
    q = select(Relationship).where(Relationship.id > after_id).order_by(Relationship.id).limit(limit)
    if node:
        kind, nid = node
        q = q.where(or_(_cols(kind, "source") == nid, _cols(kind, "target") == nid))
    return list(s.scalars(q))


def create_relationship(s: Session, data: RelationshipIn, *, actor: Actor, now: datetime) -> Relationship:
    _node(s, data.source_type, data.source_id, "source_id")
    _node(s, data.target_type, data.target_id, "target_id")
    if (data.source_type, data.source_id) == (data.target_type, data.target_id):
        raise invalid("target_id", "a relationship needs two different ends")
    dup = s.scalar(
        select(Relationship.id).where(
            Relationship.type == data.type.value,
            _cols(data.source_type, "source") == data.source_id,
            _cols(data.target_type, "target") == data.target_id,
        )
    )
    if dup:
        raise conflict(f"this relationship already exists (id {dup})", existing_id=dup)
    rel = Relationship(type=data.type.value, description=data.description, created_at=now)
    setattr(rel, f"source_{data.source_type}_id", data.source_id)
    setattr(rel, f"target_{data.target_type}_id", data.target_id)
    s.add(rel)
    s.flush()
    audit.created(s, "relationship", rel.id, relationship_dict(s, rel), actor=actor, at=now)
    return rel


def delete_relationship(s: Session, rel_id: int, *, actor: Actor, now: datetime) -> None:
    rel = get_relationship(s, rel_id)
    audit.deleted(s, "relationship", rel.id, relationship_dict(s, rel), actor=actor, at=now)
    s.delete(rel)


def relationship_ends(rel: Relationship) -> tuple[tuple[NodeKind, int], tuple[NodeKind, int]]:
    src: tuple[NodeKind, int] = (
        ("service", rel.source_service_id)
        if rel.source_service_id is not None
        else ("ci", rel.source_ci_id or 0)
    )
    tgt: tuple[NodeKind, int] = (
        ("service", rel.target_service_id)
        if rel.target_service_id is not None
        else ("ci", rel.target_ci_id or 0)
    )
    return src, tgt


def node_name(s: Session, kind: NodeKind, node_id: int) -> str:
    obj: Service | ConfigItem | None = (
        s.get(Service, node_id) if kind == "service" else s.get(ConfigItem, node_id)
    )
    return obj.name if obj is not None else f"{kind}#{node_id}"


def relationship_dict(s: Session, rel: Relationship) -> dict[str, Any]:
    (sk, sid), (tk, tid) = relationship_ends(rel)
    return {
        "id": rel.id,
        "type": rel.type,
        "source_type": sk,
        "source_id": sid,
        "source_name": node_name(s, sk, sid),
        "target_type": tk,
        "target_id": tid,
        "target_name": node_name(s, tk, tid),
        "description": rel.description,
        "created_at": rel.created_at,
    }


def dependents(s: Session, kind: NodeKind, node_id: int) -> list[str]:
    """Names of what depends on or runs on this node."""
    rels = s.scalars(
        select(Relationship).where(_cols(kind, "target") == node_id, Relationship.type.in_(DEPENDENCY_TYPES))
    )
    out = []
    for rel in rels:
        (sk, sid), _ = relationship_ends(rel)
        out.append(f"{_KIND_LABEL[sk]} {node_name(s, sk, sid)} ({rel.type.replace('_', ' ')})")
    return out


def _refuse_if_needed(s: Session, kind: NodeKind, node_id: int, name: str) -> None:
    from opsdesk.monitoring import service as monitoring

    needed_by = dependents(s, kind, node_id)
    needed_by += [f"monitor {m}" for m in monitoring.monitors_referencing(s, kind, node_id)]
    if needed_by:
        count = f"{len(needed_by)} item depends" if len(needed_by) == 1 else f"{len(needed_by)} items depend"
        raise conflict(
            f"{_KIND_LABEL[kind]} {name!r} cannot be deleted: {count} on it: " + ", ".join(needed_by[:10]),
            dependents=needed_by,
        )


_KIND_LABEL = {"service": "service", "ci": "CI"}


def _delete_edges(s: Session, kind: NodeKind, node_id: int, *, actor: Actor, now: datetime) -> None:
    """Delete (and audit) the relationships left on a node that is being deleted."""
    for rel in list_relationships(s, node=(kind, node_id), limit=100_000):
        delete_relationship(s, rel.id, actor=actor, now=now)


def owned_by_team(s: Session, team_id: int) -> list[str]:
    names = [f"service {n}" for n in s.scalars(select(Service.name).where(Service.owner_team_id == team_id))]
    names += [
        f"ci {n}" for n in s.scalars(select(ConfigItem.name).where(ConfigItem.owner_team_id == team_id))
    ]
    return names


def upstream_cis(s: Session, ci_id: int, *, max_depth: int = 10) -> set[int]:
    """The CIs this CI needs, directly or through others (``depends_on`` and ``runs_on`` edges)."""
    seen: set[int] = set()
    frontier = {ci_id}
    for _ in range(max_depth):
        rows = s.scalars(
            select(Relationship.target_ci_id).where(
                Relationship.source_ci_id.in_(frontier),
                Relationship.type.in_(DEPENDENCY_TYPES),
                Relationship.target_ci_id.is_not(None),
            )
        )
        frontier = {r for r in rows if r is not None} - seen - {ci_id}
        if not frontier:
            break
        seen |= frontier
    return seen


# --- the dependency graph, for correlation -----------------------------------------------------

Node = tuple[str, int]  # ("service" | "ci", id)


class DependencyGraph:
    """Every relationship as a directed edge ``source -> target`` ("source needs target"), for
    every type: ``depends_on`` and ``runs_on`` obviously, and ``connects_to`` because a host that
    connects through a switch loses its network with it. ``runs_on`` edges are also kept as
    "what runs on this" (an application on its pods, VMs on their hypervisor)."""

    def __init__(self, edges: list[tuple[Node, Node, str]]):
        self.needs: dict[Node, set[Node]] = {}
        self.needed_by: dict[Node, set[Node]] = {}
        self.hosted: dict[Node, set[Node]] = {}
        for src, tgt, kind in edges:
            self.needs.setdefault(src, set()).add(tgt)
            self.needed_by.setdefault(tgt, set()).add(src)
            if kind == RelationType.runs_on.value:
                self.hosted.setdefault(tgt, set()).add(src)

    @staticmethod
    def _walk(start: Node, adj: dict[Node, set[Node]], max_depth: int) -> set[Node]:
        seen: set[Node] = set()
        frontier = {start}
        for _ in range(max_depth):
            nxt = {n for f in frontier for n in adj.get(f, ())} - seen - {start}
            if not nxt:
                break
            seen |= nxt
            frontier = nxt
        return seen

    def upstream(self, node: Node, max_depth: int = 10) -> set[Node]:
        """What ``node`` needs, directly or not."""
        return self._walk(node, self.needs, max_depth)

    def downstream(self, node: Node, max_depth: int = 10) -> set[Node]:
        """What needs ``node``, directly or not."""
        return self._walk(node, self.needed_by, max_depth)

    def runs_here(self, node: Node) -> set[Node]:
        """What runs directly on ``node`` (the sources of its ``runs_on`` edges)."""
        return self.hosted.get(node, set())

    def owning_service(self, ci_id: int) -> int | None:
        """The one service that directly needs this CI (the CMDB's "CI belongs to service"), or None
        when there is none or more than one."""
        owners = [n for n in self.needed_by.get(("ci", ci_id), ()) if n[0] == "service"]
        return owners[0][1] if len(owners) == 1 else None


_graph_cache: weakref.WeakKeyDictionary[Any, tuple[tuple[Any, ...], DependencyGraph]] = (
    weakref.WeakKeyDictionary()
)


def dependency_graph(s: Session) -> DependencyGraph:
    """The whole graph, cached per engine and rebuilt only when relationships were added or removed
    (one small query tells). Relationships are never edited in place, so their count and highest
    id identify the set."""
    stamp = tuple(s.execute(select(func.count(Relationship.id), func.max(Relationship.id))).one())
    engine = s.get_bind()
    cached = _graph_cache.get(engine)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    edges: list[tuple[Node, Node, str]] = []
    for rel in s.scalars(select(Relationship)):
        (sk, sid), (tk, tid) = relationship_ends(rel)
        edges.append(((sk, sid), (tk, tid), rel.type))
    graph = DependencyGraph(edges)
    _graph_cache[engine] = (stamp, graph)
    return graph
