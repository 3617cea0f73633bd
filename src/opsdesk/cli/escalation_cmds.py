"""``opsdesk policy``, ``opsdesk service-policy`` and ``opsdesk notifications``: escalation policies,
which policy a service pages through, and the notification outbox (with retry of dead letters).

A level is written ``"MINUTES: TARGET, TARGET"``: the minutes to wait before the next level, then
who to page, e.g. ``--level "5: schedule Primary, user ann@example.org" --level "10: team DBA"``.
Bad input exits 1 with one line on stderr.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from sqlalchemy.orm import Session

from opsdesk.cli.common import actor_as, console, handle_errors, now, session, table
from opsdesk.core.errors import OpsdeskError, invalid, not_found

if TYPE_CHECKING:
    from opsdesk.oncall.models import EscalationPolicy

policy_app = typer.Typer(help="Escalation policies: who is paged, and who next.", no_args_is_help=True)
notify_app = typer.Typer(help="The notification outbox; retry dead letters.")

AsUser = Annotated[str | None, typer.Option("--as", help="Act as this user (e-mail).")]
Json = Annotated[bool, typer.Option("--json", help="Print JSON (the API's shape) instead of text.")]
Ref = Annotated[str, typer.Argument(help="Policy name or id.")]
Levels = Annotated[
    list[str] | None,
    typer.Option(
        "--level",
        "-l",
        help='"MINUTES: TARGET, ..." in order, e.g. "5: schedule Primary, user ann@example.org"; repeat.',
    ),
]


def register(app: typer.Typer) -> None:
    app.add_typer(policy_app, name="policy")
    app.command("service-policy")(service_policy)
    app.add_typer(notify_app, name="notifications")


def _bad(option: str, message: str) -> OpsdeskError:
    return OpsdeskError(detail=f"{option}: {message}", status=422, title="Invalid input")


def _levels(texts: list[str]) -> list[Any]:
    from opsdesk.oncall import escalation_text

    try:
        return escalation_text.parse_levels(texts)
    except escalation_text.LevelError as exc:
        raise _bad("--level", str(exc)) from None


def _level_errors(exc: OpsdeskError) -> OpsdeskError:
    """A service error about ``levels.0.targets.1`` as ``--level: level 1, target 2: ...``."""
    from opsdesk.oncall import escalation_text

    if exc.errors and exc.errors[0].field.startswith("levels."):
        fe = exc.errors[0]
        return _bad("--level", f"{escalation_text.level_where(fe.field)}: {fe.message}")
    return exc


def _echo_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2))


def _policy_json(s: Session, p: EscalationPolicy) -> Any:
    from opsdesk.oncall import escalation
    from opsdesk.oncall.schemas import PolicyOut

    return PolicyOut.model_validate(escalation.as_dict(s, p)).model_dump(mode="json")


def _resolve(s: Session, ref: str) -> EscalationPolicy:
    from opsdesk.oncall import escalation

    return escalation.resolve(s, ref.strip())


# --- policies ------------------------------------------------------------------------------------


@policy_app.command("list")
@handle_errors
def policy_list(as_json: Json = False) -> None:
    """Every policy: its levels in one line, repeats, and the services that use it."""
    from opsdesk.oncall import escalation, escalation_text

    with session() as s:
        policies = escalation.list_policies(s)
        if as_json:
            _echo_json([_policy_json(s, p) for p in policies])
            return
        rows = []
        for p in policies:
            d = escalation.as_dict(s, p)
            rows.append(
                {
                    "id": p.id,
                    "name": escape(p.name),
                    "levels": escape(escalation_text.summary(d["levels"])),
                    "repeat": p.repeat,
                    "services": escape(", ".join(d["services"])) or "-",
                }
            )
    table(rows, ["id", "name", "levels", "repeat", "services"], False)


@policy_app.command("show")
@handle_errors
def policy_show(ref: Ref, as_json: Json = False) -> None:
    """A policy's levels and targets, and the services that use it."""
    from opsdesk.oncall import escalation, escalation_text

    with session() as s:
        p = _resolve(s, ref)
        if as_json:
            _echo_json(_policy_json(s, p))
            return
        d = escalation.as_dict(s, p)
    console.print(f"[bold]{escape(d['name'])}[/bold] (escalation policy {d['id']})")
    if d["description"]:
        console.print(escape(d["description"]))
    for i, lv in enumerate(d["levels"], 1):
        who = ", ".join(escalation_text.target_text(t) for t in lv["targets"])
        console.print(f"  {i}. {escape(who)}; then wait {lv['timeout_minutes']} min")
    rounds = d["repeat"] + 1
    console.print(f"repeat: {d['repeat']} ({rounds} round{'s' if rounds != 1 else ''}, then stop)")
    console.print(f"services: {escape(', '.join(d['services'])) or 'none'}")
    console.print(
        "as --level: "
        + " ".join(f'"{escape(x)}"' for x in escalation_text.levels_text(d["levels"]).splitlines())
    )


@policy_app.command("create")
@handle_errors
def policy_create(
    name: Annotated[str, typer.Argument(help="A unique name, e.g. 'Database'.")],
    level: Levels = None,
    repeat: Annotated[int, typer.Option(help="Run all levels this many more times (0-9).")] = 0,
    description: Annotated[str, typer.Option()] = "",
    as_user: AsUser = None,
) -> None:
    """Create a policy from its levels, in order."""
    from opsdesk.oncall import escalation, escalation_text
    from opsdesk.oncall.schemas import PolicyIn

    if not level:
        raise _bad("--level", f"give at least one: {escalation_text.HELP}")
    data = PolicyIn(name=name, description=description, repeat=repeat, levels=_levels(level))
    with session() as s:
        try:
            p = escalation.create(s, data, actor=actor_as(as_user), now=now())
        except OpsdeskError as exc:
            raise _level_errors(exc) from None
        summary = escalation_text.summary(escalation.as_dict(s, p)["levels"])
        console.print(f"created escalation policy {p.id} {escape(p.name)}: {escape(summary)}")


@policy_app.command("update")
@handle_errors
def policy_update(
    ref: Ref,
    name: Annotated[str | None, typer.Option()] = None,
    level: Annotated[
        list[str] | None, typer.Option("--level", "-l", help="Replaces every level; repeat, in order.")
    ] = None,
    repeat: Annotated[int | None, typer.Option(help="Run all levels this many more times (0-9).")] = None,
    description: Annotated[str | None, typer.Option()] = None,
    as_user: AsUser = None,
) -> None:
    """Change a policy; --level, when given, replaces all its levels."""
    from opsdesk.oncall import escalation
    from opsdesk.oncall.schemas import PolicyUpdate

    values: dict[str, Any] = {}
    if name is not None:
        values["name"] = name
    if description is not None:
        values["description"] = description
    if repeat is not None:
        values["repeat"] = repeat
    if level:
        values["levels"] = _levels(level)
    data = PolicyUpdate(**values)
    with session() as s:
        pid = _resolve(s, ref).id
        try:
            p = escalation.update_policy(s, pid, data, actor=actor_as(as_user), now=now())
        except OpsdeskError as exc:
            raise _level_errors(exc) from None
        console.print(f"updated escalation policy {p.id} {escape(p.name)}")


@policy_app.command("delete")
@handle_errors
def policy_delete(ref: Ref, as_user: AsUser = None) -> None:
    """Delete a policy (refused while a service uses it)."""
    from opsdesk.oncall import escalation

    with session() as s:
        p = _resolve(s, ref)
        label = p.name
        escalation.delete(s, p.id, actor=actor_as(as_user), now=now())
    console.print(f"deleted escalation policy {escape(label)}")


@handle_errors
def service_policy(
    service: Annotated[str, typer.Argument(help="Service name or id.")],
    policy: Annotated[str | None, typer.Argument(help="Policy name or id.")] = None,
    none: Annotated[bool, typer.Option("--none", help="Page nobody: the owner team is e-mailed.")] = False,
    as_user: AsUser = None,
) -> None:
    """Set the escalation policy a service pages through (or --none); without either, print it."""
    from opsdesk.cmdb import service as cmdb
    from opsdesk.cmdb.schemas import ServiceUpdate
    from opsdesk.oncall import escalation

    if policy is not None and none:
        raise invalid("policy", "give a policy or --none, not both")
    with session() as s:
        svc = cmdb.get_service(s, int(service)) if service.isdigit() else cmdb.get_service_by_name(s, service)
        if svc is None:
            raise not_found("service", service)
        if policy is None and not none:
            current = svc.escalation_policy_id
            shown = escalation.get(s, current).name if current else "none"
            console.print(f"service {escape(svc.name)}: escalation policy {escape(shown)}")
            return
        pid = _resolve(s, policy).id if policy is not None else None
        svc = cmdb.update_service(
            s, svc.id, ServiceUpdate(escalation_policy_id=pid), actor=actor_as(as_user), now=now()
        )
        shown = escalation.get(s, pid).name if pid else "none (the owner team is e-mailed)"
        console.print(f"service {escape(svc.name)}: escalation policy {escape(shown)}")


# --- the outbox ----------------------------------------------------------------------------------


@notify_app.callback(invoke_without_command=True)
@handle_errors
def notifications(
    ctx: typer.Context,
    status: Annotated[
        str | None, typer.Option(help="Only pending, sent, dead or cancelled messages.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="At most this many, newest first.")] = 50,
    as_json: Json = False,
) -> None:
    """The outbox, newest first, with the counts per status; `notifications retry` re-queues."""
    from opsdesk.notify import outbox_read

    if ctx.invoked_subcommand is not None:
        return
    if status is not None and status not in outbox_read.STATUSES:
        raise _bad("--status", f"{status!r} is not one of {', '.join(outbox_read.STATUSES)}")
    with session() as s:
        counts = outbox_read.counts(s)
        names: dict[int, str] = {}
        rows = [
            outbox_read.message_dict(s, m, names) for m in outbox_read.messages(s, status=status, limit=limit)
        ]
    if as_json:
        _echo_json({"counts": counts, "messages": json.loads(json.dumps(rows, default=_iso))})
        return
    console.print("  ".join(f"{k}: {v}" for k, v in counts.items()))
    table(
        [
            {
                "id": r["id"],
                "status": r["status"],
                "incident": r["incident_key"] or "-",
                "recipient": escape(f"{r['user']}: " if r["user"] else "")
                + escape(f"{r['channel']} {r['recipient']}"),
                "attempts": r["attempts"],
                "next attempt": _iso(r["next_attempt_at"]) if r["status"] == "pending" else "-",
                "last error": escape(r["last_error"][:80]),
            }
            for r in rows
        ],
        ["id", "status", "incident", "recipient", "attempts", "next attempt", "last error"],
        False,
    )


def _iso(value: Any) -> str:
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


@notify_app.command("retry")
@handle_errors
def notifications_retry(
    message_id: Annotated[int | None, typer.Argument(help="The dead message to queue again.")] = None,
    all_dead: Annotated[bool, typer.Option("--all-dead", help="Queue every dead message again.")] = False,
) -> None:
    """Put a dead-lettered message (or every one) back in the queue, to be sent at once."""
    from opsdesk.notify import outbox_read
    from opsdesk.notify import service as outbox

    if (message_id is None) == (not all_dead):
        raise invalid("message", "give a message id or --all-dead (one of them)")
    with session() as s:
        ids = outbox_read.dead_ids(s) if all_dead else [message_id]
        for mid in ids:
            assert mid is not None
            outbox.retry(s, mid, now=now())
    if all_dead:
        console.print(f"queued {len(ids)} dead message(s) again")
    else:
        console.print(f"queued message {message_id} again")
