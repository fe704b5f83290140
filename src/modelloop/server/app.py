"""The REST server: app factory, the error contract, and uvicorn.

Every response that is not a success is ``{"error_code", "message"}`` with the status of the
:mod:`modelloop.errors` class it came from, so the HTTP client can raise the same exception the
local store would have. Requests pass through the middleware of :mod:`modelloop.web.middleware`
(error boundary, the ``Host`` allow-list of :mod:`modelloop.web.hosts`, auth, body limit).
Auth: with a token configured or any user added (``modelloop users add``), everything but
``/health`` needs a bearer token: the server's own (acting as ``admin``) or an enabled user's
(acting as that user, within its role: reads need viewer, changes editor, approvals approver).
Without either (loopback development), requests act as the name in their ``X-Modelloop-User`` header
(default ``anonymous``) with every role: trust on loopback, for one developer's machine, never for a
shared server.

A server never proxies to another server: it refuses to start when ``MODELLOOP_TRACKING_URI`` is
set, and it refuses to listen beyond loopback unless requests must authenticate.
"""

from __future__ import annotations

import dataclasses
import gc
import logging
import os
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from modelloop._version import __version__
from modelloop.auth import Users, check_token
from modelloop.errors import (
    InvalidArgument,
    ModelloopError,
    PayloadTooLarge,
    Unauthorized,
)
from modelloop.server.schemas import Clock, Health
from modelloop.settings import Settings, load_settings
from modelloop.web import KEEP_ALIVE_SECONDS
from modelloop.web.hosts import AllowedHosts, HostCheck, is_loopback
from modelloop.web.middleware import Auth, BodyLimit, ErrorBoundary
from modelloop.web.responses import OrjsonResponse, error_response

_SETTINGS_ENV = "_MODELLOOP_SERVER_SETTINGS"  # settings handed to worker processes
_MAX_REPORTED_ERRORS = 5
_HTTP_ERROR_CODES = {
    400: "INVALID_ARGUMENT",
    401: Unauthorized.error_code,
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    413: PayloadTooLarge.error_code,
    415: "UNSUPPORTED_MEDIA_TYPE",
}

log = logging.getLogger("modelloop.server")


def create_app(settings: Settings | None = None) -> FastAPI:
    """The tracking and registry API over the local store the settings name."""
    from modelloop.registry.sql import SqlRegistryStore
    from modelloop.server.automation import automation_router
    from modelloop.server.datasets import datasets_router
    from modelloop.server.mlflow import mlflow_apps, unsupported
    from modelloop.server.monitoring import monitoring_router
    from modelloop.server.registry import registry_router
    from modelloop.server.serving import serving_router
    from modelloop.server.tracking import tracking_router
    from modelloop.server.users import users_router
    from modelloop.tracking.client import open_store
    from modelloop.tracking.sql import SqlTrackingStore
    from modelloop.ui.app import ui_router

    settings = settings or load_settings()
    _refuse_remote(settings)
    if settings.token is not None:
        check_token(settings.token)
    store = open_store(settings)
    if not isinstance(store, SqlTrackingStore):  # pragma: no cover - _refuse_remote ensures it
        raise ModelloopError(f"A server needs a local store, not {type(store).__name__}")
    users = Users(store.db)
    authenticated = bool(settings.token) or users.exist()  # decided at start: restart after
    # adding the first user to a server that runs without authentication

    app = _App(
        token="required" if authenticated else None,
        title="modelloop",
        version=__version__,
        description="Experiment tracking (experiments, runs, metrics, params, tags, artifacts), "
        "the model registry (models, versions, aliases, approvals, audit trail) and monitoring "
        "(monitors, their windows of drift and performance, alerts).",
        docs_url="/docs",
        redoc_url=None,
        openapi_url="/openapi.json",
        default_response_class=OrjsonResponse,
        redirect_slashes=False,  # an API answers the URL it was given, or 404
    )
    registry = SqlRegistryStore(store.db, protected_aliases=settings.protected_aliases)
    for prefix, mlflow_app in mlflow_apps(store, registry, settings, _answer_errors).items():
        app.mount(prefix, mlflow_app)  # MLflow's REST API: /api/2.0/mlflow...
    app.add_api_route("/graphql", unsupported, methods=["GET", "POST"], include_in_schema=False)
    app.include_router(tracking_router(store, max_upload_bytes=settings.max_upload_bytes))
    app.include_router(registry_router(registry))
    app.include_router(datasets_router(store.db, store.blobs))
    app.include_router(monitoring_router(settings))
    app.include_router(automation_router(settings))
    app.include_router(serving_router(settings))
    app.include_router(users_router(users))
    app.include_router(ui_router(store, settings, authenticated=authenticated))  # /ui, / -> /ui/

    @app.get("/health", tags=["server"], response_model=Health, openapi_extra={"security": []})
    def health() -> Response:
        return OrjsonResponse({"status": "ok"})

    @app.get("/api/v1/clock", tags=["server"], response_model=Clock)
    def clock() -> Response:
        """The store's clock: ``wall``, or ``simulated`` with the instant its simulation
        reached (``now``, ms since the epoch), which monitors and policies run at."""
        from modelloop.store_clock import store_clock

        return OrjsonResponse(store_clock(settings).to_dict())

    _answer_errors(app)
    # Added innermost first: requests meet the boundary, the Host check, auth, the body limit.
    app.add_middleware(BodyLimit, upload_limit=settings.max_upload_bytes)
    app.add_middleware(Auth, token=settings.token, users=users if authenticated else None)
    allowed = AllowedHosts(settings.allowed_hosts, token_required=authenticated)
    app.add_middleware(HostCheck, allowed=allowed)  # before auth: a rebinding page is refused
    app.add_middleware(ErrorBoundary)
    return app


def run_server(
    host: str,
    port: int,
    *,
    token: str | None = None,
    settings: Settings | None = None,
    workers: int = 1,
    log_level: str = "info",
    monitor_interval: float = 60.0,
) -> None:
    """Serve the API with uvicorn until interrupted. ``token`` defaults to ``settings.token``.

    Stored monitors run in this (parent) process every ``monitor_interval`` seconds, once per
    server whatever ``workers`` is; 0 turns the scheduler off. Runs whose process died are
    marked KILLED there too (:class:`~modelloop.tracking.sweep.RunSweeper`)."""
    from modelloop.automation.scheduler import Scheduler
    from modelloop.tracking.sweep import RunSweeper

    settings = settings or load_settings()
    if token is not None:
        settings = dataclasses.replace(settings, token=token)
    if settings.token is not None:
        check_token(settings.token)
    _refuse_remote(settings)
    check_bind_address(host, settings)
    if workers < 1:
        raise InvalidArgument(f"workers must be at least 1, got {workers}")
    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "log_level": log_level,
        "timeout_keep_alive": KEEP_ALIVE_SECONDS,
        "server_header": False,
        "ws": "none",
    }
    scheduler = Scheduler(settings, interval=monitor_interval) if monitor_interval > 0 else None
    sweeper = RunSweeper(settings)
    try:
        if scheduler is not None:
            scheduler.start()
        sweeper.start()
        _serve(settings, workers, options)
    finally:
        sweeper.stop()
        if scheduler is not None:
            scheduler.stop()


def _serve(settings: Settings, workers: int, options: dict[str, Any]) -> None:
    import uvicorn

    if workers == 1:
        uvicorn.run(_long_lived(create_app(settings)), **options)
        return
    # Worker processes import the app by name; they read these settings from the environment.
    os.environ[_SETTINGS_ENV] = settings.to_json()
    uvicorn.run(
        "modelloop.server.app:app_from_environment", factory=True, workers=workers, **options
    )


def app_from_environment() -> FastAPI:
    """The app of one worker process started by :func:`run_server`."""
    raw = os.environ.get(_SETTINGS_ENV)
    return _long_lived(create_app(None if raw is None else Settings.from_json(raw)))


def _long_lived(app: FastAPI) -> FastAPI:
    """Exempt what exists once the app is built (modules, routes, the store's engine) from
    garbage collection: a full collection otherwise walks all of it, inside whichever request
    happened to allocate enough, and a 1,000-run MLflow search took twice as long for it."""
    gc.collect()
    gc.freeze()
    return app


def check_bind_address(host: str, settings: Settings) -> None:
    """Refuse to listen beyond loopback unless requests will have to authenticate."""
    if is_loopback(host) or settings.token:
        return
    from modelloop.store import open_database

    if Users(open_database(settings.database_url)).exist():
        return
    raise InvalidArgument(
        f"Refusing to listen on {host!r} without authentication: anyone who can reach it "
        "could read and change every run. Pass --token or set MODELLOOP_TOKEN, add users "
        "with 'modelloop users add NAME --role ROLE', or bind 127.0.0.1."
    )


def _refuse_remote(settings: Settings) -> None:
    if settings.tracking_uri is not None:
        raise InvalidArgument(
            f"MODELLOOP_TRACKING_URI is set ({settings.tracking_uri}); a server serves its own "
            "store and does not proxy to another server. Unset it to start the server."
        )


class _App(FastAPI):
    """FastAPI with the bearer token declared in the OpenAPI document."""

    def __init__(self, *, token: str | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._requires_token = bool(token)

    def openapi(self) -> dict[str, Any]:
        if self.openapi_schema is None:
            schema = super().openapi()
            components = schema.setdefault("components", {})
            components["securitySchemes"] = {
                "bearerToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "The server's token (--token or MODELLOOP_TOKEN) or a "
                    "user's (modelloop users add).",
                }
            }
            if self._requires_token:
                schema["security"] = [{"bearerToken": []}]
        return self.openapi_schema  # type: ignore[return-value]  # set by super().openapi()


# -- the error contract ------------------------------------------------------------------------

# Error bodies echo caller input; nosniff stops a browser reading them as HTML or script.
_NOSNIFF = {"X-Content-Type-Options": "nosniff"}


def _answer_errors(app: FastAPI) -> None:
    """Every error as ``{"error_code", "message"}`` (MLflow's codes on MLflow's paths)."""
    app.add_exception_handler(ModelloopError, _modelloop_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(ClientDisconnect, _client_disconnect)


def _error(
    request: Request,
    status: int,
    error_code: str,
    message: str,
    headers: dict[str, str],
    details: list[dict[str, Any]] | None = None,
) -> Response:
    """The error answer; on MLflow's paths with MLflow's status and code, which its client acts
    on (:mod:`modelloop.server.mlflow.errors`)."""
    return error_response(status, error_code, message, headers, details, path=request.url.path)


async def _modelloop_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ModelloopError)
    if exc.status_code >= 500 and exc.status_code != 501:  # 501: asked for what is not built
        log.error("%s %s failed: %s", request.method, request.url.path, exc.message)
    headers = (
        {**_NOSNIFF, "WWW-Authenticate": "Bearer"} if isinstance(exc, Unauthorized) else _NOSNIFF
    )
    return _error(request, exc.status_code, exc.error_code, exc.message, headers, exc.details)


async def _validation_error(request: Request, exc: Exception) -> Response:
    """One ``{field, message}`` per problem in ``details`` (the first few also in the message),
    e.g. ``body.metrics.0``, ``path.run_id`` or ``query.limit``."""
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    details = [_describe(error, exc.body) for error in errors[:_MAX_REPORTED_ERRORS]]
    parts = [f"{d['field']}: {d['message']}" for d in details]
    if len(errors) > _MAX_REPORTED_ERRORS:
        parts.append(f"... and {len(errors) - _MAX_REPORTED_ERRORS} more")
    return _error(request, 422, InvalidArgument.error_code, "; ".join(parts), _NOSNIFF, details)


def _describe(error: Any, body: Any) -> dict[str, str]:
    """``{"field": "body.metrics.0", "message": "Input should be a valid list"}``, never
    echoing the (maybe huge) input."""
    loc = [str(part) for part in error.get("loc", ())]
    if error.get("type") == "json_invalid":
        position = loc[1] if len(loc) > 1 else "?"
        reason = (error.get("ctx") or {}).get("error", "not JSON")
        text = f"invalid JSON at character {position}: {reason}"
        literal = ("NaN", "Infinity", "-Infinity")
        if isinstance(body, str) and position.isdigit() and body.startswith(literal, int(position)):
            text += ' (JSON has no NaN or Infinity: send null, "NaN" or "Infinity")'
        return {"field": "body", "message": text}
    if loc == ["body"] and isinstance(error.get("input"), bytes):
        message = "expected a JSON object sent with 'Content-Type: application/json'"
        return {"field": "body", "message": message}
    message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
    return {"field": ".".join(loc) or "request", "message": message}


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = _HTTP_ERROR_CODES.get(exc.status_code, f"HTTP_{exc.status_code}")
    if exc.status_code == 404 and exc.detail == "Not Found":
        message = f"No route {request.method} {request.url.path}"
    elif exc.status_code == 405:
        message = f"Method {request.method} is not allowed on {request.url.path}"
        headers = {**(exc.headers or {}), "Allow": ", ".join(_allowed_methods(request))}
        return _error(request, 405, code, message, {**_NOSNIFF, **headers})
    elif exc.status_code == 400 and exc.detail == "There was an error parsing the body":
        message = "body: could not be parsed as JSON"
    else:
        message = str(exc.detail)
    return _error(request, exc.status_code, code, message, {**_NOSNIFF, **(exc.headers or {})})


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route answers on this path (Starlette names only the first route's)."""
    path = request.scope["path"]
    methods: set[str] = set()
    for route in request.app.router.routes:
        if isinstance(route, Route) and route.methods and route.path_regex.match(path):
            methods |= route.methods
    return sorted(methods)


async def _client_disconnect(request: Request, exc: Exception) -> Response:
    log.info("%s %s: client disconnected mid-request", request.method, request.url.path)
    return _error(
        request, 400, InvalidArgument.error_code, "The request body was cut short", _NOSNIFF
    )


# -- middleware --------------------------------------------------------------------------------
