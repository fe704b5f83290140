"""Stored contract checks of dataset versions, on SQLite and PostgreSQL: logging with a contract
keeps the passing report with the version, a refused frame leaves nothing, a check of a stored
version is kept passed or failed, and the reads give a version's checks newest first and the
newest check of each dataset's newest version."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from modelloop.artifacts import BlobStore
from modelloop.datasets import Check, Contract, ContractViolation, Expect, ValidationReport
from modelloop.datasets.sql import SqlDatasetStore
from modelloop.errors import InvalidArgument, NotFound
from modelloop.settings import Settings
from modelloop.store import open_database


@pytest.fixture
def store(settings: Settings) -> SqlDatasetStore:
    return SqlDatasetStore(open_database(settings.database_url), BlobStore(settings.artifact_uri))


def frame(amounts: list[float]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "tx_id": np.arange(len(amounts), dtype=np.int64),
            "amount": amounts,
            "merchant": pd.Categorical(["grocery", "travel"] * (len(amounts) // 2)),
        }
    )


CONTRACT = Contract(
    columns={
        "amount": Expect(dtype="float", min=0, nullable=False),
        "merchant": Expect(allowed={"travel", "grocery"}),
    },
    unique=["tx_id"],
    rows=(2, None),
    checks=[Check("small", lambda f: f["amount"] < 100)],
)


def test_logging_with_a_contract_keeps_the_passing_report(store: SqlDatasetStore) -> None:
    version = store.log_version("tx", frame([1.0, 2.0]), actor="alice", contract=CONTRACT)
    [kept] = store.validations(version)
    assert (kept.ref, kept.ok, kept.created_by) == ("tx@1", True, "alice")
    assert kept.created_at == pytest.approx(version.created_at, abs=60_000)
    assert kept.report == ValidationReport(2, [])
    assert kept.checks == ["small"]  # a Python check: kept by name
    # The contract is kept as the configuration that reads back into the same rules.
    assert kept.contract["columns"]["merchant"]["allowed"] == ["grocery", "travel"]
    assert kept.contract["rows"] == [2, None]
    again = Contract.from_dict(kept.contract)
    assert again.columns["amount"] == Expect(dtype="float", min=0.0, nullable=False)
    assert (list(again.unique), again.rows) == (["tx_id"], (2, None))
    # The same content logged again under the contract is the same version, checked again.
    same = store.log_version("tx", frame([1.0, 2.0]), actor="bob", contract=CONTRACT)
    assert same == version
    assert [(v.created_by, v.ok) for v in store.validations(version)] == [
        ("bob", True),
        ("alice", True),
    ]
    # Logging without a contract keeps no check.
    plain = store.log_version("tx", frame([3.0, 4.0]), actor="alice")
    assert store.validations(plain) == []


def test_a_frame_that_breaks_the_contract_leaves_nothing(store: SqlDatasetStore) -> None:
    with pytest.raises(ContractViolation, match="amount: 1 of 2 values below min 0"):
        store.log_version("tx", frame([-1.0, 2.0]), actor="alice", contract=CONTRACT)
    with pytest.raises(NotFound):
        store.get_version("tx")
    assert store.latest_validations() == {}
    with pytest.raises(InvalidArgument, match="contract must be a Contract"):
        store.log_version("tx", frame([1.0, 2.0]), actor="a", contract="c.yaml")  # type: ignore[arg-type]


def test_a_check_of_a_stored_version_is_kept_passed_or_failed(store: SqlDatasetStore) -> None:
    version = store.log_version("tx", frame([-1.0, np.nan, 5.0, 500.0]), actor="alice")
    report = CONTRACT.validate(store.load(version))
    assert not report.ok
    failed = store.add_validation(version, CONTRACT, report, actor="carol")
    assert (failed.ok, failed.created_by) == (False, "carol")
    assert failed.report == report  # every violation, with its counts and examples
    by_rule = {v.rule: v for v in failed.report.violations}
    assert sorted(by_rule) == ["check", "min", "not_null"]
    assert (by_rule["min"].failed_count, by_rule["min"].total) == (1, 4)
    assert by_rule["min"].examples == [{"row": 0, "value": -1.0}]
    assert by_rule["check"].column == "small"
    passing = Contract(columns={"tx_id": Expect(dtype="int")})
    checked = passing.validate(store.load(version))
    passed = store.add_validation(version, passing, checked, actor="dan")
    assert [v.validation_id for v in store.validations(version)] == [
        passed.validation_id,
        failed.validation_id,
    ]
    assert store.validations(version, limit=1) == [passed]
    with pytest.raises(InvalidArgument, match="limit"):
        store.validations(version, limit=0)
    gone = dataclasses.replace(version, version=9)
    with pytest.raises(NotFound, match="No version 9 of dataset 'tx'"):
        store.add_validation(gone, passing, report, actor="dan")


def test_latest_validations_speak_only_for_each_newest_version(store: SqlDatasetStore) -> None:
    first = store.log_version("a", frame([1.0, 2.0]), actor="x", contract=CONTRACT)
    broken = store.log_version("b", frame([-1.0, 2.0]), actor="x")
    store.add_validation(broken, CONTRACT, CONTRACT.validate(store.load(broken)), actor="x")
    store.log_version("c", frame([1.0, 2.0]), actor="x")  # never checked
    latest = store.latest_validations()
    assert {name: v.ok for name, v in latest.items()} == {"a": True, "b": False}
    # b checked again, now passing: the newest check is the one that counts.
    loose = Contract()
    store.add_validation(broken, loose, loose.validate(store.load(broken)), actor="y")
    assert store.latest_validations()["b"].created_by == "y"
    assert store.latest_validations()["b"].ok
    # A newer version of a has not been checked: a's older check does not speak for it.
    store.log_version("a", frame([5.0, 6.0]), actor="x")
    assert sorted(store.latest_validations()) == ["b"]
    assert len(store.validations(first)) == 1
