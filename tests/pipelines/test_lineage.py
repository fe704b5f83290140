"""Lineage: from a model artifact, a run, a dataset version or a model version back upstream."""

from __future__ import annotations

from pathlib import Path

from modelloop.examples import training_pipeline as ex
from modelloop.pipelines import lineage
from modelloop.pipelines.lineage import database_of, record_edges
from modelloop.registry.client import Registry
from modelloop.tracking.fluent import get_client


def _run_names(graph: object, node: tuple[str, str]) -> list[str]:
    return [p[1] for p, rel in graph.parents(node)]  # type: ignore[attr-defined]


def test_model_artifact_leads_back_through_train_split_load(home: Path) -> None:
    result = ex.pipeline.run()
    steps = result.steps
    model_digest = steps["train"].outputs["model"]["digest"]
    graph = lineage(model_digest)
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
    graph = lineage(second.steps["evaluate"].run_id or "")
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
        version = registry.register_model(
            result.steps["train"].run_id or "", "example", artifact_path="outputs/model"
        )
    finally:
        registry.close()
    graph = lineage(f"models:/example/{version.version}")
    assert ("dataset", "raw@3") in graph.labels
    assert result.steps["split"].run_id in graph.runs()
    assert "dataset raw@3" in graph.render()
    assert lineage("dataset:raw@3").parents(("dataset", "raw@3")) == []
