"""``opsdesk integration``: the alert sources that post to ``/hooks/<key>``."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from opsdesk.cli.common import actor_as, console, handle_errors, now, session, settings, table
from opsdesk.core.errors import not_found

integration_app = typer.Typer(
    help="Alert sources (Alertmanager, Grafana, generic JSON).", no_args_is_help=True
)

AsUser = Annotated[str | None, typer.Option("--as", help="Act as this user (e-mail).")]


def register(app: typer.Typer) -> None:
    app.add_typer(integration_app, name="integration")


def _id(ref: str) -> int:
    from sqlalchemy import select

    from opsdesk.alerts.models import Integration

    with session() as s:
        found = s.scalar(
            select(Integration.id).where(
                Integration.id == int(ref) if ref.isdigit() else Integration.name == ref
            )
        )
    if found is None:
        raise not_found("integration", ref)
    return found


@integration_app.command("create")
@handle_errors
def integration_create(
    name: Annotated[str, typer.Argument(help="A name, e.g. prometheus-prod.")],
    kind: Annotated[
        str, typer.Option(help="alertmanager, grafana, zabbix, nagios, icinga or generic.")
    ] = "alertmanager",
    service: Annotated[str | None, typer.Option(help="Service for events that name none.")] = None,
    secret_stdin: Annotated[
        bool,
        typer.Option("--secret-stdin", help="Read an HMAC secret from standard input (signed requests)."),
    ] = False,
    as_user: AsUser = None,
) -> None:
    """Create an integration; prints its hook URL (with the key) once."""
    from opsdesk.alerts import integrations
    from opsdesk.cmdb import service as cmdb

    secret = sys.stdin.readline().strip() if secret_stdin else None
    with session() as s:
        service_id = None
        if service:
            svc = cmdb.get_service_by_name(s, service)
            if svc is None:
                raise not_found("service", service)
            service_id = svc.id
        i, key = integrations.create_integration(
            s, name=name, kind=kind, secret=secret, service_id=service_id, actor=actor_as(as_user), now=now()
        )
        console.print(f"Integration {i.name} ({i.kind}) created. Its hook URL (shown once):\n")
        console.print(f"  {settings().base_url}/hooks/{key}\n")


@integration_app.command("list")
@handle_errors
def integration_list(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Integrations and when each was last used."""
    from opsdesk.alerts import integrations

    with session() as s:
        rows = [
            {
                "id": i.id,
                "name": i.name,
                "kind": i.kind,
                "signed": i.secret_encrypted is not None,
                "service_id": i.service_id,
                "last_used_at": i.last_used_at or "never",
            }
            for i in integrations.list_integrations(s)
        ]
    table(rows, ["id", "name", "kind", "signed", "service_id", "last_used_at"], as_json)


@integration_app.command("rotate")
@handle_errors
def integration_rotate(
    ref: Annotated[str, typer.Argument(help="Name or id.")], as_user: AsUser = None
) -> None:
    """Issue a new key (the old one stops working at once); prints the new hook URL once."""
    from opsdesk.alerts import integrations

    integration_id = _id(ref)
    with session() as s:
        i, key = integrations.rotate_key(s, integration_id, actor=actor_as(as_user), now=now())
        console.print(f"New hook URL for {i.name} (shown once):\n\n  {settings().base_url}/hooks/{key}\n")


@integration_app.command("delete")
@handle_errors
def integration_delete(
    ref: Annotated[str, typer.Argument(help="Name or id.")], as_user: AsUser = None
) -> None:
    """Delete an integration: its key stops working at once."""
    from opsdesk.alerts import integrations

    integration_id = _id(ref)
    with session() as s:
        integrations.delete_integration(s, integration_id, actor=actor_as(as_user), now=now())
    console.print(f"Integration {ref} deleted.")
