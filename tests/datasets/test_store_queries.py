"""The dataset store's reads for lists and pages, on SQLite and PostgreSQL: the newest version
of each dataset, the versions holding given contents, who logged and read a version, and the
first rows of a version."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from modelloop.artifacts import BlobStore
from modelloop.datasets.sql import SqlDatasetStore
from modelloop.errors import InvalidArgument
from modelloop.settings import Settings
from modelloop.store import open_database
from modelloop.store.lineage import record_edges
from modelloop.tracking.client import open_store
from modelloop.tracking.entities import RunSpec


@pytest.fixture
def store(settings: Settings) -> SqlDatasetStore:
    return SqlDatasetStore(open_database(settings.database_url), BlobStore(settings.artifact_uri))


def frame(rows: int, shift: int = 0) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": np.arange(rows, dtype=np.int64) + shift,
            "kind": pd.Categorical(["a", "b"] * (rows // 2), categories=["a", "b", "unused"]),
            "note": pd.Series(["x", None] * (rows // 2), dtype=object),
            "when": pd.date_range("2024-01-01", periods=rows, freq="min", tz="UTC"),
        }
    )


def test_latest_versions_gives_the_newest_of_each_dataset(store: SqlDatasetStore) -> None:
    assert store.latest_versions() == []
    store.log_version("b", frame(4), actor="a")
    store.log_version("a", frame(4), actor="a")
    store.log_version("b", frame(6), actor="a")
    store.log_version("b", frame(8), actor="a")
    latest = store.latest_versions()
    assert [(v.name, v.version, v.num_rows) for v in latest] == [("a", 1, 4), ("b", 3, 8)]
    assert latest[1] == store.get_version("b")


def test_versions_with_digests_finds_every_holder_of_a_content(store: SqlDatasetStore) -> None:
    first = store.log_version("train", frame(4), actor="a")
    store.log_version("train", frame(6), actor="a")
    copy = store.log_version("backup", frame(4), actor="a")  # same content, another dataset
    found = store.versions_with_digests([first.digest, "0" * 64, first.digest])
    assert [v.ref for v in found] == ["backup@1", "train@1"]
    assert found[0] == copy
    assert store.versions_with_digests([]) == []
    assert store.versions_with_digests(["f" * 64]) == []


def test_version_runs_come_from_the_lineage_edges(
    store: SqlDatasetStore, settings: Settings
) -> None:
    tracking = open_store(settings)
    experiment = tracking.create_experiment("e")
    runs = [tracking.create_run(RunSpec(experiment.experiment_id)).run_id for _ in range(5)]
    logger, relogger, reader, other_reader, unrelated = runs
    version = store.log_version("tx", frame(4), actor="a", run_id=logger)
    other = store.log_version("tx", frame(6), actor="a", run_id=unrelated)
    record_edges(
        store.db,
        [
            ("run", logger, "dataset", version.ref, "output"),
            ("dataset", version.ref, "run", reader, "input"),
            ("run", relogger, "dataset", version.ref, "output"),
            ("dataset", version.ref, "run", other_reader, "input"),
            ("dataset", version.ref, "run", reader, "input"),  # read twice: listed once
            ("dataset", other.ref, "run", unrelated, "input"),
            ("run", unrelated, "artifact", "ab" * 32, "output"),
        ],
    )
    used = store.version_runs(version)
    assert used.logged_by == [logger, relogger]
    assert used.read_by == [reader, other_reader]
    assert store.version_runs(version, limit=1).read_by == [reader]
    # Logged through the store alone (no edge), the version's own run still counts.
    assert store.version_runs(other).logged_by == [unrelated]
    assert store.version_runs(other).read_by == [unrelated]
    lone = store.log_version("lone", frame(2), actor="a")
    assert (store.version_runs(lone).logged_by, store.version_runs(lone).read_by) == ([], [])


def test_head_reads_the_first_rows_as_logged(store: SqlDatasetStore) -> None:
    original = frame(5_000, shift=7)
    version = store.log_version("big", original, actor="a")
    head = store.head(version, 20)
    pd.testing.assert_frame_equal(head, original.head(20))
    assert list(head["kind"].cat.categories) == ["a", "b", "unused"]
    assert head["note"][1] is None
    pd.testing.assert_frame_equal(store.head(version, 0), original.head(0))
    pd.testing.assert_frame_equal(store.head(version, 10_000), original)
    with pytest.raises(InvalidArgument):
        store.head(version, -1)
