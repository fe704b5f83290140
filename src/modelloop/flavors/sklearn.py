"""scikit-learn estimators and Pipelines, stored with skops instead of pickle.

skops rebuilds objects from a JSON schema and refuses types it does not trust. Its defaults
already trust scikit-learn estimators; a few Cython internals of common models (tree
structures, neighbour indexes) are not, so they are allowlisted here by exact name. Anything
else (a user's function in a FunctionTransformer, a custom class) must be named in
``trusted_types`` by whoever saves and whoever loads, because trusting it means importing and
later calling that code. The check reads the types from the file itself, never from the
manifest, which could have been edited.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from modelloop.errors import InvalidArgument, UnsafeFormat
from modelloop.flavors.package import LoadedModel, ModelManifest, SavedModel
from modelloop.flavors.signature import OutputSpec

MODEL_FILE = "model.skops"
ALLOWED_TYPES = frozenset(
    {
        "numpy.dtype",
        "sklearn.calibration._CalibratedClassifier",
        "sklearn.calibration._SigmoidCalibration",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        "sklearn.metrics._dist_metrics.EuclideanDistance64",
        "sklearn.neighbors._ball_tree.BallTree",
        "sklearn.neighbors._kd_tree.KDTree",
        "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",
        "sklearn.neural_network._stochastic_optimizers.SGDOptimizer",
        "sklearn.tree._tree.Tree",
    }
)


def save(model: Any, directory: Path, trusted_types: Sequence[str]) -> SavedModel:
    import skops
    import skops.io as sio
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    try:
        check_is_fitted(model)
    except NotFittedError as exc:
        raise InvalidArgument(f"cannot save an unfitted model: {exc}") from exc
    file = directory / MODEL_FILE
    sio.dump(model, file)
    found = _check_trusted(file, trusted_types, "save")
    described = describe(model)
    return dataclasses.replace(
        described,
        libraries={**described.libraries, "skops": skops.__version__},
        config={"skops_untrusted_types": found},
    )


def describe(model: Any) -> SavedModel:
    """What a fitted estimator is (output, features); explained through shap."""
    import sklearn

    names = getattr(model, "feature_names_in_", None)
    return SavedModel(
        files=(MODEL_FILE,),
        output=_output(model),
        feature_names=None if names is None else tuple(str(n) for n in names),
        n_features=getattr(model, "n_features_in_", None),
        libraries={"scikit-learn": sklearn.__version__},
        needs_background=True,
    )


def load(directory: Path, manifest: ModelManifest, trusted_types: Sequence[str]) -> LoadedModel:
    return SklearnModel(manifest, directory, read_skops(directory / MODEL_FILE, trusted_types))


def read_skops(file: Path, trusted_types: Sequence[str]) -> Any:
    """The object in a skops file, once its every non-default type is trusted."""
    import skops.io as sio

    return sio.load(file, trusted=_check_trusted(file, trusted_types, "load"))


def _check_trusted(file: Path, trusted_types: Sequence[str], verb: str) -> list[str]:
    """The file's non-default types, once each is allowlisted or named by the caller."""
    import skops.io as sio

    found: list[str] = sio.get_untrusted_types(file=file)
    refused = sorted(set(found) - ALLOWED_TYPES - set(trusted_types))
    if refused:
        if verb == "save":
            remedy = f"save_model(..., trusted_types={refused})"
        else:  # ml.load_model(uri) and serving take no trusted_types: only the package loader does
            remedy = (
                f"load the package with modelloop.flavors.load_model(path, trusted_types="
                f"{refused}) (for a registered version, path = "
                "ml.download_model(ml.resolve_model_uri(uri))); ml.load_model(uri), "
                "allow_pickle=True and serving do not trust them"
            )
        raise UnsafeFormat(
            f"{file.name} contains types that are not trusted by default: {refused}. Loading "
            f"them imports and may run their code; if you trust it, {remedy}."
        )
    return found


def _output(model: Any) -> OutputSpec:
    from sklearn.base import is_classifier

    if not is_classifier(model):
        return OutputSpec("score")
    classes = tuple(str(c) for c in model.classes_)
    if hasattr(model, "predict_proba"):
        return OutputSpec("probability", classes)
    return OutputSpec("class", classes)


class SklearnModel(LoadedModel):
    def __init__(self, manifest: ModelManifest, directory: Path, model: Any) -> None:
        super().__init__(manifest, directory)
        self.model = model
        self._fit_on_frame = hasattr(model, "feature_names_in_")
        self._kind = self.signature.output.kind
        self._binary = len(self.signature.output.classes or ()) == 2

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        features = self._features(frame)
        # A model fit on an array warns on a DataFrame (and checks nothing more by its names).
        return self._predict(features if self._fit_on_frame else features.to_numpy())

    def predict_matrix(self, X: np.ndarray) -> np.ndarray:
        # A model fit on a DataFrame warns (and may mis-handle categoricals) on a bare array.
        return self._predict(self.signature.matrix_to_frame(X) if self._fit_on_frame else X)

    def _predict(self, X: Any) -> np.ndarray:
        if self._kind != "probability":
            return np.asarray(self.model.predict(X))
        proba = np.asarray(self.model.predict_proba(X), dtype=np.float64)
        return proba[:, 1] if self._binary else proba
