"""``opsdesk silence``, ``opsdesk maintenance`` and ``opsdesk alert-rule``.

Times are ISO 8601 (``2026-03-29T02:00``, ``2026-03-29T01:00Z``, ``...+02:00``); a time without an
offset is UTC for silences and in ``--tz`` for maintenance windows. Durations: ``90s``, ``5m``,
``2h30m``, ``1d``, ``1w``.
"""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from typing import Annotated, Any

import typer

from opsdesk.cli.common import actor_as, console, handle_errors, now, session, table
from opsdesk.core.errors import invalid

silence_app = typer.Typer(help="Silences: mute matching alerts for a while.", no_args_is_help=True)
maintenance_app = typer.Typer(help="Maintenance windows on services and CIs.", no_args_is_help=True)
rule_app = typer.Typer(help="Dedup and grouping rules for alerts.", no_args_is_help=True)

AsUser = Annotated[str | None, typer.Option("--as", help="Act as this user (e-mail).")]
Json = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def register(app: typer.Typer) -> None:
    app.add_typer(silence_app, name="silence")
    app.add_typer(maintenance_app, name="maintenance")
    app.add_typer(rule_app, name="alert-rule")


def _time(text: str, option: str, tz: tzinfo = UTC) -> datetime:
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise invalid(option, f"{text!r} is not an ISO 8601 time like 2026-03-29T02:00") from None
    return value.replace(tzinfo=tz) if value.tzinfo is None else value


def _matchers(items: list[str] | None) -> list[str]:
    return [x for x in items or [] if x.strip()]


def _labels(text: str | None) -> list[str]:
    return [x.strip() for x in (text or "").split(",") if x.strip()]


# --- silences ------------------------------------------------------------------------------------


@silence_app.command("add")
@handle_errors
def silence_add(
    matchers: Annotated[
        list[str], typer.Argument(help="Matchers: 'alertname=DiskFull' 'instance=~\"db-.*\"' ...")
    ],
    comment: Annotated[str, typer.Option(help="Why (required).")],
    duration: Annotated[str | None, typer.Option(help="How long: 2h, 30m, 1d (or --until).")] = None,
    until: Annotated[str | None, typer.Option(help="End time, ISO 8601 (or --duration).")] = None,
    start: Annotated[str | None, typer.Option(help="Start time, ISO 8601 (default now).")] = None,
    as_user: AsUser = None,
) -> None:
    """Mute the alerts matching every matcher until --until or for --duration."""
    from opsdesk.alerts import silences
    from opsdesk.alerts.admin_schemas import SilenceIn

    body: dict[str, Any] = {"matchers": _matchers(matchers), "comment": comment}
    if duration is not None:
        body["duration"] = duration
    if until is not None:
        body["ends_at"] = _time(until, "until")
    if start is not None:
        body["starts_at"] = _time(start, "start")
    if duration is None and until is None:
        raise invalid("duration", "give --duration or --until")
    data = SilenceIn.model_validate(body)
    with session() as s:
        sil = silences.create(s, data, actor=actor_as(as_user), now=now())
        d = silences.as_dict(sil, now())
    until_text = f"{d['ends_at']:%Y-%m-%d %H:%M} UTC"
    console.print(f"silence {d['id']} {d['state']} until {until_text}: {d['matchers_text']}")


@silence_app.command("list")
@handle_errors
def silence_list(
    state: Annotated[str | None, typer.Option(help="active, pending or expired.")] = None,
    as_json: Json = False,
) -> None:
    """List silences, newest first."""
    from opsdesk.alerts import silences

    t = now()
    with session() as s:
        rows = [silences.as_dict(x, t) for x in silences.list_silences(s, now=t, state=state, limit=10_000)]
    if as_json:
        table(rows, [], True)
        return
    table(rows, ["id", "state", "matchers_text", "starts_at", "ends_at", "created_by", "comment"], False)


@silence_app.command("expire")
@handle_errors
def silence_expire(
    silence_id: Annotated[int, typer.Argument(help="Silence id.", min=1, max=2**31 - 1)],
    as_user: AsUser = None,
) -> None:
    """End a silence now."""
    from opsdesk.alerts import silences

    with session() as s:
        silences.expire(s, silence_id, actor=actor_as(as_user), now=now())
    console.print(f"silence {silence_id} expired")


# --- maintenance windows -------------------------------------------------------------------------


@maintenance_app.command("add")
@handle_errors
def maintenance_add(
    name: Annotated[str, typer.Argument(help="What the work is, e.g. 'Sunday patching'.")],
    start: Annotated[str, typer.Option(help="Start of the (first) occurrence, ISO 8601.")],
    end: Annotated[str, typer.Option(help="End of the (first) occurrence, ISO 8601.")],
    service: Annotated[str | None, typer.Option(help="Service name or id.")] = None,
    ci: Annotated[str | None, typer.Option(help="CI name or id.")] = None,
    rrule: Annotated[str | None, typer.Option(help="RFC 5545 recurrence, e.g. FREQ=WEEKLY;BYDAY=SU.")] = None,
    tz: Annotated[str, typer.Option("--tz", help="Time zone of the times and the recurrence.")] = "UTC",
    comment: Annotated[str, typer.Option()] = "",
    as_user: AsUser = None,
) -> None:
    """Mute the alerts of a service or CI during planned work (one-off or recurring)."""
    from opsdesk.alerts.admin_schemas import WindowIn
    from opsdesk.changes import maintenance

    zone = maintenance.zone(tz)
    body: dict[str, Any] = {
        "name": name,
        "starts_at": _time(start, "start", zone),
        "ends_at": _time(end, "end", zone),
        "rrule": rrule,
        "timezone": tz,
        "comment": comment,
    }
    for key, ref in (("service", service), ("ci", ci)):
        if ref is not None:
            body[f"{key}_id" if ref.isdigit() else key] = int(ref) if ref.isdigit() else ref
    data = WindowIn.model_validate(body)
    with session() as s:
        w = maintenance.create(s, data, actor=actor_as(as_user), now=now())
        d = maintenance.as_dict(s, w, now())
    nxt = d["next_occurrence"]
    when = f"next {nxt['starts_at']:%Y-%m-%d %H:%M} UTC" if nxt else "no occurrence left"
    console.print(f"maintenance window {d['id']} {d['name']}: {when}")


def _window_row(d: dict[str, Any]) -> dict[str, Any]:
    nxt = d["next_occurrence"]
    return {
        **d,
        "target": " / ".join(x for x in (d["service"], d["ci"]) if x),
        "next": f"{nxt['starts_at']:%Y-%m-%d %H:%M} to {nxt['ends_at']:%H:%M} UTC" if nxt else "",
        "repeats": d["rrule"] or "once",
    }


@maintenance_app.command("list")
@handle_errors
def maintenance_list(as_json: Json = False) -> None:
    """List maintenance windows, with the one in progress or the next occurrence."""
    from opsdesk.changes import maintenance

    t = now()
    with session() as s:
        rows = [maintenance.as_dict(s, w, t) for w in maintenance.list_windows(s, limit=100_000)]
    if as_json:
        table(rows, [], True)
        return
    cols = ["id", "name", "target", "in_progress", "next", "repeats", "timezone", "comment"]
    table([_window_row(d) for d in rows], cols, False)


@maintenance_app.command("delete")
@handle_errors
def maintenance_delete(
    window_id: Annotated[int, typer.Argument(help="Window id.", min=1, max=2**31 - 1)],
    as_user: AsUser = None,
) -> None:
    """Delete a maintenance window."""
    from opsdesk.changes import maintenance

    with session() as s:
        maintenance.delete(s, window_id, actor=actor_as(as_user), now=now())
    console.print(f"deleted maintenance window {window_id}")


# --- alert rules ---------------------------------------------------------------------------------


@rule_app.command("add")
@handle_errors
def rule_add(
    name: Annotated[str, typer.Argument(help="A unique name, e.g. disk-per-host.")],
    match: Annotated[
        list[str] | None, typer.Option("--match", help="A matcher (repeatable); none: every alert.")
    ] = None,
    fingerprint_labels: Annotated[
        str | None, typer.Option(help="Labels that make the fingerprint, comma-separated.")
    ] = None,
    group_by: Annotated[
        str | None, typer.Option(help="Labels that split incidents, comma-separated.")
    ] = None,
    group_window: Annotated[str | None, typer.Option(help="e.g. 5m (default: the settings').")] = None,
    reopen_window: Annotated[str | None, typer.Option(help="e.g. 10m (default: the settings').")] = None,
    position: Annotated[int, typer.Option(help="Lower positions are tried first.")] = 100,
    disabled: Annotated[bool, typer.Option("--disabled", help="Create it disabled.")] = False,
    as_user: AsUser = None,
) -> None:
    """Add a dedup and grouping rule."""
    from opsdesk.alerts import rules
    from opsdesk.alerts.admin_schemas import RuleIn

    data = RuleIn.model_validate(
        {
            "name": name,
            "matchers": _matchers(match),
            "fingerprint_labels": _labels(fingerprint_labels),
            "group_by": _labels(group_by),
            "group_window_seconds": group_window or None,
            "reopen_window_seconds": reopen_window or None,
            "position": position,
            "enabled": not disabled,
        }
    )
    with session() as s:
        rule = rules.create(s, data, actor=actor_as(as_user), now=now())
        console.print(f"alert rule {rule.id} {rule.name} at position {rule.position}")


@rule_app.command("list")
@handle_errors
def rule_list(as_json: Json = False) -> None:
    """List the rules in the order they are tried."""
    from opsdesk.alerts import rules
    from opsdesk.alerts.admin_schemas import format_duration

    with session() as s:
        rows = [rules.as_dict(r) for r in rules.list_rules(s)]
    if as_json:
        table(rows, [], True)
        return
    for d in rows:
        d["fingerprint"] = ",".join(d["fingerprint_labels"]) or "(source)"
        d["group"] = ",".join(d["group_by"]) or "(default)"
        d["windows"] = (
            f"{format_duration(d['group_window_seconds']) or 'default'} / "
            f"{format_duration(d['reopen_window_seconds']) or 'default'}"
        )
    cols = ["position", "id", "name", "enabled", "matchers_text", "fingerprint", "group", "windows"]
    table(rows, cols, False)


@rule_app.command("delete")
@handle_errors
def rule_delete(ref: Annotated[str, typer.Argument(help="Rule name or id.")], as_user: AsUser = None) -> None:
    """Delete a rule."""
    from opsdesk.alerts import rules

    with session() as s:
        rule = rules.find(s, ref)
        name = rule.name
        rules.delete(s, rule.id, actor=actor_as(as_user), now=now())
    console.print(f"deleted alert rule {name}")
