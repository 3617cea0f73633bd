"""Database engine, sessions and the declarative base shared by every domain.

opsdesk uses synchronous SQLAlchemy sessions everywhere (docs/decisions/0002-sync-sessions.md):
request handlers that touch the database are plain ``def`` routes, which FastAPI runs in its
thread pool, and hot-path writes go through :mod:`opsdesk.runtime.writer` in batches.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import JSON, DateTime, Engine, MetaData, create_engine, event
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that is always timezone-aware UTC in Python, whatever the database keeps."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


JSONType = JSON().with_variant(JSONB(), "postgresql")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSONType}


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()


def normalize_url(url: str) -> str:
    """Accept plain ``postgresql://`` URLs and use psycopg 3 for them."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value, default=str).decode()


def make_engine(url: str, **kwargs: Any) -> Engine:
    url = normalize_url(url)
    kwargs.setdefault("json_serializer", _json_dumps)
    kwargs.setdefault("json_deserializer", orjson.loads)
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            from pathlib import Path

            Path(path).parent.mkdir(parents=True, exist_ok=True)
            # Enough pooled connections for the writers, the pipeline and the request threads: an
            # overflow connection is opened (with its pragmas) and closed again for each use.
            kwargs.setdefault("pool_size", 10)
            kwargs.setdefault("max_overflow", 20)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 20)
    return create_engine(url, **kwargs)


def driver_converter(dialect: Dialect, type_: Any) -> Callable[[Any], Any]:
    """What turns a value into what the driver takes for a column of ``type_`` (what the ORM would
    send), for statements that hot paths send to the driver directly."""
    proc = type_.dialect_impl(dialect).bind_processor(dialect)
    return proc if proc is not None else (lambda value: value)


def driver_value(dialect: Dialect, type_: Any, value: Any) -> Any:
    """One value through :func:`driver_converter`."""
    return driver_converter(dialect, type_)(value)


# Rows per statement for :func:`execute_rows`: SQLite allows 32,766 parameters in one statement.
SQLITE_MAX_PARAMS = 32_766


def execute_rows(
    execute: Callable[[str, list[Any]], Any], sql: str, rows: list[tuple[Any, ...]], *, per_statement: int
) -> None:
    """``sql``, whose ``{values}`` is filled with a multi-row ``VALUES (?, …), (?, …)``, run over
    ``rows`` ``per_statement`` rows at a time by ``execute(sql, params)`` (a driver cursor's or a
    connection's ``exec_driver_sql``).

    On SQLite this replaces ``executemany`` on hot paths: that steps the statement once per row,
    and Python's driver lets go of the GIL and waits to take it back at every step, a long wait
    while the event loop's thread is busy (decision 0016)."""
    if not rows:
        return
    assert per_statement * len(rows[0]) <= SQLITE_MAX_PARAMS
    for start in range(0, len(rows), per_statement):
        part = rows[start : start + per_statement]
        execute(sql.format(values=_values(len(part[0]), len(part))), [v for row in part for v in row])


@functools.lru_cache(maxsize=256)
def _values(width: int, rows: int) -> str:
    """``VALUES`` with ``rows`` rows of ``width`` placeholders; the same text for the same shape, so
    the driver's statement cache finds it."""
    one = "(" + ", ".join("?" * width) + ")"
    return "VALUES " + ", ".join([one] * rows)


class Database:
    """The engine and a session factory; one per process."""

    def __init__(self, url: str, **engine_kwargs: Any) -> None:
        # Every domain's tables must be known before the first flush: foreign keys between
        # domains (services -> escalation_policies) are resolved over the whole metadata, and a
        # CLI command imports only the domain it works on.
        import opsdesk.core.models  # noqa: F401

        self.url = normalize_url(url)
        self.engine = make_engine(self.url, **engine_kwargs)
        self.sessionmaker = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @property
    def is_postgres(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session in a transaction: committed on success, rolled back on error."""
        with self.sessionmaker() as s, s.begin():
            yield s

    def dispose(self) -> None:
        self.engine.dispose()
