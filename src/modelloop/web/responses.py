"""JSON answers of the web edges: rendered by orjson, errors in one shape."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from starlette.responses import JSONResponse, Response

from modelloop.web.mlflow import as_mlflow, is_mlflow_path


class OrjsonResponse(JSONResponse):
    """JSON rendered by orjson: dataclasses, enums and numpy arrays as they are; NaN as null.
    A ``JSONResponse``, so the OpenAPI documents the route's model rather than a string."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS)


def error_response(
    status: int,
    error_code: str,
    message: str,
    headers: Mapping[str, str] | None = None,
    details: list[dict[str, Any]] | None = None,
    path: str | None = None,
) -> Response:
    r"""The error answer; on MLflow's ``path``\s with MLflow's status and code."""
    if path is not None and is_mlflow_path(path):
        status, error_code = as_mlflow(status, error_code)
    body: dict[str, Any] = {"error_code": error_code, "message": message}
    if details:
        body["details"] = details
    # An error may echo input: a browser must never sniff it into HTML.
    return OrjsonResponse(body, status, {**(headers or {}), "X-Content-Type-Options": "nosniff"})
