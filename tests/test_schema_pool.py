"""The PostgreSQL schema pool of ``tests/conftest.py``: what one test leaves, the next does not see.

Every PostgreSQL leg of the suite relies on it, so its contract is checked on its own, with a pool
apart from the session's: a schema handed back is empty (rows gone, sequences from 1) and is the
one handed out next; a schema whose shape a test changed is dropped, never handed out again.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import text

from opsdesk.core.db import Database
from tests.conftest import CLOCK_START, PG_URL, _SchemaPool, make_accounts

pytestmark = pytest.mark.skipif(not PG_URL, reason="OPSDESK_TEST_DATABASE_URL is not set")


@pytest.fixture
def pool() -> Iterator[_SchemaPool]:
    p = _SchemaPool()
    yield p
    p.close()


def _scalar(schema: str, sql: str) -> object:
    database = Database(_SchemaPool.url(schema))
    try:
        with database.engine.begin() as conn:
            return conn.execute(text(sql)).scalar()
    finally:
        database.dispose()


def _exists(pool: _SchemaPool, schema: str) -> bool:
    with pool.admin.begin() as conn:
        found = conn.execute(text("SELECT 1 FROM pg_namespace WHERE nspname = :s"), {"s": schema})
        return found.first() is not None


def test_a_schema_handed_back_is_emptied_and_handed_out_again(pool):
    schema = pool.take()
    database = Database(pool.url(schema))
    make_accounts(database, CLOCK_START, passwords=False)
    database.dispose()
    assert _scalar(schema, "SELECT count(*) FROM users") == 4
    assert _scalar(schema, "SELECT nextval('users_id_seq')") == 5

    pool.give_back(schema)
    assert pool.take() == schema
    assert _scalar(schema, "SELECT count(*) FROM users") == 0
    assert _scalar(schema, "SELECT nextval('users_id_seq')") == 1
    assert _scalar(schema, "SELECT count(*) FROM alembic_version") == 1  # still at the migrated revision


def test_a_schema_whose_shape_a_test_changed_is_dropped(pool):
    schema = pool.take()
    database = Database(pool.url(schema))
    with database.engine.begin() as conn:
        conn.execute(text("CREATE INDEX ix_test_only ON users (name)"))
    database.dispose()

    pool.give_back(schema)
    assert not _exists(pool, schema)
    again = pool.take()
    assert again != schema
    assert _scalar(again, "SELECT count(*) FROM pg_indexes WHERE indexname = 'ix_test_only'") == 0
