"""A data contract checked in a step stops the pipeline with the contract's report."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

import modelloop as ml
from modelloop.pipelines import Pipeline, step

CONTRACT = ml.Contract(
    columns={
        "amount": ml.Expect(dtype="float", min=0, nullable=False),
        "merchant": ml.Expect(dtype="string", allowed={"grocery", "travel"}),
    },
    unique=["tx_id"],
)


@step
def transactions(bad: bool = False) -> pd.DataFrame:
    frame = pd.DataFrame(
        {"tx_id": [1, 2, 3], "amount": [5.0, 7.5, 1.0], "merchant": ["grocery"] * 3}
    )
    if bad:
        frame.loc[2, ["tx_id", "amount", "merchant"]] = [2, -4.0, "casino"]
    return frame


@step
def validated(transactions: pd.DataFrame) -> pd.DataFrame:
    CONTRACT.validate(transactions).raise_if_failed()
    return transactions


@step
def total(validated: pd.DataFrame) -> float:
    return float(validated["amount"].sum())


PIPE = Pipeline([transactions, validated, total], name="contracted")


def test_good_data_flows_through(home: Path) -> None:
    result = PIPE.run()
    assert result.status == "FINISHED"
    assert result.value("total") == 13.5


def test_bad_data_stops_the_pipeline_with_the_report(home: Path) -> None:
    result = PIPE.run(params={"bad": True})
    states = {name: s.state for name, s in result.steps.items()}
    assert states == {"transactions": "SUCCEEDED", "validated": "FAILED", "total": "SKIPPED"}
    assert result.status == "FAILED"
    error = result.steps["validated"].error or ""
    for expected in ("amount", "below min 0", "merchant", "'casino'", "tx_id", "duplicate"):
        assert expected in error, (expected, error)
    assert result.value("transactions")["amount"].tolist() == [5.0, 7.5, -4.0]  # kept
