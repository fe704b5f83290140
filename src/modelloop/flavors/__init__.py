"""Model formats ("flavors") without pickle, model signatures, and attributions.

    save_model(model, dir, training_data=df)  ->  ModelManifest   (skops | LightGBM text |
    load_model(dir)                            ->  LoadedModel      XGBoost UBJSON | opt-in pickle)

Importing this package loads numpy and pandas only: each model library is imported by the
flavor that needs it, when a model of that flavor is saved or loaded.
"""

from modelloop.flavors.package import (
    MANIFEST_NAME,
    MLMODEL_NAME,
    Contributions,
    LoadedModel,
    ModelManifest,
    load_model,
    read_manifest,
    save_model,
)
from modelloop.flavors.signature import (
    MAX_ROWS,
    FeatureSpec,
    OutputSpec,
    Signature,
    infer_signature,
)

__all__ = [
    "MANIFEST_NAME",
    "MAX_ROWS",
    "MLMODEL_NAME",
    "Contributions",
    "FeatureSpec",
    "LoadedModel",
    "ModelManifest",
    "OutputSpec",
    "Signature",
    "infer_signature",
    "load_model",
    "read_manifest",
    "save_model",
]
