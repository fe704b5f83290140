"""Hostile data against contracts: every broken rule is reported, precisely."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from modelloop.datasets.contracts import (
    Check,
    Contract,
    ContractViolation,
    Expect,
    ValidationReport,
    Violation,
)
from modelloop.errors import InvalidArgument


def good() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "tx_id": [1, 2, 3, 4],
            "amount": [10.0, 20.0, 0.0, 99.5],
            "limit": [100.0, 100.0, 50.0, 100.0],
            "merchant": pd.Categorical(["grocery", "travel", "grocery", "travel"]),
        },
        index=[10, 11, 12, 13],
    )


CONTRACT = Contract(
    columns={
        "tx_id": Expect(dtype="int", nullable=False),
        "amount": Expect(dtype="float", min=0, max=1e6, nullable=False, max_null_rate=0.0),
        "merchant": Expect(dtype="category", allowed={"grocery", "travel"}),
    },
    unique=["tx_id"],
    rows=(1, None),
    checks=[Check("amount <= limit", lambda df: df.amount <= df.limit)],
)


def only(report: ValidationReport, rule: str) -> Violation:
    found = [v for v in report.violations if v.rule == rule]
    assert len(found) == 1, report.summary()
    return found[0]


def test_good_data_passes() -> None:
    report = CONTRACT.validate(good())
    assert report.ok
    report.raise_if_failed()
    assert "satisfied" in report.summary()


def test_wrong_dtypes() -> None:
    frame = good().assign(tx_id=["1", "2", "3", "4"], amount=[10, 20, 0, 99])
    report = CONTRACT.validate(frame)
    assert {(v.rule, v.column) for v in report.violations} == {
        ("dtype", "tx_id"),
        ("dtype", "amount"),
    }
    assert "amount: dtype int64, expected float" in report.summary()


def test_nan_inf_out_of_range_and_null_rate() -> None:
    frame = good().assign(amount=[np.nan, -1.0, np.inf, 2e6])
    report = CONTRACT.validate(frame)
    not_null = only(report, "not_null")
    assert (not_null.column, not_null.failed_count, not_null.total) == ("amount", 1, 4)
    assert not_null.examples == [{"row": 10, "value": "nan"}]
    assert only(report, "null_rate").failed_count == 1
    assert only(report, "finite").examples == [{"row": 12, "value": "inf"}]
    low = only(report, "min")
    assert (low.failed_count, low.examples) == (1, [{"row": 11, "value": -1.0}])
    high = only(report, "max")
    assert high.failed_count == 2
    assert high.examples == [{"row": 12, "value": "inf"}, {"row": 13, "value": 2000000.0}]


def test_null_rate_limit_alone() -> None:
    contract = Contract(columns={"x": Expect(max_null_rate=0.25)})
    ok = contract.validate(pd.DataFrame({"x": [1.0, None, 3.0, 4.0]}))
    assert ok.ok
    bad = contract.validate(pd.DataFrame({"x": [1.0, None, None, 4.0]}))
    violation = only(bad, "null_rate")
    assert (violation.failed_count, violation.total) == (2, 4)
    assert "null rate 0.5 above 0.25" in violation.message


def test_unseen_categories_are_listed() -> None:
    frame = good().assign(merchant=pd.Categorical(["grocery", "crypto", "gambling", "crypto"]))
    violation = only(CONTRACT.validate(frame), "allowed")
    assert violation.failed_count == 3
    assert "'crypto' (2), 'gambling' (1)" in violation.message
    assert [e["row"] for e in violation.examples] == [11, 12, 13]


def test_duplicate_keys_with_counts() -> None:
    frame = good().assign(tx_id=[7, 7, 7, 8])
    violation = only(CONTRACT.validate(frame), "unique")
    assert violation.failed_count == 3
    assert violation.examples == [{"row": 10, "value": 7, "count": 3}]
    composite = Contract(unique=["tx_id", "merchant"]).validate(frame)
    assert only(composite, "unique").examples == [{"row": 10, "value": [7, "grocery"], "count": 2}]


def test_empty_frame_breaks_row_bounds_and_nothing_crashes() -> None:
    report = CONTRACT.validate(good().iloc[:0])
    violation = only(report, "row_count")
    assert (violation.failed_count, violation.total) == (1, 0)
    assert "0 rows, expected [1, -]" in violation.message
    upper = Contract(rows=(None, 2)).validate(good())
    assert only(upper, "row_count").failed_count == 2


def test_missing_and_extra_columns() -> None:
    strict = Contract(columns={"tx_id": Expect(), "ghost": Expect()}, allow_extra_columns=False)
    report = strict.validate(good())
    assert only(report, "missing_column").column == "ghost"
    extra = [v.column for v in report.violations if v.rule == "extra_column"]
    assert extra == ["amount", "limit", "merchant"]


def test_custom_check_failing_and_raising() -> None:
    frame = good().assign(amount=[10.0, 200.0, 0.0, 99.5])
    violation = only(CONTRACT.validate(frame), "check")
    assert (violation.column, violation.failed_count) == ("amount <= limit", 1)
    assert violation.examples[0]["row"] == 11
    assert violation.examples[0]["value"]["amount"] == 200.0

    def explode(df: pd.DataFrame) -> pd.Series[bool]:
        raise KeyError("limit")

    broken = Contract(checks=[Check("needs limit", explode), Check("table", lambda df: False)])
    report = broken.validate(good())
    messages = [v.message for v in report.violations]
    assert messages == [
        "check 'needs limit' raised KeyError: 'limit'",
        "check 'table' failed (returned False)",
    ]


def test_reports_every_violation_and_raises_with_details() -> None:
    frame = pd.DataFrame({"tx_id": [1, 1], "amount": [-1.0, np.nan], "merchant": ["x", "grocery"]})
    report = CONTRACT.validate(frame)
    rules = sorted(v.rule for v in report.violations)
    assert rules == ["allowed", "check", "dtype", "min", "not_null", "null_rate", "unique"]
    assert "raised AttributeError" in only(report, "check").message
    with pytest.raises(ContractViolation) as caught:
        report.raise_if_failed()
    assert caught.value.exit_code == 2
    assert str(caught.value) == report.summary()
    assert caught.value.details == [v.to_dict() for v in report.violations]


def test_from_yaml(tmp_path: Path) -> None:
    path = tmp_path / "contract.yaml"
    path.write_text(
        "columns:\n"
        "  amount: {dtype: float, min: 0, nullable: false}\n"
        "  merchant: {allowed: [grocery, travel]}\n"
        "unique: tx_id\n"
        "rows: [1, null]\n"
        "allow_extra_columns: false\n"
    )
    contract = Contract.from_yaml(path)
    assert contract.unique == ["tx_id"]
    assert contract.rows == (1, None)
    report = contract.validate(good().assign(amount=[-1.0, 1.0, 2.0, 3.0]))
    assert [(v.rule, v.column) for v in report.violations] == [
        ("min", "amount"),
        ("extra_column", "tx_id"),
        ("extra_column", "limit"),
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("columns: {a: {colour: red}}\n", "columns.a.colour: unknown setting"),
        ("surprise: 1\n", r"surprise: unknown setting \(known: columns, unique, rows"),
        ("rows: 5\n", "rows must be"),
        ("- just a list\n", "mapping"),
        ("columns: [\n", "not valid YAML"),
    ],
)
def test_bad_yaml(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(InvalidArgument, match=message):
        Contract.from_yaml(path)


def test_a_typo_in_a_contract_is_a_bad_contract_not_bad_data(tmp_path: Path) -> None:
    """A misspelt dtype or key is reported as such, with the valid choices, before any data is
    read: one detail per problem."""
    path = tmp_path / "typos.yaml"
    path.write_text(
        "columns:\n"
        "  amount: {dtype: flaot, minn: 0}\n"
        "  tx_id: {dtype: int32}\n"
        "  merchant:\n"
        "  limit: {max_null_rate: 2}\n"
    )
    with pytest.raises(InvalidArgument) as caught:
        Contract.from_yaml(path)
    error = caught.value
    assert not isinstance(error, ContractViolation)
    assert error.exit_code == 2
    fields = {d["field"]: d["message"] for d in error.details or []}
    assert set(fields) == {
        "columns.amount.dtype",
        "columns.amount.minn",
        "columns.limit.max_null_rate",
    }
    assert "unknown dtype 'flaot'" in fields["columns.amount.dtype"]
    for kind in ("float", "int", "numeric", "bool", "category", "string", "datetime"):
        assert kind in fields["columns.amount.dtype"]
    assert fields["columns.amount.minn"].startswith("unknown setting (known: dtype, min, max,")
    assert "nullable" in fields["columns.amount.minn"]
    assert "columns.amount.minn: unknown setting" in error.message


def test_a_typo_in_a_python_contract_is_refused() -> None:
    with pytest.raises(InvalidArgument, match="unknown dtype 'flaot': use one of float, int"):
        Contract(columns={"amount": Expect(dtype="flaot")})
    with pytest.raises(InvalidArgument) as caught:  # where the Expect is written, on its own
        Expect(dtype="flaot", min=0)
    assert caught.value.message.startswith("Invalid Expect: dtype: unknown dtype 'flaot'")
    assert [d["field"] for d in caught.value.details or []] == ["dtype"]
    exact = Contract(columns={"tx_id": Expect(dtype="int32")})  # a pandas dtype is a choice
    assert only(exact.validate(good()), "dtype").message == "tx_id: dtype int64, expected int32"


@pytest.mark.parametrize(
    ("allowed", "kind"), [("[[grocery, travel]]", "list"), ("[grocery, {travel: 1}]", "dict")]
)
def test_a_list_among_allowed_values_is_a_bad_contract_not_a_crash(
    tmp_path: Path, allowed: str, kind: str
) -> None:
    """``allowed: [[a, b]]`` is refused when the contract is read, saying how to write it,
    instead of passing and then crashing with TypeError when data is checked."""
    path = tmp_path / "nested.yaml"
    path.write_text(f"columns:\n  merchant: {{allowed: {allowed}}}\n")
    with pytest.raises(InvalidArgument) as caught:
        Contract.from_yaml(path)
    assert not isinstance(caught.value, ContractViolation)
    [detail] = caught.value.details or []
    assert detail["field"] == "columns.merchant.allowed"
    assert detail["message"].startswith("allowed values must be single values")
    assert f"is a {kind}" in detail["message"]
    assert "list each allowed value on its own, e.g. allowed: [a, b]" in detail["message"]
    with pytest.raises(InvalidArgument, match=r"Invalid Expect: allowed: allowed values must"):
        Expect(allowed=[["grocery", "travel"]])


def test_a_contract_and_its_report_round_trip_through_json() -> None:
    import json

    config = json.loads(json.dumps(CONTRACT.to_dict()))
    assert config["columns"]["merchant"]["allowed"] == ["grocery", "travel"]  # a set, in order
    again = Contract.from_dict(config)
    assert again.columns == {
        "tx_id": Expect(dtype="int", nullable=False),
        "amount": Expect(dtype="float", min=0.0, max=1e6, nullable=False, max_null_rate=0.0),
        "merchant": Expect(dtype="category", allowed=["grocery", "travel"]),
    }
    assert (list(again.unique), again.rows, again.checks) == (["tx_id"], (1, None), ())
    bad = good().assign(amount=[np.nan, -np.inf, 3.0, 4.0], tx_id=[1, 1, 2, 3])
    report = CONTRACT.validate(bad)
    stored = json.loads(json.dumps(report.to_dict()))
    assert stored["ok"] is False
    back = ValidationReport.from_dict(stored)
    assert back.summary() == report.summary()
    assert [v.to_dict() for v in back.violations] == [v.to_dict() for v in report.violations]
