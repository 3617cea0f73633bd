"""``opsdesk apply`` and ``opsdesk export``: the setup as a YAML file."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from opsdesk.cli.common import actor_as, console, database, err, handle_errors, now


def register(app: typer.Typer) -> None:
    app.command("apply")(apply_cmd)
    app.command("export")(export_cmd)


@handle_errors
def apply_cmd(
    file: Annotated[str, typer.Option("-f", "--file", help="YAML file, or - for standard input.")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would change; change nothing.")
    ] = False,
    as_user: Annotated[str | None, typer.Option("--as", help="Act as this user (e-mail).")] = None,
) -> None:
    """Create or update teams, services, CIs, relationships and monitors from a YAML file (idempotent)."""
    from opsdesk.ascode import service as ascode

    text = sys.stdin.read() if file == "-" else Path(file).read_text()
    doc, lines = ascode.parse(text)
    actor = actor_as(as_user)
    with database().sessionmaker() as s:
        s.begin()
        report = ascode.apply(s, doc, lines, actor=actor, now=now())
        for kind, name, action in report.changes:
            if action != "unchanged":
                console.print(f"{action:9s} {kind[:-1] if kind != 'cis' else 'ci'} {name}")
        if dry_run:
            s.rollback()
            console.print(f"dry run: would be {report.summary()}; nothing changed")
        else:
            s.commit()
            console.print(report.summary())


@handle_errors
def export_cmd(
    output: Annotated[
        str | None, typer.Option("-o", "--output", help="Write to this file instead of stdout.")
    ] = None,
) -> None:
    """Write the current setup as YAML (secrets are never exported)."""
    from opsdesk.ascode import service as ascode

    with database().session() as s:
        text = ascode.dump(ascode.export(s))
    if output:
        Path(output).write_text(text)
        err.print(f"wrote {output}")
    else:
        typer.echo(text, nl=False)
