"""A model package on disk: a manifest, the model file(s), and the refusal to unpickle.

    <dir>/modelloop-model.json   the ModelManifest (flavor, files, signature, versions, metadata)
    <dir>/model.skops|model.txt|model.ubj|model.pkl
    <dir>/background.npy         optional: training rows (signature matrix) for shap

Loading never trusts the manifest alone: every listed file is checked by name and by content
before a flavor reads it, so a package whose manifest says "lightgbm" but whose file is a pickle
is refused. Pickle is only read by the opt-in ``python`` flavor with ``allow_pickle=True``.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
import platform
import re
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from modelloop._version import __version__
from modelloop.errors import AlreadyExists, InvalidArgument, UnsafeFormat
from modelloop.flavors.signature import OutputSpec, Signature, infer_signature

MANIFEST_NAME = "modelloop-model.json"
MLMODEL_NAME = "MLmodel"  # an MLflow model's description (modelloop.flavors.mlmodel reads it)
FORMAT_VERSION = 1
BACKGROUND_FILE = "background.npy"
BACKGROUND_ROWS = 50
_MAX_MANIFEST_BYTES = 10_000_000
_FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,200}")
_PICKLE_SUFFIXES = (".pkl", ".pickle", ".joblib", ".cloudpickle")
_SAFE_HEADERS = {  # what the safe flavors' files start with, by suffix
    ".skops": b"PK\x03\x04",
    ".txt": b"tree\n",
    ".ubj": b"{",
    ".json": b"{",
    ".npy": b"\x93NUMPY",
}
_FLAVORS = ("sklearn", "lightgbm", "xgboost", "python")
PICKLE_RISK = (
    "unpickling runs whatever code the file's author chose (the class of CVE-2024-37052, "
    "CVE-2024-37056 and CVE-2025-27520)"
)


@dataclass(frozen=True)
class ModelManifest:
    flavor: str
    model_files: tuple[str, ...]
    signature: Signature
    libraries: dict[str, str]
    metadata: dict[str, Any]
    format_version: int = FORMAT_VERSION
    flavor_config: dict[str, Any] = field(default_factory=dict)
    """What the flavor needs back at load time (classes, objective, skops types, serializer)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": self.format_version,
            "flavor": self.flavor,
            "model_files": list(self.model_files),
            "signature": self.signature.to_dict(),
            "libraries": dict(self.libraries),
            "metadata": dict(self.metadata),
            "flavor_config": dict(self.flavor_config),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ModelManifest:
        try:
            version = int(d.get("format_version", FORMAT_VERSION))
            files = d["model_files"]
            if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
                raise TypeError("model_files must be a list of file names")
            manifest = cls(
                flavor=str(d["flavor"]),
                model_files=tuple(files),
                signature=Signature.from_dict(d["signature"]),
                libraries={str(k): str(v) for k, v in dict(d.get("libraries") or {}).items()},
                metadata=dict(d.get("metadata") or {}),
                format_version=version,
                flavor_config=dict(d.get("flavor_config") or {}),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidArgument(f"malformed model manifest: {exc!r}") from exc
        if version > FORMAT_VERSION:
            raise InvalidArgument(
                f"model package format {version} is newer than this modelloop understands "
                f"({FORMAT_VERSION}): upgrade modelloop to load it"
            )
        return manifest


@dataclass(frozen=True)
class Contributions:
    """Per-row feature attributions: ``values.sum(1) + base_values`` is the model's output in
    its raw space (log-odds for LightGBM/XGBoost classifiers, the prediction for shap)."""

    feature_names: tuple[str, ...]
    values: np.ndarray
    base_values: np.ndarray
    data: np.ndarray | None = None
    """The explained rows' feature values (object array), so reason codes can quote them."""


@dataclass(frozen=True)
class SavedModel:
    """What a flavor's ``save`` wrote and learned about the model."""

    files: tuple[str, ...]
    output: OutputSpec
    feature_names: tuple[str, ...] | None  # None when the model was fit without names
    n_features: int | None
    libraries: dict[str, str]
    config: dict[str, Any] = field(default_factory=dict)
    needs_background: bool = False  # explained through shap, which needs training rows


class LoadedModel(ABC):
    """A model ready to predict, whatever its flavor. Holds no reference to its directory."""

    def __init__(self, manifest: ModelManifest, directory: Path) -> None:
        self.flavor = manifest.flavor
        self.manifest = manifest
        self.signature = manifest.signature
        self._background: np.ndarray | None = None
        if BACKGROUND_FILE in manifest.model_files:
            self._background = np.load(directory / BACKGROUND_FILE, allow_pickle=False)

    @abstractmethod
    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """Binary classifier: 1-d P(positive class); multiclass: (rows, classes); else 1-d."""

    @abstractmethod
    def predict_matrix(self, X: np.ndarray) -> np.ndarray:
        """Like :meth:`predict`, from a :meth:`Signature.to_matrix` result (the hot path)."""

    def contributions(self, frame: pd.DataFrame) -> Contributions:
        """Per-row feature attributions of the frame's rows."""
        return self.contributions_matrix(self.signature.frame_to_matrix(frame))

    def contributions_matrix(self, X: np.ndarray) -> Contributions:
        """Attributions of a :meth:`Signature.to_matrix` result. By default shap's, of
        :meth:`predict_matrix` against the training rows saved with the model; tree flavors
        use their library's exact TreeSHAP instead."""
        if self._background is None:
            raise InvalidArgument("no background data: save the model with training_data")
        return shap_contributions(self, X, self._background)

    def _split(self, raw: np.ndarray, X: np.ndarray) -> Contributions:
        """Contributions from a tree library's (rows, features + 1) array, bias last."""
        raw = np.asarray(raw, dtype=np.float64)
        if raw.ndim != 2 or raw.shape[1] != X.shape[1] + 1:
            raise InvalidArgument("contributions are only supported for single-output models")
        names, values = self.signature.names, self.signature.matrix_values(X)
        return Contributions(names, raw[:, :-1], raw[:, -1], values)

    def _features(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The frame as the model takes it, checked against the signature as requests are
        (InvalidInput naming each column of the wrong type), never the library's own error."""
        return self.signature.conform(frame)


def save_model(
    model: object,
    path: str | Path,
    *,
    training_data: pd.DataFrame | None = None,
    signature: Signature | None = None,
    allow_pickle: bool = False,
    trusted_types: Sequence[str] = (),
    metadata: Mapping[str, Any] | None = None,
) -> ModelManifest:
    """Write ``model`` as a package in the (new or empty) directory ``path``.

    ``trusted_types`` vouches for skops types outside the built-in allowlist (the same list
    must be passed to :func:`load_model`).
    """
    if signature is None and training_data is None:
        raise InvalidArgument("pass training_data or signature: serving needs the signature")
    directory = Path(path)
    if directory.exists() and any(directory.iterdir()):
        raise AlreadyExists(f"{directory} exists and is not empty")
    try:
        json.dumps(dict(metadata or {}), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidArgument(f"metadata must be JSON-serialisable: {exc}") from exc
    flavor = _detect(model)
    if flavor == "python" and not allow_pickle:
        raise UnsafeFormat(
            f"{type(model).__qualname__} is not a scikit-learn, LightGBM or XGBoost model, so it "
            f"can only be saved with pickle, and {PICKLE_RISK}. Convert it to one of those "
            "libraries, or pass allow_pickle=True to save it as the 'python' flavor (its "
            "loaders will also have to pass allow_pickle=True)."
        )
    directory.mkdir(parents=True, exist_ok=True)
    try:
        manifest = _write(model, flavor, directory, training_data, signature, trusted_types)
    except BaseException:
        for written in directory.iterdir():  # leave no half package behind
            written.unlink()
        raise
    manifest = dataclasses.replace(manifest, metadata=dict(metadata or {}))  # as given
    tmp = directory / f".{MANIFEST_NAME}.tmp"
    tmp.write_text(json.dumps(manifest.to_dict(), indent=2, sort_keys=True), encoding="utf-8")
    os.replace(tmp, directory / MANIFEST_NAME)
    return manifest


def _write(
    model: object,
    flavor: str,
    directory: Path,
    training_data: pd.DataFrame | None,
    signature: Signature | None,
    trusted_types: Sequence[str],
) -> ModelManifest:
    saved: SavedModel = _flavor_module(flavor).save(model, directory, tuple(trusted_types))
    if signature is None:
        assert training_data is not None
        frame = _feature_columns(training_data, saved.feature_names)
        signature = infer_signature(frame, saved.output)
    _check_features(signature, saved)
    files = saved.files
    if saved.needs_background and training_data is not None and signature.matrix_ready:
        rows = training_data.sample(n=min(BACKGROUND_ROWS, len(training_data)), random_state=0)
        background = signature.frame_to_matrix(rows)
        np.save(directory / BACKGROUND_FILE, background, allow_pickle=False)
        files += (BACKGROUND_FILE,)
    libraries = {
        "python": platform.python_version(),
        "modelloop": __version__,
        "numpy": np.__version__,
        "pandas": pd.__version__,
        **saved.libraries,
    }
    return ModelManifest(flavor, files, signature, libraries, {}, flavor_config=saved.config)


def load_model(
    path: str | Path, *, allow_pickle: bool = False, trusted_types: Sequence[str] = ()
) -> LoadedModel:
    """Load a package written by :func:`save_model`; pickle only with ``allow_pickle=True``."""
    directory = Path(path)
    if _is_mlflow_model(directory):  # what an MLflow client wrote, as it wrote it
        mlflow_model: LoadedModel = _flavor_module("mlmodel").load_mlflow_model(
            directory, allow_pickle=allow_pickle, trusted_types=tuple(trusted_types)
        )
        return mlflow_model
    manifest = read_manifest(directory)
    if manifest.flavor not in _FLAVORS:
        raise InvalidArgument(f"unknown model flavor {manifest.flavor!r}")
    if manifest.flavor == "python" and not allow_pickle:
        raise UnsafeFormat(
            f"{directory} holds a 'python' flavor model, which is a pickle: {PICKLE_RISK}. If "
            "you trust where it comes from, pass allow_pickle=True for this load; better, re-save "
            "the model in a safe flavor (skops for scikit-learn, native LightGBM/XGBoost)."
        )
    for name in manifest.model_files:
        _check_file(directory, name, manifest.flavor)
    loaded: LoadedModel = _flavor_module(manifest.flavor).load(
        directory, manifest, tuple(trusted_types)
    )
    return loaded


def read_manifest(path: str | Path) -> ModelManifest:
    """The manifest of the package in ``path``, without touching its model files (an MLflow
    model's is read from its model, which is opened for it, never unpickled)."""
    directory = Path(path)
    if _is_mlflow_model(directory):
        manifest: ModelManifest = _flavor_module("mlmodel").read_mlflow_manifest(directory)
        return manifest
    file = directory / MANIFEST_NAME
    if not file.is_file():
        raise InvalidArgument(f"{directory} is not a model package: no {MANIFEST_NAME}")
    if file.stat().st_size > _MAX_MANIFEST_BYTES:
        raise InvalidArgument(f"{file} is larger than {_MAX_MANIFEST_BYTES} bytes")
    try:
        data = json.loads(file.read_bytes())
    except ValueError as exc:
        raise InvalidArgument(f"{file} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise InvalidArgument(f"{file} must hold a JSON object")
    return ModelManifest.from_dict(data)


def _check_file(directory: Path, name: str, flavor: str) -> None:
    """Refuse a listed file that escapes the package, or whose name or content is a pickle
    (or, for the safe flavors, anything but the format they read)."""
    file = directory / name
    if not _FILE_NAME.fullmatch(name) or file.is_symlink() or not file.is_file():
        raise UnsafeFormat(f"model file {name!r} is not a plain file inside {directory}")
    with file.open("rb") as fh:
        head = fh.read(8)
    suffix = file.suffix.lower()
    if flavor == "python":
        return
    if suffix in _PICKLE_SUFFIXES or (len(head) > 1 and head[0] == 0x80 and 2 <= head[1] <= 5):
        raise UnsafeFormat(
            f"refusing {name!r}: the manifest says {flavor!r} but the file is a pickle/joblib "
            f"file, and {PICKLE_RISK}. The package was built wrongly or tampered with."
        )
    expected = _SAFE_HEADERS.get(suffix)
    if expected is None or not head.startswith(expected):
        raise UnsafeFormat(
            f"refusing {name!r}: not a {flavor} model file (unexpected name or content header)"
        )


def _is_mlflow_model(directory: Path) -> bool:
    """An MLflow model directory: an ``MLmodel`` file and no modelloop manifest."""
    return (directory / MLMODEL_NAME).is_file() and not (directory / MANIFEST_NAME).exists()


def _detect(model: object) -> str:
    """The flavor from the libraries the model's classes come from (LightGBM and XGBoost
    estimators also derive from scikit-learn, so they are looked for first)."""
    roots = {cls.__module__.split(".")[0] for cls in type(model).__mro__}
    for flavor in ("lightgbm", "xgboost", "sklearn"):
        if flavor in roots:
            return flavor
    if callable(model) or callable(getattr(model, "predict", None)):
        return "python"
    raise InvalidArgument(f"{type(model).__qualname__} is not a model: it cannot predict")


def _flavor_module(flavor: str) -> Any:
    return importlib.import_module(f"modelloop.flavors.{flavor}")


def _feature_columns(frame: pd.DataFrame, names: tuple[str, ...] | None) -> pd.DataFrame:
    """The model's feature columns of the training frame (which may also hold the label)."""
    if names is None:
        return frame
    by_name = {_model_name(str(c)): c for c in frame.columns}
    missing = [name for name in names if _model_name(name) not in by_name]
    if missing:
        raise InvalidArgument(f"training_data lacks the model's features {missing}")
    return frame[[by_name[_model_name(name)] for name in names]]


def _check_features(signature: Signature, saved: SavedModel) -> None:
    """The signature's order is the model's input order: refuse a mismatch now, not at serving."""
    names = tuple(map(_model_name, signature.names))
    if saved.feature_names is not None and names != tuple(map(_model_name, saved.feature_names)):
        raise InvalidArgument(
            f"the signature's features {list(signature.names)} are not the model's "
            f"{list(saved.feature_names)} (same names, same order)"
        )
    if saved.n_features is not None and len(signature.inputs) != saved.n_features:
        raise InvalidArgument(
            f"the signature has {len(signature.inputs)} features, the model {saved.n_features}"
        )


def _model_name(name: str) -> str:
    """A column name as the model library may have stored it (LightGBM turns spaces into _)."""
    return name.replace(" ", "_")


def shap_contributions(model: LoadedModel, X: np.ndarray, background: np.ndarray) -> Contributions:
    """Model-agnostic attributions of ``model.predict_matrix`` (so in its output space, e.g.
    P(positive)) against ``background`` rows: exact Shapley values up to 8 features, sampled
    permutations beyond. Both add up exactly: values.sum(1) + base == prediction."""
    import shap  # heavy: only when explaining a model without native contributions

    n = X.shape[1]
    masker = shap.maskers.Independent(background, max_samples=len(background))
    algorithm = "exact" if n <= 8 else "permutation"
    explainer = shap.Explainer(model.predict_matrix, masker, algorithm=algorithm, seed=0)
    result = explainer(X, max_evals=max(500, 2 * n + 1), silent=True)
    if result.values.ndim != 2:
        raise InvalidArgument("contributions are only supported for single-output models")
    return Contributions(
        model.signature.names,
        np.asarray(result.values, dtype=np.float64),
        np.asarray(result.base_values, dtype=np.float64).reshape(len(X)),
        model.signature.matrix_values(X),
    )
