"""What every CLI command shares: settings, the database, errors, output."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any, ParamSpec, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table
from sqlalchemy.orm import Session

from opsdesk.core.actor import CLI, Actor
from opsdesk.core.clock import SystemClock
from opsdesk.core.db import Database
from opsdesk.core.errors import OpsdeskError
from opsdesk.core.settings import Settings

console = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)
clock = SystemClock()

P = ParamSpec("P")
R = TypeVar("R")


@functools.cache
def settings() -> Settings:
    st = Settings()
    st.configure_secrets()
    return st


@functools.cache
def database() -> Database:
    return Database(settings().database_url)


@contextmanager
def session() -> Iterator[Session]:
    with database().session() as s:
        yield s


def now() -> datetime:
    return clock.now()


def actor_as(email: str | None) -> Actor:
    """The CLI acts as an admin named "cli", or as the user given with --as."""
    if not email:
        return CLI
    from opsdesk.auth import service as auth

    with session() as s:
        user = auth.get_user_by_email(s, email)
        if user is None:
            raise OpsdeskError(detail=f"no user with e-mail {email}", status=404, title="Not found")
        return auth.actor_for(user)


def handle_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn domain and validation errors into one clear line on stderr and exit code 1."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except OpsdeskError as exc:
            err.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(1) from None
        except ValidationError as exc:
            for e in exc.errors():
                field = ".".join(str(p) for p in e["loc"]) or "input"
                err.print(f"[red]error:[/red] {field}: {e['msg']}")
            raise typer.Exit(1) from None

    return wrapper


def table(
    rows: Sequence[dict[str, Any]], columns: Sequence[str], as_json: bool, title: str | None = None
) -> None:
    if as_json:
        typer.echo(json.dumps(list(rows), default=str, indent=2))
        return
    t = Table(title=title)
    for c in columns:
        t.add_column(c)
    for r in rows:
        t.add_row(*("" if r.get(c) is None else str(r.get(c)) for c in columns))
    console.print(t)


def parse_attrs(pairs: list[str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for p in pairs or []:
        if "=" not in p:
            raise OpsdeskError(detail=f"attribute {p!r} must be key=value", status=422, title="Invalid input")
        k, v = p.split("=", 1)
        out[k.strip()] = v.strip()
    return out
