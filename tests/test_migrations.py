"""The migrations build exactly the schema the models describe, and go down and up again."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from opsdesk.core import migrate
from opsdesk.core.models import Base


def test_migrated_schema_matches_the_models(db):
    with db.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []


def test_downgrade_to_empty_and_upgrade_again(db):
    cfg = migrate.alembic_config(db.engine)
    with db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "base")
    assert migrate.current_revision(db.engine) is None
    migrate.upgrade(db.engine)
    assert migrate.is_current(db.engine)
