"""Logged models (MLflow 3): the domain on SQLite and PostgreSQL, then the real ``mlflow`` client
against a real ``modelloop server``: create, get, finalize, tags, params, search, delete, and
``log_model`` / ``load_model`` through ``models:/m-...``."""

from __future__ import annotations

import pytest

from modelloop.artifacts import BlobStore
from modelloop.errors import InvalidArgument, NotFound
from modelloop.settings import Settings
from modelloop.store import open_database
from modelloop.tracking.entities import RunSpec
from modelloop.tracking.logged_models import (
    TAG_LOGGED_MODEL,
    LoggedModel,
    LoggedModels,
    LoggedModelSpec,
    LoggedModelStatus,
    logged_model_location,
)
from modelloop.tracking.sql import SqlTrackingStore


def _store(settings: Settings) -> SqlTrackingStore:
    return SqlTrackingStore(open_database(settings.database_url), BlobStore(settings.artifact_uri))


# -- the domain --------------------------------------------------------------------------------


def test_a_model_of_a_run_keeps_its_files_with_that_run(settings: Settings) -> None:
    store = _store(settings)
    exp = store.create_experiment("churn")
    run = store.create_run(RunSpec(exp.experiment_id))
    models = LoggedModels(store)
    model = models.create(
        LoggedModelSpec(
            exp.experiment_id,
            name="clf",
            source_run_id=run.run_id,
            tags={"team": "risk"},
            params={"alpha": "0.1"},
        )
    )
    assert model.model_id.startswith("m-")
    assert len(model.model_id) == 34
    assert (model.name, model.status, model.tags, model.params) == (
        "clf",
        LoggedModelStatus.PENDING,
        {"team": "risk"},
        {"alpha": "0.1"},
    )
    assert logged_model_location(store, model.model_id) == (
        run.run_id,
        f"models/{model.model_id}",
    )
    assert logged_model_location(store.db, model.model_id) == (
        run.run_id,
        f"models/{model.model_id}",
    )
    ready = models.finalize(model.model_id, LoggedModelStatus.READY)
    assert ready.status is LoggedModelStatus.READY
    assert ready.updated_at >= model.updated_at


def test_a_model_without_a_run_gets_a_run_of_its_own(settings: Settings) -> None:
    store = _store(settings)
    exp = store.create_experiment("churn")
    model = LoggedModels(store).create(LoggedModelSpec(exp.experiment_id))
    run_id, path = logged_model_location(store, model.model_id)
    run = store.get_run(run_id)
    assert run.experiment_id == exp.experiment_id
    assert run.tags[TAG_LOGGED_MODEL] == model.model_id
    assert model.source_run_id is None
    assert path == f"models/{model.model_id}"
    assert model.name.startswith("model-")


def test_tags_params_delete_and_refusals(settings: Settings) -> None:
    store = _store(settings)
    exp = store.create_experiment("churn")
    other = store.create_experiment("other")
    run = store.create_run(RunSpec(other.experiment_id))
    models = LoggedModels(store)
    with pytest.raises(InvalidArgument, match="belongs to experiment"):
        models.create(LoggedModelSpec(exp.experiment_id, source_run_id=run.run_id))
    with pytest.raises(NotFound):
        models.create(LoggedModelSpec("f" * 32))
    with pytest.raises(InvalidArgument, match="name"):
        models.create(LoggedModelSpec(exp.experiment_id, name="../escape"))
    model = models.create(LoggedModelSpec(exp.experiment_id, params={"a": "1"}))
    models.set_tags(model.model_id, {"k": "v", "k2": "v2"})
    models.delete_tag(model.model_id, "k")
    assert models.get(model.model_id).tags == {"k2": "v2"}
    with pytest.raises(NotFound, match="no tag"):
        models.delete_tag(model.model_id, "k")
    models.log_params(model.model_id, {"a": "1", "b": "2"})
    assert models.get(model.model_id).params == {"a": "1", "b": "2"}
    with pytest.raises(InvalidArgument, match="cannot change"):
        models.log_params(model.model_id, {"a": "9"})
    with pytest.raises(InvalidArgument, match="READY or FAILED"):
        models.finalize(model.model_id, LoggedModelStatus.PENDING)
    with pytest.raises(InvalidArgument, match="logged model id"):
        models.get("m-../../etc")
    models.delete(model.model_id)
    with pytest.raises(NotFound, match="deleted"):
        models.get(model.model_id)
    with pytest.raises(NotFound, match="deleted"):
        logged_model_location(store, model.model_id)
    assert models.get(model.model_id, allow_deleted=True).deleted


def test_search_filters_orders_and_pages(settings: Settings) -> None:
    store = _store(settings)
    exp = store.create_experiment("churn")
    elsewhere = store.create_experiment("elsewhere")
    models = LoggedModels(store)
    made = [
        models.create(LoggedModelSpec(exp.experiment_id, name=f"m{i}", tags={"parity": str(i % 2)}))
        for i in range(5)
    ]
    models.create(LoggedModelSpec(elsewhere.experiment_id, name="m0"))
    models.finalize(made[3].model_id, LoggedModelStatus.READY)
    models.delete(made[4].model_id)

    def names(page: list[LoggedModel]) -> list[str]:
        return [m.name for m in page]

    everything = models.search([exp.experiment_id], order_by=[("name", True)])
    assert names(everything.models) == ["m0", "m1", "m2", "m3"]
    assert names(models.search([exp.experiment_id], "tags.parity = '1'").models) == ["m3", "m1"]
    assert names(models.search([exp.experiment_id], "status = 'READY'").models) == ["m3"]
    assert names(
        models.search([exp.experiment_id], "name != 'm0' AND tags.parity = '0'").models
    ) == ["m2"]
    first = models.search([exp.experiment_id], order_by=[("name", False)], max_results=3)
    assert names(first.models) == ["m3", "m2", "m1"]
    assert first.next_offset == 3
    rest = models.search([exp.experiment_id], order_by=[("name", False)], max_results=3, offset=3)
    assert names(rest.models) == ["m0"]
    assert rest.next_offset is None
    with pytest.raises(InvalidArgument, match="Unsupported logged model filter"):
        models.search([exp.experiment_id], "metrics.auc > 0.5")
    with pytest.raises(InvalidArgument, match="Cannot order"):
        models.search([exp.experiment_id], order_by=[("metrics.auc", True)])


def test_run_outputs_are_recorded_once(settings: Settings) -> None:
    store = _store(settings)
    exp = store.create_experiment("churn")
    run = store.create_run(RunSpec(exp.experiment_id))
    models = LoggedModels(store)
    model = models.create(LoggedModelSpec(exp.experiment_id, source_run_id=run.run_id))
    models.record_output(run.run_id, model.model_id, step=3)
    models.record_output(run.run_id, model.model_id, step=3)
    assert models.outputs_of_run(run.run_id) == [(model.model_id, 3)]
    with pytest.raises(NotFound):
        models.record_output("0" * 32, model.model_id)
