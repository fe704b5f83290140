"""``modelloop lineage`` of something that does not exist is an error, not an empty tree."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

import modelloop as ml
from tests.cli_helpers import invoke


def test_lineage_of_a_missing_target_exits_non_zero(home: Path) -> None:
    ml.log_dataset(pd.DataFrame({"amount": [1.0, 2.0]}), "fraud")
    with ml.start_run(experiment="lineage") as run:
        run.log_metric("auc", 0.9)
    for target, code, message in (
        ("models:/fraud-detector/7", 3, "Registered model 'fraud-detector' does not exist"),
        ("dataset:fraud@2", 3, "No version 2 of dataset 'fraud'"),
        ("dataset:nope@1", 3, "nope"),
        ("dataset:fraud", 2, "dataset:fraud@1"),  # lineage is per version: name one
        ("ab" * 32, 3, f"No artifact with digest {'ab' * 32}"),
    ):
        result = invoke("lineage", target)
        assert result.exit_code == code, (target, result.output)
        lines = result.output.strip().splitlines()
        assert len(lines) == 1, result.output
        assert lines[0].startswith("Error: "), result.output
        assert message in lines[0], lines[0]
    existing = invoke("lineage", "dataset:fraud@1")
    assert existing.exit_code == 0, existing.output
    assert existing.output.strip() == "dataset fraud@1"
    run_lineage = invoke("lineage", run.run_id)
    assert run_lineage.exit_code == 0, run_lineage.output


def test_the_sdk_lineage_of_a_missing_target_raises_not_found(home: Path) -> None:
    # The check lives in the SDK: the CLI, the REST API and scripts all get it.
    from modelloop.errors import NotFound

    ml.log_dataset(pd.DataFrame({"amount": [1.0, 2.0]}), "fraud")
    with pytest.raises(NotFound, match="No version 2 of dataset 'fraud'"):
        ml.get_lineage("dataset:fraud@2")
    with pytest.raises(NotFound, match="Registered model 'fraud-detector' does not exist"):
        ml.get_lineage("models:/fraud-detector/7")
    assert ml.get_lineage("dataset:fraud@1").root == ("dataset", "fraud@1")


def test_lineage_takes_an_artifact_digest_as_it_prints_it(home: Path) -> None:
    with ml.start_run(experiment="lineage") as run:
        info = run.log_text("rows\n", "data.txt")
    printed = f"sha256:{info.digest}"
    result = invoke("lineage", printed)
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"artifact sha256:{info.digest[:12]}")
    short = invoke("lineage", printed[:19])  # the 12 characters the tree shows
    assert short.exit_code == 2, short.output
    assert "expected sha256: and 64 lowercase hex characters" in short.output
    assert "Invalid run id" not in short.output
