"""``opsdesk service``, ``opsdesk ci`` and ``opsdesk rel``: the CMDB from the command line."""

from __future__ import annotations

from typing import Annotated

import typer
from sqlalchemy.orm import Session

from opsdesk.cli.common import actor_as, console, handle_errors, now, parse_attrs, session, table
from opsdesk.cmdb.models import CIClass, RelationType
from opsdesk.core.errors import invalid, not_found

service_app = typer.Typer(help="Services.", no_args_is_help=True)
ci_app = typer.Typer(help="Configuration items.", no_args_is_help=True)
rel_app = typer.Typer(help="Relationships between services and CIs.", no_args_is_help=True)

AsUser = Annotated[str | None, typer.Option("--as", help="Act as this user (e-mail).")]
Json = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
Attr = Annotated[list[str] | None, typer.Option("--attr", help="key=value; repeat for more.")]
Team = Annotated[str | None, typer.Option("--team", help="Owner team name.")]


def register(app: typer.Typer) -> None:
    app.add_typer(service_app, name="service")
    app.add_typer(ci_app, name="ci")
    app.add_typer(rel_app, name="rel")


def _team_id(s: Session, name: str | None) -> int | None:
    from opsdesk.auth import service as auth

    if not name:
        return None
    team = auth.get_team_by_name(s, name)
    if team is None:
        raise invalid("team", f"no team named {name!r}")
    return team.id


def _changes(
    s: Session, *, name: str | None, description: str | None, team: str | None, attr: list[str] | None
) -> dict[str, object]:
    """The fields an update command was given; the ones left out stay as they are."""
    values: dict[str, object] = {}
    if name is not None:
        values["name"] = name
    if description is not None:
        values["description"] = description
    if team is not None:
        values["owner_team_id"] = _team_id(s, team)
    if attr:
        values["attributes"] = parse_attrs(attr)
    return values


def _service(s: Session, ref: str) -> int:
    from opsdesk.cmdb import service as cmdb

    svc = cmdb.get_service(s, int(ref)) if ref.isdigit() else cmdb.get_service_by_name(s, ref)
    if svc is None:
        raise not_found("service", ref)
    return svc.id


def _ci(s: Session, ref: str) -> int:
    from opsdesk.cmdb import service as cmdb

    ci = cmdb.get_ci(s, int(ref)) if ref.isdigit() else cmdb.get_ci_by_name(s, ref)
    if ci is None:
        raise not_found("CI", ref)
    return ci.id


@service_app.command("add")
@handle_errors
def service_add(
    name: str,
    description: Annotated[str, typer.Option()] = "",
    team: Team = None,
    attr: Attr = None,
    as_user: AsUser = None,
) -> None:
    """Create a service."""
    from opsdesk.cmdb import service as cmdb
    from opsdesk.cmdb.schemas import ServiceIn

    with session() as s:
        svc = cmdb.create_service(
            s,
            ServiceIn(
                name=name,
                description=description,
                owner_team_id=_team_id(s, team),
                attributes=parse_attrs(attr),
            ),
            actor=actor_as(as_user),
            now=now(),
        )
        console.print(f"created service {svc.id} {svc.name}")


@service_app.command("list")
@handle_errors
def service_list(as_json: Json = False) -> None:
    """List services."""
    from opsdesk.cmdb import service as cmdb

    with session() as s:
        rows = [
            {
                "id": x.id,
                "name": x.name,
                "owner_team_id": x.owner_team_id,
                "description": x.description,
                "attributes": x.attributes,
            }
            for x in cmdb.list_services(s, limit=100_000)
        ]
    table(rows, ["id", "name", "owner_team_id", "description"], as_json)


@service_app.command("update")
@handle_errors
def service_update(
    ref: Annotated[str, typer.Argument(help="Service name or id.")],
    name: Annotated[str | None, typer.Option()] = None,
    description: Annotated[str | None, typer.Option()] = None,
    team: Team = None,
    attr: Attr = None,
    as_user: AsUser = None,
) -> None:
    """Change a service."""
    from opsdesk.cmdb import service as cmdb
    from opsdesk.cmdb.schemas import ServiceUpdate

    with session() as s:
        values = _changes(s, name=name, description=description, team=team, attr=attr)
        svc = cmdb.update_service(
            s, _service(s, ref), ServiceUpdate(**values), actor=actor_as(as_user), now=now()
        )
        console.print(f"updated service {svc.id} {svc.name}")


@service_app.command("delete")
@handle_errors
def service_delete(
    ref: Annotated[str, typer.Argument(help="Service name or id.")], as_user: AsUser = None
) -> None:
    """Delete a service (refused while something depends on it)."""
    from opsdesk.cmdb import service as cmdb

    with session() as s:
        cmdb.delete_service(s, _service(s, ref), actor=actor_as(as_user), now=now())
    console.print(f"deleted service {ref}")


@ci_app.command("add")
@handle_errors
def ci_add(
    name: str,
    ci_class: Annotated[CIClass, typer.Option("--class", help="server, vm, database, network_device, ...")],
    description: Annotated[str, typer.Option()] = "",
    team: Team = None,
    attr: Attr = None,
    as_user: AsUser = None,
) -> None:
    """Create a configuration item."""
    from opsdesk.cmdb import service as cmdb
    from opsdesk.cmdb.schemas import CIIn

    with session() as s:
        ci = cmdb.create_ci(
            s,
            CIIn.model_validate(
                {
                    "name": name,
                    "class": ci_class,
                    "description": description,
                    "owner_team_id": _team_id(s, team),
                    "attributes": parse_attrs(attr),
                }
            ),
            actor=actor_as(as_user),
            now=now(),
        )
        console.print(f"created CI {ci.id} {ci.name} ({ci.ci_class})")


@ci_app.command("list")
@handle_errors
def ci_list(
    ci_class: Annotated[CIClass | None, typer.Option("--class")] = None, as_json: Json = False
) -> None:
    """List configuration items."""
    from opsdesk.cmdb import service as cmdb

    with session() as s:
        rows = [
            {
                "id": x.id,
                "name": x.name,
                "class": x.ci_class,
                "owner_team_id": x.owner_team_id,
                "attributes": x.attributes,
            }
            for x in cmdb.list_cis(s, limit=100_000, ci_class=ci_class.value if ci_class else None)
        ]
    table(rows, ["id", "name", "class", "owner_team_id", "attributes"], as_json)


@ci_app.command("update")
@handle_errors
def ci_update(
    ref: Annotated[str, typer.Argument(help="CI name or id.")],
    name: Annotated[str | None, typer.Option()] = None,
    ci_class: Annotated[CIClass | None, typer.Option("--class")] = None,
    description: Annotated[str | None, typer.Option()] = None,
    team: Team = None,
    attr: Attr = None,
    as_user: AsUser = None,
) -> None:
    """Change a configuration item."""
    from opsdesk.cmdb import service as cmdb
    from opsdesk.cmdb.schemas import CIUpdate

    with session() as s:
        values = _changes(s, name=name, description=description, team=team, attr=attr)
        if ci_class is not None:
            values["ci_class"] = ci_class
        ci = cmdb.update_ci(s, _ci(s, ref), CIUpdate(**values), actor=actor_as(as_user), now=now())
        console.print(f"updated CI {ci.id} {ci.name}")


@ci_app.command("delete")
@handle_errors
def ci_delete(ref: Annotated[str, typer.Argument(help="CI name or id.")], as_user: AsUser = None) -> None:
    """Delete a configuration item (refused while something depends on it)."""
    from opsdesk.cmdb import service as cmdb

    with session() as s:
        cmdb.delete_ci(s, _ci(s, ref), actor=actor_as(as_user), now=now())
    console.print(f"deleted CI {ref}")


def _end(s: Session, ref: str) -> tuple[str, int]:
    kind, _, name = ref.partition(":")
    if kind not in ("service", "ci") or not name:
        raise invalid("end", f"{ref!r} must be service:NAME or ci:NAME")
    return kind, (_service(s, name) if kind == "service" else _ci(s, name))


@rel_app.command("add")
@handle_errors
def rel_add(
    source: Annotated[str, typer.Argument(help="service:NAME or ci:NAME")],
    type_: Annotated[RelationType, typer.Argument(metavar="TYPE", help="depends_on, runs_on or connects_to")],
    target: Annotated[str, typer.Argument(help="service:NAME or ci:NAME")],
    as_user: AsUser = None,
) -> None:
    """Relate two items, e.g. `opsdesk rel add service:shop depends_on ci:db1`."""
    from opsdesk.cmdb import service as cmdb
    from opsdesk.cmdb.schemas import RelationshipIn

    with session() as s:
        sk, sid = _end(s, source)
        tk, tid = _end(s, target)
        rel = cmdb.create_relationship(
            s,
            RelationshipIn.model_validate(
                {"type": type_, "source_type": sk, "source_id": sid, "target_type": tk, "target_id": tid}
            ),
            actor=actor_as(as_user),
            now=now(),
        )
        console.print(f"created relationship {rel.id}: {source} {type_.value} {target}")


@rel_app.command("list")
@handle_errors
def rel_list(as_json: Json = False) -> None:
    """List relationships."""
    from opsdesk.cmdb import service as cmdb

    with session() as s:
        rows = [cmdb.relationship_dict(s, r) for r in cmdb.list_relationships(s, limit=100_000)]
    for r in rows:
        r["source"] = f"{r['source_type']}:{r['source_name']}"
        r["target"] = f"{r['target_type']}:{r['target_name']}"
    table(rows, ["id", "source", "type", "target"], as_json)


@rel_app.command("delete")
@handle_errors
def rel_delete(rel_id: int, as_user: AsUser = None) -> None:
    """Delete a relationship by id."""
    from opsdesk.cmdb import service as cmdb

    with session() as s:
        cmdb.delete_relationship(s, rel_id, actor=actor_as(as_user), now=now())
    console.print(f"deleted relationship {rel_id}")
