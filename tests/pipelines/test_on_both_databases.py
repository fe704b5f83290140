"""Caching, lineage and reproduce on SQLite and PostgreSQL alike (the metadata they keep is SQL)."""

from __future__ import annotations

import pytest

import modelloop as ml
from modelloop.examples import training_pipeline as ex
from modelloop.settings import Settings


@pytest.fixture
def store_env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Point the SDK's default client at the ``settings`` store (SQLite or PostgreSQL)."""
    monkeypatch.delenv("MODELLOOP_TRACKING_URI", raising=False)
    monkeypatch.setenv("MODELLOOP_HOME", str(settings.home))
    monkeypatch.setenv("MODELLOOP_DATABASE_URL", settings.database_url)
    monkeypatch.chdir(settings.home.parent)
    return settings


def test_cache_lineage_and_reproduce(store_env: Settings) -> None:
    first = ex.pipeline.run(params={"seed": 3})
    again = ex.pipeline.run(params={"seed": 3})
    assert {s.state for s in first.steps.values()} == {"SUCCEEDED"}
    assert {s.state for s in again.steps.values()} == {"CACHED"}
    graph = ml.get_lineage(first.steps["evaluate"].outputs["evaluate"]["digest"])
    assert {first.steps[n].run_id for n in ("load", "split", "train", "evaluate")} <= set(
        graph.runs()
    )
    report = ml.reproduce(first.run_id)
    assert report.ok, report.render()
