"""What MLflow's edge raises beyond modelloop's errors. The codes and statuses of every error on
MLflow's paths are translated by :mod:`modelloop.web.mlflow`."""

from __future__ import annotations

from modelloop.errors import ModelloopError


class NotSupported(ModelloopError):
    """An MLflow endpoint or option modelloop does not implement: the message says which and
    what to use instead. 501, which the ``mlflow`` client does not retry."""

    status_code = 501
    exit_code = 2
    error_code = "NOT_IMPLEMENTED"
