"""Models written by MLflow's own flavors (``mlflow.<flavor>.save_model``, as ``log_model``
uploads them) load through modelloop's loader: LightGBM text, XGBoost json/ubj and skops
natively, pickle only on opt-in, and a file that is not what its ``MLmodel`` says is refused."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import lightgbm as lgb
import mlflow
import numpy as np
import pandas as pd
import pytest
import xgboost as xgb
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression

from modelloop import flavors
from modelloop.errors import UnsafeFormat

pytestmark = [
    pytest.mark.filterwarnings("ignore:.*Any type hint is inferred:UserWarning"),
    # MLflow's own advice when asked to save with pickle, which these tests do on purpose.
    pytest.mark.filterwarnings("ignore:Saving .* in the pickle or cloudpickle format"),
]


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, pd.Series[Any]]:
    rng = np.random.default_rng(3)
    frame = pd.DataFrame(rng.random((200, 3)), columns=["amount", "age", "score"])
    label = ((frame.amount + 0.3 * frame.score) > 0.65).astype(int)
    return frame, label


def _proba(model: Any, frame: pd.DataFrame) -> np.ndarray:
    return np.asarray(model.predict_proba(frame))[:, 1]


def test_lightgbm_booster_loads_natively(data: Any, tmp_path: Path) -> None:
    frame, label = data
    booster = lgb.train({"objective": "binary", "verbose": -1}, lgb.Dataset(frame, label), 10)
    mlflow.lightgbm.save_model(booster, tmp_path / "m")
    assert (tmp_path / "m" / "model.lgb").read_bytes().startswith(b"tree\n")
    loaded = flavors.load_model(tmp_path / "m")
    assert loaded.flavor == "lightgbm"
    assert loaded.signature.names == ("amount", "age", "score")
    assert loaded.signature.output.kind == "probability"
    np.testing.assert_allclose(loaded.predict(frame), booster.predict(frame))
    manifest = flavors.read_manifest(tmp_path / "m")
    assert manifest.flavor_config["source"] == "mlflow"
    assert manifest.model_files == ("model.lgb",)


@pytest.mark.parametrize("model_format", ["ubj", "json"])
def test_xgboost_loads_natively(data: Any, tmp_path: Path, model_format: str) -> None:
    frame, label = data
    model = xgb.XGBClassifier(n_estimators=10, max_depth=3).fit(frame, label)
    mlflow.xgboost.save_model(model, tmp_path / "m", model_format=model_format)
    loaded = flavors.load_model(tmp_path / "m")
    assert loaded.flavor == "xgboost"
    assert loaded.signature.output.classes == ("0", "1")
    np.testing.assert_allclose(loaded.predict(frame), _proba(model, frame), rtol=1e-6)


def test_sklearn_skops_loads_with_the_mlmodel_signature(data: Any, tmp_path: Path) -> None:
    frame, label = data
    model = RandomForestClassifier(n_estimators=5, random_state=0).fit(frame.to_numpy(), label)
    # Fitted on an array: the model knows no names, the MLmodel signature does.
    mlflow.sklearn.save_model(
        model,
        tmp_path / "m",
        signature=mlflow.models.infer_signature(frame, label),
        skops_trusted_types=["sklearn.tree._tree.Tree"],  # MLflow asks; modelloop allowlists it
    )
    loaded = flavors.load_model(tmp_path / "m")
    assert loaded.flavor == "sklearn"
    assert loaded.signature.names == ("amount", "age", "score")
    np.testing.assert_allclose(loaded.predict(frame), _proba(model, frame.to_numpy()))


def test_an_lgbm_estimator_in_skops_loads(data: Any, tmp_path: Path) -> None:
    frame, label = data
    model = lgb.LGBMClassifier(n_estimators=10, verbose=-1).fit(frame, label)
    mlflow.lightgbm.save_model(model, tmp_path / "m")
    loaded = flavors.load_model(tmp_path / "m")
    np.testing.assert_allclose(loaded.predict(frame), _proba(model, frame))


@pytest.mark.parametrize("serialization", ["cloudpickle", "pickle"])
def test_pickle_formats_are_refused_unless_opted_in(
    data: Any, tmp_path: Path, serialization: str
) -> None:
    frame, label = data
    model = LogisticRegression().fit(frame, label)
    mlflow.sklearn.save_model(model, tmp_path / "m", serialization_format=serialization)
    with pytest.raises(UnsafeFormat, match="MLflow's sklearn flavor") as caught:
        flavors.load_model(tmp_path / "m")
    assert "allow_pickle=True" in str(caught.value)
    with pytest.raises(UnsafeFormat, match="allow_pickle=True"):
        flavors.read_manifest(tmp_path / "m")
    loaded = flavors.load_model(tmp_path / "m", allow_pickle=True)
    assert loaded.flavor == "python"
    np.testing.assert_allclose(loaded.predict(frame), _proba(model, frame))


def test_an_lgbm_estimator_pickled_is_refused(data: Any, tmp_path: Path) -> None:
    frame, label = data
    model = lgb.LGBMClassifier(n_estimators=5, verbose=-1).fit(frame, label)
    mlflow.lightgbm.save_model(model, tmp_path / "m", serialization_format="cloudpickle")
    with pytest.raises(UnsafeFormat, match="MLflow's lightgbm flavor"):
        flavors.load_model(tmp_path / "m")


class _Boom:
    def __reduce__(self) -> tuple[Any, ...]:
        return (print, ("unpickled!",))


def test_a_pickle_passed_off_as_a_safe_format_is_refused(
    data: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    frame, label = data
    booster = lgb.train({"objective": "binary", "verbose": -1}, lgb.Dataset(frame, label), 3)
    mlflow.lightgbm.save_model(booster, tmp_path / "lgb")
    (tmp_path / "lgb" / "model.lgb").write_bytes(pickle.dumps(_Boom()))
    with pytest.raises(UnsafeFormat, match="is a pickle"):
        flavors.load_model(tmp_path / "lgb", allow_pickle=True)

    mlflow.sklearn.save_model(LogisticRegression().fit(frame, label), tmp_path / "sk")
    (tmp_path / "sk" / "model.skops").write_bytes(pickle.dumps(_Boom()))
    with pytest.raises(UnsafeFormat, match="is a pickle"):
        flavors.load_model(tmp_path / "sk", allow_pickle=True)
    assert "unpickled!" not in capsys.readouterr().out


def test_files_outside_the_model_and_unknown_flavors_are_refused(data: Any, tmp_path: Path) -> None:
    frame, label = data
    booster = lgb.train({"objective": "binary", "verbose": -1}, lgb.Dataset(frame, label), 3)
    mlflow.lightgbm.save_model(booster, tmp_path / "m")
    mlmodel = tmp_path / "m" / "MLmodel"
    original = mlmodel.read_text()
    mlmodel.write_text(original.replace("data: model.lgb", "data: ../../etc/passwd"))
    with pytest.raises(UnsafeFormat, match="not a plain file"):
        flavors.load_model(tmp_path / "m")
    outside = tmp_path / "outside.lgb"
    outside.write_bytes((tmp_path / "m" / "model.lgb").read_bytes())
    (tmp_path / "m" / "link.lgb").symlink_to(outside)
    mlmodel.write_text(original.replace("data: model.lgb", "data: link.lgb"))
    with pytest.raises(UnsafeFormat, match="not a plain file"):
        flavors.load_model(tmp_path / "m")

    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "MLmodel").write_text(
        "flavors:\n  python_function:\n    loader_module: my_module\n"
    )
    with pytest.raises(UnsafeFormat, match="not ones modelloop loads"):
        flavors.load_model(tmp_path / "other")
