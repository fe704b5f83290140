"""Lineage: from a model artifact, a run, a dataset version or a model version back upstream."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

import modelloop as ml
from modelloop.examples import training_pipeline as ex
from modelloop.pipelines import Pipeline, get_lineage, step
from modelloop.pipelines.lineage import database_of
from modelloop.registry.client import Registry
from modelloop.registry.reference import NoDriftReference
from modelloop.store.lineage import record_edges
from modelloop.tracking.fluent import get_client


def _run_names(graph: object, node: tuple[str, str]) -> list[str]:
    return [p[1] for p, rel in graph.parents(node)]  # type: ignore[attr-defined]


def test_model_artifact_leads_back_through_train_split_load(home: Path) -> None:
    result = ex.pipeline.run()
    steps = result.steps
    model_digest = steps["train"].outputs["model"]["digest"]
    graph = get_lineage(model_digest)
    root = ("artifact", model_digest)
    train_run = ("run", steps["train"].run_id)
    split_run = ("run", steps["split"].run_id)
    load_run = ("run", steps["load"].run_id)
    assert graph.parents(root) == [(train_run, "output")]
    train_input = ("artifact", steps["split"].outputs["train"]["digest"])
    assert graph.parents(train_run) == [(train_input, "input")]
    assert graph.parents(train_input) == [(split_run, "output")]
    load_output = ("artifact", steps["load"].outputs["load"]["digest"])
    assert graph.parents(split_run) == [(load_output, "input")]
    assert graph.parents(load_output) == [(load_run, "output")]
    assert graph.parents(load_run) == []
    assert steps["evaluate"].run_id not in graph.runs()  # downstream is not lineage
    text = graph.render()
    assert text.index("(train,") < text.index("(split,") < text.index("(load,")


def test_cached_run_lineage_follows_the_original(home: Path) -> None:
    first = ex.pipeline.run()
    second = ex.pipeline.run()
    graph = get_lineage(second.steps["evaluate"].run_id or "")
    root = ("run", second.steps["evaluate"].run_id)
    assert graph.parents(root) == [(("run", first.steps["evaluate"].run_id), "cached_from")]
    assert first.steps["load"].run_id in graph.runs()
    assert "CACHED" in graph.render().splitlines()[0]


def test_dataset_and_model_version_lineage(home: Path) -> None:
    result = ex.pipeline.run()
    client = get_client()
    load_run = result.steps["load"].run_id or ""
    record_edges(database_of(client), [("dataset", "raw@3", "run", load_run, "input")])
    registry = Registry(client)
    try:
        with pytest.warns(NoDriftReference, match="raw@3 is not in the dataset store"):
            version = registry.register_model(
                result.steps["train"].run_id or "", "example", artifact_path="outputs/model"
            )
    finally:
        registry.close()
    graph = get_lineage(f"models:/example/{version.version}")
    assert ("dataset", "raw@3") in graph.labels
    assert result.steps["split"].run_id in graph.runs()
    assert "dataset raw@3" in graph.render()
    assert get_lineage("dataset:raw@3").parents(("dataset", "raw@3")) == []


@step
def ingest(seed: int = 0) -> int:
    frame = pd.DataFrame({"x": [seed, seed + 1, seed + 2]})
    return ml.log_dataset(frame, "ingested").version


@step
def consume(ingest: int) -> float:
    return float(ml.load_dataset(f"ingested@{ingest}")["x"].sum())


@pytest.mark.parametrize("executor", ["local", "process"])
def test_datasets_logged_and_read_by_steps_are_in_the_lineage(home: Path, executor: str) -> None:
    result = Pipeline([ingest, consume], name="datasets").run(params={"seed": 5}, executor=executor)
    assert result.value("consume") == 18.0
    made_by = ("run", result.steps["ingest"].run_id)
    read_by = ("run", result.steps["consume"].run_id)
    dataset = get_lineage("dataset:ingested@1")
    assert dataset.parents(("dataset", "ingested@1")) == [(made_by, "output")]
    consumer = get_lineage(read_by[1] or "")
    assert (("dataset", "ingested@1"), "input") in consumer.parents(read_by)
    assert "dataset ingested@1" in consumer.render()
