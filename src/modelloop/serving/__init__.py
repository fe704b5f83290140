"""Real-time serving: deployments, hot swap, shadow/canary, the prediction log and feedback.

    modelloop serve fraud-detector@champion            ->  POST /predict, /explain, /feedback
    ml.load_predictions("fraud-detector", start, end)   ->  the logged predictions + labels

Importing this package is cheap (``import modelloop`` imports it): the app, pydantic, pyarrow
and the models load when they are first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from modelloop.serving.predictions import load_predictions

if TYPE_CHECKING:
    from modelloop.serving.deployment import Deployment, Mode, ModelRef, load_deployment_file

__all__ = ["Deployment", "Mode", "ModelRef", "load_deployment_file", "load_predictions"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from modelloop.serving import deployment

        return getattr(deployment, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
