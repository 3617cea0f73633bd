"""``opsdesk monitor`` and ``opsdesk incident``."""

from __future__ import annotations

from typing import Annotated

import typer

from opsdesk.cli.common import actor_as, console, handle_errors, now, session, table
from opsdesk.core.errors import not_found

monitor_app = typer.Typer(help="Monitors.", no_args_is_help=True)
incident_app = typer.Typer(help="Incidents.", no_args_is_help=True)

AsUser = Annotated[str | None, typer.Option("--as", help="Act as this user (e-mail).")]
Json = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def register(app: typer.Typer) -> None:
    app.add_typer(monitor_app, name="monitor")
    app.add_typer(incident_app, name="incident")


@monitor_app.command("add")
@handle_errors
def monitor_add(
    name: Annotated[str, typer.Option(help="Unique monitor name.")],
    url: Annotated[str, typer.Option(help="URL to request.")],
    expected_status: Annotated[int, typer.Option(help="HTTP status that means up.")] = 200,
    interval: Annotated[int, typer.Option(help="Seconds between checks.")] = 60,
    timeout: Annotated[float, typer.Option(help="Seconds before a check fails.")] = 10.0,
    failures: Annotated[int, typer.Option(help="Consecutive failures before down.")] = 3,
    service: Annotated[str | None, typer.Option(help="Service name the monitor belongs to.")] = None,
    severity: Annotated[str, typer.Option(help="critical, error, warning or info.")] = "critical",
    as_user: AsUser = None,
) -> None:
    """Add an HTTP monitor."""
    from opsdesk.cmdb import service as cmdb
    from opsdesk.monitoring import service as monitoring
    from opsdesk.monitoring.schemas import MonitorIn

    with session() as s:
        service_id = None
        if service:
            svc = cmdb.get_service_by_name(s, service)
            if svc is None:
                raise not_found("service", service)
            service_id = svc.id
        data = MonitorIn.model_validate(
            {
                "name": name,
                "type": "http",
                "target": url,
                "config": {"expected_status": expected_status},
                "interval_seconds": interval,
                "timeout_seconds": timeout,
                "failures_before_down": failures,
                "service_id": service_id,
                "severity": severity,
            }
        )
        m = monitoring.create_monitor(s, data, actor=actor_as(as_user), now=now())
        console.print(f"created monitor {m.id} {m.name}: {m.target} every {m.interval_seconds}s")


@monitor_app.command("list")
@handle_errors
def monitor_list(as_json: Json = False) -> None:
    """List monitors and their state."""
    from opsdesk.monitoring import service as monitoring

    with session() as s:
        rows = [
            {
                "id": m.id,
                "name": m.name,
                "status": m.status,
                "target": m.target,
                "interval": m.interval_seconds,
                "last_check": m.last_check_at,
                "message": m.last_message,
                "service_id": m.service_id,
            }
            for m in monitoring.list_monitors(s, limit=100_000)
        ]
    table(rows, ["id", "name", "status", "target", "interval", "last_check", "message"], as_json)


def _monitor_id(ref: str) -> int:
    from opsdesk.monitoring import service as monitoring

    with session() as s:
        m = monitoring.get_monitor(s, int(ref)) if ref.isdigit() else monitoring.get_monitor_by_name(s, ref)
        if m is None:
            raise not_found("monitor", ref)
        return m.id


def _set_enabled(ref: str, enabled: bool, as_user: str | None) -> None:
    from opsdesk.monitoring import service as monitoring
    from opsdesk.monitoring.schemas import MonitorUpdate

    monitor_id = _monitor_id(ref)
    with session() as s:
        m = monitoring.update_monitor(
            s, monitor_id, MonitorUpdate(enabled=enabled), actor=actor_as(as_user), now=now()
        )
        console.print(f"monitor {m.name} {m.status}")


@monitor_app.command("pause")
@handle_errors
def monitor_pause(
    ref: Annotated[str, typer.Argument(help="Monitor name or id.")], as_user: AsUser = None
) -> None:
    """Stop checking a monitor (its state becomes paused)."""
    _set_enabled(ref, False, as_user)


@monitor_app.command("resume")
@handle_errors
def monitor_resume(
    ref: Annotated[str, typer.Argument(help="Monitor name or id.")], as_user: AsUser = None
) -> None:
    """Check a paused monitor again."""
    _set_enabled(ref, True, as_user)


@monitor_app.command("delete")
@handle_errors
def monitor_delete(
    ref: Annotated[str, typer.Argument(help="Monitor name or id.")], as_user: AsUser = None
) -> None:
    """Delete a monitor and its results."""
    from opsdesk.monitoring import service as monitoring

    monitor_id = _monitor_id(ref)
    with session() as s:
        monitoring.delete_monitor(s, monitor_id, actor=actor_as(as_user), now=now())
    console.print(f"deleted monitor {ref}")


@incident_app.command("list")
@handle_errors
def incident_list(
    all_: Annotated[bool, typer.Option("--all", help="Include resolved incidents.")] = False,
    as_json: Json = False,
) -> None:
    """List open incidents (or all with --all), newest first."""
    from opsdesk.incidents import service as incidents

    with session() as s:
        rows = [
            {
                "key": i.key,
                "status": i.status,
                "severity": i.severity,
                "title": i.title,
                "opened": i.opened_at,
                "service_id": i.service_id,
            }
            for i in incidents.list_incidents(s, status=None if all_ else list(incidents.OPEN), limit=10_000)
        ]
    table(rows, ["key", "status", "severity", "title", "opened"], as_json)


@incident_app.command("ack")
@handle_errors
def incident_ack(
    ref: Annotated[str, typer.Argument(help="INC-42 or 42")],
    note: Annotated[str, typer.Option()] = "",
    as_user: AsUser = None,
) -> None:
    """Acknowledge an incident."""
    from opsdesk.incidents import service as incidents

    with session() as s:
        inc = incidents.acknowledge(
            s, incidents.parse_key(ref), actor=actor_as(as_user), now=now(), note=note
        )
        console.print(f"{inc.key} {inc.status}")


@incident_app.command("resolve")
@handle_errors
def incident_resolve(
    ref: Annotated[str, typer.Argument(help="INC-42 or 42")],
    note: Annotated[str, typer.Option()] = "",
    as_user: AsUser = None,
) -> None:
    """Resolve an incident."""
    from opsdesk.incidents import service as incidents

    with session() as s:
        inc = incidents.resolve(s, incidents.parse_key(ref), actor=actor_as(as_user), now=now(), note=note)
        console.print(f"{inc.key} {inc.status}")
