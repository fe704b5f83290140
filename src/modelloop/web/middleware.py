"""ASGI middleware shared by the REST server and the serving server.

- :class:`ErrorBoundary`: an unexpected exception is logged and answered with a bare 500, so no
  traceback ever reaches a client;
- :class:`Auth`: decides each request's principal (admin token, a user's token, or the name
  claimed on an unauthenticated loopback server) and enforces the role its method needs, before a
  single body byte is read. A browser sends its token in the HttpOnly, SameSite=Strict cookie
  that ``POST /ui/login`` sets (other sites' pages cannot make it send the cookie), and a page
  of the web UI asked for without one is redirected to the login form;
- :class:`BodyLimit`: a declared ``Content-Length`` over the limit is refused at once, and streamed
  bodies are counted as they arrive.
"""

from __future__ import annotations

import logging
import re
from urllib.parse import quote, unquote

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from modelloop.auth import (
    ADMIN,
    ANONYMOUS,
    Principal,
    Role,
    Users,
    presented_token,
    token_matches,
)
from modelloop.errors import (
    Forbidden,
    InvalidArgument,
    ModelloopError,
    PayloadTooLarge,
    Unauthorized,
)
from modelloop.transport import USER_HEADER
from modelloop.web.responses import error_response

JSON_BODY_LIMIT = 32 * 1024 * 1024
# Raw-body uploads, bounded by the upload limit instead of the JSON one: modelloop's own and
# MLflow's artifact proxy (``PUT /api/2.0/mlflow-artifacts/artifacts/<path>``).
_UPLOAD_ROUTE = re.compile(
    r"^/api/v1/(?:runs/[^/]+/artifact|datasets/[^/]+/versions)$"
    r"|^/api/2\.0/mlflow-artifacts/artifacts/."
)
_PUBLIC_PATHS = frozenset({"/health", "/", "/ui", "/ui/login", "/ui/logout"})  # or redirects
_PUBLIC_PREFIXES = ("/ui/static/",)  # the UI's CSS and scripts, which the login page needs
TOKEN_COOKIE = "modelloop_token"  # noqa: S105 - a name; its value is the token, %-encoded
_READ_ONLY_POSTS = frozenset({"/api/v1/runs/search", "/api/v1/experiments/search"})  # reads
_READ_ONLY_POST_ROUTES = (  # the same, for routes with path parameters
    re.compile(r"/ui/datasets/[^/]+/versions/[^/]+/validate"),  # a pasted contract, not stored
    # MLflow's client asks for the latest versions (models:/NAME/latest) with a POST first.
    re.compile(r"/(?:ajax-)?api/2\.0/mlflow/registered-models/get-latest-versions"),
    re.compile(r"/(?:ajax-)?api/2\.0/mlflow/logged-models/search"),  # MLflow 3 POSTs it
    re.compile(r"/(?:ajax-)?api/2\.0/mlflow/(?:runs|experiments)/search"),
)

log = logging.getLogger("modelloop.server")


async def send_error(
    scope: Scope, send: Send, exc: ModelloopError, headers: dict[str, str]
) -> None:
    path = scope.get("path")
    response = error_response(exc.status_code, exc.error_code, exc.message, headers, path=path)
    await send(
        {
            "type": "http.response.start",
            "status": response.status_code,
            "headers": response.raw_headers,
        }
    )
    await send({"type": "http.response.body", "body": response.body})


class ErrorBoundary:
    """Answers an unexpected exception with a bare 500 (logged here), never a traceback."""

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
            await send_error(
                scope,
                send,
                ModelloopError("Internal server error; the server log has the details"),
                {"Connection": "close"},
            )


class Auth:
    """Decides each request's :class:`~modelloop.auth.Principal` (``scope["state"]``) and
    enforces the role its method needs; ``users=None`` means no authentication."""

    def __init__(self, app: ASGIApp, token: str | None, users: Users | None) -> None:
        self.app = app
        self._token = token.encode("utf-8") if token else None
        self._users = users

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path in _PUBLIC_PATHS or path.startswith(_PUBLIC_PREFIXES):
            await self.app(scope, receive, send)
            return
        if self._users is None:
            principal = _claimed_principal(scope)
            if principal is None:
                await send_error(
                    scope,
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
                if _is_page(path) and scope["method"] in ("GET", "HEAD"):
                    await _to_login(send, scope)
                    return
                given = _header(scope, b"authorization")
                reason = (
                    "Missing bearer token: send 'Authorization: Bearer <token>'"
                    if given is None
                    else "Wrong bearer token"
                )
                # Close: whatever body the request carries is not worth reading.
                await send_error(
                    scope,
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
                await send_error(scope, send, Forbidden(message), {"Connection": "close"})
                return
        scope.setdefault("state", {})["principal"] = principal
        await self.app(scope, receive, send)

    async def _authenticate(self, scope: Scope) -> Principal | None:
        given = _header(scope, b"authorization")
        if given is None:
            credentials = presented_token(_cookie_token(scope))
        else:
            scheme, _, raw = given.partition(b" ")
            credentials = presented_token(raw) if scheme.lower() == b"bearer" else None
        if credentials is None:
            return None
        if self._token is not None and token_matches(credentials, self._token):
            return Principal(ADMIN, Role.admin)
        assert self._users is not None
        return await run_in_threadpool(self._users.authenticate, credentials.decode("latin-1"))


def _header(scope: Scope, name: bytes) -> bytes | None:
    return next((v for k, v in scope["headers"] if k == name), None)


def _is_page(path: str) -> bool:
    return path.startswith("/ui/") and not path.startswith("/ui/api/")  # JSON answers 401


def _cookie_token(scope: Scope) -> bytes | None:
    raw = _header(scope, b"cookie")
    for item in (raw or b"").decode("latin-1").split(";"):
        name, _, value = item.strip().partition("=")
        if name == TOKEN_COOKIE and value:
            return unquote(value).encode("utf-8")
    return None


async def _to_login(send: Send, scope: Scope) -> None:
    """A browser asking for a page without a (valid) token gets the login form, not JSON."""
    query = scope.get("query_string", b"").decode("latin-1")
    target = scope["path"] + (f"?{query}" if query else "")
    reason = "&reason=rejected" if _cookie_token(scope) is not None else ""
    location = f"/ui/login?next={quote(target, safe='')}{reason}"
    response = Response(status_code=303, headers={"Location": location})
    await send({"type": "http.response.start", "status": 303, "headers": response.raw_headers})
    await send({"type": "http.response.body", "body": b""})


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
    path = scope["path"]
    if (
        scope["method"] in ("GET", "HEAD", "OPTIONS")
        or path in _READ_ONLY_POSTS
        or any(route.fullmatch(path) for route in _READ_ONLY_POST_ROUTES)
    ):
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


class BodyLimit:
    """Refuses bodies over the limit: declared ones at once, streamed ones as they arrive."""

    def __init__(self, app: ASGIApp, upload_limit: int, json_limit: int = JSON_BODY_LIMIT) -> None:
        self.app = app
        self.upload_limit = upload_limit
        self.json_limit = json_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        upload = scope["method"] in ("PUT", "POST") and _UPLOAD_ROUTE.match(scope["path"])
        limit = self.upload_limit if upload else self.json_limit
        declared = next((v for k, v in scope["headers"] if k == b"content-length"), b"")
        if declared.isdigit() and int(declared) > limit:
            await send_error(
                scope,
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


def request_principal(request: Request) -> Principal:
    """Who is asking: set by :class:`Auth`; an app built without it acts as an anonymous admin."""
    found = request.scope.get("state", {}).get("principal")
    return found if isinstance(found, Principal) else Principal(ANONYMOUS, Role.admin)
