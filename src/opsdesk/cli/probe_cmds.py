"""``opsdesk probe`` (run a remote probe) and ``opsdesk probes`` (register and list them)."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Annotated

import typer
import uvloop

from opsdesk.cli.common import actor_as, console, err, handle_errors, now, session, table

probes_app = typer.Typer(help="Remote probes: register a location, list, delete.", no_args_is_help=True)

AsUser = Annotated[str | None, typer.Option("--as", help="Act as this user (e-mail).")]


def register(app: typer.Typer) -> None:
    app.command("probe")(probe)
    app.add_typer(probes_app, name="probes")


@handle_errors
def probe(
    server: Annotated[
        str,
        typer.Option(
            envvar="OPSDESK_PROBE_SERVER", help="The opsdesk server's URL, e.g. https://ops.example.org."
        ),
    ],
    token: Annotated[
        str,
        typer.Option(
            envvar="OPSDESK_PROBE_TOKEN",
            help="The probe's token (from `opsdesk probes create`). Prefer the environment variable: "
            "a command line is visible to every user of the machine.",
        ),
    ],
    buffer: Annotated[
        Path,
        typer.Option(help="Folder of the disk buffer that keeps results while the server is unreachable."),
    ] = Path("var/probe"),
    canary: Annotated[
        list[str] | None,
        typer.Option(help="host:port that answers while this probe's network is up (repeatable)."),
    ] = None,
    concurrency: Annotated[int, typer.Option(min=1, max=10_000, help="Checks at once.")] = 256,
) -> None:
    """Run a remote probe: the monitors of this probe's location, from this network."""
    from opsdesk.core.logging import configure_logging
    from opsdesk.monitoring.agent import Agent

    configure_logging("INFO", "auto")

    async def main() -> None:
        agent = Agent(server, token, buffer, concurrency=concurrency, canaries=canary or [])
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        console.print(f"opsdesk probe: server {server}, buffer {buffer}")
        await agent.run(stop)

    try:
        from opsdesk.runtime.tuning import tune_gc

        tune_gc()
        uvloop.run(main())
    except PermissionError as exc:
        err.print(f"error: {exc}")
        raise typer.Exit(2) from None


@probes_app.command("create")
@handle_errors
def probes_create(
    location: Annotated[str, typer.Argument(help="The location's name, e.g. eu-west or branch-lyon.")],
    as_user: AsUser = None,
) -> None:
    """Register a probe for a location; prints its token once."""
    from opsdesk.monitoring import probes

    with session() as s:
        p, plain = probes.create_probe(s, location, actor=actor_as(as_user), now=now())
        console.print(f"Probe for location {p.location} created. Its token (shown once):\n\n  {plain}\n")
        console.print(f"Run it with:  OPSDESK_PROBE_TOKEN={plain} opsdesk probe --server <this server's URL>")


@probes_app.command("list")
@handle_errors
def probes_list(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Registered probes and when each last reported."""
    from opsdesk.monitoring import probes

    with session() as s:
        rows = [
            {
                "id": p.id,
                "location": p.location,
                "last_seen_at": p.last_seen_at or "never",
                "last_address": p.last_address,
                "version": p.version,
            }
            for p in probes.list_probes(s)
        ]
    table(rows, ["id", "location", "last_seen_at", "last_address", "version"], as_json)


@probes_app.command("delete")
@handle_errors
def probes_delete(location: Annotated[str, typer.Argument()], as_user: AsUser = None) -> None:
    """Delete a probe: its token stops working at once."""
    from sqlalchemy import select

    from opsdesk.core.errors import not_found
    from opsdesk.monitoring import probes
    from opsdesk.monitoring.models import Probe

    with session() as s:
        p = s.scalar(select(Probe).where(Probe.location == location))
        if p is None:
            raise not_found("probe", location)
        probes.delete_probe(s, p.id, actor=actor_as(as_user), now=now())
    console.print(f"Probe {location} deleted.")
