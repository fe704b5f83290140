"""The migrations build exactly the schema the code declares, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from modelloop.settings import Settings
from modelloop.store import HEAD_REVISION, Database, open_database
from modelloop.store.tables import metadata


def test_head_revision_constant_matches_the_scripts() -> None:
    config = Config()
    config.set_main_option(
        "script_location",
        str(Path(__import__("modelloop.store").store.__file__).parent / "migrations"),
    )
    assert ScriptDirectory.from_config(config).get_current_head() == HEAD_REVISION


def test_migrated_schema_matches_the_tables(settings: Settings) -> None:
    db = open_database(settings.database_url)
    assert db.current_revision() == HEAD_REVISION
    with db.read() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []


def test_upgrade_is_idempotent(settings: Settings) -> None:
    db = Database(settings.database_url)
    try:
        assert db.current_revision() is None
        assert db.upgrade() is None
        assert db.upgrade() == HEAD_REVISION
        assert db.current_revision() == HEAD_REVISION
    finally:
        db.dispose()
