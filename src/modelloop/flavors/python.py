"""Any Python object that predicts, pickled: an explicit opt-in, never a default.

For models no safe flavor covers. Saving and loading both require ``allow_pickle=True``
(checked in :mod:`modelloop.flavors.package`), because loading a pickle runs code chosen by
its author. cloudpickle is used when installed so that lambdas and notebook-defined classes
survive; the file is read back with the standard ``pickle`` module either way.

The model is called with a DataFrame of the signature's columns: ``model.predict(frame)`` if
it has a ``predict`` method, else ``model(frame)``; it must return one value per row.
"""

from __future__ import annotations

import importlib
import pickle
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from modelloop.errors import InvalidArgument
from modelloop.flavors.package import LoadedModel, ModelManifest, SavedModel
from modelloop.flavors.signature import OutputSpec

MODEL_FILE = "model.pkl"


def save(model: Any, directory: Path, trusted_types: Sequence[str]) -> SavedModel:
    try:
        serializer: Any = importlib.import_module("cloudpickle")
    except ImportError:  # pragma: no cover - cloudpickle is optional
        serializer = pickle
    with (directory / MODEL_FILE).open("wb") as fh:
        serializer.dump(model, fh)
    libraries = {"cloudpickle": serializer.__version__} if serializer is not pickle else {}
    return SavedModel(
        files=(MODEL_FILE,),
        output=OutputSpec("score"),
        feature_names=None,
        n_features=None,
        libraries=libraries,
        config={"serializer": serializer.__name__},
        needs_background=True,
    )


def load(directory: Path, manifest: ModelManifest, trusted_types: Sequence[str]) -> LoadedModel:
    with (directory / MODEL_FILE).open("rb") as fh:
        model = pickle.load(fh)  # noqa: S301 - the caller opted in with allow_pickle=True
    return PythonModel(manifest, directory, model)


class PythonModel(LoadedModel):
    def __init__(self, manifest: ModelManifest, directory: Path, model: Any) -> None:
        super().__init__(manifest, directory)
        self.model = model
        self._call = getattr(model, "predict", model)
        if not callable(self._call):
            raise InvalidArgument(f"the unpickled {type(model).__name__} cannot predict")

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return np.asarray(self._call(self._features(frame)))

    def predict_matrix(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(self._call(self.signature.matrix_to_frame(X)))
