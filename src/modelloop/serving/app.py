"""The serving app: lean Starlette routes, orjson, and the REST server's error contract.

    POST /predict    one record, a list of records or columns -> predictions (see ``scoring``)
    POST /explain    the same, plus contributions and top-k reason codes (``?top_k=3``)
    POST /feedback   {prediction_id, label} or a list of them (see ``feedback``)
    GET  /health     the process is up (open even with a token)
    GET  /ready      200 once the models are loaded, with who serves; 503 before
    GET  /metrics    Prometheus text, this process's numbers

FastAPI's per-request validation costs more than a whole prediction, so the hot path is a plain
Starlette endpoint: read the body (bounded), ``orjson.loads``, validate against the model's
signature, score, ``orjson.dumps``. Every failure is ``{error_code, message, details?}`` with the
status of its :mod:`modelloop.errors` class; a client mistake is never a 500. The last-resort
error boundary and the ``Host`` allow-list (:mod:`modelloop.web.hosts`) are the REST
server's; auth is a lean bearer check of the server's token (no user lookup per request).
Feedback and large bodies are handled off the event loop.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from modelloop.auth import (
    ADMIN,
    ANONYMOUS,
    check_token,
    presented_token,
    token_matches,
)
from modelloop.clock import now_ms as wall_clock_ms
from modelloop.errors import (
    Conflict,
    InvalidArgument,
    InvalidInput,
    ModelloopError,
    NotFound,
    PayloadTooLarge,
    ServerUnavailable,
    Unauthorized,
)
from modelloop.serving import feedback as fb
from modelloop.serving.metrics import ServingMetrics
from modelloop.serving.prediction_log import PredictionLog
from modelloop.serving.predictor import Predictor
from modelloop.serving.scoring import answer
from modelloop.serving.stats import TrafficStats
from modelloop.settings import Settings
from modelloop.transport import USER_HEADER
from modelloop.web.hosts import AllowedHosts, HostCheck
from modelloop.web.middleware import ErrorBoundary
from modelloop.web.responses import error_response

log = logging.getLogger("modelloop.serving")

BODY_LIMIT = 16 * 1024 * 1024
_THREAD_BODY = 64 * 1024  # bodies larger than this are scored off the event loop
_JSON = "application/json"
_CLOSE = {"Connection": "close"}
# Error bodies echo caller input; nosniff stops a browser reading them as HTML or script.
_NOSNIFF = {"X-Content-Type-Options": "nosniff"}
_WRAPPER_KEYS = frozenset({"inputs", "top_k"})

Handler = Callable[[Request, float], Awaitable[Response]]


class _Service:
    """The state the routes share: one per app (and so per worker process)."""

    def __init__(
        self,
        predictor: Predictor,
        settings: Settings,
        prediction_log: PredictionLog | None,
        token: str | None,
        clock: Callable[[], int],
    ) -> None:
        self.clock = clock
        self.predictor = predictor
        self.stats = _traffic_stats(predictor, settings, clock)
        self.settings = settings
        self.log = prediction_log
        self.token = token
        self.metrics = ServingMetrics(predictor, prediction_log)

    # -- routes ---------------------------------------------------------------------------------

    async def predict(self, request: Request, started: float) -> Response:
        return await self._score(request, started, explain=False)

    async def explain(self, request: Request, started: float) -> Response:
        return await self._score(request, started, explain=True)

    async def _score(self, request: Request, started: float, *, explain: bool) -> Response:
        serving = self.predictor.current
        body = await _read_json_body(request)
        payload = orjson.loads(body) if body else _empty_body()
        top_k: int | None = None
        if (
            isinstance(payload, dict)
            and "inputs" in payload
            and payload.keys() <= _WRAPPER_KEYS
            and "inputs" not in serving.champion.signature.names
        ):  # {"inputs": ..., "top_k": k}: the body form of the query parameter
            top_k = _top_k(payload.get("top_k"))
            payload = payload["inputs"]
        if explain:
            default = serving.deployment.explain_top_k
            top_k = _top_k(
                request.query_params.get("top_k"), top_k if top_k is not None else default
            )
        else:
            top_k = None
        kwargs: dict[str, Any] = {
            "started": started,
            "prediction_log": self.log,
            "explain_k": top_k,
            "on_shadow_error": self.metrics.shadow_failed,
            "now_ms": self.clock,
        }
        if len(body) > _THREAD_BODY:  # seconds of validation must not stall other requests
            result = await run_in_threadpool(answer, serving, payload, **kwargs)
        else:
            result = answer(serving, payload, **kwargs)
        return Response(orjson.dumps(result, option=orjson.OPT_SERIALIZE_NUMPY), media_type=_JSON)

    async def feedback(self, request: Request, started: float) -> Response:
        if self.settings.is_remote:
            raise ServerUnavailable(
                "This server reads the registry through MODELLOOP_TRACKING_URI and has no "
                "database to store labels in: serve with MODELLOOP_DATABASE_URL instead"
            )
        body = await _read_json_body(request)
        served = self.predictor.current.champion.signature  # the label judges every role
        labels, single = fb.parse_feedback(
            orjson.loads(body) if body else _empty_body(), getattr(served, "output", None)
        )
        from modelloop.store import open_database

        db = await run_in_threadpool(open_database, self.settings.database_url)
        statuses = await run_in_threadpool(
            fb.record_feedback,
            db,
            labels,
            log_uri=self.settings.prediction_log_uri,
            pending=self.log.pending_ids if self.log is not None else None,
            deployment=self.predictor.current.deployment.name,
            received_by=self._caller(request),
            now_ms=self.clock,
        )
        self.metrics.feedback(statuses)
        if not single:
            return _json(fb.feedback_summary(statuses))
        status = statuses[0]
        detail = [{"row": None, "field": "prediction_id", **status}]
        if status["status"] == fb.UNKNOWN:
            raise NotFound(f"No logged prediction {status['prediction_id']!r}", detail)
        if status["status"] == fb.DUPLICATE:
            raise Conflict(f"Prediction {status['prediction_id']!r} already has a label", detail)
        return _json(status)

    def _caller(self, request: Request) -> str:
        """Who sent feedback: the token's holder, or (loopback, no token) who it says it is."""
        if self.token:
            return ADMIN
        claimed = request.headers.get(USER_HEADER, "").strip()
        return claimed if 0 < len(claimed) <= 256 and claimed.isprintable() else ANONYMOUS

    async def health(self, request: Request, started: float) -> Response:
        return _json({"status": "ok"})

    async def ready(self, request: Request, started: float) -> Response:
        if not self.predictor.ready:
            raise ServerUnavailable("The model is still loading")
        serving = self.predictor.current
        deployment = serving.deployment
        models = [
            {"role": role, "name": m.name, "alias": m.alias, "version": m.version}
            for role, m in serving.models().items()
        ]
        return _json(
            {
                "status": "ready",
                "deployment": deployment.name,
                "mode": deployment.mode.value,
                "canary_percent": deployment.canary_percent,
                "models": models,
            }
        )

    async def scrape(self, request: Request, started: float) -> Response:
        body, content_type = self.metrics.render()
        return Response(body, media_type=content_type)

    # -- plumbing -------------------------------------------------------------------------------

    def route(self, path: str, method: str, handler: Handler) -> Route:
        """The handler wrapped in error rendering and metrics."""
        observe = self.metrics.latency(path)
        count_ok = self.metrics.requests(path, 200)

        async def endpoint(request: Request) -> Response:
            started = time.perf_counter()
            try:
                response = await handler(request, started)
            except ModelloopError as exc:
                response = self._error(path, exc)
            except orjson.JSONDecodeError as exc:
                response = self._error(path, InvalidArgument(_json_problem(exc)))
            except HTTPException:
                raise
            except Exception:
                log.exception("Unexpected error on %s %s", method, path)
                response = self._error(path, ModelloopError("Internal server error; see the log"))
            status = response.status_code
            (count_ok if status == 200 else self.metrics.requests(path, status)).inc()
            if self.stats is not None:
                self.stats.count(path, status)
            observe(time.perf_counter() - started)
            return response

        return Route(path, endpoint, methods=[method], name=path.strip("/"))

    def _error(self, path: str, exc: ModelloopError) -> Response:
        self.metrics.error(path, exc.error_code)
        headers = {**_NOSNIFF, **_CLOSE} if isinstance(exc, PayloadTooLarge) else _NOSNIFF
        return error_response(exc.status_code, exc.error_code, exc.message, headers, exc.details)


def _traffic_stats(
    predictor: Predictor, settings: Settings, clock: Callable[[], int]
) -> TrafficStats | None:
    """Requests and errors per minute to the database, when this process has one."""
    if settings.is_remote:
        return None
    from modelloop.store import open_database

    def deployment() -> str:
        return predictor.current.deployment.name if predictor.ready else "(loading)"

    return TrafficStats(open_database(settings.database_url), deployment, clock)


def create_app(
    predictor: Predictor,
    *,
    settings: Settings,
    prediction_log: PredictionLog | None = None,
    token: str | None = None,
    clock: Callable[[], int] = wall_clock_ms,
) -> Starlette:
    """The ASGI app over ``predictor`` (started on startup if it is not yet); the log (if any)
    is flushed and closed on shutdown. ``clock`` (ms since the epoch) stamps predictions and
    labels: the wall clock, or a simulation's."""
    if token is not None:
        check_token(token)
    service = _Service(predictor, settings, prediction_log, token, clock)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if not predictor.ready:
            await run_in_threadpool(predictor.start)
        if service.stats is not None:
            service.stats.start()
        try:
            yield
        finally:
            if service.stats is not None:
                await run_in_threadpool(service.stats.close)
            predictor.stop()
            if prediction_log is not None:
                await run_in_threadpool(prediction_log.close)

    routes = [
        service.route("/predict", "POST", service.predict),
        service.route("/explain", "POST", service.explain),
        service.route("/feedback", "POST", service.feedback),
        service.route("/health", "GET", service.health),
        service.route("/ready", "GET", service.ready),
        service.route("/metrics", "GET", service.scrape),
    ]
    allowed = AllowedHosts(settings.allowed_hosts, token_required=bool(token))
    middleware = [Middleware(ErrorBoundary), Middleware(HostCheck, allowed=allowed)]
    if token:
        middleware.append(Middleware(_BearerToken, token=token))
    app = Starlette(
        routes=routes,
        middleware=middleware,
        exception_handlers={HTTPException: _http_error},
        lifespan=lifespan,
    )
    app.router.redirect_slashes = False
    app.state.service = service
    return app


# -- helpers -----------------------------------------------------------------------------------


async def _read_json_body(request: Request) -> bytes:
    """The body, refused early when it is not JSON or over :data:`BODY_LIMIT`. The
    ``Content-Type`` is required: without it (or with ``text/plain``, a form's types) any web
    page could post here cross-site without asking (a CORS "simple" request)."""
    headers = request.headers
    content_type = headers.get("content-type")
    media = (content_type or "").partition(";")[0].strip().lower()
    if media != _JSON and not media.endswith("+json"):
        given = "no Content-Type" if content_type is None else repr(media or content_type)
        raise _UnsupportedMediaType(f"Send JSON with 'Content-Type: application/json', not {given}")
    declared = headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > BODY_LIMIT:
        raise PayloadTooLarge(
            f"The request body ({declared} bytes) is larger than the limit of {BODY_LIMIT} bytes"
        )
    if declared is not None and declared.isdigit():
        return await request.body()
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > BODY_LIMIT:
            raise PayloadTooLarge(
                f"The request body is larger than the limit of {BODY_LIMIT} bytes"
            )
        chunks.append(chunk)
    return b"".join(chunks)


class _UnsupportedMediaType(InvalidArgument):
    status_code = 415
    error_code = "UNSUPPORTED_MEDIA_TYPE"


def _empty_body() -> Any:
    raise InvalidInput(
        "The request body is empty: send a JSON record, list of records or columns",
        [{"row": None, "field": None, "message": "empty body"}],
    )


def _json_problem(exc: orjson.JSONDecodeError) -> str:
    text = f"body: invalid JSON at character {exc.pos}: {exc.msg}"
    if exc.doc and str(exc.doc)[exc.pos : exc.pos + 9].startswith(("NaN", "Infinity", "-Inf")):
        text += " (JSON has no NaN or Infinity: send null for a missing value)"
    return text


def _top_k(value: Any, default: int | None = None) -> int | None:
    if value is None:
        return default
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 100:
        raise InvalidInput(
            f"top_k must be an integer from 0 to 100, got {value!r}",
            [{"row": None, "field": "top_k", "message": "an integer from 0 to 100"}],
        )
    return value


def _json(content: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(content), status, media_type=_JSON)


async def _http_error(request: Request, exc: Exception) -> Response:
    """Unknown routes and wrong methods, in the error contract."""
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        code, message = "NOT_FOUND", f"No route {request.method} {request.url.path}"
    elif exc.status_code == 405:
        code = "METHOD_NOT_ALLOWED"
        message = f"Method {request.method} is not allowed on {request.url.path}"
    else:
        code, message = f"HTTP_{exc.status_code}", str(exc.detail)
    return error_response(exc.status_code, code, message, {**_NOSNIFF, **(exc.headers or {})})


class _BearerToken:
    """Everything but ``/health`` needs the server's token, checked before the body is read.
    (The REST server's auth also knows users and roles; a prediction endpoint needs neither,
    and must not pay a database lookup per request.)"""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self._token = token.encode("utf-8")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] == "/health":
            await self.app(scope, receive, send)
            return
        given = next((v for k, v in scope["headers"] if k == b"authorization"), None)
        if given is not None:
            scheme, _, credentials = given.partition(b" ")
            if scheme.lower() == b"bearer" and token_matches(
                presented_token(credentials), self._token
            ):
                await self.app(scope, receive, send)
                return
        reason = "Wrong bearer token" if given else "Missing 'Authorization: Bearer <token>'"
        headers = {**_NOSNIFF, "WWW-Authenticate": "Bearer", "Connection": "close"}
        response = error_response(401, Unauthorized.error_code, reason, headers)
        await response(scope, receive, send)
