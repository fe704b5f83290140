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

Errors keep MLflow's shape and codes (:mod:`modelloop.web.mlflow`); an endpoint not implemented
answers which it is and what to use instead (:func:`unsupported`), never a 500 or a silent no-op.
docs/mlflow.md lists every endpoint and its status.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from fastapi import APIRouter, FastAPI, Request

from modelloop.server.mlflow.errors import NotSupported
from modelloop.web.responses import OrjsonResponse

if TYPE_CHECKING:
    from modelloop.registry.store import RegistryStore
    from modelloop.settings import Settings
    from modelloop.tracking.sql import SqlTrackingStore

__all__ = ["NotSupported", "mlflow_apps", "unsupported"]

API = "/api/2.0/mlflow"
AJAX_API = "/ajax-api/2.0/mlflow"
ARTIFACTS_API = "/api/2.0/mlflow-artifacts"
# MLflow 3's GenAI APIs (traces, gateway, evaluation datasets...): none implemented, all named.
UNIMPLEMENTED = ("/api/3.0/mlflow", "/ajax-api/3.0/mlflow")


def mlflow_apps(
    store: SqlTrackingStore,
    registry: RegistryStore,
    settings: Settings,
    configure: Callable[[FastAPI], None],
) -> dict[str, FastAPI]:
    """MLflow's API as apps to mount, by path prefix; ``configure`` gives each the server's
    error handlers. Mounted, a prefix is one cheap check for every other request, where
    included routes would each be tried in turn (FastAPI does not skip an included router by
    its prefix). Each app ends in a catch-all that names what is not implemented."""
    from modelloop.server.mlflow.artifacts import artifacts_routes, logged_model_routes
    from modelloop.server.mlflow.registry import registry_routes
    from modelloop.server.mlflow.tracking import tracking_routes

    def app(*routers: APIRouter) -> FastAPI:
        # Not in modelloop's OpenAPI document: MLflow's API is MLflow's (docs/mlflow.md).
        made = FastAPI(
            openapi_url=None,
            docs_url=None,
            redoc_url=None,
            default_response_class=OrjsonResponse,
            redirect_slashes=False,
        )
        for router in routers:
            made.include_router(router, include_in_schema=False)
        methods = ["GET", "POST", "PUT", "PATCH", "DELETE"]
        made.add_api_route("/{endpoint:path}", unsupported, methods=methods)
        configure(made)
        return made

    api = app(
        tracking_routes(store, settings),
        logged_model_routes(store, settings),
        registry_routes(registry, store, settings),
    )
    genai = app()
    return {
        API: api,
        AJAX_API: api,
        ARTIFACTS_API: app(artifacts_routes(store, settings)),
        **dict.fromkeys(UNIMPLEMENTED, genai),
    }


async def unsupported(request: Request) -> None:
    """The catch-all: which endpoint, that modelloop does not implement it, and what to use."""
    from modelloop.server.mlflow.compat import NOT_IMPLEMENTED, advice

    instead = advice(request.url.path)
    raise NotSupported(
        f"{request.method} {request.url.path} {NOT_IMPLEMENTED}"
        + (f": {instead}" if instead else "")
        + " (docs/mlflow.md lists every endpoint and its status)"
    )
