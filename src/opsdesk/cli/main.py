"""The ``opsdesk`` command."""

from __future__ import annotations

import asyncio
import signal
from typing import Annotated

import typer
import uvloop

from opsdesk import __version__
from opsdesk.cli import (
    alert_cmds,
    ascode_cmds,
    cmdb_cmds,
    escalation_cmds,
    integration_cmds,
    load_cmds,
    oncall_cmds,
    ops_cmds,
    people_cmds,
    postmortem_cmds,
    probe_cmds,
    silence_cmds,
)
from opsdesk.cli.common import clock, console, database, err, handle_errors, session, settings
from opsdesk.runtime.tuning import tune_gc

app = typer.Typer(
    name="opsdesk",
    help="opsdesk: the IT operations manager's desk.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")
people_cmds.register(app)
cmdb_cmds.register(app)
ops_cmds.register(app)
ascode_cmds.register(app)
probe_cmds.register(app)
integration_cmds.register(app)
alert_cmds.register(app)
postmortem_cmds.register(app)
silence_cmds.register(app)
oncall_cmds.register(app)
escalation_cmds.register(app)
load_cmds.register(app)


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo(__version__)


@db_app.command("upgrade")
@handle_errors
def db_upgrade() -> None:
    """Apply every pending migration."""
    from opsdesk.core import migrate

    engine = database().engine
    before = migrate.current_revision(engine)
    migrate.upgrade(engine)
    after = migrate.current_revision(engine)
    console.print(f"database at revision {after}" + ("" if before != after else " (already current)"))


@db_app.command("current")
def db_current() -> None:
    """Print the schema revision of the database and whether it is current."""
    from opsdesk.core import migrate

    engine = database().engine
    cur = migrate.current_revision(engine)
    head = migrate.head_revision(engine)
    typer.echo(f"{cur or 'empty'} (head {head}){'' if cur == head else ' — run: opsdesk db upgrade'}")


def _prepare() -> None:
    """Migrate an embedded SQLite database; on PostgreSQL, insist on an explicit upgrade."""
    from opsdesk.auth import service as auth
    from opsdesk.core import migrate

    db = database()
    if not migrate.is_current(db.engine):
        if db.is_sqlite:
            migrate.upgrade(db.engine)
        else:
            err.print("[red]error:[/red] the database schema is not current; run `opsdesk db upgrade` first")
            raise typer.Exit(1)
    st = settings()
    with session() as s:
        created = auth.ensure_first_admin(s, email=st.admin_email, now=clock.now())
    if created:
        email, password = created
        console.print(
            "\n[bold]First start: an admin account was created.[/bold] This password is shown once."
        )
        console.print(f"  Log in at  {st.base_url}/login")
        console.print(f"  E-mail     {email}")
        console.print(f"  Password   {password}\n")
    else:
        console.print(f"Log in at {st.base_url}/login")


@app.command()
@handle_errors
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on (OPSDESK_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on (OPSDESK_PORT).")] = None,
    roles: Annotated[
        str | None, typer.Option(help="Comma-separated roles: web,probes,pipeline,notify (OPSDESK_ROLES).")
    ] = None,
) -> None:
    """Run opsdesk: the web UI and API, the prober, the alert pipeline and the notifier."""
    import uvicorn

    from opsdesk.core.logging import configure_logging
    from opsdesk.web.app import create_app
    from opsdesk.web.fastlane import http_protocol

    st = settings()
    if host:
        st.host = host
    if port:
        st.port = port
    if roles:
        st.roles = roles
    configure_logging(st.log_level, st.log_format)
    _prepare()
    wanted = st.role_set
    if "web" in wanted:
        roles_text = ",".join(sorted(wanted))
        console.print(f"opsdesk {__version__} serving at http://{st.host}:{st.port}  (roles: {roles_text})")
        app_ = create_app(st, db=database(), clock=clock)
        tune_gc()
        uvicorn.run(
            app_,
            host=st.host,
            port=st.port,
            log_config=None,
            access_log=False,
            proxy_headers=True,
            http=http_protocol(),  # uvicorn's httptools protocol with the events lane
        )
        return
    tune_gc()
    uvloop.run(_run_background(wanted))  # the web role gets uvloop from uvicorn; this is the same loop


async def _run_background(roles: set[str]) -> None:
    from opsdesk.runtime.roles import Runtime

    runtime = Runtime(settings(), database(), clock, roles)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await runtime.start()
    console.print(f"opsdesk {__version__} running roles: {','.join(sorted(roles))}")
    await stop.wait()
    await runtime.stop()


if __name__ == "__main__":
    app()
