"""Apply a config-as-code document idempotently, and export the current setup as one.

``apply`` creates what is missing, updates what differs and leaves the rest alone, in one
transaction: an error anywhere changes nothing. Every change goes through the domain services,
so it is validated and audited exactly like a change made through the API.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import yaml
from pydantic import ValidationError
from sqlalchemy.orm import Session

from opsdesk.ascode.schema import CIDoc, Document, MonitorDoc, RelationshipDoc, ServiceDoc, TeamDoc
from opsdesk.ascode.yamlpos import Path, YamlError, line_of, load
from opsdesk.auth import service as auth
from opsdesk.auth.schemas import TeamIn, TeamUpdate
from opsdesk.cmdb import service as cmdb
from opsdesk.cmdb.schemas import CIIn, CIUpdate, RelationshipIn, ServiceIn, ServiceUpdate
from opsdesk.core import crypto
from opsdesk.core.actor import Actor
from opsdesk.core.errors import FieldError, OpsdeskError
from opsdesk.monitoring import service as monitoring
from opsdesk.monitoring.schemas import MonitorIn, MonitorUpdate

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class ApplyError(OpsdeskError):
    """An error in a document; its detail already names the line and the field."""

    def __str__(self) -> str:
        return self.detail


def _error(path: Path, message: str, lines: dict[Path, int]) -> ApplyError:
    where = ".".join(f"[{p}]" if isinstance(p, int) else p for p in path).replace(".[", "[")
    line = line_of(lines, path)
    prefix = f"line {line}: " if line else ""
    return ApplyError(
        detail=f"{prefix}{where}: {message}",
        status=422,
        title="Invalid document",
        errors=[FieldError(where, message)],
        extra={"line": line},
    )


def parse(text: str, env: dict[str, str] | None = None) -> tuple[Document, dict[Path, int]]:
    """Read YAML (or JSON) text into a validated document; ``${VAR}`` in strings comes from ``env``."""
    try:
        data, lines = load(text)
    except YamlError as exc:
        raise ApplyError(
            detail=str(exc), status=422, title="Invalid document", extra={"line": exc.line}
        ) from None
    data = _substitute(data, (), env if env is not None else dict(os.environ), lines)
    try:
        return Document.model_validate(data), lines
    except ValidationError as exc:
        first = exc.errors()[0]
        raise _error(tuple(first["loc"]), first["msg"], lines) from None


def _substitute(value: Any, path: Path, env: dict[str, str], lines: dict[Path, int]) -> Any:
    if isinstance(value, dict):
        return {k: _substitute(v, (*path, k), env, lines) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, (*path, i), env, lines) for i, v in enumerate(value)]
    if isinstance(value, str) and "${" in value:

        def one(m: re.Match[str]) -> str:
            if m.group(1) not in env:
                raise _error(path, f"environment variable {m.group(1)} is not set", lines)
            return env[m.group(1)]

        return _ENV.sub(one, value)
    return value


@dataclass
class Report:
    changes: list[tuple[str, str, str]] = field(default_factory=list)  # (kind, name, action)

    def add(self, kind: str, name: str, action: str) -> None:
        self.changes.append((kind, name, action))

    def count(self, action: str) -> int:
        return sum(1 for c in self.changes if c[2] == action)

    def summary(self) -> str:
        return ", ".join(f"{self.count(a)} {a}" for a in ("created", "updated", "unchanged"))


def apply(s: Session, doc: Document, lines: dict[Path, int], *, actor: Actor, now: datetime) -> Report:
    report = Report()
    steps: list[tuple[str, list[Any], Callable[..., tuple[str, str]]]] = [
        ("teams", doc.teams, _team),
        ("services", doc.services, _service),
        ("cis", doc.cis, _ci),
        ("relationships", doc.relationships, _relationship),
        ("monitors", doc.monitors, _monitor),
    ]
    for kind, items, fn in steps:
        for i, item in enumerate(items):
            try:
                name, action = fn(s, item, actor, now)
            except ApplyError:
                raise
            except OpsdeskError as exc:
                fe = exc.errors[0] if exc.errors else None
                sub = tuple(fe.field.split(".")) if fe else ()
                raise _error((kind, i, *sub), fe.message if fe else exc.detail, lines) from None
            report.add(kind, name, action)
    return report


def _team_id(s: Session, name: str | None, field: str) -> int | None:
    if name is None:
        return None
    team = auth.get_team_by_name(s, name)
    if team is None:
        raise OpsdeskError(
            detail=f"no team {name!r}", status=422, errors=[FieldError(field, f"no team {name!r}")]
        )
    return team.id


def _team(s: Session, d: TeamDoc, actor: Actor, now: datetime) -> tuple[str, str]:
    ids = []
    for email in d.members:
        user = auth.get_user_by_email(s, email)
        if user is None:
            raise OpsdeskError(detail="", status=422, errors=[FieldError("members", f"no user {email}")])
        ids.append(user.id)
    team = auth.get_team_by_name(s, d.name)
    if team is None:
        auth.create_team(
            s, TeamIn(name=d.name, description=d.description, member_ids=ids), actor=actor, now=now
        )
        return d.name, "created"
    if (team.description, auth.team_member_ids(team)) == (d.description, sorted(set(ids))):
        return d.name, "unchanged"
    auth.update_team(s, team.id, TeamUpdate(description=d.description, member_ids=ids), actor=actor, now=now)
    return d.name, "updated"


def _service(s: Session, d: ServiceDoc, actor: Actor, now: datetime) -> tuple[str, str]:
    values = {
        "name": d.name,
        "description": d.description,
        "attributes": d.attributes,
        "owner_team_id": _team_id(s, d.owner_team, "owner_team"),
    }
    svc = cmdb.get_service_by_name(s, d.name)
    if svc is None:
        cmdb.create_service(s, ServiceIn.model_validate(values), actor=actor, now=now)
        return d.name, "created"
    if all(getattr(svc, k) == v for k, v in values.items()):
        return d.name, "unchanged"
    cmdb.update_service(s, svc.id, ServiceUpdate.model_validate(values), actor=actor, now=now)
    return d.name, "updated"


def _ci(s: Session, d: CIDoc, actor: Actor, now: datetime) -> tuple[str, str]:
    values = {
        "name": d.name,
        "ci_class": d.ci_class.value,
        "description": d.description,
        "attributes": d.attributes,
        "owner_team_id": _team_id(s, d.owner_team, "owner_team"),
    }
    ci = cmdb.get_ci_by_name(s, d.name)
    if ci is None:
        cmdb.create_ci(s, CIIn.model_validate(values), actor=actor, now=now)
        return d.name, "created"
    if all(getattr(ci, k) == v for k, v in values.items()):
        return d.name, "unchanged"
    cmdb.update_ci(s, ci.id, CIUpdate.model_validate(values), actor=actor, now=now)
    return d.name, "updated"


def _end(s: Session, ref: str, field: str) -> tuple[str, int]:
    kind, _, name = ref.partition(":")
    obj = cmdb.get_service_by_name(s, name) if kind == "service" else cmdb.get_ci_by_name(s, name)
    if obj is None:
        raise OpsdeskError(detail="", status=422, errors=[FieldError(field, f"no {kind} {name!r}")])
    return kind, obj.id


def _relationship(s: Session, d: RelationshipDoc, actor: Actor, now: datetime) -> tuple[str, str]:
    (sk, sid), (tk, tid) = _end(s, d.source, "source"), _end(s, d.target, "target")
    name = f"{d.source} {d.type.value} {d.target}"
    for rel in cmdb.list_relationships(s, node=(sk, sid), limit=100_000):  # type: ignore[arg-type]
        if rel.type == d.type.value and cmdb.relationship_ends(rel) == ((sk, sid), (tk, tid)):
            return name, "unchanged"
    cmdb.create_relationship(
        s,
        RelationshipIn.model_validate(
            {
                "type": d.type,
                "source_type": sk,
                "source_id": sid,
                "target_type": tk,
                "target_id": tid,
                "description": d.description,
            }
        ),
        actor=actor,
        now=now,
    )
    return name, "created"


def _monitor(s: Session, d: MonitorDoc, actor: Actor, now: datetime) -> tuple[str, str]:
    service_id = _end(s, f"service:{d.service}", "service")[1] if d.service else None
    ci_id = _end(s, f"ci:{d.ci}", "ci")[1] if d.ci else None
    values = {
        "name": d.name,
        "target": d.target,
        "config": d.config,
        "interval_seconds": d.interval,
        "timeout_seconds": d.timeout,
        "failures_before_down": d.failures_before_down,
        "service_id": service_id,
        "ci_id": ci_id,
        "severity": d.severity,
        "enabled": d.enabled,
        "locations": d.locations,
        "quorum": d.quorum,
    }
    if d.ping_key is not None:
        values["ping_key"] = d.ping_key
    m = monitoring.get_monitor_by_name(s, d.name)
    if m is None:
        monitoring.create_monitor(
            s, MonitorIn.model_validate({**values, "type": d.type}), actor=actor, now=now
        )
        return d.name, "created"
    if m.type != d.type:
        raise OpsdeskError(
            detail="", status=422, errors=[FieldError("type", f"is {m.type}; delete it to change")]
        )
    target, plain, secrets = monitoring.validate_definition(m.type, d.target, d.config, m.secrets)
    same = (
        m.target,
        m.config,
        m.interval_seconds,
        m.timeout_seconds,
        m.failures_before_down,
        m.service_id,
        m.ci_id,
        m.severity,
        m.enabled,
        m.locations,
        m.quorum,
        m.ping_key if d.ping_key is not None else None,
    ) == (
        target,
        plain,
        d.interval,
        d.timeout,
        d.failures_before_down,
        service_id,
        ci_id,
        d.severity.value,
        d.enabled,
        d.locations,
        d.quorum,
        d.ping_key,
    ) and {k: crypto.decrypt(v) for k, v in m.secrets.items()} == {
        k: crypto.decrypt(v) for k, v in secrets.items()
    }
    if same:
        return d.name, "unchanged"
    monitoring.update_monitor(s, m.id, MonitorUpdate.model_validate(values), actor=actor, now=now)
    return d.name, "updated"


# --- export --------------------------------------------------------------------------------------


def export(s: Session) -> dict[str, Any]:
    """The current setup as a document (secrets are left out: they stay where they are)."""
    teams = {t.id: t.name for t in auth.list_teams(s, limit=100_000)}
    services = {x.id: x.name for x in cmdb.list_services(s, limit=100_000)}
    cis = {x.id: x.name for x in cmdb.list_cis(s, limit=100_000)}
    doc: dict[str, Any] = {
        "teams": [
            _compact(
                {
                    "name": t.name,
                    "description": t.description,
                    "members": [m.user.email for m in sorted(t.members, key=lambda m: m.user_id)],
                }
            )
            for t in auth.list_teams(s, limit=100_000)
        ],
        "services": [
            _compact(
                {
                    "name": x.name,
                    "description": x.description,
                    "owner_team": teams.get(x.owner_team_id or 0),
                    "attributes": x.attributes,
                }
            )
            for x in cmdb.list_services(s, limit=100_000)
        ],
        "cis": [
            _compact(
                {
                    "name": x.name,
                    "class": x.ci_class,
                    "description": x.description,
                    "owner_team": teams.get(x.owner_team_id or 0),
                    "attributes": x.attributes,
                }
            )
            for x in cmdb.list_cis(s, limit=100_000)
        ],
        "relationships": [],
        "monitors": [],
    }
    for rel in cmdb.list_relationships(s, limit=100_000):
        (sk, sid), (tk, tid) = cmdb.relationship_ends(rel)
        names = {"service": services, "ci": cis}
        doc["relationships"].append(
            _compact(
                {
                    "source": f"{sk}:{names[sk][sid]}",
                    "type": rel.type,
                    "target": f"{tk}:{names[tk][tid]}",
                    "description": rel.description,
                }
            )
        )
    for m in monitoring.list_monitors(s, limit=100_000):
        doc["monitors"].append(
            _compact(
                {
                    "name": m.name,
                    "type": m.type,
                    "target": m.target,
                    "config": m.config,
                    "interval": m.interval_seconds,
                    "timeout": m.timeout_seconds,
                    "failures_before_down": m.failures_before_down,
                    "service": services.get(m.service_id or 0),
                    "ci": cis.get(m.ci_id or 0),
                    "severity": m.severity,
                    "enabled": m.enabled,
                    "locations": None if m.locations == ["local"] else m.locations,
                    "quorum": None if m.quorum == 1 else m.quorum,
                }
            )
        )
    return {k: v for k, v in doc.items() if v}


def _compact(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v not in (None, "", {}, [])}


def dump(doc: dict[str, Any]) -> str:
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, default_flow_style=False)
