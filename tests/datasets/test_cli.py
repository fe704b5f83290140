"""``modelloop datasets``: list, show and validate, through a root command like the real one, on
the local store and through a server (``MODELLOOP_TRACKING_URI``) alike."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import modelloop as ml
from modelloop.datasets import fluent as ds
from modelloop.settings import load_settings
from modelloop.tracking import fluent
from tests.cli_helpers import invoke
from tests.live_server import live_server


@pytest.fixture(params=["local", "server"])
def where(
    request: pytest.FixtureRequest, home: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """The store under ``home``, used directly or through a live server on it."""
    if request.param == "local":
        yield "local"
        return
    with live_server(load_settings()) as url:
        monkeypatch.setenv("MODELLOOP_TRACKING_URI", url)
        try:
            yield "server"
        finally:
            fluent.close_clients()
            monkeypatch.delenv("MODELLOOP_TRACKING_URI")


@pytest.fixture
def logged(where: str) -> str:
    frame = pd.DataFrame(
        {
            "tx_id": [1, 2, 2],
            "amount": [10.0, -5.0, np.nan],
            "merchant": pd.Categorical(["grocery", "crypto", "travel"]),
        }
    )
    with ml.start_run(experiment="data") as run:
        ds.log_dataset(frame, "tx", description="card transactions")
    ds.log_dataset(frame.assign(amount=[1.0, 2.0, 3.0]), "tx")
    fluent.close_clients()
    return run.run_id


def test_list(logged: str) -> None:
    result = invoke("datasets", "list")
    assert result.exit_code == 0, result.output
    assert "tx" in result.output
    assert "card transactions" in result.output
    as_json = json.loads(invoke("datasets", "list", "-o", "json").output)
    assert [(d["name"], d["latest_version"], d["num_versions"]) for d in as_json] == [("tx", 2, 2)]


def test_list_empty(where: str) -> None:
    result = invoke("datasets", "list")
    assert (result.exit_code, result.output.strip()) == (0, "No datasets yet.")


def test_show(logged: str) -> None:
    result = invoke("datasets", "show", "tx@1")
    assert result.exit_code == 0, result.output
    assert "tx@1: 3 rows x 3 columns" in result.output
    assert f"run: {logged}" in result.output
    assert "-5 .. 10" in result.output
    data = json.loads(invoke("datasets", "show", "tx", "-o", "json").output)
    assert (data["version"], data["run_id"]) == (2, None)
    assert data["schema"]["columns"][1] == {"name": "amount", "dtype": "float64"}
    assert data["profile"]["columns"][1]["mean"] == 2.0


def test_show_unknown(where: str) -> None:
    result = invoke("datasets", "show", "nope@3")
    assert result.exit_code == 3
    assert result.output.strip() == "Error: No dataset 'nope': no dataset has been logged yet"


def test_validate(logged: str, tmp_path: Path) -> None:
    contract = tmp_path / "contract.yaml"
    contract.write_text(
        "columns:\n  amount: {min: 0, nullable: false}\n"
        "  merchant: {allowed: [grocery, travel]}\nunique: [tx_id]\n"
    )
    failed = invoke("datasets", "validate", "tx@1", "--contract", str(contract))
    assert failed.exit_code == 2
    assert "amount: 1 of 3 values below min 0" in failed.stdout
    assert "merchant: 1 of 3 values not allowed: 'crypto' (1)" in failed.stdout
    errors = [line for line in failed.stderr.splitlines() if line]
    assert errors == [
        f"Error: tx@1 violates {contract}: 4 violation(s) (allowed, min, not_null, unique)"
    ]
    latest = invoke("datasets", "validate", "tx", "-c", str(contract), "-o", "json")
    assert latest.exit_code == 2  # tx@2 still has crypto and a duplicated key
    assert [v["rule"] for v in json.loads(latest.stdout)["violations"]] == ["allowed", "unique"]


def test_validate_keeps_each_result_with_the_version(
    logged: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODELLOOP_USER", "carol")
    strict = tmp_path / "strict.yaml"
    strict.write_text("columns:\n  amount: {min: 0}\n")
    loose = tmp_path / "loose.yaml"
    loose.write_text("columns:\n  amount: {dtype: float}\n")
    assert invoke("datasets", "validate", "tx@1", "-c", str(strict)).exit_code == 2
    assert invoke("datasets", "validate", "tx@1", "-c", str(loose)).exit_code == 0
    store = ds.dataset_store()
    kept = store.validations(store.get_version("tx", 1))
    assert [(v.ok, v.created_by) for v in kept] == [(True, "carol"), (False, "carol")]
    assert kept[0].contract["columns"]["amount"]["dtype"] == "float"
    [below] = kept[1].report.violations
    assert (below.rule, below.column, below.failed_count, below.total) == ("min", "amount", 1, 3)
    assert store.validations(store.get_version("tx", 2)) == []
    # A contract that cannot be read checks nothing, so nothing is kept.
    bad = invoke("datasets", "validate", "tx@2", "-c", str(tmp_path / "no.yaml"))
    assert bad.exit_code == 2
    assert store.validations(store.get_version("tx", 2)) == []


def test_validate_bad_contract_file(logged: str, tmp_path: Path) -> None:
    result = invoke("datasets", "validate", "tx", "-c", str(tmp_path / "none.yaml"))
    assert result.exit_code == 2
    assert result.output.startswith("Error: Cannot read contract")


@pytest.mark.parametrize("command", [[], ["list"], ["show"], ["validate"]])
def test_help_has_examples(command: list[str]) -> None:
    result = invoke("datasets", *command, "--help")
    assert result.exit_code == 0
    assert "Examples" in result.output
    assert "$ modelloop datasets" in result.output
