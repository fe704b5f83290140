"""Logging, content addressing, round trips and versions, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import modelloop as ml
from modelloop.artifacts import BlobStore
from modelloop.datasets import Contract, ContractViolation, Expect
from modelloop.datasets import fluent as ds
from modelloop.datasets.content import content_digest
from modelloop.datasets.sql import SqlDatasetStore
from modelloop.errors import InvalidArgument, NotFound
from modelloop.settings import Settings
from modelloop.store import open_database


def frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "tx_id": np.arange(6, dtype=np.int64),
            "amount": [10.5, np.nan, 3.0, np.inf, 0.0, 7.25],
            "merchant": pd.Categorical(["grocery", "travel", None, "grocery", "travel", "fuel"]),
            "note": ["a", None, "c", "d", "e", "f"],
            "legacy": pd.Series(["x", "y", None, "x", "y", "z"], dtype=object),
            "count": pd.array([1, None, 3, 4, 5, 6], dtype="Int64"),
            "flag": [True, False, True, True, False, True],
            "when": pd.to_datetime([f"2024-01-0{d}" for d in range(1, 7)]).tz_localize("UTC"),
        }
    )


@pytest.fixture
def store(settings: Settings) -> SqlDatasetStore:
    return SqlDatasetStore(open_database(settings.database_url), BlobStore(settings.artifact_uri))


def test_same_content_is_the_same_version(store: SqlDatasetStore) -> None:
    first = store.log_version("tx", frame(), actor="alice")
    again = store.log_version("tx", frame().set_axis(range(10, 16)), actor="bob")
    assert (first.version, again.version) == (1, 1)
    assert again.digest == first.digest
    assert again.created_by == "alice"
    assert len(store.list_versions("tx")) == 1


def test_changed_content_row_order_and_dtype_are_new_versions(store: SqlDatasetStore) -> None:
    base = store.log_version("tx", frame(), actor="a")
    changed = frame()
    changed.loc[0, "amount"] = 11.0
    reordered = frame().iloc[::-1].reset_index(drop=True)
    retyped = frame().astype({"tx_id": "float64"})
    versions = [store.log_version("tx", f, actor="a") for f in (changed, reordered, retyped)]
    assert [v.version for v in versions] == [2, 3, 4]
    assert len({base.digest, *(v.digest for v in versions)}) == 4
    assert store.get_version("tx").version == 4
    assert store.get_version("tx", 1).digest == base.digest


def test_round_trip_is_exact(store: SqlDatasetStore) -> None:
    original = frame()
    version = store.log_version("tx", original, actor="a")
    loaded = store.load(version)
    pd.testing.assert_frame_equal(loaded, original)
    assert loaded["legacy"].dtype == object
    assert loaded["legacy"][2] is None
    assert list(loaded["merchant"].cat.categories) == ["fuel", "grocery", "travel"]
    assert content_digest(loaded) == version.digest


def test_schema_profile_and_metadata_are_stored(store: SqlDatasetStore) -> None:
    version = store.log_version("tx", frame(), actor="alice")
    assert (version.num_rows, version.num_columns) == (6, 8)
    assert version.schema.columns["merchant"] == "category"
    assert version.schema.categories["merchant"] == ["fuel", "grocery", "travel"]
    assert version.profile.columns["amount"].null_count == 1
    assert version.profile.columns["amount"].inf_count == 1
    listed = store.list_datasets()
    assert [(d.name, d.latest_version, d.num_versions) for d in listed] == [("tx", 1, 1)]


def test_empty_frame_round_trips(store: SqlDatasetStore) -> None:
    empty = frame().iloc[:0]
    version = store.log_version("empty", empty, actor="a")
    assert version.num_rows == 0
    pd.testing.assert_frame_equal(store.load(version), empty.reset_index(drop=True))


def test_concurrent_logging_numbers_versions_without_gaps(store: SqlDatasetStore) -> None:
    frames = [frame().assign(tx_id=np.arange(6) + 100 * i) for i in range(6)]
    results: list[int] = []
    errors: list[BaseException] = []

    def log(f: pd.DataFrame) -> None:
        try:
            results.append(store.log_version("tx", f, actor="a").version)
            results.append(store.log_version("tx", f, actor="a").version)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=log, args=(f,)) for f in frames * 2]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert sorted(set(results)) == [1, 2, 3, 4, 5, 6]
    assert [v.version for v in store.list_versions("tx")] == [1, 2, 3, 4, 5, 6]


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ([1, 2], "need a DataFrame"),
        (pd.DataFrame({1: [1]}), "must be strings"),
        (pd.DataFrame([[1, 2]], columns=["a", "a"]), "Duplicate column names"),
        (pd.DataFrame({"a": pd.Series([1, "x"], dtype=object)}), "Python objects"),
        (pd.DataFrame({"a": pd.Series([{"k": 1}], dtype=object)}), "Python objects"),
    ],
)
def test_refuses_what_it_cannot_store(store: SqlDatasetStore, bad: object, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        store.log_version("tx", bad, actor="a")  # type: ignore[arg-type]


def test_unknown_dataset_and_version(store: SqlDatasetStore) -> None:
    with pytest.raises(NotFound, match="dataset 'nope'"):
        store.get_version("nope")
    with pytest.raises(NotFound, match=r"^No dataset 'nope': no dataset has been logged yet$"):
        store.get_version("nope", 1)  # not "no version 1": there is no such dataset at all
    store.log_version("tx", frame(), actor="a")
    store.log_version("tx", frame().head(3), actor="a")
    with pytest.raises(NotFound, match=r"^No version 9 of dataset 'tx': it has versions 1 to 2$"):
        store.get_version("tx", 9)
    with pytest.raises(NotFound, match=r"^No dataset 'nosuch': the datasets are tx$"):
        store.get_version("nosuch", 1)
    with pytest.raises(NotFound, match=r"^No dataset 'nosuch': the datasets are tx$"):
        store.list_versions("nosuch")


def test_sdk_refs_runs_and_contracts(home: Path) -> None:
    with ml.start_run(experiment="data") as run:
        version = ds.log_dataset(frame(), "tx", description="card transactions")
    assert version.run_id == run.run_id
    assert ds.get_dataset("tx").version == 1
    assert ds.get_dataset("tx@1").digest == version.digest
    pd.testing.assert_frame_equal(ds.load_dataset("tx@1"), frame())
    assert [d.description for d in ds.list_datasets()] == ["card transactions"]
    assert [v.version for v in ds.dataset_versions("tx")] == [1]
    with pytest.raises(InvalidArgument, match="version is a number"):
        ds.get_dataset("tx@latest")
    with pytest.raises(InvalidArgument, match="NAME or NAME@VERSION"):
        ds.get_dataset("tx@1@2")


def test_log_dataset_with_a_broken_contract_stores_nothing(home: Path) -> None:
    contract = Contract(columns={"amount": Expect(nullable=False)})
    with pytest.raises(ContractViolation, match="amount: 1 of 6 values are null") as caught:
        ds.log_dataset(frame(), "checked", contract=contract)
    assert caught.value.details is not None
    assert caught.value.details[0]["rule"] == "not_null"
    with pytest.raises(NotFound):
        ds.get_dataset("checked")
    assert ds.log_dataset(frame(), "other", run=None).run_id is None


def test_log_dataset_with_a_kept_contract_stores_the_passing_report(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODELLOOP_USER", "erin")
    contract = Contract(columns={"tx_id": Expect(dtype="int", nullable=False)}, unique=["tx_id"])
    version = ds.log_dataset(frame(), "checked", contract=contract)
    [kept] = ds.dataset_store().validations(version)
    assert (kept.ref, kept.ok, kept.created_by) == ("checked@1", True, "erin")
    assert kept.contract == contract.to_dict()
    assert kept.report.num_rows == 6
    assert ds.dataset_store().latest_validations() == {"checked": kept}
