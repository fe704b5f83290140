"""Each dataset version keeps the description it was logged with; the dataset's is its first's.

A store migrated from before versions had descriptions gives version 1 the dataset's.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import insert, select

from modelloop.artifacts import BlobStore
from modelloop.datasets.sql import SqlDatasetStore
from modelloop.settings import Settings
from modelloop.store import Database, open_database
from modelloop.store import tables as t


@pytest.fixture
def store(settings: Settings) -> SqlDatasetStore:
    return SqlDatasetStore(open_database(settings.database_url), BlobStore(settings.artifact_uri))


def _frame(rows: int) -> pd.DataFrame:
    return pd.DataFrame(
        {"url_length": list(range(rows)), "is_phishing": [i % 2 for i in range(rows)]}
    )


def test_each_version_keeps_its_own_description(store: SqlDatasetStore) -> None:
    first = store.log_version("phish", _frame(4), actor="a", description="River's phishing table")
    second = store.log_version("phish", _frame(6), actor="a", description="two rows added")
    third = store.log_version("phish", _frame(8), actor="a")
    assert first.description == "River's phishing table"
    assert second.description == "two rows added"
    assert third.description is None
    assert [v.description for v in store.list_versions("phish")] == [
        "River's phishing table",
        "two rows added",
        None,
    ]
    assert store.get_version("phish", 2).description == "two rows added"
    assert [d.description for d in store.list_datasets()] == ["River's phishing table"]
    # The same content again is the same version: it keeps its description, or gets one.
    again = store.log_version("phish", _frame(6), actor="a", description="something else")
    assert (again.version, again.description) == (2, "two rows added")
    described = store.log_version("phish", _frame(8), actor="a", description="eight rows")
    assert (described.version, described.description) == (3, "eight rows")
    assert store.get_version("phish", 3).description == "eight rows"


def test_migrating_gives_version_one_the_datasets_description(tmp_path: Path) -> None:
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import inspect

    import modelloop.store

    db = Database(f"sqlite:///{tmp_path / 'old.db'}")
    try:
        config = Config()
        migrations = Path(modelloop.store.__file__).parent / "migrations"
        config.set_main_option("script_location", str(migrations))
        with db.write() as conn:  # a store as the release before this revision made it
            config.attributes["connection"] = conn
            command.upgrade(config, "0008")
            columns = {c["name"] for c in inspect(conn).get_columns("dataset_versions")}
            assert "description" not in columns
            conn.execute(
                insert(t.datasets), [{"name": "phish", "description": "first cut", "created_at": 0}]
            )
            conn.execute(
                insert(t.dataset_versions),
                [
                    {
                        "name": "phish",
                        "version": version,
                        "digest": str(version) * 64,
                        "artifact_digest": "a" * 64,
                        "num_rows": 1,
                        "num_columns": 1,
                        "schema": "{}",
                        "profile": "{}",
                        "created_at": 0,
                        "created_by": "a",
                    }
                    for version in (1, 2)
                ],
            )
        assert db.upgrade() == "0008"
        v = t.dataset_versions.c
        with db.read() as conn:
            rows = conn.execute(select(v.version, v.description).order_by(v.version)).all()
        assert [tuple(r) for r in rows] == [(1, "first cut"), (2, None)]
    finally:
        db.dispose()
