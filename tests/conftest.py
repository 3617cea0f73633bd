"""Shared fixtures. Every test that uses ``db`` runs twice: on SQLite and on PostgreSQL.

The PostgreSQL leg needs ``OPSDESK_TEST_DATABASE_URL`` (``.ci/run`` sets it); without it that leg is
skipped with a visible reason. Each test gets a database migrated by the real Alembic migrations
and holding no rows: a new SQLite file, or a PostgreSQL schema from a pool (emptied after each
test, see ``_SchemaPool``).
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from opsdesk.auth import service as auth
from opsdesk.auth.models import User
from opsdesk.auth.schemas import UserIn
from opsdesk.core import migrate
from opsdesk.core.actor import SYSTEM, Role
from opsdesk.core.clock import ManualClock
from opsdesk.core.db import Database, make_engine
from opsdesk.core.settings import Settings
from opsdesk.web.app import create_app

PG_URL = os.environ.get("OPSDESK_TEST_DATABASE_URL", "")
PASSWORD = "correct horse battery"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(autouse=True, scope="session")
def _cheap_password_hashing() -> Iterator[None]:
    """argon2 at its production cost takes about 170 ms per hash here, and most tests create four
    users: the same algorithm at its minimum cost keeps every code path (hash, verify, a wrong
    password) and saves minutes of CI. Processes the tests start (CLI, serve) keep the real cost."""
    from argon2 import PasswordHasher

    from opsdesk.core import security

    saved = security._hasher
    security._hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    yield
    security._hasher = saved


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """For modules that run on SQLite only (``db_url = ...`` aliasing this): the role matrices,
    the bad-input refusals and the page renderings, which decide nothing that differs between
    the databases and whose PostgreSQL legs made CI too long; the domain and API tests under them
    run every query on PostgreSQL."""
    return f"sqlite:///{tmp_path / 'opsdesk.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'opsdesk.db'}"
        return
    if not PG_URL:
        pytest.skip("OPSDESK_TEST_DATABASE_URL is not set: the PostgreSQL leg is skipped")
    pool: _SchemaPool = request.getfixturevalue("_pg_schemas")
    # A test with the ``db`` fixture gets a migrated schema another test emptied; any other test
    # (one whose subprocess migrates the database, say) gets a new, empty one.
    reuse = "db" in request.fixturenames
    schema = pool.take() if reuse else pool.create()
    yield pool.url(schema)
    if reuse:
        pool.give_back(schema)
    else:
        pool.drop(schema)


class _SchemaPool:
    """PostgreSQL schemas for the tests, kept and emptied between tests rather than created,
    migrated and dropped for each one: that cost about 0.4 s per test against 0.03 s for
    emptying every table (``DELETE``, foreign-key triggers off for the transaction) and
    restarting every sequence, and it bloated the system catalogs (see ``close``). A schema
    is migrated by the real migrations when it is made; one whose shape a test changed (a table
    created, say) is dropped, not reused: its catalog digest must be a freshly migrated one's."""

    def __init__(self) -> None:
        self.admin = make_engine(PG_URL)
        self.free: list[str] = []
        self.all: set[str] = set()
        self.shape: str | None = None  # the catalog digest of a freshly migrated schema

    @staticmethod
    def url(schema: str) -> str:
        sep = "&" if "?" in PG_URL else "?"
        return f"{PG_URL}{sep}options=-csearch_path%3D{schema}"

    def create(self) -> str:
        """A new, empty schema."""
        schema = f"t_{uuid.uuid4().hex[:12]}"
        with self.admin.begin() as conn:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
        self.all.add(schema)
        return schema

    def take(self) -> str:
        """A migrated schema without rows: one handed back, else a new one."""
        if self.free:
            return self.free.pop()
        schema = self.create()
        database = Database(self.url(schema))
        migrate.upgrade(database.engine)
        database.dispose()
        if self.shape is None:
            with self.admin.begin() as conn:
                self.shape = self._digest(conn, schema)
                tables = conn.execute(text(_TABLES), {"s": schema}).scalars().all()
                seeded = [t for t in tables if conn.exec_driver_sql(f'SELECT 1 FROM {schema}."{t}"').first()]
            if seeded:  # emptying a schema would lose them: the pool would have to restore them
                raise RuntimeError(f"the migrations now write rows into {seeded}: teach the pool")
        return schema

    def drop(self, schema: str) -> None:
        with self.admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        self.all.discard(schema)

    def _digest(self, conn: Any, schema: str) -> str:
        shape = _SHAPE.format(schema=schema)
        return str(conn.execute(text(shape), {"schema": schema, "prefix": f"{schema}."}).scalar())

    def give_back(self, schema: str) -> None:
        """Empty ``schema`` for the next test, or drop it if the test changed its shape."""
        try:
            with self.admin.begin() as conn:
                if self._digest(conn, schema) != self.shape:
                    raise LookupError("the test changed the schema")
                conn.execute(text("SET LOCAL lock_timeout = '5s'"))
                conn.execute(text("SET LOCAL session_replication_role = replica"))
                tables = conn.execute(text(_TABLES), {"s": schema}).scalars()
                seqs = conn.execute(
                    text("SELECT sequencename FROM pg_sequences WHERE schemaname = :s"), {"s": schema}
                ).scalars()
                names = [f'{schema}."{t}"' for t in tables]
                work = [f"DELETE FROM {name}" for name in names]
                work += [f'ALTER SEQUENCE {schema}."{q}" RESTART' for q in seqs]
                conn.exec_driver_sql("; ".join(work))
            # The deleted rows' space made free again (a few ms): one schema serves hundreds of
            # tests in a row, and without autovacuum its tables would grow with dead rows.
            with self.admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql(f"VACUUM {', '.join(names)}")
        except Exception:
            self.drop(schema)
            return
        self.free.append(schema)

    def close(self) -> None:
        for schema in list(self.all):
            self.drop(schema)
        # Every schema created and dropped leaves dead rows in the system catalogs; where
        # autovacuum is off (as on these machines) they pile up over runs and slow every catalog
        # lookup (after one run of the suite without this pool, a scan of pg_class took 17 ms).
        with self.admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql(f"VACUUM {', '.join(f'pg_catalog.{t}' for t in _CATALOGS)}")
        self.admin.dispose()


_TABLES = "SELECT tablename FROM pg_tables WHERE schemaname = :s AND tablename != 'alembic_version'"
_CATALOGS = ("pg_class", "pg_attribute", "pg_attrdef", "pg_constraint", "pg_depend", "pg_index", "pg_type")


# Everything a test could change about a schema's shape, as one digest (the schema's own name
# taken out of defaults, index and constraint definitions).
_SHAPE = """
SELECT md5(string_agg(item, ',' ORDER BY item)) FROM (
  SELECT 'c ' || c.relname || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod) || ' '
         || a.attnotnull || ' ' || replace(coalesce(pg_get_expr(d.adbin, d.adrelid), ''), :prefix, '') AS item
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
  LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
  WHERE n.nspname = :schema AND c.relkind IN ('r', 'p', 'v', 'm')
  UNION ALL
  SELECT 'i ' || replace(indexdef, :prefix, '') FROM pg_indexes WHERE schemaname = :schema
  UNION ALL
  SELECT 'k ' || conname || ' ' || replace(pg_get_constraintdef(c.oid), :prefix, '')
  FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace WHERE n.nspname = :schema
  UNION ALL
  SELECT 's ' || sequencename FROM pg_sequences WHERE schemaname = :schema
  UNION ALL
  SELECT 'v ' || version_num FROM {schema}.alembic_version
) AS shape
"""


@pytest.fixture(scope="session")
def _pg_schemas() -> Iterator[_SchemaPool]:
    pool = _SchemaPool()
    yield pool
    pool.close()


class _MigratedTemplates:
    """The real Alembic migrations run once per test session on SQLite, not once per test (about
    0.2 s, times some two thousand tests): the migrated file is copied. (PostgreSQL schemas are
    migrated once each and reused: ``_SchemaPool``.) ``tests/test_migrations.py`` runs the
    migrations themselves."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.lock = threading.Lock()
        self.sqlite_file: Path | None = None

    def sqlite(self) -> Path:
        with self.lock:
            if self.sqlite_file is None:
                path = self.root / "template.db"
                database = Database(f"sqlite:///{path}")
                migrate.upgrade(database.engine)
                database.dispose()  # the last connection's close checkpoints the WAL into the file
                self.sqlite_file = path
            return self.sqlite_file


@pytest.fixture(scope="session")
def _templates(tmp_path_factory: pytest.TempPathFactory) -> _MigratedTemplates:
    return _MigratedTemplates(tmp_path_factory.mktemp("templates"))


@pytest.fixture
def db(db_url: str, _templates: _MigratedTemplates) -> Iterator[Database]:
    if db_url.startswith("sqlite"):
        target = Path(db_url.split("///", 1)[1])
        if not target.exists():
            shutil.copyfile(_templates.sqlite(), target)
    database = Database(db_url)  # (a PostgreSQL schema from the pool is migrated already)
    yield database
    database.dispose()


CLOCK_START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(CLOCK_START)


def app_settings(data_dir: Path) -> Settings:
    """Settings of the in-process app: no SMTP server (port 1), short delivery backoff."""
    return Settings(data_dir=data_dir, smtp_port=1, notify_backoff_seconds=5)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return app_settings(tmp_path)


@dataclass
class Account:
    user: User
    token: str
    role: Role

    @property
    def email(self) -> str:
        return self.user.email

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def make_accounts(db: Database, now: datetime, *, passwords: bool = True) -> dict[str, Account]:
    """One user per role, each with an API token; with the password ``PASSWORD`` unless
    ``passwords=False`` (suites that only use tokens: argon2 per user would dominate their time)."""
    out = {}
    with db.session() as s:
        for role in Role:
            user = auth.create_user(
                s,
                UserIn(
                    email=f"{role.value}@example.org",
                    name=role.value.title(),
                    role=role,
                    password=PASSWORD if passwords else None,
                ),
                actor=SYSTEM,
                now=now,
            )
            _, token = auth.create_token(s, user, "test", actor=SYSTEM, now=now)
            out[role.value] = Account(user, token, role)
    return out


@pytest.fixture
def accounts(db: Database, clock: ManualClock) -> dict[str, Account]:
    """One user per role, each with an API token and the password ``PASSWORD``."""
    return make_accounts(db, clock.now())


@pytest.fixture
def app(db: Database, clock: ManualClock, settings: Settings):  # type: ignore[no-untyped-def]
    return create_app(settings, db=db, clock=clock, roles=set())


@pytest.fixture
def client(app) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


@pytest.fixture
def serve_env(db_url: str, tmp_path: Path) -> dict[str, str]:
    """Environment for running the ``opsdesk`` command as a subprocess on the test database."""
    smtp_port = free_port()
    e = {k: v for k, v in os.environ.items() if not k.startswith("OPSDESK_")}
    e.update(
        OPSDESK_DATA_DIR=str(tmp_path / "var"),
        OPSDESK_DATABASE_URL=db_url,
        OPSDESK_PORT=str(free_port()),
        OPSDESK_SMTP_PORT=str(smtp_port),
        OPSDESK_LOG_FORMAT="json",
    )
    return e
