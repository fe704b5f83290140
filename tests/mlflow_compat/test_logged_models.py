"""Logged models (MLflow 3): the domain on SQLite and PostgreSQL, then the real ``mlflow`` client
against a real ``modelloop server``: create, get, finalize, tags, params, search, delete,
``log_model`` / ``load_model`` through ``models:/m-...``, metrics logged for a model, and the
models a run took as inputs and output."""

from __future__ import annotations

import math
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from mlflow.entities import LoggedModelStatus as MlflowLoggedModelStatus
from mlflow.exceptions import MlflowException

import modelloop as ml
from modelloop.artifacts import BlobStore
from modelloop.auth import Role, Users
from modelloop.errors import InvalidArgument, NotFound, UnsafeFormat
from modelloop.registry.reference import NoDriftReference
from modelloop.settings import Settings
from modelloop.store import open_database
from modelloop.tracking.client import DEFAULT_EXPERIMENT
from modelloop.tracking.entities import RunSpec
from modelloop.tracking.logged_models import (
    TAG_LOGGED_MODEL,
    DatasetRef,
    LoggedModel,
    LoggedModels,
    LoggedModelSpec,
    LoggedModelStatus,
    ModelMetric,
    OrderBy,
    describe_mlflow_model,
    logged_model_location,
)
from modelloop.tracking.sql import SqlTrackingStore
from tests.conftest import store_settings
from tests.live_server import live_server
from tests.mlflow_compat.conftest import MlflowServer

# MLflow's own import-time notice (mlflow.pyfunc describes its agent types with Any).
pytestmark = pytest.mark.filterwarnings("ignore:.*Any type hint is inferred:UserWarning")


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
        models.search([exp.experiment_id], "name LIKE 'm%'")
    with pytest.raises(InvalidArgument, match="Unsupported logged model filter"):
        models.search([exp.experiment_id], "metrics.auc > 'high'")
    with pytest.raises(InvalidArgument, match="Cannot order"):
        models.search([exp.experiment_id], order_by=[("params.C", True)])


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


def test_metrics_logged_for_a_model_are_its_own(settings: Settings) -> None:
    store = _store(settings)
    exp = store.create_experiment("churn")
    run = store.create_run(RunSpec(exp.experiment_id))
    models = LoggedModels(store)
    model = models.create(LoggedModelSpec(exp.experiment_id, source_run_id=run.run_id))
    other = models.create(LoggedModelSpec(exp.experiment_id))
    points = [
        ModelMetric(model.model_id, "acc", 0.8, 0, 1000, run.run_id),
        ModelMetric(model.model_id, "acc", 0.9, 1, 2000, run.run_id, "holdout", "d1"),
        ModelMetric(model.model_id, "loss", math.nan, 1, 2000, run.run_id),
    ]
    models.log_metrics(points)
    got = models.get(model.model_id).metrics
    assert got[:2] == tuple(points[:2])  # in the order logged, every field kept
    assert got[2][:2] == (model.model_id, "loss")
    assert math.isnan(got[2].value)  # NaN is kept
    assert models.get(other.model_id).metrics == ()
    page = models.search([exp.experiment_id], f"name = '{model.name}'").models
    assert [len(m.metrics) for m in page] == [3]

    with pytest.raises(NotFound):
        models.log_metrics([ModelMetric(f"m-{'0' * 32}", "acc", 1.0, 0, 1, run.run_id)])
    with pytest.raises(NotFound):
        models.log_metrics([ModelMetric(model.model_id, "acc", 1.0, 0, 1, "0" * 32)])
    with pytest.raises(InvalidArgument, match="give both or neither"):
        models.log_metrics([ModelMetric(model.model_id, "acc", 1.0, 0, 1, run.run_id, "holdout")])
    models.delete(other.model_id)
    with pytest.raises(NotFound, match="does not exist or was deleted"):
        models.log_metrics([ModelMetric(other.model_id, "acc", 1.0, 0, 1, run.run_id)])
    assert len(models.get(model.model_id).metrics) == 3  # nothing of the refused batches


def test_search_compares_and_orders_by_a_models_latest_metric(settings: Settings) -> None:
    store = _store(settings)
    exp = store.create_experiment("churn")
    run = store.create_run(RunSpec(exp.experiment_id))
    models = LoggedModels(store)
    a, b, c = (models.create(LoggedModelSpec(exp.experiment_id, name=n)) for n in "abc")
    models.log_metrics(
        [
            ModelMetric(a.model_id, "acc", 0.7, 0, 10, run.run_id),
            ModelMetric(a.model_id, "acc", 0.95, 1, 5, run.run_id),  # a later step wins
            ModelMetric(b.model_id, "acc", 0.8, 0, 10, run.run_id),
            ModelMetric(b.model_id, "acc", 0.99, 0, 20, run.run_id, "holdout", "d1"),
            ModelMetric(c.model_id, "loss", 0.1, 0, 10, run.run_id),
        ]
    )

    def names(filter: str | None = None, **kwargs: Any) -> list[str]:
        return [m.name for m in models.search([exp.experiment_id], filter, **kwargs).models]

    assert names("metrics.acc > 0.9", order_by=[("name", True)]) == ["a", "b"]
    assert names("metrics.acc >= 0.99") == ["b"]  # b's latest: same step, later time
    assert names("metrics.acc < 0.96") == ["a"]
    assert names("metrics.acc != 0.95") == ["b"]  # c has no acc: it never matches
    assert names("metrics.`acc` = 0.95 AND name = 'a'") == ["a"]
    assert names("metrics.acc > 0.5 AND name = 'c'") == []
    assert names("metrics.loss <= 1e-1") == ["c"]
    # Models without the metric sort last, ascending or descending.
    assert names(order_by=[OrderBy("metrics.acc", ascending=False)]) == ["b", "a", "c"]
    assert names(order_by=[OrderBy("metrics.acc")]) == ["a", "b", "c"]
    # Datasets narrow the metrics: only b's holdout point counts.
    holdout = [DatasetRef("holdout")]
    assert names(datasets=holdout) == ["b"]
    assert names("metrics.acc > 0.5", datasets=holdout) == ["b"]
    assert names(datasets=[DatasetRef("holdout", "other-digest")]) == []
    by_holdout = OrderBy("metrics.acc", True, dataset_name="holdout")
    assert names(order_by=[by_holdout, ("name", True)]) == ["b", "a", "c"]


def test_a_run_names_the_models_it_took_and_output(settings: Settings) -> None:
    store = _store(settings)
    exp = store.create_experiment("churn")
    train = store.create_run(RunSpec(exp.experiment_id))
    evaluate = store.create_run(RunSpec(exp.experiment_id))
    models = LoggedModels(store)
    model = models.create(LoggedModelSpec(exp.experiment_id, source_run_id=train.run_id))
    models.record_output(train.run_id, model.model_id, step=2)
    models.record_input(evaluate.run_id, model.model_id)
    models.record_input(evaluate.run_id, model.model_id)
    links = models.models_of_runs([train.run_id, evaluate.run_id])
    assert (links[train.run_id].inputs, links[train.run_id].outputs) == ([], [(model.model_id, 2)])
    assert (links[evaluate.run_id].inputs, links[evaluate.run_id].outputs) == ([model.model_id], [])
    with pytest.raises(NotFound):
        models.record_input("0" * 32, model.model_id)


# -- through a server, with the real mlflow client -----------------------------------------------


def _fitted() -> tuple[Any, np.ndarray[Any, Any]]:
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(7)
    x = rng.random((60, 3))
    y = (x[:, 0] + 0.1 * x[:, 1] > 0.5).astype(int)
    return LogisticRegression().fit(x, y), x


def test_a_logged_model_round_trips_through_the_client(
    mlflow_server: MlflowServer, tmp_path: Path
) -> None:
    store = _store(mlflow_server.settings)
    exp = store.create_experiment("churn")
    model, x = _fitted()
    client = MlflowClient()
    created = client.create_logged_model(
        exp.experiment_id, name="clf", tags={"team": "risk"}, params={"C": "1.0"}
    )
    assert created.status == MlflowLoggedModelStatus.PENDING
    assert created.artifact_location == (
        f"mlflow-artifacts:/{exp.experiment_id}/models/{created.model_id}/artifacts"
    )
    mlflow.sklearn.save_model(model, str(tmp_path / "model"))
    client.log_model_artifacts(created.model_id, str(tmp_path / "model"))
    ready = client.finalize_logged_model(created.model_id, MlflowLoggedModelStatus.READY)
    assert (ready.status, ready.name, ready.tags, ready.params) == (
        MlflowLoggedModelStatus.READY,
        "clf",
        {"team": "risk"},
        {"C": "1.0"},
    )

    # The files are the run's artifacts under models/<id>, bytes as the client wrote them.
    run_id, path = logged_model_location(store, created.model_id)
    stored = {a.path for a in store.list_artifacts(run_id, path)}
    assert f"{path}/MLmodel" in stored
    with store.open_artifact(run_id, f"{path}/MLmodel") as f:
        assert f.read() == (tmp_path / "model" / "MLmodel").read_bytes()

    uri = f"models:/{created.model_id}"
    loaded = mlflow.sklearn.load_model(uri)
    assert (loaded.predict(x) == model.predict(x)).all()
    assert (mlflow.pyfunc.load_model(uri).predict(x) == model.predict(x)).all()
    names = {f.path for f in client.list_logged_model_artifacts(created.model_id)}
    assert "MLmodel" in names
    with httpx.Client(base_url=mlflow_server.url) as http:
        listed = http.get(
            f"/ajax-api/2.0/mlflow/logged-models/{created.model_id}/artifacts/directories"
        ).json()
        assert listed["root_uri"] == created.artifact_location
        assert {f["path"] for f in listed["files"]} == names
        escape = http.get(
            f"/api/2.0/mlflow/logged-models/{created.model_id}/artifacts/directories",
            params={"artifact_directory_path": "../../.."},
        )
        assert escape.status_code == 400


def test_tags_params_search_and_delete_through_the_client(mlflow_server: MlflowServer) -> None:
    store = _store(mlflow_server.settings)
    exp = store.create_experiment("churn")
    client = MlflowClient()
    a = client.create_logged_model(exp.experiment_id, name="a", params={"p": "1"})
    b = client.create_logged_model(exp.experiment_id, name="b", tags={"stage": "dev"})
    client.set_logged_model_tags(a.model_id, {"stage": "prod", "x": "y"})
    client.delete_logged_model_tag(a.model_id, "x")
    assert client.get_logged_model(a.model_id).tags == {"stage": "prod"}
    client.log_model_params(a.model_id, {"q": "2"})
    assert client.get_logged_model(a.model_id).params == {"p": "1", "q": "2"}

    found = client.search_logged_models([exp.experiment_id], filter_string="tags.stage = 'dev'")
    assert [m.model_id for m in found] == [b.model_id]
    page = client.search_logged_models(
        [exp.experiment_id], order_by=[{"field_name": "name", "ascending": True}], max_results=1
    )
    assert [m.name for m in page] == ["a"]
    assert page.token is not None
    rest = client.search_logged_models(
        [exp.experiment_id],
        order_by=[{"field_name": "name", "ascending": True}],
        max_results=1,
        page_token=page.token,
    )
    assert [m.name for m in rest] == ["b"]
    assert rest.token is None
    with pytest.raises(MlflowException) as caught:
        client.search_logged_models([exp.experiment_id], filter_string="name LIKE 'a%'")
    assert caught.value.error_code == "INVALID_PARAMETER_VALUE"

    client.delete_logged_model(b.model_id)
    with pytest.raises(MlflowException) as caught:
        client.get_logged_model(b.model_id)
    assert caught.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    assert [m.model_id for m in client.search_logged_models([exp.experiment_id])] == [a.model_id]
    with pytest.raises(MlflowException) as caught:
        client.get_logged_model("m-../../x")
    assert caught.value.error_code == "INVALID_PARAMETER_VALUE"


def test_model_files_are_reached_only_through_their_experiment(
    mlflow_server: MlflowServer,
) -> None:
    store = _store(mlflow_server.settings)
    exp = store.create_experiment("churn")
    other = store.create_experiment("other")
    model = MlflowClient().create_logged_model(exp.experiment_id, name="clf")
    with httpx.Client(base_url=mlflow_server.url) as http:
        wrong = f"{other.experiment_id}/models/{model.model_id}/artifacts/MLmodel"
        answer = http.put(f"/api/2.0/mlflow-artifacts/artifacts/{wrong}", content=b"x")
        assert answer.status_code == 404
        assert answer.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
        bad = f"{exp.experiment_id}/models/m-nothex/artifacts/MLmodel"
        answer = http.put(f"/api/2.0/mlflow-artifacts/artifacts/{bad}", content=b"x")
        assert answer.status_code == 400
        assert answer.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    run_id, path = logged_model_location(store, model.model_id)
    assert store.list_artifacts(run_id, path) == []


# -- registered and loaded by modelloop -----------------------------------------------------------


def _log_with_mlflow(
    server: MlflowServer, model: object, tmp_path: Path, **save: Any
) -> tuple[str, str]:
    """A logged model as MLflow's log_model uploads it; its run and path in modelloop."""
    store = _store(server.settings)
    exp = store.get_experiment_by_name("churn") or store.create_experiment("churn")
    client = MlflowClient()
    created = client.create_logged_model(exp.experiment_id, name="clf")
    local = tmp_path / created.model_id
    mlflow.sklearn.save_model(model, str(local), **save)
    client.log_model_artifacts(created.model_id, str(local))
    client.finalize_logged_model(created.model_id, MlflowLoggedModelStatus.READY)
    return logged_model_location(store, created.model_id)


@pytest.mark.filterwarnings("ignore:Saving scikit-learn models in the pickle")
def test_modelloop_registers_and_loads_what_mlflow_logged(
    mlflow_server: MlflowServer, tmp_path: Path
) -> None:
    model, x = _fitted()
    client = ml.Client(settings=mlflow_server.settings)
    frame = pd.DataFrame(x, columns=["f0", "f1", "f2"])

    run_id, path = _log_with_mlflow(mlflow_server, model, tmp_path)
    with pytest.warns(NoDriftReference):
        version = client.registry.register_model(run_id, "churn", artifact_path=path)
    assert version.flavor == "sklearn"
    assert [f["name"] for f in (version.signature or {})["inputs"]] == ["f0", "f1", "f2"]
    loaded = client.registry.load_model("models:/churn/1")
    np.testing.assert_allclose(loaded.predict(frame), model.predict_proba(x)[:, 1])

    run_id, path = _log_with_mlflow(
        mlflow_server,
        model,
        tmp_path,
        serialization_format="cloudpickle",
        signature=mlflow.models.infer_signature(frame),  # its inputs, without unpickling it
    )
    with pytest.warns(NoDriftReference):
        pickled = client.registry.register_model(run_id, "churn", artifact_path=path)
    assert pickled.flavor == "python"
    with pytest.raises(UnsafeFormat, match=r"MLflow's sklearn flavor.*allow_pickle=True"):
        client.registry.load_model("models:/churn/2")
    unpickled = client.registry.load_model("models:/churn/2", allow_pickle=True)
    np.testing.assert_allclose(unpickled.predict(frame), model.predict_proba(x)[:, 1])


def test_the_default_experiment_0_is_modelloops_default(mlflow_server: MlflowServer) -> None:
    client = MlflowClient()
    model = client.create_logged_model("0", name="anywhere")
    store = _store(mlflow_server.settings)
    default = store.get_experiment_by_name(DEFAULT_EXPERIMENT)
    assert default is not None
    assert model.experiment_id == default.experiment_id
    assert [m.model_id for m in client.search_logged_models(["0"])] == [model.model_id]


@pytest.fixture
def viewer_and_editor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A server with users: alice edits, vera only reads; yields (url, settings, tokens)."""
    with store_settings(tmp_path, "sqlite") as settings:
        users = Users(open_database(settings.database_url))
        tokens = {
            name: users.add(name, role, actor="admin")[1]
            for name, role in (("alice", Role.editor), ("vera", Role.viewer))
        }
        with live_server(settings) as url:
            monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
            mlflow.set_tracking_uri(url)
            try:
                yield url, settings, tokens
            finally:
                mlflow.set_tracking_uri("")


def test_viewers_read_logged_models_and_editors_write_them(
    viewer_and_editor: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    url, settings, tokens = viewer_and_editor
    store = _store(settings)
    exp = store.create_experiment("churn")
    client = MlflowClient(url)
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", tokens["alice"])
    model = client.create_logged_model(exp.experiment_id, name="clf")
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "MLmodel").write_text("flavors: {}\n")
    client.log_model_artifacts(model.model_id, str(tmp_path / "m"))
    run = store.get_run(logged_model_location(store, model.model_id)[0])
    assert run.user == "alice"  # the run made to hold the model is the token's user's

    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", tokens["vera"])
    assert [m.model_id for m in client.search_logged_models([exp.experiment_id])] == [
        model.model_id
    ]
    assert client.get_logged_model(model.model_id).name == "clf"
    names = [f.path for f in client.list_logged_model_artifacts(model.model_id)]
    assert names == ["MLmodel"]
    # Refused by the server's role check, before any route (403, in modelloop's own code).
    with pytest.raises(MlflowException, match="'vera' has the viewer role"):
        client.create_logged_model(exp.experiment_id, name="nope")
    with pytest.raises(MlflowException, match="'vera' has the viewer role"):
        client.set_logged_model_tags(model.model_id, {"k": "v"})
    assert client.get_logged_model(model.model_id).tags == {}
    root = f"{exp.experiment_id}/models/{model.model_id}/artifacts"
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {tokens['vera']}"}) as h:
        assert h.get(f"/api/2.0/mlflow-artifacts/artifacts/{root}/MLmodel").status_code == 200
        refused = h.put(f"/api/2.0/mlflow-artifacts/artifacts/{root}/other.txt", content=b"x")
    assert refused.status_code == 403
    assert [f.path for f in client.list_logged_model_artifacts(model.model_id)] == ["MLmodel"]


def test_describe_mlflow_model_reads_the_model_or_nothing(settings: Settings) -> None:
    store = _store(settings)
    exp = store.create_experiment("churn")
    run = store.create_run(RunSpec(exp.experiment_id))
    assert describe_mlflow_model(store, run.run_id, "model") == (None, None)  # no MLmodel
    store.put_artifact(run.run_id, "torch/MLmodel", b"flavors:\n  pytorch:\n    model_data: data\n")
    assert describe_mlflow_model(store, run.run_id, "torch") == (None, None)
    model, _ = _fitted()
    with tempfile.TemporaryDirectory() as tmp:
        mlflow.sklearn.save_model(model, tmp + "/m")
        for file in Path(tmp, "m").iterdir():
            store.put_artifact(run.run_id, f"sk/{file.name}", file)
    flavor, signature = describe_mlflow_model(store, run.run_id, "sk")
    assert flavor == "sklearn"
    assert signature is not None
    assert [f["name"] for f in signature["inputs"]] == ["f0", "f1", "f2"]
    assert signature["output"]["kind"] == "probability"
    assert list(signature["output"]["classes"]) == ["0", "1"]


def test_metrics_logged_with_a_model_id_are_the_models_and_the_runs(
    mlflow_server: MlflowServer,
) -> None:
    model, x = _fitted()
    holdout = mlflow.data.from_pandas(pd.DataFrame(x, columns=["f0", "f1", "f2"]), name="holdout")
    mlflow.set_experiment("evals")
    with mlflow.start_run() as run:
        info = mlflow.sklearn.log_model(model, name="clf")
        mlflow.log_metric("acc", 0.9, step=1, model_id=info.model_id)
        mlflow.log_metrics({"f1": 0.8, "auc": 0.7}, step=1, model_id=info.model_id)
        mlflow.log_metric("acc", 0.95, step=2, model_id=info.model_id, dataset=holdout)
        mlflow.log_metric("loss", 0.3, step=5)  # no model at step 5: the run's alone
    run_id = run.info.run_id

    got = mlflow.get_logged_model(info.model_id).metrics
    assert sorted((m.key, m.value, m.step, m.run_id, m.model_id) for m in got) == [
        ("acc", 0.9, 1, run_id, info.model_id),
        ("acc", 0.95, 2, run_id, info.model_id),
        ("auc", 0.7, 1, run_id, info.model_id),
        ("f1", 0.8, 1, run_id, info.model_id),
    ]
    on_holdout = [(m.dataset_name, m.dataset_digest) for m in got if m.step == 2]
    assert on_holdout == [("holdout", holdout.digest)]
    client = MlflowClient()
    fetched = client.get_run(run_id)
    assert fetched.data.metrics == {"acc": 0.95, "f1": 0.8, "auc": 0.7, "loss": 0.3}
    assert [(o.model_id, o.step) for o in fetched.outputs.model_outputs] == [(info.model_id, 0)]
    [found] = mlflow.search_runs(output_format="list")
    assert [o.model_id for o in found.outputs.model_outputs] == [info.model_id]

    # An unknown model fails the request before the run has the point.
    with pytest.raises(MlflowException) as caught:
        client.log_metric(run_id, "late", 1.0, model_id=f"m-{'0' * 32}")
    assert caught.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    assert "late" not in client.get_run(run_id).data.metrics


def test_search_logged_models_by_metrics_through_the_client(mlflow_server: MlflowServer) -> None:
    mlflow.set_experiment("evals")
    ids = {}
    with mlflow.start_run():
        for name, acc in (("good", 0.9), ("poor", 0.4), ("unscored", None)):
            model = mlflow.create_external_model(name=name)
            ids[name] = model.model_id
            if acc is not None:
                mlflow.log_metric("acc", acc, model_id=model.model_id)
        holdout = mlflow.data.from_pandas(pd.DataFrame({"f0": [1.0]}), name="holdout")
        mlflow.log_metric("recall", 0.5, model_id=ids["poor"], dataset=holdout)

    def names(**kwargs: Any) -> list[str]:
        found = mlflow.search_logged_models(output_format="list", **kwargs)
        return [m.name for m in found]

    assert names(filter_string="metrics.acc > 0.5") == ["good"]
    assert names(filter_string="metrics.acc <= 0.5") == ["poor"]
    assert names(filter_string="metrics.acc >= 0.4 AND name = 'poor'") == ["poor"]
    descending = [{"field_name": "metrics.acc", "ascending": False}]
    assert names(order_by=descending) == ["good", "poor", "unscored"]
    assert names(datasets=[{"dataset_name": "holdout"}]) == ["poor"]
    assert names(datasets=[{"dataset_name": "holdout", "dataset_digest": holdout.digest}]) == [
        "poor"
    ]
    assert names(datasets=[{"dataset_name": "train"}]) == []


def test_an_evaluation_run_takes_the_model_as_an_input(mlflow_server: MlflowServer) -> None:
    model, _ = _fitted()
    mlflow.set_experiment("evals")
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(model, name="clf")
    with mlflow.start_run() as evaluation:
        mlflow.log_metric("acc", 0.9, model_id=info.model_id)  # the client logs the input
    fetched = MlflowClient().get_run(evaluation.info.run_id)
    assert [i.model_id for i in fetched.inputs.model_inputs] == [info.model_id]
    assert list(fetched.outputs.model_outputs) == []
    [point] = mlflow.get_logged_model(info.model_id).metrics
    assert (point.key, point.run_id) == ("acc", evaluation.info.run_id)
