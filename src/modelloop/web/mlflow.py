"""MLflow's error codes on MLflow's paths.

Every answer of the web edges is ``{"error_code", "message"}``; on the paths of MLflow's REST API
(:mod:`modelloop.server.mlflow`) the code and status are the ones the ``mlflow`` client acts on
(``RESOURCE_DOES_NOT_EXIST`` lets ``set_experiment`` create the experiment, a 5xx makes it
retry), whether the error comes from a route or from the middleware in front of it.
"""

from __future__ import annotations

PREFIXES = (
    "/api/2.0/mlflow/",
    "/ajax-api/2.0/mlflow/",
    "/api/2.0/mlflow-artifacts/",
    "/api/3.0/mlflow/",
    "/ajax-api/3.0/mlflow/",
)

# modelloop error_code -> (status, MLflow error_code)
_BY_CODE = {
    "NOT_FOUND": (404, "RESOURCE_DOES_NOT_EXIST"),
    "ALREADY_EXISTS": (400, "RESOURCE_ALREADY_EXISTS"),
    "INVALID_ARGUMENT": (400, "INVALID_PARAMETER_VALUE"),
    "INVALID_FILTER": (400, "INVALID_PARAMETER_VALUE"),
    "INVALID_INPUT": (400, "INVALID_PARAMETER_VALUE"),
    "UNSAFE_PATH": (400, "INVALID_PARAMETER_VALUE"),
    "UNSAFE_FORMAT": (400, "INVALID_PARAMETER_VALUE"),
    "CONFLICT": (400, "INVALID_STATE"),
    "UNAUTHORIZED": (401, "UNAUTHENTICATED"),
    "FORBIDDEN": (403, "PERMISSION_DENIED"),
    "PAYLOAD_TOO_LARGE": (413, "INVALID_PARAMETER_VALUE"),
    "METHOD_NOT_ALLOWED": (405, "ENDPOINT_NOT_FOUND"),
    "UNSUPPORTED_MEDIA_TYPE": (415, "INVALID_PARAMETER_VALUE"),
}


def is_mlflow_path(path: str) -> bool:
    return path.startswith(PREFIXES) or path == "/graphql"


def as_mlflow(status: int, error_code: str) -> tuple[int, str]:
    """The status and MLflow error code for one of modelloop's."""
    if error_code in _BY_CODE:
        return _BY_CODE[error_code]
    if status == 404:
        return 404, "ENDPOINT_NOT_FOUND"
    if status == 501:
        return 501, "NOT_IMPLEMENTED"
    return status, "INTERNAL_ERROR" if status >= 500 else "BAD_REQUEST"
