"""The public datasets SDK (``ml.log_dataset``, ``ml.get_dataset``, ``ml.load_dataset``,
``ml.list_datasets``, ``ml.dataset_versions``, ``ml.check_skew``) with
``MODELLOOP_TRACKING_URI`` at a live server gives what it gives on the local store: the same
versions, frames, checks, lineage (the run that logged a version and the runs that read it) and
errors."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import modelloop as ml
from modelloop.artifacts import BlobStore
from modelloop.datasets import fluent
from modelloop.datasets.content import to_parquet
from modelloop.datasets.http import HttpDatasetStore
from modelloop.datasets.sql import SqlDatasetStore
from modelloop.datasets.store import open_dataset_store
from modelloop.errors import InvalidArgument, ModelloopError
from modelloop.settings import load_settings
from modelloop.store import close_database
from modelloop.tracking.fluent import close_clients
from tests.live_server import live_server


def transactions(n: int = 8) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "tx_id": np.arange(n, dtype=np.int64),
            "amount": np.linspace(1.0, 80.0, n),
            "merchant": pd.Categorical(["grocery", "travel"] * (n // 2)),
            "count": pd.array([1, None] * (n // 2), dtype="Int64"),
            "when": pd.date_range("2024-01-01", periods=n, freq="h", tz="UTC"),
        }
    )


@contextmanager
def sdk_store(where: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh store under MODELLOOP_HOME, used directly (``local``) or through a live server
    with MODELLOOP_TRACKING_URI pointing at it (``server``)."""
    for name in ("MODELLOOP_DATABASE_URL", "MODELLOOP_ARTIFACT_URI", "MODELLOOP_TRACKING_URI"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MODELLOOP_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MODELLOOP_USER", "dana")
    monkeypatch.chdir(tmp_path)
    local = load_settings()
    try:
        if where == "local":
            yield where
        else:
            with live_server(local) as url:
                monkeypatch.setenv("MODELLOOP_TRACKING_URI", url)
                try:
                    yield where
                finally:
                    close_clients()
    finally:
        close_clients()
        close_database(local.database_url)


@pytest.fixture(params=["local", "server"])
def where(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    with sdk_store(request.param, tmp_path, monkeypatch) as found:
        yield found


def scenario() -> dict[str, Any]:
    """Every public dataset function, as a user would call them; what they gave."""
    seen: dict[str, Any] = {}
    with ml.start_run(experiment="data") as producer:
        first = ml.log_dataset(transactions(), "tx", description="card transactions")
    seen["run_linked"] = first.run_id == producer.run_id
    again = ml.log_dataset(transactions().set_axis(range(50, 58)), "tx")
    contract = ml.Contract(
        columns={"amount": ml.Expect(dtype="float", min=0, nullable=False)},
        checks=[ml.Check("small", lambda f: f["amount"] < 100)],
    )
    second = ml.log_dataset(transactions(6), "tx", description="fewer", contract=contract)
    with pytest.raises(ml.ContractViolation) as broken:
        ml.log_dataset(transactions().assign(amount=-1.0), "tx", contract=contract)
    seen["violation"] = broken.value.message
    with ml.start_run(experiment="data") as consumer:
        loaded = ml.load_dataset("tx@1")
    pd.testing.assert_frame_equal(loaded, transactions(), check_exact=True)
    seen["versions"] = [_plain(v) for v in (first, again, second)]
    seen["get"] = [_plain(ml.get_dataset(r)) for r in ("tx", "tx@1")]
    seen["listed"] = [dataclasses.replace(d, created_at=0) for d in ml.list_datasets()]
    seen["history"] = [_plain(v) for v in ml.dataset_versions("tx")]
    seen["loaded_dtypes"] = ml.load_dataset(second).dtypes.astype(str).to_dict()
    report = ml.check_skew("tx@1", transactions().assign(amount=lambda f: f["amount"] * 10))
    seen["skew"] = (report.ok, report.skewed_columns, report.summary())
    seen["skew_versions"] = ml.check_skew("tx@1", "tx@1").ok
    store = fluent.dataset_store()
    [check] = store.validations(second)
    seen["check"] = (check.ok, check.checks, check.contract, check.report, check.created_by)
    runs = store.version_runs(first)
    seen["lineage"] = (runs.logged_by == [producer.run_id], runs.read_by == [consumer.run_id])
    errors = []
    for call in (
        lambda: ml.get_dataset("nope"),
        lambda: ml.get_dataset("tx@9"),
        lambda: ml.get_dataset("bad/name"),
        lambda: ml.get_dataset("tx@0"),
        lambda: ml.dataset_versions("nope"),
        lambda: ml.log_dataset([1, 2], "tx"),  # type: ignore[arg-type]
        lambda: ml.log_dataset(transactions(), "-bad"),
        lambda: ml.check_skew("tx@1", 42),  # type: ignore[arg-type]
    ):
        with pytest.raises(ModelloopError) as caught:
            call()
        errors.append((type(caught.value).__name__, caught.value.message))
    seen["errors"] = errors
    return seen


def _plain(version: ml.DatasetVersion) -> dict[str, Any]:
    """A version without what differs between two stores: when and by which run."""
    fields = dataclasses.asdict(version)
    fields.update(created_at=0, run_id=version.run_id is not None)
    return fields


def test_the_sdk_works_on_either_store(where: str) -> None:
    seen = scenario()
    store = fluent.dataset_store()
    assert isinstance(store, HttpDatasetStore if where == "server" else SqlDatasetStore)
    assert seen["run_linked"]
    assert [v["version"] for v in seen["versions"]] == [1, 1, 2]
    assert seen["versions"][0]["description"] == "card transactions"
    assert seen["versions"][0]["created_by"] == "dana"
    assert seen["history"] == [seen["versions"][0], seen["versions"][2]]
    assert seen["get"] == [seen["versions"][2], seen["versions"][0]]
    assert [(d.name, d.latest_version, d.num_versions, d.description) for d in seen["listed"]] == [
        ("tx", 2, 2, "card transactions")
    ]
    assert seen["skew"][:2] == (False, ["amount"])
    assert seen["skew_versions"] is True
    assert seen["check"][:2] == (True, ["small"])
    assert seen["check"][4] == "dana"
    assert seen["lineage"] == (True, True)
    assert "amount" in seen["violation"]
    assert [name for name, _ in seen["errors"]] == [
        "NotFound",
        "NotFound",
        "InvalidArgument",
        "InvalidArgument",
        "NotFound",
        "InvalidArgument",
        "InvalidArgument",
        "InvalidArgument",
    ]
    # What the server recorded is in its own database, as a local run would have left it.
    local = open_dataset_store(dataclasses.replace(load_settings(), tracking_uri=None))
    assert isinstance(local, SqlDatasetStore)
    assert [v.version for v in local.list_versions("tx")] == [1, 2]
    assert local.validations(local.get_version("tx", 2))[0].checks == ["small"]


def test_the_sdk_gives_the_same_answers_through_a_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    answers = {}
    for where in ("local", "server"):
        (tmp_path / where).mkdir()
        with monkeypatch.context() as patch, sdk_store(where, tmp_path / where, patch):
            answers[where] = scenario()
    assert answers["server"] == answers["local"]


def test_a_download_that_is_not_the_stored_file_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with sdk_store("server", tmp_path, monkeypatch):
        version = ml.log_dataset(transactions(), "tx")
        blobs = BlobStore(load_settings().artifact_uri)
        path = blobs.local_path(version.artifact_digest)
        assert path is not None
        path.chmod(0o644)
        path.write_bytes(to_parquet(transactions(4)))  # damaged on the server's disk
        with pytest.raises(ModelloopError, match=r"tx@1 .* is not the stored one"):
            ml.load_dataset("tx@1")


def test_an_unreachable_server_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELLOOP_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MODELLOOP_TRACKING_URI", "http://127.0.0.1:9")
    try:
        with pytest.raises(ml.ServerUnavailable, match="Cannot reach the modelloop server"):
            ml.list_datasets()
        with pytest.raises(InvalidArgument, match="Invalid dataset name"):
            ml.get_dataset("bad/name")  # refused before anything is sent
    finally:
        close_clients()
