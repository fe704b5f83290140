"""LightGBM Boosters and scikit-learn-style estimators, stored as LightGBM's own text model.

The text model holds the trees, the objective, the feature names and the pandas categories
seen at fit time, which is everything prediction needs: an ``LGBMClassifier`` is reduced to
its Booster (whose binary output already is P(classes_[1])) plus its class labels in the
manifest; a Booster trained directly knows no labels, but its objective says them (0/1 for
binary, 0..K-1 for multiclass), so feedback can be checked against them. Contributions are
LightGBM's exact TreeSHAP (``pred_contrib``), in raw score space.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from modelloop.errors import InvalidArgument
from modelloop.flavors.package import Contributions, LoadedModel, ModelManifest, SavedModel
from modelloop.flavors.signature import OutputSpec

MODEL_FILE = "model.txt"
_PROBABILITY_OBJECTIVES = ("binary", "multiclass", "multiclassova", "cross_entropy", "xentropy")


def save(model: Any, directory: Path, trusted_types: Sequence[str]) -> SavedModel:
    import lightgbm

    booster = model if isinstance(model, lightgbm.Booster) else model.booster_
    booster.save_model(directory / MODEL_FILE)
    text = (directory / MODEL_FILE).read_text(encoding="utf-8")
    return describe(model, booster, text)


def describe(model: Any, booster: Any, text: str) -> SavedModel:
    """What the model is (output, features), from the model and its text form ``text``."""
    import lightgbm

    objective = _header(text, "objective").split(" ")[0]
    classes = getattr(model, "classes_", None)
    if classes is None and objective == "binary":
        classes = (0, 1)
    elif classes is None and objective in ("multiclass", "multiclassova"):
        classes = range(int(_header(text, "num_class")))
    output = OutputSpec(
        "probability" if objective in _PROBABILITY_OBJECTIVES else "score",
        None if classes is None else tuple(str(c) for c in classes),
    )
    names = tuple(booster.feature_name())
    generated = names == tuple(f"Column_{i}" for i in range(len(names)))
    return SavedModel(
        files=(MODEL_FILE,),
        output=output,
        feature_names=None if generated else names,
        n_features=len(names),
        libraries={"lightgbm": lightgbm.__version__},
        config={"objective": objective},
    )


def load(directory: Path, manifest: ModelManifest, trusted_types: Sequence[str]) -> LoadedModel:
    import lightgbm

    booster = lightgbm.Booster(model_file=directory / MODEL_FILE)
    return LightgbmModel(manifest, directory, booster)


def _header(text: str, key: str) -> str:
    found = re.search(rf"^{key}=(.*)$", text[:100_000], flags=re.MULTILINE)
    if found is None:
        raise InvalidArgument(f"LightGBM model text has no {key!r} line")
    return found.group(1).strip()


class LightgbmModel(LoadedModel):
    def __init__(self, manifest: ModelManifest, directory: Path, booster: Any) -> None:
        super().__init__(manifest, directory)
        self.booster = booster

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        # A DataFrame keeps LightGBM's own mapping of pandas categories to training codes.
        return np.asarray(self.booster.predict(self._features(frame)), dtype=np.float64)

    def predict_matrix(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(self.booster.predict(X), dtype=np.float64)

    def contributions_matrix(self, X: np.ndarray) -> Contributions:
        return self._split(self.booster.predict(X, pred_contrib=True), X)
