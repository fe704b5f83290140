"""Reads only the SQL store offers (the MLflow edge's): latest points and inputs of a page of
runs, read in chunks of 1000 ids (SQLite binds at most 32766 parameters per statement)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelloop.errors import InvalidArgument
from modelloop.tracking.client import open_store
from modelloop.tracking.entities import DatasetInput, Metric, RunSpec
from modelloop.tracking.sql import SqlTrackingStore
from tests.conftest import store_settings


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlTrackingStore]:
    with store_settings(tmp_path, request.param) as settings:
        opened = open_store(settings)
        assert isinstance(opened, SqlTrackingStore)
        yield opened


def test_latest_points_and_inputs_of_runs_across_several_chunks(
    store: SqlTrackingStore,
) -> None:
    exp = store.create_experiment("many")
    ids = [store.create_run(RunSpec(exp.experiment_id)).run_id for _ in range(2100)]
    store.log_batch(ids[0], [Metric("auc", 0.5, 3, 30), Metric("auc", math.nan, 7, 70)])
    store.log_batch(ids[-1], [Metric("loss", 0.1, 1, 10)])
    store.log_inputs(ids[-1], [DatasetInput("cards", "d1", "local", "{}")])
    latest = store.latest_metrics(ids)
    assert len(latest) == 2100
    ((key, value, step, timestamp),) = latest[ids[0]]
    assert (key, step, timestamp) == ("auc", 7, 70)
    assert math.isnan(value)
    assert latest[ids[-1]] == [Metric("loss", 0.1, 1, 10)]
    assert sum(len(points) for points in latest.values()) == 2
    inputs = store.inputs_of_runs(ids)
    assert inputs[ids[-1]] == [DatasetInput("cards", "d1", "local", "{}")]
    assert sum(len(found) for found in inputs.values()) == 1
    with pytest.raises(InvalidArgument):
        store.latest_metrics(["../x"])
