"""MLflow's autologging, unchanged, against a real ``modelloop server``: ``mlflow.sklearn.autolog``
and ``mlflow.lightgbm.autolog`` log params, metrics, plots and a logged model, all of which land
in modelloop's store; the model loads back through MLflow and, when its format is safe,
through modelloop's registry."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import lightgbm as lgb
import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score

import modelloop as ml
from modelloop.artifacts import BlobStore
from modelloop.errors import UnsafeFormat
from modelloop.registry.reference import NoDriftReference
from modelloop.store import open_database
from modelloop.tracking.logged_models import LoggedModels, logged_model_location
from modelloop.tracking.sql import SqlTrackingStore
from tests.mlflow_compat.conftest import MlflowServer
from tests.serving.conftest import serving

pytestmark = [
    pytest.mark.filterwarnings("ignore:.*Any type hint is inferred:UserWarning"),
    # What autolog itself warns about, none of it modelloop's doing.
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore:.*pickle or cloudpickle format"),
    pytest.mark.filterwarnings("ignore:.*Hint. Inferred schema contains integer column"),
]


@pytest.fixture
def data() -> tuple[pd.DataFrame, pd.Series[Any]]:
    rng = np.random.default_rng(11)
    frame = pd.DataFrame(rng.random((300, 4)), columns=["amount", "age", "score", "tenure"])
    label = ((frame.amount + 0.5 * frame.score + 0.1 * rng.random(300)) > 0.8).astype(int)
    return frame, label


@pytest.fixture
def sklearn_autolog() -> Iterator[None]:
    mlflow.sklearn.autolog(silent=True)
    yield
    mlflow.sklearn.autolog(disable=True)


@pytest.fixture
def lightgbm_autolog() -> Iterator[None]:
    mlflow.lightgbm.autolog(silent=True)
    yield
    mlflow.lightgbm.autolog(disable=True)


def _sql(server: MlflowServer) -> SqlTrackingStore:
    """The store behind the server, for what only its database says (logged models)."""
    settings = server.settings
    return SqlTrackingStore(open_database(settings.database_url), BlobStore(settings.artifact_uri))


def _logged_model(run_id: str) -> Any:
    found = mlflow.search_logged_models(
        filter_string=f"source_run_id = '{run_id}'", output_format="list"
    )
    assert len(found) == 1
    return found[0]


@pytest.mark.usefixtures("sklearn_autolog")
def test_sklearn_autolog(mlflow_server: MlflowServer, data: Any) -> None:
    frame, label = data
    mlflow.set_experiment("autolog-sklearn")
    with mlflow.start_run() as run:
        model = LogisticRegression(C=0.5, max_iter=200).fit(frame, label)
    run_id = run.info.run_id

    # Params, metrics and plots, read back with modelloop itself.
    stored = ml.Client(settings=mlflow_server.settings).get_run(run_id)
    assert stored.params["C"] == "0.5"
    assert stored.params["max_iter"] == "200"
    assert stored.metrics["training_accuracy_score"] == pytest.approx(
        accuracy_score(label, model.predict(frame))
    )
    paths = [a.path for a in ml.Client(settings=mlflow_server.settings).list_artifacts(run_id)]
    assert "estimator.html" in paths
    assert "training_confusion_matrix.png" in paths

    # The logged model: READY, its files the run's artifacts, loadable by MLflow.
    logged = _logged_model(run_id)
    assert logged.status.to_proto() == mlflow.entities.LoggedModelStatus.READY.to_proto()
    holder, folder = logged_model_location(_sql(mlflow_server), logged.model_id)
    assert holder == run_id
    assert f"{folder}/MLmodel" in paths
    loaded = mlflow.sklearn.load_model(f"models:/{logged.model_id}")
    assert (loaded.predict(frame) == model.predict(frame)).all()
    assert (
        mlflow.pyfunc.load_model(f"models:/{logged.model_id}").predict(frame)
        == model.predict(frame)
    ).all()


@pytest.mark.usefixtures("sklearn_autolog")
def test_an_autologged_pickle_is_refused_by_modelloop_until_opted_in(
    mlflow_server: MlflowServer, data: Any
) -> None:
    frame, label = data
    mlflow.set_experiment("autolog-pickle")
    with mlflow.start_run() as run:
        model = LogisticRegression().fit(frame, label)
    logged = _logged_model(run.info.run_id)
    client = ml.Client(settings=mlflow_server.settings)
    run_id, folder = logged_model_location(_sql(mlflow_server), logged.model_id)
    mlmodel = client.read_artifact(run_id, f"{folder}/MLmodel").decode()
    if "serialization_format: skops" in mlmodel:
        pytest.skip("this MLflow autologs scikit-learn with skops: nothing to refuse")
    with pytest.warns(NoDriftReference):
        version = client.registry.register_model(run_id, "autologged", artifact_path=folder)
    assert version.flavor == "python"
    with pytest.raises(UnsafeFormat, match=r"MLflow's sklearn flavor.*allow_pickle=True"):
        client.registry.load_model("models:/autologged/1")
    unpickled = client.registry.load_model("models:/autologged/1", allow_pickle=True)
    np.testing.assert_allclose(unpickled.predict(frame), model.predict_proba(frame)[:, 1])


@pytest.mark.usefixtures("lightgbm_autolog")
def test_lightgbm_autolog(mlflow_server: MlflowServer, data: Any) -> None:
    frame, label = data
    train, valid = frame.iloc[:200], frame.iloc[200:]
    mlflow.set_experiment("autolog-lightgbm")
    with mlflow.start_run() as run:
        booster = lgb.train(
            {"objective": "binary", "learning_rate": 0.2, "verbose": -1},
            lgb.Dataset(train, label.iloc[:200]),
            num_boost_round=12,
            valid_sets=[lgb.Dataset(valid, label.iloc[200:])],
            valid_names=["valid"],
        )
    run_id = run.info.run_id
    client = ml.Client(settings=mlflow_server.settings)
    stored = client.get_run(run_id)
    assert stored.params["learning_rate"] == "0.2"
    assert stored.params["num_boost_round"] == "12"
    history = client.metric_history(run_id, "valid-binary_logloss")
    assert set(history["step"]) == set(range(12))  # one point per boosting round
    importance = json.loads(client.read_artifact(run_id, "feature_importance_gain.json"))
    assert set(importance) == {"amount", "age", "score", "tenure"}

    logged = _logged_model(run_id)
    native = mlflow.lightgbm.load_model(f"models:/{logged.model_id}")
    np.testing.assert_allclose(native.predict(frame), booster.predict(frame))

    # The same files, registered and loaded by modelloop: LightGBM's text model, no pickle.
    holder, folder = logged_model_location(_sql(mlflow_server), logged.model_id)
    with pytest.warns(NoDriftReference):
        version = client.registry.register_model(holder, "fraud", artifact_path=folder)
    assert version.flavor == "lightgbm"
    loaded = client.registry.load_model("models:/fraud/1")
    assert loaded.signature.names == ("amount", "age", "score", "tenure")
    np.testing.assert_allclose(loaded.predict(frame), booster.predict(frame))

    # And served by modelloop, as any registered version.
    client.registry.set_alias("fraud", "live", 1, reason="autologged")
    deployment = {"name": "fraud-online", "model": "fraud@live"}
    with serving(mlflow_server.settings, deployment) as live:
        answer = live.post("/predict", frame.iloc[:5].to_dict(orient="records"))
    assert answer.status_code == 200, answer.text
    served = [row["prediction"] for row in answer.json()["predictions"]]
    np.testing.assert_allclose(served, booster.predict(frame.iloc[:5]), rtol=1e-12)


def test_run_outputs_name_the_logged_model(mlflow_server: MlflowServer, data: Any) -> None:
    frame, label = data
    mlflow.set_experiment("outputs")
    with mlflow.start_run() as run:
        info = mlflow.sklearn.log_model(LogisticRegression().fit(frame, label), name="clf")
    outputs = LoggedModels(_sql(mlflow_server)).outputs_of_run(run.info.run_id)
    assert outputs == [(info.model_id, 0)]
    assert MlflowClient().get_logged_model(info.model_id).source_run_id == run.info.run_id
