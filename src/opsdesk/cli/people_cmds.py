"""``opsdesk user``, ``opsdesk token`` and ``opsdesk team``."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from opsdesk.cli.common import actor_as, console, handle_errors, now, session, table
from opsdesk.core.actor import Role
from opsdesk.core.errors import OpsdeskError, not_found

user_app = typer.Typer(help="User accounts.", no_args_is_help=True)
token_app = typer.Typer(help="API tokens.", no_args_is_help=True)
team_app = typer.Typer(help="Teams and their members.", no_args_is_help=True)

AsUser = Annotated[
    str | None, typer.Option("--as", help="Act as this user (e-mail) instead of the CLI admin.")
]
Json = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def register(app: typer.Typer) -> None:
    app.add_typer(user_app, name="user")
    app.add_typer(token_app, name="token")
    app.add_typer(team_app, name="team")


@user_app.command("create")
@handle_errors
def user_create(
    email: Annotated[str, typer.Option(help="Login e-mail.")],
    name: Annotated[str, typer.Option(help="Display name.")],
    role: Annotated[Role, typer.Option(help="viewer, responder, manager or admin.")] = Role.viewer,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from stdin.")
    ] = False,
    as_user: AsUser = None,
) -> None:
    """Create a user. Without --password-stdin a password is generated and printed once."""
    from opsdesk.auth import service as auth
    from opsdesk.auth.schemas import UserIn
    from opsdesk.core.security import generate_password

    generated = not password_stdin
    password = generate_password() if generated else sys.stdin.readline().rstrip("\r\n")
    data = UserIn(email=email, name=name, role=role, password=password)
    with session() as s:
        user = auth.create_user(s, data, actor=actor_as(as_user), now=now())
        console.print(f"created user {user.id} {user.email} ({user.role})")
    if generated:
        console.print(f"password: {password}")


@user_app.command("list")
@handle_errors
def user_list(as_json: Json = False) -> None:
    """List users."""
    from opsdesk.auth import service as auth

    with session() as s:
        rows = [
            {"id": u.id, "email": u.email, "name": u.name, "role": u.role, "active": u.active}
            for u in auth.list_users(s, limit=10_000)
        ]
    table(rows, ["id", "email", "name", "role", "active"], as_json)


@token_app.command("create")
@handle_errors
def token_create(
    user: Annotated[str, typer.Option(help="E-mail of the user the token acts as.")],
    name: Annotated[str, typer.Option(help="What the token is for, e.g. 'alertmanager'.")],
) -> None:
    """Create an API token. The token is printed once, alone on the last line."""
    from opsdesk.auth import service as auth
    from opsdesk.core.actor import CLI

    with session() as s:
        u = auth.get_user_by_email(s, user)
        if u is None:
            raise not_found("user", user)
        token, plain = auth.create_token(s, u, name, actor=CLI, now=now())
        console.print(
            f"token {token.id} '{name}' for {u.email} ({u.role}); store it now, it is not shown again:"
        )
    typer.echo(plain)


@token_app.command("list")
@handle_errors
def token_list(as_json: Json = False) -> None:
    """List tokens (never the secrets)."""
    from opsdesk.auth import service as auth

    with session() as s:
        rows = [
            {
                "id": t.id,
                "user": t.user.email,
                "name": t.name,
                "prefix": t.prefix,
                "created": t.created_at,
                "last_used": t.last_used_at,
                "revoked": t.revoked_at,
            }
            for t in auth.list_tokens(s)
        ]
    table(rows, ["id", "user", "name", "prefix", "created", "last_used", "revoked"], as_json)


@token_app.command("revoke")
@handle_errors
def token_revoke(token_id: int) -> None:
    """Revoke a token by id."""
    from opsdesk.auth import service as auth
    from opsdesk.core.actor import CLI

    with session() as s:
        auth.revoke_token(s, token_id, actor=CLI, now=now())
    console.print(f"token {token_id} revoked")


def _user_ids(s: object, emails: list[str] | None) -> list[int]:
    from opsdesk.auth import service as auth

    ids = []
    for e in emails or []:
        u = auth.get_user_by_email(s, e)  # type: ignore[arg-type]
        if u is None:
            raise OpsdeskError(detail=f"no user with e-mail {e}", status=422, title="Invalid input")
        ids.append(u.id)
    return ids


@team_app.command("add")
@handle_errors
def team_add(
    name: str,
    description: Annotated[str, typer.Option()] = "",
    member: Annotated[list[str] | None, typer.Option(help="Member e-mail; repeat for more.")] = None,
    as_user: AsUser = None,
) -> None:
    """Create a team."""
    from opsdesk.auth import service as auth
    from opsdesk.auth.schemas import TeamIn

    with session() as s:
        team = auth.create_team(
            s,
            TeamIn(name=name, description=description, member_ids=_user_ids(s, member)),
            actor=actor_as(as_user),
            now=now(),
        )
        console.print(f"created team {team.id} {team.name} with {len(team.members)} member(s)")


@team_app.command("list")
@handle_errors
def team_list(as_json: Json = False) -> None:
    """List teams and their members."""
    from opsdesk.auth import service as auth

    with session() as s:
        rows = [
            {"id": t.id, "name": t.name, "members": ", ".join(m.user.email for m in t.members)}
            for t in auth.list_teams(s, limit=10_000)
        ]
    table(rows, ["id", "name", "members"], as_json)
