"""XGBoost Boosters and scikit-learn-style estimators, stored as XGBoost's UBJSON model.

An ``XGBClassifier`` is reduced to its Booster (whose ``binary:logistic`` output already is
P(classes_[1])) plus its class labels in the manifest (a Booster trained directly: the labels
its objective implies, 0/1 or 0..K-1). Prediction uses ``inplace_predict``
(no DMatrix per request); contributions are XGBoost's TreeSHAP (``pred_contribs``) in margin
space. XGBoost computes in float32, so both are float32 values widened to float64.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from modelloop.flavors.package import Contributions, LoadedModel, ModelManifest, SavedModel
from modelloop.flavors.signature import OutputKind, OutputSpec

MODEL_FILE = "model.ubj"
_PROBABILITY_OBJECTIVES = ("binary:logistic", "multi:softprob", "reg:logistic")


def save(model: Any, directory: Path, trusted_types: Sequence[str]) -> SavedModel:
    import xgboost

    booster = model if isinstance(model, xgboost.Booster) else model.get_booster()
    booster.save_model(directory / MODEL_FILE)
    return describe(model, booster)


def describe(model: Any, booster: Any) -> SavedModel:
    """What the model is (output, features), from the model and its Booster."""
    import xgboost

    learner = json.loads(booster.save_config())["learner"]
    objective = learner["objective"]["name"]
    classes = getattr(model, "classes_", None)
    if classes is None and objective.startswith("binary:"):
        classes = (0, 1)
    elif classes is None and objective.startswith("multi:"):
        classes = range(int(learner["learner_model_param"]["num_class"]))
    kind: OutputKind = "probability" if objective in _PROBABILITY_OBJECTIVES else "score"
    if objective == "multi:softmax":
        kind = "class"
    names = booster.feature_names
    return SavedModel(
        files=(MODEL_FILE,),
        output=OutputSpec(kind, None if classes is None else tuple(str(c) for c in classes)),
        feature_names=None if names is None else tuple(names),
        n_features=booster.num_features(),
        libraries={"xgboost": xgboost.__version__},
        config={"objective": objective},
    )


def load(directory: Path, manifest: ModelManifest, trusted_types: Sequence[str]) -> LoadedModel:
    import xgboost

    booster = xgboost.Booster()
    booster.load_model(directory / MODEL_FILE)
    return XgboostModel(manifest, directory, booster)


class XgboostModel(LoadedModel):
    def __init__(self, manifest: ModelManifest, directory: Path, booster: Any) -> None:
        super().__init__(manifest, directory)
        self.booster = booster

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return np.asarray(self.booster.inplace_predict(self._features(frame)), dtype=np.float64)

    def predict_matrix(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(self.booster.inplace_predict(X), dtype=np.float64)

    def contributions_matrix(self, X: np.ndarray) -> Contributions:
        import xgboost

        matrix = xgboost.DMatrix(
            X,
            feature_names=self.booster.feature_names,
            feature_types=self.booster.feature_types,
            enable_categorical=True,
        )
        return self._split(self.booster.predict(matrix, pred_contribs=True), X)
