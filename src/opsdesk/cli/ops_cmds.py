"""``opsdesk monitor`` and ``opsdesk incident``."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from opsdesk.cli.common import actor_as, console, handle_errors, now, session, settings, table
from opsdesk.core.errors import OpsdeskError, invalid, not_found

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


Ref = Annotated[str, typer.Argument(help="INC-42 or 42")]
NoteOpt = Annotated[str, typer.Option(help="A note for the timeline.")]


def _incident_row(i: Any) -> dict[str, Any]:
    return {
        "key": i.key,
        "priority": i.priority,
        "status": "closed" if i.closed_at else i.status,
        "severity": i.severity,
        "title": i.title,
        "opened": i.opened_at,
        "service_id": i.service_id,
        "assignee_id": i.assignee_id,
        "tags": ",".join(i.tags or []),
    }


@incident_app.command("list")
@handle_errors
def incident_list(
    status: Annotated[
        list[str] | None,
        typer.Option(help="triggered, acknowledged, resolved or open (repeatable); default open."),
    ] = None,
    priority: Annotated[list[str] | None, typer.Option(help="P1 … P5 (repeatable).")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Include resolved incidents.")] = False,
    as_json: Json = False,
) -> None:
    """List open incidents (or by --status, or all with --all), newest first."""
    from opsdesk.incidents import service as incidents
    from opsdesk.incidents.priority import PRIORITIES

    wanted: list[str] = []
    for st in status or []:
        for part in st.split(","):
            part = part.strip()
            if part == "open":
                wanted += list(incidents.OPEN)
            elif part in ("triggered", "acknowledged", "resolved"):
                wanted.append(part)
            elif part:
                raise invalid("--status", f"{part!r} is not one of triggered, acknowledged, resolved, open")
    prios = [p.strip().upper() for v in priority or [] for p in v.split(",") if p.strip()]
    for p in prios:
        if p not in PRIORITIES:
            raise invalid("--priority", f"{p!r} is not one of {', '.join(PRIORITIES)}")
    if not wanted and not all_:
        wanted = list(incidents.OPEN)
    with session() as s:
        rows = [
            _incident_row(i)
            for i in incidents.list_incidents(s, status=wanted or None, priority=prios or None, limit=10_000)
        ]
    table(rows, ["key", "priority", "status", "severity", "title", "opened", "tags"], as_json)


@incident_app.command("show")
@handle_errors
def incident_show(ref: Ref, as_json: Json = False) -> None:
    """One incident: state, priority, people, alerts, updates and timeline."""
    import json

    from opsdesk.incidents import service as incidents
    from opsdesk.incidents.api import detail
    from opsdesk.incidents.schemas import IncidentDetail

    with session() as s:
        data = IncidentDetail.model_validate(detail(s, incidents.parse_key(ref))).model_dump(mode="json")
    if as_json:
        typer.echo(json.dumps(data, indent=2))
        return
    state = "closed" if data["closed_at"] else data["status"]
    console.print(f"[bold]{data['key']}[/bold] {data['title']}", markup=True, highlight=False)
    facts = {
        "status": state,
        "priority": f"{data['priority']} (impact {data['impact']}, urgency {data['urgency']})",
        "severity": data["severity"],
        "service_id": data["service_id"],
        "team_id": data["team_id"],
        "assignee_id": data["assignee_id"],
        "commander_id": data["commander_id"],
        "comms_lead_id": data["comms_lead_id"],
        "tags": ", ".join(data["tags"]),
        "alerts": ", ".join(str(a) for a in data["alert_ids"]),
        "related": ", ".join(r["key"] for r in data["related"]),
        "merged_into": data["merged_into"]["key"] if data["merged_into"] else None,
        "postmortem_id": data["postmortem_id"],
    }
    for k, v in facts.items():
        if v not in (None, ""):
            console.print(f"{k:>14}: {v}", markup=False, highlight=False)
    for u in data["updates"]:
        vis = "public" if u["public"] else "internal"
        line = f"update {u['at']} [{u['status']}, {vis}] {u['message']}"
        console.print(line, markup=False, highlight=False)
    table(data["timeline"], ["at", "kind", "actor", "message"], False, title="timeline")


def _act(fn: Any, ref: str, as_user: str | None, **kwargs: Any) -> None:
    from opsdesk.incidents import service as incidents

    actor = actor_as(as_user)
    with session() as s:
        inc = fn(s, incidents.parse_key(ref), actor=actor, now=now(), **kwargs)
        state = "closed" if inc.closed_at else inc.status
        console.print(f"{inc.key} {state} {inc.priority}", markup=False, highlight=False)


@incident_app.command("ack")
@handle_errors
def incident_ack(ref: Ref, note: NoteOpt = "", as_user: AsUser = None) -> None:
    """Acknowledge an incident."""
    from opsdesk.incidents import service as incidents

    _act(incidents.acknowledge, ref, as_user, note=note)


@incident_app.command("resolve")
@handle_errors
def incident_resolve(ref: Ref, note: NoteOpt = "", as_user: AsUser = None) -> None:
    """Resolve an incident."""
    from opsdesk.incidents import service as incidents

    _act(incidents.resolve, ref, as_user, note=note)


@incident_app.command("reopen")
@handle_errors
def incident_reopen(ref: Ref, note: NoteOpt = "", as_user: AsUser = None) -> None:
    """Reopen a resolved incident (not a closed one)."""
    from opsdesk.incidents import service as incidents

    _act(incidents.reopen, ref, as_user, note=note)


@incident_app.command("close")
@handle_errors
def incident_close(ref: Ref, note: NoteOpt = "", as_user: AsUser = None) -> None:
    """Close a resolved incident (P1/P2 need a published postmortem first)."""
    from opsdesk.incidents import service as incidents

    _act(incidents.close, ref, as_user, note=note, settings=settings())


@incident_app.command("comment")
@handle_errors
def incident_comment(
    ref: Ref, text: Annotated[str, typer.Argument(help="The comment.")], as_user: AsUser = None
) -> None:
    """Add a comment to the timeline."""
    from opsdesk.incidents import service as incidents

    _act(incidents.comment, ref, as_user, text=text)


@incident_app.command("assign")
@handle_errors
def incident_assign(
    ref: Ref,
    team: Annotated[str | None, typer.Option(help="Team name ('' to clear).")] = None,
    user: Annotated[str | None, typer.Option(help="Assignee e-mail ('' to clear).")] = None,
    commander: Annotated[str | None, typer.Option(help="Incident commander e-mail ('' to clear).")] = None,
    comms_lead: Annotated[str | None, typer.Option(help="Communications lead e-mail ('' to clear).")] = None,
    as_user: AsUser = None,
) -> None:
    """Set the team, the assignee and the incident roles."""
    from opsdesk.auth import service as auth
    from opsdesk.incidents import service as incidents

    if team is None and user is None and commander is None and comms_lead is None:
        raise invalid("assign", "give --team, --user, --commander or --comms-lead")
    actor = actor_as(as_user)
    changes: dict[str, Any] = {}
    with session() as s:
        if team is not None:
            found = auth.get_team_by_name(s, team) if team else None
            if team and found is None:
                raise invalid("--team", f"no team named {team!r}")
            changes["team_id"] = found.id if found else None
        for field, email, flag in (
            ("assignee_id", user, "--user"),
            ("commander_id", commander, "--commander"),
            ("comms_lead_id", comms_lead, "--comms-lead"),
        ):
            if email is None:
                continue
            person = auth.get_user_by_email(s, email) if email else None
            if email and person is None:
                raise invalid(flag, f"no user with e-mail {email}")
            changes[field] = person.id if person else None
        inc = incidents.update(s, incidents.parse_key(ref), changes, actor=actor, now=now())
        console.print(
            f"{inc.key} team={inc.team_id} assignee={inc.assignee_id} "
            f"commander={inc.commander_id} comms_lead={inc.comms_lead_id}",
            markup=False,
            highlight=False,
        )


@incident_app.command("priority")
@handle_errors
def incident_priority(
    ref: Ref,
    impact: Annotated[str, typer.Option(help="high, medium or low.")],
    urgency: Annotated[str, typer.Option(help="high, medium or low.")],
    as_user: AsUser = None,
) -> None:
    """Set impact and urgency; the priority (P1 … P5) follows."""
    from opsdesk.incidents import service as incidents

    _act(incidents.set_priority, ref, as_user, impact=impact.lower(), urgency=urgency.lower())


@incident_app.command("update")
@handle_errors
def incident_update(
    ref: Ref,
    status: Annotated[str, typer.Option(help="investigating, identified, monitoring or resolved.")],
    message: Annotated[str, typer.Option(help="What stakeholders should know.")],
    private: Annotated[
        bool, typer.Option("--private", help="Internal only (not on the status page).")
    ] = False,
    as_user: AsUser = None,
) -> None:
    """Post a status update for stakeholders."""
    from opsdesk.incidents import service as incidents

    _act(incidents.post_update, ref, as_user, status=status, message=message, public=not private)


@incident_app.command("declare")
@handle_errors
def incident_declare(
    title: Annotated[str, typer.Argument(help="What is broken, for whom.")],
    service: Annotated[str | None, typer.Option(help="Service name.")] = None,
    severity: Annotated[str, typer.Option(help="critical, error, warning or info.")] = "error",
    description: Annotated[str, typer.Option(help="The first comment.")] = "",
    as_user: AsUser = None,
) -> None:
    """Declare an incident by hand."""
    from opsdesk.cmdb import service as cmdb
    from opsdesk.incidents import service as incidents

    actor = actor_as(as_user)
    with session() as s:
        service_id = None
        if service:
            svc = cmdb.get_service_by_name(s, service)
            if svc is None:
                raise invalid("--service", f"no service named {service!r}")
            service_id = svc.id
        inc = incidents.declare(
            s,
            title=title,
            service_id=service_id,
            severity=severity,
            description=description,
            actor=actor,
            now=now(),
        )
        console.print(f"{inc.key} {inc.status} {inc.priority}: {inc.title}", markup=False, highlight=False)


@incident_app.command("merge")
@handle_errors
def incident_merge(
    into: Annotated[str, typer.Argument(help="The incident that stays (INC-42).")],
    others: Annotated[list[str], typer.Argument(help="Incidents merged into it.")],
    as_user: AsUser = None,
) -> None:
    """Merge incidents into one: their alerts move, they resolve as merged."""
    from opsdesk.incidents import service as incidents

    actor = actor_as(as_user)
    with session() as s:
        ids = [incidents.parse_key(o) for o in others]
        inc = incidents.merge(s, incidents.parse_key(into), ids, actor=actor, now=now())
        keys = ", ".join(incidents.key_of(i) for i in ids)
        console.print(f"merged {keys} into {inc.key}", markup=False, highlight=False)


@incident_app.command("split")
@handle_errors
def incident_split(
    ref: Ref,
    alert_ids: Annotated[list[int], typer.Argument(help="Alert ids to move to a new incident.")],
    title: Annotated[str | None, typer.Option(help="Title of the new incident.")] = None,
    as_user: AsUser = None,
) -> None:
    """Split alerts off into a new incident."""
    from opsdesk.incidents import service as incidents

    actor = actor_as(as_user)
    with session() as s:
        src = incidents.parse_key(ref)
        new = incidents.split(s, src, alert_ids, actor=actor, now=now(), title=title)
        console.print(
            f"{new.key} opened with {len(alert_ids)} alert(s) from {incidents.key_of(src)}",
            markup=False,
            highlight=False,
        )
