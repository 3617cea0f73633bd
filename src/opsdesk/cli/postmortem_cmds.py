"""``opsdesk postmortem`` and ``opsdesk action-item``."""

from __future__ import annotations

import json
from datetime import date
from typing import Annotated, Any

import typer
from sqlalchemy.orm import Session

from opsdesk.cli.common import actor_as, console, handle_errors, now, session, table
from opsdesk.core.errors import OpsdeskError, invalid

postmortem_app = typer.Typer(help="Postmortems of incidents.", no_args_is_help=True)
item_app = typer.Typer(help="Action items from postmortems.", no_args_is_help=True)

AsUser = Annotated[str | None, typer.Option("--as", help="Act as this user (e-mail).")]
Json = Annotated[bool, typer.Option("--json", help="Print JSON.")]
Ref = Annotated[str, typer.Argument(help="Incident key or id: INC-42 or 42.")]


def register(app: typer.Typer) -> None:
    app.add_typer(postmortem_app, name="postmortem")
    app.add_typer(item_app, name="action-item")


def _incident_id(ref: str) -> int:
    from opsdesk.incidents import service as incidents

    return incidents.parse_key(ref)


def _postmortem_dict(s: Session, incident_id: int) -> dict[str, Any]:
    from opsdesk.incidents import postmortems as pms

    pm = pms.require_for_incident(s, incident_id)
    out: dict[str, Any] = {
        "id": pm.id,
        "incident_id": pm.incident_id,
        "incident_key": f"INC-{pm.incident_id}",
        "status": pm.status,
        **{f: getattr(pm, f) for f in pms.SECTIONS},
        "author_id": pm.author_id,
        "created_at": pm.created_at.isoformat(),
        "updated_at": pm.updated_at.isoformat(),
        "published_at": pm.published_at.isoformat() if pm.published_at else None,
        "missing_to_publish": pms.missing_to_publish(pm),
        "action_items": [_item_dict(i) for i in pms.list_action_items(s, postmortem_id=pm.id, now=now())],
    }
    return out


def _item_dict(item: Any, incident_id: int | None = None) -> dict[str, Any]:
    from opsdesk.incidents import postmortems as pms

    row = {
        "id": item.id,
        "postmortem_id": item.postmortem_id,
        "title": item.title,
        "owner_id": item.owner_id,
        "due_date": item.due_date.isoformat() if item.due_date else None,
        "status": item.status,
        "overdue": pms.is_overdue(item, now()),
        "done_at": item.done_at.isoformat() if item.done_at else None,
    }
    if incident_id is not None:
        row["incident"] = f"INC-{incident_id}"
    return row


@postmortem_app.command("show")
@handle_errors
def postmortem_show(
    ref: Ref,
    as_json: Json = False,
    markdown: Annotated[
        bool, typer.Option("--markdown", help="Print the whole postmortem as Markdown.")
    ] = False,
) -> None:
    """Show an incident's postmortem (--markdown exports it, --json for scripts)."""
    from opsdesk.incidents import postmortems as pms

    incident_id = _incident_id(ref)
    with session() as s:
        if as_json:
            typer.echo(json.dumps(_postmortem_dict(s, incident_id), indent=2))
            return
        text = pms.to_markdown(s, pms.require_for_incident(s, incident_id), now=now())
    if markdown:
        typer.echo(text, nl=False)
        return
    from rich.markdown import Markdown

    console.print(Markdown(text))


@postmortem_app.command("start")
@handle_errors
def postmortem_start(ref: Ref, as_user: AsUser = None) -> None:
    """Start the postmortem before the incident resolves (it is drafted on resolution anyway)."""
    from opsdesk.incidents import postmortems as pms

    incident_id = _incident_id(ref)
    actor = actor_as(as_user)
    with session() as s:
        _, created = pms.start(s, incident_id, actor=actor, now=now())
    console.print(f"postmortem of INC-{incident_id} {'started' if created else 'already exists'}")


@postmortem_app.command("set")
@handle_errors
def postmortem_set(
    ref: Ref,
    summary: Annotated[str | None, typer.Option(help="Summary.")] = None,
    impact: Annotated[str | None, typer.Option(help="Impact.")] = None,
    timeline: Annotated[str | None, typer.Option(help="Timeline.")] = None,
    root_cause: Annotated[str | None, typer.Option("--root-cause", help="Root cause.")] = None,
    went_well: Annotated[str | None, typer.Option("--went-well", help="What went well.")] = None,
    went_badly: Annotated[str | None, typer.Option("--went-badly", help="What went badly.")] = None,
    as_user: AsUser = None,
) -> None:
    """Set sections of a postmortem (draft or in review); the ones not given stay as they are."""
    from opsdesk.incidents import postmortems as pms

    values = {
        "summary": summary,
        "impact": impact,
        "timeline": timeline,
        "root_cause": root_cause,
        "went_well": went_well,
        "went_badly": went_badly,
    }
    given = {k: v.replace("\\n", "\n") for k, v in values.items() if v is not None}
    if not given:
        raise invalid(
            "sections",
            "give at least one of --summary, --impact, --timeline, --root-cause, --went-well, --went-badly",
        )
    data = pms.PostmortemUpdate.model_validate(given)
    incident_id = _incident_id(ref)
    actor = actor_as(as_user)
    with session() as s:
        pm = pms.update_sections(s, incident_id, data, actor=actor, now=now())
        missing = pms.missing_to_publish(pm)
    console.print(f"postmortem of INC-{incident_id} saved ({', '.join(given)})")
    if missing:
        console.print(f"to publish, fill in: {', '.join(pms.LABELS[f].lower() for f in missing)}")


@postmortem_app.command("status")
@handle_errors
def postmortem_status(
    ref: Ref,
    status: Annotated[str, typer.Argument(help="draft, in_review or published.")],
    as_user: AsUser = None,
) -> None:
    """Move a postmortem: draft → in_review → published (a published one back to draft: managers)."""
    from opsdesk.incidents import postmortems as pms

    incident_id = _incident_id(ref)
    actor = actor_as(as_user)
    with session() as s:
        pm = pms.set_status(s, incident_id, status.strip().replace(" ", "_"), actor=actor, now=now())
        console.print(f"postmortem of INC-{incident_id} is {pm.status.replace('_', ' ')}")


@postmortem_app.command("publish")
@handle_errors
def postmortem_publish(ref: Ref, as_user: AsUser = None) -> None:
    """Publish a postmortem that is in review (every section but "what went well" must be filled)."""
    postmortem_status(ref, "published", as_user)


def _owner_id(s: Session, email: str | None) -> int | None:
    if not email:
        return None
    from opsdesk.auth import service as auth

    user = auth.get_user_by_email(s, email.strip().lower())
    if user is None:
        raise invalid("owner", f"no user with e-mail {email}")
    return user.id


@item_app.command("list")
@handle_errors
def item_list(
    overdue: Annotated[bool, typer.Option("--overdue", help="Only open items past their due date.")] = False,
    owner: Annotated[str | None, typer.Option(help="Only this owner's (e-mail).")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Include done items.")] = False,
    as_json: Json = False,
) -> None:
    """Open action items of every postmortem, soonest due first."""
    from opsdesk.incidents import postmortems as pms

    with session() as s:
        rows = pms.list_action_items(
            s,
            status=None if all_ or overdue else pms.ITEM_OPEN,
            owner_id=_owner_id(s, owner),
            overdue=overdue,
            now=now(),
        )
        incs = pms.incidents_for(s, [i.postmortem_id for i in rows])
        names = pms.user_names(s, [i.owner_id for i in rows])
        out = []
        for i in rows:
            row = _item_dict(i, incs[i.postmortem_id].id)
            row["owner"] = names.get(i.owner_id or 0)
            out.append(row)
    table(out, ["id", "incident", "title", "owner", "due_date", "status", "overdue"], as_json)


@item_app.command("add")
@handle_errors
def item_add(
    ref: Ref,
    title: Annotated[str, typer.Argument(help="What will be done.")],
    owner: Annotated[str | None, typer.Option(help="Owner's e-mail.")] = None,
    due: Annotated[str | None, typer.Option(help="Due date, YYYY-MM-DD.")] = None,
    as_user: AsUser = None,
) -> None:
    """Add an action item to an incident's postmortem."""
    from opsdesk.incidents import postmortems as pms

    due_date = None
    if due:
        try:
            due_date = date.fromisoformat(due.strip())
        except ValueError:
            raise invalid("due", f"{due!r} is not a date (YYYY-MM-DD)") from None
    incident_id = _incident_id(ref)
    actor = actor_as(as_user)
    with session() as s:
        pm = pms.get_for_incident(s, incident_id)
        if pm is None:
            from opsdesk.incidents import service as incidents

            incidents.get_incident(s, incident_id)
            raise OpsdeskError(
                detail=f"INC-{incident_id} has no postmortem yet: opsdesk postmortem start INC-{incident_id}",
                status=404,
                title="Not found",
            )
        data = pms.ActionItemIn(
            postmortem_id=pm.id, title=title, owner_id=_owner_id(s, owner), due_date=due_date
        )
        item = pms.add_action_item(s, data, actor=actor, now=now())
        console.print(f"action item {item.id} added to INC-{incident_id}: {item.title}")


@item_app.command("done")
@handle_errors
def item_done(
    item_id: Annotated[int, typer.Argument(help="Action item id.", min=1, max=2**31 - 1)],
    as_user: AsUser = None,
) -> None:
    """Mark an action item done."""
    from opsdesk.incidents import postmortems as pms

    actor = actor_as(as_user)
    with session() as s:
        item = pms.mark_done(s, item_id, actor=actor, now=now())
        console.print(f"action item {item.id} done: {item.title}")
