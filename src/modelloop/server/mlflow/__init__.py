"""MLflow's REST API over modelloop's own stores: unchanged MLflow code, the real ``mlflow``
client, ``MlflowClient`` and autolog work against ``modelloop server``.

A second edge over the same domain, beside :mod:`modelloop.server.tracking` and
:mod:`modelloop.server.registry`: what an MLflow client writes is a modelloop run, version or
audit event like any other, and reads answer from the same tables. Each module translates one
part of MLflow's API (``/api/2.0/mlflow`` and the UI's ``/ajax-api/2.0/mlflow``):

- :mod:`.tracking`: experiments, runs, params, metrics and their history, tags, ``log-batch``,
  ``log-inputs``, search with MLflow's filter syntax and page tokens;
- :mod:`.artifacts`: the artifact proxy (``/api/2.0/mlflow-artifacts``) and logged models;
- :mod:`.registry`: registered models, versions, aliases and tags, under modelloop's approval
  rules and audit trail.

Errors keep MLflow's shape and codes (:mod:`.errors`); an endpoint not implemented answers which
it is and what to use instead (:func:`unsupported`), never a 500 or a silent no-op.
docs/mlflow.md lists every endpoint and its status.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import APIRouter, Request

from modelloop.server.mlflow.errors import NotSupported, as_mlflow, is_mlflow_path

if TYPE_CHECKING:
    from modelloop.registry.store import RegistryStore
    from modelloop.settings import Settings
    from modelloop.tracking.sql import SqlTrackingStore

__all__ = ["NotSupported", "as_mlflow", "is_mlflow_path", "mlflow_router"]

API = "/api/2.0/mlflow"
AJAX_API = "/ajax-api/2.0/mlflow"
ARTIFACTS_API = "/api/2.0/mlflow-artifacts"
# MLflow 3's GenAI APIs (traces, gateway, evaluation datasets...): none implemented, all named.
UNIMPLEMENTED = ("/api/3.0/mlflow", "/ajax-api/3.0/mlflow")


def mlflow_router(
    store: SqlTrackingStore, registry: RegistryStore, settings: Settings
) -> APIRouter:
    """Every MLflow route, then a catch-all that names what is not implemented."""
    from modelloop.server.mlflow.artifacts import artifacts_routes, logged_model_routes
    from modelloop.server.mlflow.registry import registry_routes
    from modelloop.server.mlflow.tracking import tracking_routes

    # Not in modelloop's OpenAPI document: MLflow's API is MLflow's, documented in docs/mlflow.md.
    router = APIRouter(include_in_schema=False)
    api = APIRouter()
    api.include_router(tracking_routes(store, settings))
    api.include_router(logged_model_routes(store, settings))
    api.include_router(registry_routes(registry, store, settings))
    router.include_router(api, prefix=API)
    router.include_router(api, prefix=AJAX_API)
    router.include_router(artifacts_routes(store, settings), prefix=ARTIFACTS_API)

    methods = ["GET", "POST", "PUT", "PATCH", "DELETE"]
    for prefix in (API, AJAX_API, ARTIFACTS_API, *UNIMPLEMENTED):
        router.add_api_route(f"{prefix}/{{endpoint:path}}", unsupported, methods=methods)
    router.add_api_route("/graphql", unsupported, methods=methods)  # MLflow UI's
    return router


async def unsupported(request: Request) -> None:
    """The catch-all: which endpoint, that modelloop does not implement it, and what to use."""
    from modelloop.server.mlflow.compat import NOT_IMPLEMENTED, advice

    instead = advice(request.url.path)
    raise NotSupported(
        f"{request.method} {request.url.path} {NOT_IMPLEMENTED}"
        + (f": {instead}" if instead else "")
        + " (docs/mlflow.md lists every endpoint and its status)"
    )
