"""MLflow's error contract: ``{"error_code", "message"}`` with MLflow's codes and statuses.

modelloop answers in the same shape with its own codes; on MLflow's paths the code and status are
the ones the ``mlflow`` client acts on (``RESOURCE_DOES_NOT_EXIST`` lets ``set_experiment``
create the experiment, 5xx makes it retry), so this edge translates them.
"""

from __future__ import annotations

from modelloop.errors import ModelloopError
from modelloop.web.mlflow import as_mlflow, is_mlflow_path

__all__ = ["NotSupported", "as_mlflow", "is_mlflow_path"]


class NotSupported(ModelloopError):
    """An MLflow endpoint or option modelloop does not implement: the message says which and
    what to use instead. 501, which the ``mlflow`` client does not retry."""

    status_code = 501
    exit_code = 2
    error_code = "NOT_IMPLEMENTED"
