"""Executors give the same outputs; independent steps and fan-out trials run in parallel."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from modelloop.errors import InvalidArgument
from modelloop.examples import training_pipeline as ex
from modelloop.pipelines import Pipeline, step
from modelloop.tracking.fluent import get_client


@step
def slow_a() -> list[float]:
    start = time.time()
    time.sleep(1.5)
    return [start, time.time()]


@step
def slow_b() -> list[float]:
    start = time.time()
    time.sleep(1.5)
    return [start, time.time()]


def _digests(result: object) -> dict[str, str]:
    return {
        name: ref["digest"]
        for state in result.steps.values()  # type: ignore[attr-defined]
        for name, ref in state.outputs.items()
    }


def test_process_pool_gives_the_same_outputs_as_local(home: Path) -> None:
    local = ex.pipeline.run(cache=False)
    pooled = ex.pipeline.run(cache=False, executor="process", max_workers=2)
    assert pooled.status == "FINISHED"
    assert _digests(pooled) == _digests(local)
    client = get_client()
    for state in pooled.steps.values():
        assert client.get_run(state.run_id or "").parent_run_id == pooled.run_id


def test_process_pool_runs_independent_steps_concurrently(home: Path) -> None:
    result = Pipeline([slow_a, slow_b]).run(executor="process", max_workers=2)
    (a0, a1), (b0, b1) = result.value("slow_a"), result.value("slow_b")
    assert a0 < b1
    assert b0 < a1


def test_fan_out_picks_the_best_trial_by_metric(home: Path) -> None:
    result = ex.tuned.run(executor="process", max_workers=2)
    assert result.status == "FINISHED"
    train = result.steps["train"]
    assert [t["params"] for t in train.trials] == [
        {"learning_rate": 0.001},
        {"learning_rate": 0.1},
        {"learning_rate": 0.3},
    ]
    metrics = [t["metric"] for t in train.trials]
    best = max(range(3), key=metrics.__getitem__)
    assert train.trials[best].get("best") is True
    assert train.run_id == train.trials[best]["run_id"]
    client = get_client()
    runs = [client.get_run(t["run_id"]) for t in train.trials]
    assert all(r.parent_run_id == result.run_id for r in runs)
    assert [r.name for r in runs] == ["train[0]", "train[1]", "train[2]"]
    assert runs[best].tags["modelloop.best_trial"] == "true"
    assert result.value("train_auc") == metrics[best]
    again = ex.tuned.run()  # trials are cached one by one
    assert [t["state"] for t in again.steps["train"].trials] == ["CACHED"] * 3
    assert again.steps["train"].outputs == train.outputs


def test_nested_steps_are_refused_by_the_process_pool(home: Path) -> None:
    @step
    def nested() -> int:
        return 1

    with pytest.raises(InvalidArgument, match="module level"):
        Pipeline([nested]).run(executor="process")


@pytest.mark.slow
def test_ray_gives_the_same_outputs_as_local(home: Path) -> None:
    ray = pytest.importorskip("ray")
    local = ex.pipeline.run(cache=False)
    try:
        on_ray = ex.pipeline.run(cache=False, executor="ray")
    finally:
        ray.shutdown()
    assert on_ray.status == "FINISHED"
    assert _digests(on_ray) == _digests(local)
