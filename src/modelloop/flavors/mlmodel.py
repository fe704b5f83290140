"""Models an MLflow client wrote (an ``MLmodel`` file beside the model's files), loaded without
pickle when their format allows it.

What an MLflow client uploads is stored as sent; this module is how modelloop's loaders
(registry ``load_model``, serving, drift references) read it back. The ``MLmodel`` file only
says where the model is and how it was written; the file itself is checked by name and content
before a library reads it, as for modelloop's own packages:

    MLflow flavor   how it was written                       read as
    lightgbm        a Booster: LightGBM's text model          LightGBM, natively
    xgboost         model_format json or ubj                  XGBoost, natively
    sklearn         serialization_format skops                skops (trusted types checked)
    lightgbm        an LGBM estimator, serialization skops    skops (+ LightGBM's own classes)
    sklearn, lgbm   pickle or cloudpickle                     refused unless allow_pickle=True

The types an ``MLmodel`` lists as ``skops_trusted_types`` are ignored: the file was written by
whoever logged the model, so trusting what it names would let it vouch for itself. The model's
signature comes from the model (its feature names or count, its classes and objective); the
``MLmodel`` signature's column names and types are used when it has one that fits.
"""

from __future__ import annotations

import dataclasses
import json
import pickle
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelloop.errors import InvalidArgument, UnsafeFormat
from modelloop.flavors import lightgbm as lgb_flavor
from modelloop.flavors import sklearn as sk_flavor
from modelloop.flavors import xgboost as xgb_flavor
from modelloop.flavors.package import (
    MLMODEL_NAME,
    PICKLE_RISK,
    LoadedModel,
    ModelManifest,
    SavedModel,
)
from modelloop.flavors.python import PythonModel
from modelloop.flavors.signature import Dtype, FeatureSpec, Signature

SOURCE = "mlflow"  # flavor_config["source"] of a manifest read from an MLmodel file
_MAX_MLMODEL_BYTES = 1_000_000
_FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,200}")
_HEADERS = {
    "lightgbm-text": b"tree\n",
    "xgboost-json": b"{",
    "xgboost-ubj": b"{",
    "skops": b"PK\x03\x04",
}
# LightGBM's scikit-learn estimators and what they hold: a library modelloop loads anyway.
_LIGHTGBM_TYPES = (
    "collections.OrderedDict",
    "lightgbm.basic.Booster",
    "lightgbm.sklearn.LGBMClassifier",
    "lightgbm.sklearn.LGBMRegressor",
)
_COLSPEC_TYPES: dict[str, Dtype] = {
    "double": "float",
    "float": "float",
    "long": "int",
    "integer": "int",
    "boolean": "bool",
    "string": "string",
}


@dataclass(frozen=True)
class MlflowFormat:
    """How an MLflow flavor wrote the model: which file, in which encoding."""

    mlflow_flavor: str  # lightgbm | xgboost | sklearn
    file: str
    encoding: str  # lightgbm-text | xgboost-json | xgboost-ubj | skops | pickle

    @property
    def flavor(self) -> str:
        """The modelloop flavor recorded for it: ``python`` when it is a pickle."""
        if self.encoding == "pickle":
            return "python"
        if self.encoding == "skops":
            return "sklearn"
        return self.mlflow_flavor


def is_mlflow_model(path: str | Path) -> bool:
    return (Path(path) / MLMODEL_NAME).is_file()


def parse_mlmodel(text: bytes | str) -> dict[str, Any]:
    """The ``MLmodel`` YAML as a mapping (safe loader: no Python objects)."""
    import yaml

    if len(text) > _MAX_MLMODEL_BYTES:
        raise InvalidArgument(f"{MLMODEL_NAME} is larger than {_MAX_MLMODEL_BYTES} bytes")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InvalidArgument(f"{MLMODEL_NAME} is not valid YAML: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("flavors"), dict):
        raise InvalidArgument(f"{MLMODEL_NAME} has no 'flavors' mapping: not an MLflow model")
    return data


def mlflow_format(mlmodel: Mapping[str, Any]) -> MlflowFormat:
    """Which of the flavors modelloop reads the model was written in, or why none."""
    flavors = mlmodel["flavors"]
    if isinstance(conf := flavors.get("lightgbm"), dict):
        file = str(conf.get("data", ""))
        if str(conf.get("model_class", "")).endswith(".Booster"):
            return MlflowFormat("lightgbm", file, "lightgbm-text")
        return MlflowFormat("lightgbm", file, _serialization(conf, "lightgbm"))
    if isinstance(conf := flavors.get("xgboost"), dict):
        model_format = str(conf.get("model_format", "xgb"))
        if model_format not in ("json", "ubj"):
            raise UnsafeFormat(
                f"MLflow's xgboost flavor wrote this model in XGBoost's {model_format!r} format, "
                "which modelloop does not read: log it again with model_format='ubj' or 'json'"
            )
        return MlflowFormat("xgboost", str(conf.get("data", "")), f"xgboost-{model_format}")
    if isinstance(conf := flavors.get("sklearn"), dict):
        file = str(conf.get("pickled_model", ""))
        return MlflowFormat("sklearn", file, _serialization(conf, "sklearn"))
    raise UnsafeFormat(
        f"MLflow flavor(s) {sorted(flavors)} are not ones modelloop loads: it loads MLflow's "
        "lightgbm, xgboost and sklearn flavors (use mlflow.pyfunc.load_model for the others)"
    )


def _serialization(conf: Mapping[str, Any], flavor: str) -> str:
    found = str(conf.get("serialization_format", "cloudpickle"))
    if found == "skops":
        return "skops"
    if found in ("pickle", "cloudpickle"):
        return "pickle"
    raise UnsafeFormat(f"MLflow's {flavor} flavor: unknown serialization_format {found!r}")


def describe_mlmodel(text: bytes | str) -> tuple[str, dict[str, Any] | None]:
    """The modelloop flavor of an MLflow model and, when its ``MLmodel`` has one with named
    columns, its input signature (what a registry records at registration, from this file
    alone)."""
    mlmodel = parse_mlmodel(text)
    found = mlflow_format(mlmodel)
    inputs = _colspec_inputs(mlmodel)
    return found.flavor, None if inputs is None else Signature(inputs).to_dict()


def read_mlflow_manifest(directory: Path) -> ModelManifest:
    """The manifest of an MLflow model, never unpickling it: a pickled model's signature is
    its ``MLmodel``'s (so it needs one with named columns); the others' their model's."""
    mlmodel = parse_mlmodel(_read(directory / MLMODEL_NAME))
    found = mlflow_format(mlmodel)
    if found.encoding != "pickle":
        return open_mlflow_model(directory)[0]
    inputs = _colspec_inputs(mlmodel)
    if inputs is None:
        raise UnsafeFormat(
            f"{directory} holds a model MLflow's {found.mlflow_flavor} flavor wrote with pickle "
            f"and its {MLMODEL_NAME} has no signature with named columns, so its inputs are "
            "only known by unpickling it: log it with a signature (or with "
            "serialization_format='skops'), or load it with allow_pickle=True"
        )
    return _manifest(mlmodel, found, Signature(inputs), {})


def open_mlflow_model(
    directory: Path, *, allow_pickle: bool = False, trusted_types: Sequence[str] = ()
) -> tuple[ModelManifest, Any, MlflowFormat]:
    """The manifest modelloop reads the model with, the model object, and its format."""
    mlmodel = parse_mlmodel(_read(directory / MLMODEL_NAME))
    found = mlflow_format(mlmodel)
    if found.encoding == "pickle" and not allow_pickle:
        raise UnsafeFormat(
            f"{directory} holds a model MLflow's {found.mlflow_flavor} flavor wrote with "
            f"pickle ({found.file}), and {PICKLE_RISK}. If you trust where it comes from, "
            "opt in with allow_pickle=True for this load (serving: allow_pickle in its "
            "settings); better, log it again with serialization_format='skops'."
        )
    file = _checked_file(directory, found)
    model, described = _read_model(file, found, trusted_types)
    manifest = _manifest(mlmodel, found, _signature(mlmodel, described), described.libraries)
    return (
        dataclasses.replace(manifest, flavor_config={**described.config, **manifest.flavor_config}),
        model,
        found,
    )


def _manifest(
    mlmodel: Mapping[str, Any],
    found: MlflowFormat,
    signature: Signature,
    libraries: Mapping[str, str],
) -> ModelManifest:
    recorded = {str(k): str(v) for k, v in libraries.items()}
    if version := mlmodel.get("mlflow_version"):
        recorded["mlflow"] = str(version)
    return ModelManifest(
        flavor=found.flavor,
        model_files=(found.file,),
        signature=signature,
        libraries=recorded,
        metadata={},
        flavor_config={
            "source": SOURCE,
            "mlflow_flavor": found.mlflow_flavor,
            "encoding": found.encoding,
        },
    )


def load_mlflow_model(
    directory: Path, *, allow_pickle: bool = False, trusted_types: Sequence[str] = ()
) -> LoadedModel:
    """The model of an MLflow model directory, ready to predict as modelloop's own."""
    manifest, model, found = open_mlflow_model(
        directory, allow_pickle=allow_pickle, trusted_types=trusted_types
    )
    if found.encoding == "lightgbm-text":
        return lgb_flavor.LightgbmModel(manifest, directory, model)
    if found.encoding.startswith("xgboost-"):
        return xgb_flavor.XgboostModel(manifest, directory, model)
    if _is_estimator(model):
        return sk_flavor.SklearnModel(manifest, directory, model)
    return PythonModel(manifest, directory, model)


def _read(file: Path) -> bytes:
    if not file.is_file():
        raise InvalidArgument(f"{file.parent} is not an MLflow model: no {MLMODEL_NAME}")
    if file.stat().st_size > _MAX_MLMODEL_BYTES:
        raise InvalidArgument(f"{file} is larger than {_MAX_MLMODEL_BYTES} bytes")
    return file.read_bytes()


def _checked_file(directory: Path, found: MlflowFormat) -> Path:
    """The model file, if it is a plain file inside ``directory`` whose content is what the
    ``MLmodel`` says it is (a pickle passing for a safe format is refused)."""
    name = found.file
    file = directory / name
    if not _FILE_NAME.fullmatch(name) or file.is_symlink() or not file.is_file():
        raise UnsafeFormat(f"model file {name!r} is not a plain file inside {directory}")
    if found.encoding == "pickle":
        return file
    with file.open("rb") as fh:
        head = fh.read(8)
    if len(head) > 1 and head[0] == 0x80 and 2 <= head[1] <= 5:
        raise UnsafeFormat(
            f"refusing {name!r}: {MLMODEL_NAME} says {found.encoding} but the file is a pickle, "
            f"and {PICKLE_RISK}. The model was written wrongly or tampered with."
        )
    if not head.startswith(_HEADERS[found.encoding]):
        raise UnsafeFormat(f"refusing {name!r}: not a {found.encoding} file (content header)")
    return file


def _read_model(
    file: Path, found: MlflowFormat, trusted_types: Sequence[str]
) -> tuple[Any, SavedModel]:
    if found.encoding == "lightgbm-text":
        import lightgbm

        booster = lightgbm.Booster(model_file=file)
        return booster, lgb_flavor.describe(booster, booster, file.read_text(encoding="utf-8"))
    if found.encoding.startswith("xgboost-"):
        import xgboost

        xgb_booster = xgboost.Booster()
        xgb_booster.load_model(file)
        return xgb_booster, xgb_flavor.describe(xgb_booster, xgb_booster)
    if found.encoding == "skops":
        extra = _LIGHTGBM_TYPES if found.mlflow_flavor == "lightgbm" else ()
        model = sk_flavor.read_skops(file, (*trusted_types, *extra))
    else:
        with file.open("rb") as fh:
            model = pickle.load(fh)  # noqa: S301 - the caller opted in with allow_pickle=True
    if not _is_estimator(model):
        raise InvalidArgument(f"the model in {file.name} cannot predict")
    return model, sk_flavor.describe(model)


def _is_estimator(model: Any) -> bool:
    return callable(getattr(model, "predict", None)) and hasattr(model, "fit")


def _signature(mlmodel: Mapping[str, Any], described: SavedModel) -> Signature:
    """The model's inputs (the ``MLmodel``'s named columns when they fit it, else the model's
    own feature names, else ``f0..fN``, as floats) and its output."""
    count = described.n_features
    inputs = _colspec_inputs(mlmodel)
    if inputs is not None and (count is None or len(inputs) == count):
        names = described.feature_names
        if names is None or tuple(n.replace(" ", "_") for n in names) == tuple(
            s.name.replace(" ", "_") for s in inputs
        ):
            return Signature(inputs, described.output)
    if described.feature_names is not None:
        names = described.feature_names
    elif count is not None:
        names = tuple(f"f{i}" for i in range(count))
    else:
        raise InvalidArgument(
            "the MLflow model records neither its feature names nor their number, and its "
            f"{MLMODEL_NAME} has no signature with named columns: log it with a signature"
        )
    return Signature(tuple(FeatureSpec(n, "float") for n in names), described.output)


def _colspec_inputs(mlmodel: Mapping[str, Any]) -> tuple[FeatureSpec, ...] | None:
    """The ``MLmodel`` signature's inputs when they are named columns of plain types."""
    signature = mlmodel.get("signature")
    if not isinstance(signature, dict) or not isinstance(signature.get("inputs"), str):
        return None
    try:
        columns = json.loads(signature["inputs"])
    except ValueError:
        return None
    if not isinstance(columns, list) or not columns:
        return None
    specs = []
    for column in columns:
        if not isinstance(column, dict) or not isinstance(column.get("name"), str):
            return None  # a tensor or unnamed columns: the model's own names are used
        dtype = _COLSPEC_TYPES.get(str(column.get("type")))
        if dtype is None:
            return None
        specs.append(FeatureSpec(column["name"], dtype, not column.get("required", True)))
    names = [s.name for s in specs]
    return tuple(specs) if len(set(names)) == len(names) else None
