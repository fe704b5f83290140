"""``reproduce`` re-runs a pipeline run without the cache and explains every difference."""

from __future__ import annotations

import importlib
import json
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

import modelloop as ml
from modelloop.cli.pipelines import reproduce as reproduce_command
from modelloop.errors import NotFound
from modelloop.examples import training_pipeline as ex
from modelloop.pipelines import Pipeline, PipelineRun, ReproductionReport, reproduce, step
from modelloop.tracking.fluent import get_client

STEPS = """
from pathlib import Path

from modelloop.pipelines import Pipeline, step


def _scale(x):
    return x * {factor}


@step
def source(path: str) -> list[int]:
    return [int(line) for line in Path(path).read_text().split()]


@step
def double(source: list[int]) -> list[int]:
    return [v * {double} for v in source]


@step
def scaled(double: list[int]) -> list[int]:
    return [_scale(v) for v in double]


@step
def total(scaled: list[int]) -> float:
    return float(sum(scaled))


pipeline = Pipeline([source, double, scaled, total], name="tmp")
"""

runner = CliRunner()


def _reproduce_app() -> typer.Typer:
    app = typer.Typer()
    app.command("reproduce")(reproduce_command)
    app.command("noop")(lambda: None)  # two commands keep "reproduce" as a subcommand
    return app


# the package's ``reproduce`` is the function, which shadows the submodule of the same name
reproduce_module = sys.modules["modelloop.pipelines.reproduce"]


@pytest.fixture
def steps_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, str]]:
    """A step module written to disk, importable, never byte-compiled (edits must be seen)."""
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    src = tmp_path / "src"
    src.mkdir()
    name = f"repro_{uuid.uuid4().hex[:8]}"
    (src / f"{name}.py").write_text(STEPS.format(factor=10, double=2))
    monkeypatch.syspath_prepend(str(src))
    yield src / f"{name}.py", name
    sys.modules.pop(name, None)


@pytest.fixture
def data(tmp_path: Path) -> Path:
    path = tmp_path / "numbers.csv"
    path.write_text("1\n2\n3\n")
    return path


def _import(name: str) -> ModuleType:
    module = sys.modules.get(name)
    return importlib.import_module(name) if module is None else importlib.reload(module)


def _run(name: str, data: Path) -> PipelineRun:
    result: PipelineRun = _import(name).pipeline.run({"path": str(data)})
    assert result.status == "FINISHED"
    return result


def _by_step(report: ReproductionReport) -> dict[str, Any]:
    return {s.step: s for s in report.steps}


def test_example_pipeline_reproduces_bit_identically(home: Path) -> None:
    original = ex.pipeline.run({"seed": 3})
    report = reproduce(original.run_id)
    assert report.ok
    assert report.new_run_id != original.run_id
    assert [s.step for s in report.steps] == ["load", "split", "train", "evaluate"]
    for comparison in report.steps:
        assert comparison.status == "MATCH"
        assert comparison.reasons == []
        assert comparison.original_digests == comparison.new_digests
        assert comparison.original_digests  # something was compared
    new = PipelineRun.load(report.new_run_id)
    assert new.params == {"seed": 3}
    assert all(s.state == "SUCCEEDED" for s in new.steps.values())  # not from the cache
    assert get_client().get_run(report.new_run_id).tags["modelloop.reproduces"] == original.run_id
    assert "MATCH" in report.render()


def test_pipeline_json_records_target_and_code_fingerprints(home: Path) -> None:
    run = ex.pipeline.run()
    doc = json.loads(get_client().read_artifact(run.run_id, "pipeline.json"))
    assert doc["target"] == "modelloop.examples.training_pipeline:pipeline"
    steps = {s["name"]: s for s in doc["steps"]}
    assert steps["train"]["target"] == "modelloop.examples.training_pipeline:train"
    assert set(steps["load"]["code"]) == {"", "_signal"}  # the step and the helper it names


def test_edited_step_code_is_reported(
    home: Path, steps_module: tuple[Path, str], data: Path
) -> None:
    path, name = steps_module
    original = _run(name, data)
    path.write_text(STEPS.format(factor=10, double=3))
    _import(name)
    steps = _by_step(reproduce(original.run_id))
    assert steps["source"].status == "MATCH"
    assert steps["double"].status == "DIFFERENT"
    assert any(r.startswith("code changed: the step's source") for r in steps["double"].reasons)
    for downstream in ("scaled", "total"):
        assert steps[downstream].status == "DIFFERENT"
        assert not any("code changed" in r for r in steps[downstream].reasons)
    assert "inputs differ: upstream double changed" in steps["scaled"].reasons
    assert steps["total"].numbers == {"total": (120.0, 180.0)}
    assert "total: 120 -> 180 (+60)" in steps["total"].reasons


def test_edited_helper_is_reported(home: Path, steps_module: tuple[Path, str], data: Path) -> None:
    path, name = steps_module
    original = _run(name, data)
    path.write_text(STEPS.format(factor=100, double=2))
    _import(name)
    steps = _by_step(reproduce(original.run_id))
    assert [s.status for s in steps.values()] == ["MATCH", "MATCH", "DIFFERENT", "DIFFERENT"]
    assert "code changed: helper _scale" in steps["scaled"].reasons


def test_changed_input_data_is_reported(
    home: Path, steps_module: tuple[Path, str], data: Path
) -> None:
    _, name = steps_module
    original = _run(name, data)
    data.write_text("1\n2\n4\n")
    report = reproduce(original.run_id)
    steps = _by_step(report)
    assert not report.ok
    assert all(s.status == "DIFFERENT" for s in steps.values())
    source = steps["source"].reasons
    assert source[0] == "outputs differ: source"
    assert any("input data" in r and f"path={data}" in r for r in source)
    assert not any("code changed" in r for r in source)
    assert "inputs differ: upstream source changed" in steps["double"].reasons
    assert "inputs differ: upstream scaled changed" in steps["total"].reasons
    assert steps["source"].original_digests != steps["source"].new_digests


def test_unchanged_input_data_reproduces(
    home: Path, steps_module: tuple[Path, str], data: Path
) -> None:
    _, name = steps_module
    original = _run(name, data)
    assert reproduce(original.run_id).ok


def test_package_version_difference_is_explained(
    home: Path, steps_module: tuple[Path, str], data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, name = steps_module
    original = _run(name, data)
    recorded = json.loads(get_client().read_artifact(original.run_id, "environment.json"))
    now = {**recorded, "packages": {**recorded["packages"], "numpy": "0.0.1"}}
    monkeypatch.setattr(reproduce_module, "_current_environment", lambda: now)
    data.write_text("5\n")
    report = reproduce(original.run_id)
    assert report.packages_changed == {"numpy": (recorded["packages"]["numpy"], "0.0.1")}
    reasons = _by_step(report)["source"].reasons
    assert f"package versions differ: numpy {recorded['packages']['numpy']} -> 0.0.1" in reasons

    # matching steps carry no reasons, even with different packages installed
    data.write_text("1\n2\n3\n")
    again = reproduce(original.run_id)
    assert again.ok
    assert again.packages_changed
    assert all(s.reasons == [] for s in again.steps)


def test_failing_step_is_reported_failed(
    home: Path, steps_module: tuple[Path, str], data: Path
) -> None:
    _, name = steps_module
    original = _run(name, data)
    data.write_text("not-a-number\n")
    steps = _by_step(reproduce(original.run_id))
    assert steps["source"].status == "FAILED"
    assert "ValueError" in steps["source"].reasons[0]
    assert [steps[n].status for n in ("double", "scaled", "total")] == ["SKIPPED"] * 3


def test_cli_exit_codes(home: Path, steps_module: tuple[Path, str], data: Path) -> None:
    app = _reproduce_app()
    _, name = steps_module
    original = _run(name, data)
    same = runner.invoke(app, ["reproduce", original.run_id])
    assert same.exit_code == 0, same.output
    assert "MATCH" in same.stdout
    assert "Error" not in same.output

    data.write_text("7\n")
    differs = runner.invoke(app, ["reproduce", original.run_id])
    assert differs.exit_code == 1
    assert "DIFFERENT" in differs.stdout
    error_lines = [line for line in differs.stderr.splitlines() if line.startswith("Error:")]
    assert len(error_lines) == 1
    assert "source DIFFERENT" in error_lines[0]

    as_json = runner.invoke(app, ["reproduce", original.run_id, "--output", "json"])
    assert as_json.exit_code == 1
    doc = json.loads(as_json.stdout)
    assert doc["ok"] is False
    assert doc["run_id"] == original.run_id
    assert doc["steps"][0]["status"] == "DIFFERENT"

    step_run = original.steps["source"].run_id or ""
    not_a_pipeline = runner.invoke(app, ["reproduce", step_run])
    assert isinstance(not_a_pipeline.exception, NotFound)  # the root command reports it
    assert "not a finished pipeline run" in str(not_a_pipeline.exception)


def test_cli_help() -> None:
    shown = runner.invoke(_reproduce_app(), ["reproduce", "--help"])
    assert shown.exit_code == 0
    assert "RUN_ID" in shown.stdout
    assert "--executor" in shown.stdout
    assert "Re-run a pipeline run without the cache" in shown.stdout


def test_reproduce_on_the_process_executor(
    home: Path, steps_module: tuple[Path, str], data: Path
) -> None:
    _, name = steps_module
    original = _run(name, data)
    report = reproduce(original.run_id, executor="process")
    assert report.ok, report.render()
    new = PipelineRun.load(report.new_run_id)
    assert all(s.state == "SUCCEEDED" for s in new.steps.values())


@step
def fraud_total() -> float:
    return float(ml.load_dataset("fraud")["x"].sum())


reads_fraud = Pipeline([fraud_total], name="reads-fraud")


def test_a_new_version_of_a_dataset_read_by_name_is_named(home: Path) -> None:
    ml.log_dataset(pd.DataFrame({"x": [1.0]}), "fraud")
    original = reads_fraud.run()
    ml.log_dataset(pd.DataFrame({"x": [2.0]}), "fraud")
    assert reads_fraud.run().steps["fraud_total"].state == "SUCCEEDED"  # not the stale cache
    reasons = _by_step(reproduce(original.run_id))["fraud_total"].reasons
    assert "datasets read changed: 'fraud' gave version 1, now 2" in reasons
    assert not any("input data" in r for r in reasons)
