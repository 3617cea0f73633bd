"""``opsdesk monitor`` and ``opsdesk incident``."""

from __future__ import annotations

from typing import Annotated

import typer

from opsdesk.cli.common import actor_as, console, handle_errors, now, session, settings, table
from opsdesk.core.errors import OpsdeskError, not_found

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
    url: Annotated[str | None, typer.Option(help="http: the URL to request (same as --target).")] = None,
    target: Annotated[
        str | None, typer.Option(help="What to check: URL, host:port, host or name, by type.")
    ] = None,
    type_: Annotated[
        str, typer.Option("--type", help="http, tcp, dns, tls, ping, heartbeat, prometheus or snmp.")
    ] = "http",
    config: Annotated[
        list[str] | None,
        typer.Option(
            help="A config field as key=value (repeatable); the value is read as YAML, "
            "e.g. expected_status=2xx, oids='[sysUpTime]'."
        ),
    ] = None,
    expected_status: Annotated[str | None, typer.Option(help="http: status that means up.")] = None,
    interval: Annotated[int, typer.Option(help="Seconds between checks (heartbeat: the period).")] = 60,
    timeout: Annotated[float, typer.Option(help="Seconds before a check fails.")] = 10.0,
    failures: Annotated[int, typer.Option(help="Consecutive failures before down.")] = 3,
    service: Annotated[str | None, typer.Option(help="Service name the monitor belongs to.")] = None,
    severity: Annotated[str, typer.Option(help="critical, error, warning or info.")] = "critical",
    location: Annotated[
        list[str] | None,
        typer.Option(help="Where it runs: local and/or remote probe locations (repeatable)."),
    ] = None,
    quorum: Annotated[int, typer.Option(help="Locations that must agree before down.")] = 1,
    as_user: AsUser = None,
) -> None:
    """Add a monitor of any type (for many at once, use `opsdesk apply -f`)."""
    import yaml

    from opsdesk.cmdb import service as cmdb
    from opsdesk.monitoring import service as monitoring
    from opsdesk.monitoring.schemas import MonitorIn

    cfg: dict[str, object] = {}
    for item in config or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise OpsdeskError(
                detail=f"--config {item!r} must be key=value", status=422, title="Invalid input"
            )
        cfg[key.strip()] = yaml.safe_load(value) if value else ""
    if expected_status is not None:
        cfg["expected_status"] = expected_status
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
                "type": type_,
                "target": target or url or "",
                "config": cfg,
                "interval_seconds": interval,
                "timeout_seconds": timeout,
                "failures_before_down": failures,
                "service_id": service_id,
                "severity": severity,
                "locations": location or ["local"],
                "quorum": quorum,
            }
        )
        m = monitoring.create_monitor(s, data, actor=actor_as(as_user), now=now())
        console.print(
            f"created {m.type} monitor {m.id} {m.name}: {m.target or '-'} every {m.interval_seconds}s"
        )
        if m.ping_key:
            console.print(f"ping URL: {settings().base_url}/ping/{m.ping_key}")


@monitor_app.command("uptime")
@handle_errors
def monitor_uptime(
    ref: Annotated[str, typer.Argument(help="Monitor name or id.")],
    range_: Annotated[str, typer.Option("--range", help="24h, 7d, 30d or 90d.")] = "24h",
    as_json: Json = False,
) -> None:
    """Availability and response-time percentiles of a monitor."""
    from opsdesk.monitoring import stats

    monitor_id = _monitor_id(ref)
    try:
        start, end = stats.parse_range(range_, now())
    except ValueError as exc:
        raise OpsdeskError(detail=str(exc), status=422, title="Invalid input") from None
    with session() as s:
        a = stats.availability(s, [monitor_id], start, end)[monitor_id]
        lat = stats.latency(s, [monitor_id], start, end)
    row = {
        "range": range_,
        "availability_percent": a.percent,
        "down_seconds": round(a.down_seconds),
        "outages": a.outages,
        "p50_ms": lat.p50,
        "p95_ms": lat.p95,
        "p99_ms": lat.p99,
        "checks": lat.count,
    }
    table([row], list(row), as_json)


@monitor_app.command("history")
@handle_errors
def monitor_history(
    ref: Annotated[str, typer.Argument(help="Monitor name or id.")],
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 50,
    as_json: Json = False,
) -> None:
    """State changes of a monitor, newest first."""
    from opsdesk.monitoring import stats

    monitor_id = _monitor_id(ref)
    with session() as s:
        rows = [
            {"at": c.at, "from": c.old, "to": c.new, "flapping": c.flapping, "message": c.message}
            for c in stats.history(s, monitor_id, limit)
        ]
    table(rows, ["at", "from", "to", "flapping", "message"], as_json)


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
                "type": m.type,
                "status": m.status,
                "target": m.target,
                "interval": m.interval_seconds,
                "last_check": m.last_check_at,
                "message": m.last_message,
                "service_id": m.service_id,
            }
            for m in monitoring.list_monitors(s, limit=100_000)
        ]
    table(rows, ["id", "name", "type", "status", "target", "interval", "last_check", "message"], as_json)


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
