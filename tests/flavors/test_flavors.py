"""Each flavor saves and loads a real model with identical predictions, from a frame and from
the serving matrix, and writes a manifest the registry can rely on."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
import xgboost as xgb
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from modelloop.errors import AlreadyExists, InvalidArgument
from modelloop.flavors import (
    MANIFEST_NAME,
    ModelManifest,
    OutputSpec,
    infer_signature,
    load_model,
    save_model,
)
from tests.flavors import numeric, transactions

FRAME, LABEL = transactions()
NUMERIC = numeric(FRAME)


def _lgb_booster() -> tuple[Any, pd.DataFrame, Callable[[pd.DataFrame], np.ndarray]]:
    data = lgb.Dataset(FRAME, LABEL)
    booster = lgb.train({"objective": "binary", "verbose": -1, "num_leaves": 7}, data, 20)
    return booster, FRAME, booster.predict


def _xgb_booster() -> tuple[Any, pd.DataFrame, Callable[[pd.DataFrame], np.ndarray]]:
    booster = xgb.train(
        {"objective": "binary:logistic", "max_depth": 3}, xgb.DMatrix(NUMERIC, LABEL), 20
    )
    return booster, NUMERIC, lambda frame: booster.predict(xgb.DMatrix(frame))


def _classifier(model: Any, frame: pd.DataFrame) -> Callable[[], tuple[Any, pd.DataFrame, Any]]:
    def fit() -> tuple[Any, pd.DataFrame, Callable[[pd.DataFrame], np.ndarray]]:
        fitted = model.fit(frame, LABEL)
        return fitted, frame, lambda f: fitted.predict_proba(f)[:, 1]

    return fit


MODELS: dict[str, Callable[[], tuple[Any, pd.DataFrame, Callable[[pd.DataFrame], np.ndarray]]]] = {
    "sklearn-logistic": _classifier(LogisticRegression(max_iter=1000), NUMERIC),
    "sklearn-scaler-gbm": _classifier(
        make_pipeline(StandardScaler(), GradientBoostingClassifier(n_estimators=20)), NUMERIC
    ),
    "sklearn-scaler-forest": _classifier(
        make_pipeline(StandardScaler(), RandomForestClassifier(n_estimators=10, random_state=0)),
        NUMERIC,
    ),
    "lgbm-classifier-categorical": _classifier(
        lgb.LGBMClassifier(n_estimators=20, num_leaves=7, verbose=-1), FRAME
    ),
    "lgbm-booster-categorical": _lgb_booster,
    "xgb-classifier": _classifier(xgb.XGBClassifier(n_estimators=20, max_depth=3), NUMERIC),
    "xgb-booster": _xgb_booster,
}
FLAVOR = {"sklearn": "sklearn", "lgbm": "lightgbm", "xgb": "xgboost"}


@pytest.mark.parametrize("name", MODELS)
def test_round_trip_predicts_the_same(name: str, tmp_path: Path) -> None:
    model, frame, predict = MODELS[name]()
    expected = np.asarray(predict(frame), dtype=np.float64)
    manifest = save_model(model, tmp_path / "m", training_data=frame.assign(fraud=LABEL))
    loaded = load_model(tmp_path / "m")

    assert loaded.flavor == manifest.flavor == FLAVOR[name.split("-")[0]]
    assert loaded.signature.names == tuple(frame.columns)  # the label column is left out
    assert loaded.signature.output.kind == "probability"
    np.testing.assert_allclose(loaded.predict(frame), expected, rtol=1e-12, atol=0)
    # The serving path: JSON-like records -> validated matrix -> predict_matrix.
    X = loaded.signature.to_matrix(frame.to_dict("records"))
    np.testing.assert_allclose(loaded.predict_matrix(X), expected, rtol=1e-12, atol=0)
    np.testing.assert_allclose(loaded.predict_matrix(X[:1]), expected[:1], rtol=1e-12, atol=0)


def test_lightgbm_categories_map_to_the_training_codes(tmp_path: Path) -> None:
    model = lgb.LGBMClassifier(n_estimators=20, num_leaves=7, verbose=-1).fit(FRAME, LABEL)
    save_model(model, tmp_path / "m", training_data=FRAME)
    loaded = load_model(tmp_path / "m")
    # The request's own category order must not matter: only the names do.
    shuffled = FRAME.assign(
        merchant=FRAME.merchant.cat.reorder_categories(["fuel", "online", "travel", "grocery"])
    )
    records = json.loads(FRAME.to_json(orient="records"))  # NaN -> null, as clients send
    expected = model.predict_proba(FRAME)[:, 1]
    np.testing.assert_array_equal(loaded.predict(shuffled), expected)
    np.testing.assert_array_equal(
        loaded.predict_matrix(loaded.signature.to_matrix(records)), expected
    )
    np.testing.assert_array_equal(loaded.predict(loaded.signature.to_frame(records)), expected)
    assert loaded.manifest.signature.output == OutputSpec("probability", ("0", "1"))


def test_lightgbm_names_with_spaces_keep_the_training_names(tmp_path: Path) -> None:
    frame = NUMERIC.rename(columns={"amount": "amount usd"})
    model = lgb.LGBMRegressor(n_estimators=5, verbose=-1).fit(frame, LABEL)
    assert model.booster_.feature_name()[0] == "amount_usd"
    save_model(model, tmp_path / "m", training_data=frame.assign(fraud=LABEL))
    loaded = load_model(tmp_path / "m")
    assert loaded.signature.names[0] == "amount usd"
    assert loaded.signature.output == OutputSpec("score")
    X = loaded.signature.to_matrix(frame.to_dict("records"))
    np.testing.assert_array_equal(loaded.predict_matrix(X), model.predict(frame))


def test_a_regressor_predicts_scores(tmp_path: Path) -> None:
    frame = NUMERIC.rename(columns={"hour": "hour of day"})
    model = Ridge().fit(frame, FRAME.amount)
    save_model(model, tmp_path / "m", training_data=frame)
    loaded = load_model(tmp_path / "m")
    assert loaded.signature.output == OutputSpec("score")
    assert loaded.signature.names[1] == "hour of day"
    np.testing.assert_allclose(loaded.predict(frame), model.predict(frame), rtol=1e-12)


def test_a_multiclass_model_returns_one_column_per_class(tmp_path: Path) -> None:
    target = FRAME.merchant.astype(str)
    model = LogisticRegression(max_iter=1000).fit(NUMERIC.drop(columns="merchant"), target)
    save_model(model, tmp_path / "m", training_data=NUMERIC.drop(columns="merchant"))
    loaded = load_model(tmp_path / "m")
    assert loaded.signature.output.classes == ("fuel", "grocery", "online", "travel")
    proba = loaded.predict(NUMERIC)
    assert proba.shape == (len(NUMERIC), 4)
    np.testing.assert_allclose(proba, model.predict_proba(NUMERIC.drop(columns="merchant")))


def test_a_pipeline_with_text_columns_serves_from_frames(tmp_path: Path) -> None:
    frame = NUMERIC.assign(country=np.where(FRAME.is_online, "CH", "DE"))
    pipeline = make_pipeline(
        ColumnTransformer(
            [("text", OneHotEncoder(handle_unknown="ignore"), ["country"])],
            remainder="passthrough",
        ),
        LogisticRegression(max_iter=1000),
    ).fit(frame, LABEL)
    save_model(pipeline, tmp_path / "m", training_data=frame)
    loaded = load_model(tmp_path / "m")
    assert not loaded.signature.matrix_ready
    served = loaded.predict(loaded.signature.to_frame(frame.to_dict("records")))
    np.testing.assert_allclose(served, pipeline.predict_proba(frame)[:, 1], rtol=1e-12)


def test_the_manifest_records_what_the_registry_needs(tmp_path: Path) -> None:
    model = xgb.XGBClassifier(n_estimators=5).fit(NUMERIC, LABEL)
    metadata = {"run_id": "abc", "dataset_digests": ["f00d"], "metrics": {"auc": 0.9}}
    manifest = save_model(model, tmp_path / "m", training_data=NUMERIC, metadata=metadata)
    on_disk = json.loads((tmp_path / "m" / MANIFEST_NAME).read_text())
    assert ModelManifest.from_dict(on_disk) == manifest
    assert manifest.metadata == metadata
    assert manifest.model_files == ("model.ubj",)
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["model.ubj", MANIFEST_NAME]
    assert {"xgboost", "numpy", "pandas", "python", "modelloop"} <= set(manifest.libraries)
    assert manifest.flavor_config == {"objective": "binary:logistic"}
    assert manifest.signature.output == OutputSpec("probability", ("0", "1"))


def test_a_given_signature_is_used_as_is(tmp_path: Path) -> None:
    model = LogisticRegression().fit(NUMERIC, LABEL)
    signature = infer_signature(NUMERIC, OutputSpec("probability", ("legit", "fraud")))
    manifest = save_model(model, tmp_path / "m", signature=signature)
    assert manifest.signature == signature
    assert "background.npy" not in manifest.model_files  # no training rows to explain against


def test_saving_refuses_what_could_not_be_served(tmp_path: Path) -> None:
    model = LogisticRegression().fit(NUMERIC, LABEL)
    with pytest.raises(InvalidArgument, match="training_data or signature"):
        save_model(model, tmp_path / "a")
    with pytest.raises(InvalidArgument, match="same order"):
        save_model(model, tmp_path / "b", signature=infer_signature(NUMERIC[NUMERIC.columns[::-1]]))
    with pytest.raises(InvalidArgument, match="lacks the model's features"):
        save_model(model, tmp_path / "c", training_data=NUMERIC.drop(columns="hour"))
    with pytest.raises(InvalidArgument, match="unfitted"):
        save_model(LogisticRegression(), tmp_path / "f", training_data=NUMERIC)
    with pytest.raises(InvalidArgument, match="JSON"):
        save_model(model, tmp_path / "d", training_data=NUMERIC, metadata={"when": object()})
    assert not (tmp_path / "b").exists() or not any((tmp_path / "b").iterdir())
    save_model(model, tmp_path / "e", training_data=NUMERIC)
    with pytest.raises(AlreadyExists):
        save_model(model, tmp_path / "e", training_data=NUMERIC)


def test_a_newer_package_format_is_refused(tmp_path: Path) -> None:
    model = Ridge().fit(NUMERIC, FRAME.amount)
    save_model(model, tmp_path / "m", training_data=NUMERIC)
    manifest = json.loads((tmp_path / "m" / MANIFEST_NAME).read_text())
    (tmp_path / "m" / MANIFEST_NAME).write_text(json.dumps({**manifest, "format_version": 2}))
    with pytest.raises(InvalidArgument, match="upgrade modelloop"):
        load_model(tmp_path / "m")
    with pytest.raises(InvalidArgument, match="not a model package"):
        load_model(tmp_path)


def test_a_loaded_model_needs_no_package_directory(tmp_path: Path) -> None:
    model = LogisticRegression().fit(NUMERIC, LABEL)
    save_model(model, tmp_path / "m", training_data=NUMERIC)
    loaded = load_model(tmp_path / "m")
    for file in (tmp_path / "m").iterdir():
        file.unlink()
    assert loaded.contributions(NUMERIC.head(2)).values.shape == (2, 5)


def test_importing_flavors_leaves_model_libraries_unloaded() -> None:
    heavy = ("lightgbm", "xgboost", "sklearn", "skops", "shap")
    imports = "import sys, modelloop.flavors, modelloop.explain"
    code = f"{imports}; print([m for m in {heavy!r} if m in sys.modules])"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
