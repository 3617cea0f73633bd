"""``opsdesk alerts``: the deduplicated alerts, one alert with its events, and the noise report."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from opsdesk.cli.common import console, handle_errors, now, session, table
from opsdesk.core.errors import invalid

alerts_app = typer.Typer(help="Alerts and the noise-reduction report.", no_args_is_help=True)

Json = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
STATUSES = ("firing", "resolved", "all")


def register(app: typer.Typer) -> None:
    app.add_typer(alerts_app, name="alerts")


def _alert_dict(a: Any) -> dict[str, Any]:
    from opsdesk.alerts.schemas import AlertOut

    return AlertOut.model_validate(a).model_dump(mode="json")


@alerts_app.command("list")
@handle_errors
def alerts_list(
    status: Annotated[str, typer.Option(help="firing, resolved or all.")] = "firing",
    source: Annotated[str | None, typer.Option(help="Only alerts from this source.")] = None,
    q: Annotated[str | None, typer.Option("--search", help="Text in the summary or labels.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 100,
    as_json: Json = False,
) -> None:
    """Alerts, newest first (firing ones unless --status says otherwise)."""
    from opsdesk.alerts import noise

    if status not in STATUSES:
        raise invalid("status", "one of firing, resolved, all")
    with session() as s:
        found = noise.find_alerts(
            s, status=None if status == "all" else status, source=source, q=q, limit=limit
        )
        if as_json:
            typer.echo(json.dumps([_alert_dict(a) for a in found], indent=2))
            return
        rows = [
            {
                "id": a.id,
                "status": a.status,
                "severity": a.severity,
                "source": a.source,
                "summary": a.summary,
                "count": a.event_count,
                "last_seen": a.last_seen.strftime("%Y-%m-%d %H:%M:%S"),
                "incident": f"INC-{a.incident_id}" if a.incident_id else "",
                "muted": "muted" if a.muted else "",
            }
            for a in found
        ]
    table(
        rows,
        ["id", "status", "severity", "source", "summary", "count", "last_seen", "incident", "muted"],
        False,
    )


@alerts_app.command("show")
@handle_errors
def alerts_show(
    alert_id: Annotated[int, typer.Argument(help="The alert's id.", min=1, max=2**31 - 1)],
    events: Annotated[int, typer.Option(help="How many of its latest events to show.", min=0, max=500)] = 20,
    as_json: Json = False,
) -> None:
    """One alert: its fields, labels, why it is muted, and its latest events."""
    from opsdesk.alerts import noise
    from opsdesk.alerts import service as alerts

    with session() as s:
        a = alerts.get_alert(s, alert_id)
        out = _alert_dict(a)
        recent = noise.list_events(s, a.id, events) if events else []
        out["events"] = [
            {
                "id": e.id,
                "received_at": e.received_at.isoformat(),
                "status": e.status,
                "severity": e.severity,
                "summary": e.summary,
            }
            for e in recent
        ]
    if as_json:
        typer.echo(json.dumps(out, indent=2))
        return
    console.print(f"[bold]Alert {out['id']}[/bold] {out['summary']}", highlight=False)
    facts = [
        ("status", out["status"]),
        ("severity", out["severity"]),
        ("source", out["source"]),
        ("service_id", out["service_id"]),
        ("ci_id", out["ci_id"]),
        ("incident", f"INC-{out['incident_id']}" if out["incident_id"] else None),
        ("first_seen", out["first_seen"]),
        ("last_seen", out["last_seen"]),
        ("resolved_at", out["resolved_at"]),
        ("events", out["event_count"]),
        ("reopened", out["reopened_count"]),
        ("rule", out["rule"]),
        ("group_key", out["group_key"]),
        ("fingerprint", out["fingerprint"]),
        ("muted", _muted_text(out) if out["muted"] else "no"),
    ]
    for name, value in facts:
        console.print(f"  {name:<12} {'-' if value is None else value}", highlight=False)
    if out["labels"]:
        table([{"label": k, "value": v} for k, v in sorted(out["labels"].items())], ["label", "value"], False)
    if out["events"]:
        table(out["events"], ["id", "received_at", "status", "severity", "summary"], False, title="Events")


def _muted_text(out: dict[str, Any]) -> str:
    by = out.get("muted_by") or {}
    parts = [f"silence {i}" for i in by.get("silences", [])]
    parts += [f"maintenance {i}" for i in by.get("maintenance", [])]
    return "yes" + (f" ({', '.join(parts)})" if parts else "")


@alerts_app.command("noise")
@handle_errors
def alerts_noise(
    days: Annotated[int, typer.Option(help="UTC days up to today.", min=1, max=366)] = 30,
    source: Annotated[str | None, typer.Option(help="Only this source.")] = None,
    as_json: Json = False,
) -> None:
    """Noise reduction: events, alerts, incidents and muted alerts per source, with the ratios."""
    from opsdesk.alerts import noise

    with session() as s:
        report = noise.report(s, days=days, source=source, today=now().date())
    if as_json:
        typer.echo(json.dumps(noise.NoiseReportOut.model_validate(report).model_dump(mode="json"), indent=2))
        return
    columns = ["source", "events", "alerts", "incidents", "muted", "events_per_incident", "no_incident"]

    def row(r: dict[str, Any], name: str) -> dict[str, Any]:
        pct = r["noise_reduction_percent"]
        return {
            **r,
            "source": name,
            "events_per_incident": "-" if r["events_per_incident"] is None else r["events_per_incident"],
            "no_incident": "-" if pct is None else f"{pct:.1f} %",
        }

    rows = [row(r, r["source"]) for r in report["sources"]]
    rows.append(row(report["total"], "total"))
    title = f"Noise reduction {report['start']} to {report['end']}" + (f" ({source})" if source else "")
    table(rows, columns, False, title=title)
