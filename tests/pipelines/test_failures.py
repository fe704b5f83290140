"""A failing step fails the pipeline run, skips what depends on it, and keeps what it had."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from modelloop.errors import NotFound
from modelloop.pipelines import Pipeline, PipelineRun, step
from modelloop.tracking.entities import RunStatus
from modelloop.tracking.fluent import get_client


@step
def base() -> list[int]:
    return [1, 2, 3]


@step
def fragile(base: list[int], fail: bool = False) -> int:
    if fail:
        raise RuntimeError("fragile broke on purpose")
    return sum(base)


@step
def after(fragile: int) -> int:
    return fragile + 1


@step
def after_after(after: int) -> int:
    return after + 1


@step
def sibling(base: list[int]) -> int:
    return len(base)


PIPE = Pipeline([base, fragile, after, after_after, sibling], name="fragile")


def test_failure_marks_run_failed_and_downstream_skipped(home: Path) -> None:
    result = PIPE.run(params={"fail": True})
    client = get_client()
    states = {n: s.state for n, s in result.steps.items()}
    assert states == {
        "base": "SUCCEEDED",
        "fragile": "FAILED",
        "after": "SKIPPED",
        "after_after": "SKIPPED",
        "sibling": "SUCCEEDED",
    }
    assert result.status == "FAILED"
    pipeline_run = client.get_run(result.run_id)
    assert pipeline_run.status is RunStatus.FAILED
    assert "fragile" in (pipeline_run.error or "")
    failed = result.steps["fragile"]
    assert "fragile broke on purpose" in (failed.error or "")
    assert client.get_run(failed.run_id or "").status is RunStatus.FAILED
    assert result.steps["after"].run_id is None
    assert result.value("base") == [1, 2, 3]  # upstream output kept
    children = client.find_runs(filter=f"attributes.parent_run_id = '{result.run_id}'")
    assert sorted(r.name for r in children) == ["base", "fragile", "sibling"]
    with pytest.raises(NotFound):
        result.value("after")
    shown = PipelineRun.load(result.run_id)
    assert shown.steps["after"].state == "SKIPPED"


def test_next_run_reuses_upstream_and_runs_the_fixed_step(home: Path) -> None:
    broken = PIPE.run(params={"fail": True})
    fixed = PIPE.run(params={"fail": False})
    states = {n: s.state for n, s in fixed.steps.items()}
    assert states == {
        "base": "CACHED",
        "fragile": "SUCCEEDED",
        "after": "SUCCEEDED",
        "after_after": "SUCCEEDED",
        "sibling": "CACHED",
    }
    assert fixed.steps["base"].cached_from == broken.steps["base"].run_id
    assert fixed.value("after_after") == 8


def test_failed_step_keeps_a_one_line_reason_also_for_older_records(home: Path) -> None:
    result = PIPE.run(params={"fail": True})
    assert result.steps["fragile"].reason == "RuntimeError: fragile broke on purpose"
    assert PipelineRun.load(result.run_id).steps["fragile"].reason == result.steps["fragile"].reason
    client = get_client()
    doc = result.to_dict()
    for state in doc["steps"]:
        del state["reason"]  # as pipeline.json was written before steps kept a reason
    older = client.create_run("fragile", name="older")
    client.log_bytes(older.run_id, json.dumps(doc).encode(), "pipeline.json")
    loaded = PipelineRun.load(older.run_id).steps
    assert loaded["fragile"].reason == "RuntimeError: fragile broke on purpose"
    assert loaded["base"].reason is None
