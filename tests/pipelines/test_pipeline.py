"""The pipeline API: wiring by name, child runs, artifacts, params, and graph validation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import modelloop as ml
from modelloop.errors import InvalidArgument, UnsafeFormat
from modelloop.examples import training_pipeline as ex
from modelloop.pipelines import Pipeline, fan_out, step
from modelloop.pipelines.step import SPEC_ATTRIBUTE
from modelloop.tracking.entities import RunStatus
from modelloop.tracking.fluent import get_client


@step
def one() -> int:
    return 1


@step
def add(one: int, k: int) -> int:
    return one + k


@step
def opaque() -> object:
    return object()


@step(allow_pickle=True)
def opaque_allowed() -> object:
    return {1, 2}


def test_step_decorator_only_attaches_metadata() -> None:
    def plain(x: int) -> int:
        return x

    decorated = step(outputs=("a", "b"))(plain)
    assert decorated is plain
    assert decorated(3) == 3
    assert getattr(plain, SPEC_ATTRIBUTE).outputs == ("a", "b")


def test_example_pipeline_runs_each_step_as_a_child_run(home: Path) -> None:
    result = ex.pipeline.run(params={"n_rows": 300})
    client = get_client()
    assert result.status == "FINISHED"
    assert [s.state for s in result.steps.values()] == ["SUCCEEDED"] * 4
    assert result.value("evaluate")["auc"] > 0.8
    assert client.get_run(result.run_id).status is RunStatus.FINISHED
    for state in result.steps.values():
        assert state.run_id is not None
        child = client.get_run(state.run_id)
        assert child.parent_run_id == result.run_id
        assert child.name == state.name
    train_run = result.steps["train"].run_id
    assert train_run is not None
    paths = {a.path for a in client.list_artifacts(train_run)}
    assert {"outputs/model/model.txt", "outputs/model/modelloop-model.json"} <= paths
    assert not any(p.endswith(".pkl") for p in paths)
    assert client.get_run(train_run).metrics["train_auc"] > 0.8
    split_paths = {a.path for a in client.list_artifacts(result.steps["split"].run_id or "")}
    assert {"outputs/train.parquet", "outputs/test.parquet", "step.json"} <= split_paths
    frame = result.value("train")
    assert isinstance(frame, pd.DataFrame)
    assert len(frame) == 225


def test_pipeline_run_records_dag_environment_and_seeds(home: Path) -> None:
    result = ex.pipeline.run(params={"seed": 7, "train.learning_rate": 0.2})
    client = get_client()
    doc = json.loads(client.read_artifact(result.run_id, "pipeline.json"))
    assert [s["name"] for s in doc["steps"]] == ["load", "split", "train", "evaluate"]
    assert doc["steps"][2]["upstream"] == ["split"]
    env = json.loads(client.read_artifact(result.run_id, "environment.json"))
    assert "lightgbm" in env["packages"]
    run = client.get_run(result.run_id)
    assert json.loads(run.tags["modelloop.seeds"]) == {"seed": 7}
    assert run.params["train.learning_rate"] == "0.2"
    assert "git_commit" in run.source
    assert client.get_run(result.steps["train"].run_id or "").params["learning_rate"] == "0.2"


def test_step_scoped_param_wins_over_global(home: Path) -> None:
    result = Pipeline([one, add]).run(params={"k": 1, "add.k": 10})
    assert result.value("add") == 11


def test_unknown_and_missing_params_are_reported_before_running(home: Path) -> None:
    pipe = Pipeline([one, add])
    with pytest.raises(InvalidArgument, match="unknown param 'kk'") as info:
        pipe.run(params={"kk": 1})
    assert "step add needs 'k'" in str(info.value)


def test_graph_errors_are_clear() -> None:
    def a(b: int) -> int:
        return b

    def b(a: int) -> int:
        return a

    with pytest.raises(InvalidArgument, match="cycle"):
        Pipeline([a, b])
    with pytest.raises(InvalidArgument, match="produced by both"):
        Pipeline([one, step(name="other", outputs="one")(lambda_free())])
    with pytest.raises(InvalidArgument, match="two steps named"):
        Pipeline([one, one])

    def own(own: int) -> int:
        return own

    with pytest.raises(InvalidArgument, match="its own output"):
        Pipeline([own])
    with pytest.raises(InvalidArgument, match="unknown params"):
        Pipeline([one, fan_out(add, [{"nope": 1}], metric="add")])
    with pytest.raises(InvalidArgument, match="not one of its outputs"):
        fan_out(add, [{"k": 1}], metric="auc")


def lambda_free() -> Any:
    def other() -> int:
        return 2

    return other


def test_unpicklable_output_fails_unless_opted_in(home: Path) -> None:
    failed = Pipeline([opaque]).run()
    assert failed.status == "FAILED"
    assert "allow_pickle=True" in (failed.steps["opaque"].error or "")
    allowed = Pipeline([opaque_allowed]).run()
    assert allowed.status == "FINISHED"
    with pytest.raises(UnsafeFormat):
        allowed.value("opaque_allowed")
    assert allowed.value("opaque_allowed", allow_pickle=True) == {1, 2}


@step
def scores() -> dict[str, Any]:
    return {"auc": 0.91, "rows": 3, "by_class": {"fraud": 0.5}, "model": "lgbm", "ok": True}


@step(outputs=("train_scores", "test_scores", "threshold"))
def both() -> tuple[dict[str, float], dict[str, float], float]:
    return {"auc": 0.95, "loss": 0.2}, {"auc": 0.9}, 0.5


def test_returned_metrics_become_metrics_of_the_step_run(home: Path) -> None:
    pipe = Pipeline([scores, both], name="metrics")
    result = pipe.run()
    client = get_client()
    run_id = result.steps["scores"].run_id or ""
    assert client.get_run(run_id).metrics == {"auc": 0.91, "rows": 3.0, "by_class.fraud": 0.5}
    # the same key returned by two outputs of one step is told apart by the output's name
    assert client.get_run(result.steps["both"].run_id or "").metrics == {
        "train_scores.auc": 0.95,
        "loss": 0.2,
        "test_scores.auc": 0.9,
        "threshold": 0.5,
    }
    found = ml.search_runs("metrics", filter="metrics.auc > 0.9")
    assert list(found["run_id"]) == [run_id]
    assert json.loads(client.read_artifact(run_id, "outputs/scores.json"))["auc"] == 0.91

    cached = pipe.run()  # a reused execution shows the metrics of the one it reuses
    assert {s.state for s in cached.steps.values()} == {"CACHED"}
    assert client.get_run(cached.steps["scores"].run_id or "").metrics["auc"] == 0.91
