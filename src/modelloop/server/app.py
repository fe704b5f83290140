"""The REST server: app factory, the error contract, bearer auth, body limits, and uvicorn.

Every response that is not a success is ``{"error_code", "message"}`` with the status of the
:mod:`modelloop.errors` class it came from, so the HTTP client can raise the same exception the
local store would have. Requests pass, outermost first, through:

- an error boundary: an unexpected exception is logged here and answered with a bare 500, so no
  traceback ever reaches a client;
- auth, checked before a single body byte is read. With a token configured or any user added
  (``modelloop users add``), everything but ``/health`` needs a bearer token: the server's own
  (acting as ``admin``) or an enabled user's (acting as that user, within its role: reads need
  viewer, changes editor, approvals approver). Without either (loopback development), requests
  act as the name in their ``X-Modelloop-User`` header (default ``anonymous``) with every role:
  trust on loopback, for one developer's machine, never for a shared server;
- a body limit: a declared ``Content-Length`` over the limit is refused at once, and streamed
  (chunked) bodies are counted as they arrive, so a client cannot make the server buffer or
  spool more than it allows.

A server never proxies to another server: it refuses to start when ``MODELLOOP_TRACKING_URI`` is
set, and it refuses to listen beyond loopback without a token.
"""

from __future__ import annotations

import dataclasses
import hmac
import ipaddress
import json
import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from modelloop._version import __version__
from modelloop.auth import ADMIN, ANONYMOUS, Principal, Role, Users
from modelloop.errors import (
    Forbidden,
    InvalidArgument,
    ModelloopError,
    PayloadTooLarge,
    Unauthorized,
)
from modelloop.registry.http import USER_HEADER
from modelloop.server.schemas import OrjsonResponse
from modelloop.settings import Settings, load_settings

JSON_BODY_LIMIT = 32 * 1024 * 1024
KEEP_ALIVE_SECONDS = 30  # longer than httpx's 5 s pool expiry: the client always hangs up first
_SETTINGS_ENV = "_MODELLOOP_SERVER_SETTINGS"  # settings handed to worker processes
_UPLOAD_ROUTE = re.compile(r"^/api/v1/runs/[^/]+/artifact$")
_PUBLIC_PATHS = frozenset({"/health"})
_READ_ONLY_POSTS = frozenset({"/api/v1/runs/search"})  # reads with a body: viewers may
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
    from modelloop.server.registry import registry_router
    from modelloop.server.tracking import tracking_router
    from modelloop.tracking.client import open_store
    from modelloop.tracking.sql import SqlTrackingStore

    settings = settings or load_settings()
    _refuse_remote(settings)
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
        description="Experiment tracking (experiments, runs, metrics, params, tags, artifacts) "
        "and the model registry (models, versions, aliases, approvals, audit trail).",
        docs_url="/docs",
        redoc_url=None,
        openapi_url="/openapi.json",
        default_response_class=OrjsonResponse,
        redirect_slashes=False,  # an API answers the URL it was given, or 404
    )
    app.include_router(tracking_router(store, max_upload_bytes=settings.max_upload_bytes))
    registry = SqlRegistryStore(store.db, protected_aliases=settings.protected_aliases)
    app.include_router(registry_router(registry))

    @app.get("/health", tags=["server"], openapi_extra={"security": []})
    def health() -> dict[str, str]:
        return {"status": "ok"}

    app.add_exception_handler(ModelloopError, _modelloop_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(ClientDisconnect, _client_disconnect)
    # Added innermost first: requests meet the boundary, then auth, then the body limit.
    app.add_middleware(_BodyLimit, upload_limit=settings.max_upload_bytes)
    app.add_middleware(_Auth, token=settings.token, users=users if authenticated else None)
    app.add_middleware(_ErrorBoundary)
    return app


def run_server(
    host: str,
    port: int,
    *,
    token: str | None = None,
    settings: Settings | None = None,
    workers: int = 1,
    log_level: str = "info",
) -> None:
    """Serve the API with uvicorn until interrupted. ``token`` defaults to ``settings.token``."""
    import uvicorn

    settings = settings or load_settings()
    if token:
        settings = dataclasses.replace(settings, token=token)
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
    if workers == 1:
        uvicorn.run(create_app(settings), **options)
        return
    # Worker processes import the app by name; they read these settings from the environment.
    os.environ[_SETTINGS_ENV] = json.dumps(
        {
            **dataclasses.asdict(settings),
            "home": str(settings.home),
            "protected_aliases": sorted(settings.protected_aliases),
        }
    )
    uvicorn.run(
        "modelloop.server.app:app_from_environment", factory=True, workers=workers, **options
    )


def app_from_environment() -> FastAPI:
    """The app of one worker process started by :func:`run_server`."""
    raw = os.environ.get(_SETTINGS_ENV)
    if raw is None:
        return create_app()
    fields = json.loads(raw)
    fields["home"] = Path(fields["home"])
    fields["protected_aliases"] = frozenset(fields["protected_aliases"])
    return create_app(Settings(**fields))


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach: 127.0.0.0/8, ::1 and ``localhost``."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False


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


def error_response(
    status: int,
    error_code: str,
    message: str,
    headers: Mapping[str, str] | None = None,
    details: list[dict[str, Any]] | None = None,
) -> Response:
    body: dict[str, Any] = {"error_code": error_code, "message": message}
    if details:
        body["details"] = details
    return OrjsonResponse(body, status, headers)


async def _modelloop_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ModelloopError)
    if exc.status_code >= 500:
        log.error("%s %s failed: %s", request.method, request.url.path, exc.message)
    headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, Unauthorized) else None
    return error_response(exc.status_code, exc.error_code, exc.message, headers, exc.details)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    parts = [_describe(error, exc.body) for error in errors[:_MAX_REPORTED_ERRORS]]
    if len(errors) > _MAX_REPORTED_ERRORS:
        parts.append(f"... and {len(errors) - _MAX_REPORTED_ERRORS} more")
    return error_response(422, InvalidArgument.error_code, "; ".join(parts))


def _describe(error: Any, body: Any) -> str:
    """``body.metrics.0: Input should be a valid list``, never echoing the (maybe huge) input."""
    loc = [str(part) for part in error.get("loc", ())]
    if error.get("type") == "json_invalid":
        position = loc[1] if len(loc) > 1 else "?"
        reason = (error.get("ctx") or {}).get("error", "not JSON")
        text = f"body: invalid JSON at character {position}: {reason}"
        literal = ("NaN", "Infinity", "-Infinity")
        if isinstance(body, str) and position.isdigit() and body.startswith(literal, int(position)):
            text += ' (JSON has no NaN or Infinity: send null, "NaN" or "Infinity")'
        return text
    if loc == ["body"] and isinstance(error.get("input"), bytes):
        return "body: expected a JSON object sent with 'Content-Type: application/json'"
    return f"{'.'.join(loc) or 'request'}: {error.get('msg', 'invalid')}"


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = _HTTP_ERROR_CODES.get(exc.status_code, f"HTTP_{exc.status_code}")
    if exc.status_code == 404 and exc.detail == "Not Found":
        message = f"No route {request.method} {request.url.path}"
    elif exc.status_code == 405:
        message = f"Method {request.method} is not allowed on {request.url.path}"
    elif exc.status_code == 400 and exc.detail == "There was an error parsing the body":
        message = "body: could not be parsed as JSON"
    else:
        message = str(exc.detail)
    return error_response(exc.status_code, code, message, exc.headers)


async def _client_disconnect(request: Request, exc: Exception) -> Response:
    log.info("%s %s: client disconnected mid-request", request.method, request.url.path)
    return error_response(400, InvalidArgument.error_code, "The request body was cut short")


# -- middleware --------------------------------------------------------------------------------


async def _send_error(send: Send, exc: ModelloopError, headers: dict[str, str]) -> None:
    response = error_response(exc.status_code, exc.error_code, exc.message, headers)
    await send(
        {
            "type": "http.response.start",
            "status": response.status_code,
            "headers": response.raw_headers,
        }
    )
    await send({"type": "http.response.body", "body": response.body})


class _ErrorBoundary:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watched_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watched_send)
        except Exception:
            log.exception("Unexpected error on %s %s", scope.get("method"), scope.get("path"))
            if started:  # too late for a clean answer: let the server drop the connection
                raise
            await _send_error(
                send,
                ModelloopError("Internal server error; the server log has the details"),
                {"Connection": "close"},
            )


class _Auth:
    """Decides each request's :class:`~modelloop.auth.Principal` (``scope["state"]``) and
    enforces the role its method needs; ``users=None`` means no authentication."""

    def __init__(self, app: ASGIApp, token: str | None, users: Users | None) -> None:
        self.app = app
        self._token = token.encode("utf-8") if token else None
        self._users = users

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in _PUBLIC_PATHS:
            await self.app(scope, receive, send)
            return
        if self._users is None:
            principal = _claimed_principal(scope)
            if principal is None:
                await _send_error(
                    send,
                    InvalidArgument(
                        f"Invalid {USER_HEADER} header: use a name of 1-256 characters"
                    ),
                    {"Connection": "close"},
                )
                return
        else:
            principal = await self._authenticate(scope)
            if principal is None:
                given = _header(scope, b"authorization")
                reason = (
                    "Missing bearer token: send 'Authorization: Bearer <token>'"
                    if given is None
                    else "Wrong bearer token"
                )
                # Close: whatever body the request carries is not worth reading.
                await _send_error(
                    send,
                    Unauthorized(reason),
                    {"WWW-Authenticate": "Bearer", "Connection": "close"},
                )
                return
            needed = _role_needed(scope)
            if not principal.role.allows(needed):
                message = (
                    f"User {principal.name!r} has the {principal.role.value} role; "
                    f"{scope['method']} {scope['path']} needs {needed.value} or higher"
                )
                await _send_error(send, Forbidden(message), {"Connection": "close"})
                return
        scope.setdefault("state", {})["principal"] = principal
        await self.app(scope, receive, send)

    async def _authenticate(self, scope: Scope) -> Principal | None:
        given = _header(scope, b"authorization")
        if given is None:
            return None
        scheme, _, credentials = given.partition(b" ")
        credentials = credentials.strip()
        if scheme.lower() != b"bearer" or not credentials:
            return None
        if self._token is not None and hmac.compare_digest(credentials, self._token):
            return Principal(ADMIN, Role.admin)
        assert self._users is not None
        return await run_in_threadpool(self._users.authenticate, credentials.decode("latin-1"))


def _header(scope: Scope, name: bytes) -> bytes | None:
    return next((v for k, v in scope["headers"] if k == name), None)


def _claimed_principal(scope: Scope) -> Principal | None:
    """Who an unauthenticated request says it is (trust on loopback); None when malformed."""
    raw = _header(scope, USER_HEADER.lower().encode())
    if raw is None:
        return Principal(ANONYMOUS, Role.admin, verified=False)
    name = raw.decode("latin-1").strip()
    if not name:
        return Principal(ANONYMOUS, Role.admin, verified=False)
    if len(name) > 256 or any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        return None
    return Principal(name, Role.admin, verified=False)


def _role_needed(scope: Scope) -> Role:
    if scope["method"] in ("GET", "HEAD", "OPTIONS") or scope["path"] in _READ_ONLY_POSTS:
        return Role.viewer
    return Role.editor


class _BodyTooLarge(HTTPException):
    """Raised from ``receive``: an ``HTTPException`` so that FastAPI's body parsing lets it
    through instead of reporting a generic parse error."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            413,
            f"The request body is larger than the limit of {limit} bytes",
            {"Connection": "close"},
        )


class _BodyLimit:
    def __init__(self, app: ASGIApp, upload_limit: int, json_limit: int = JSON_BODY_LIMIT) -> None:
        self.app = app
        self.upload_limit = upload_limit
        self.json_limit = json_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        upload = scope["method"] == "PUT" and _UPLOAD_ROUTE.match(scope["path"])
        limit = self.upload_limit if upload else self.json_limit
        declared = next((v for k, v in scope["headers"] if k == b"content-length"), b"")
        if declared.isdigit() and int(declared) > limit:
            await _send_error(
                send,
                PayloadTooLarge(
                    f"The request body ({int(declared)} bytes) is larger than the limit of "
                    f"{limit} bytes"
                ),
                {"Connection": "close"},  # the body stays unread: this connection is spent
            )
            return
        received = 0

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _BodyTooLarge(limit)
            return message

        await self.app(scope, counted_receive, send)
