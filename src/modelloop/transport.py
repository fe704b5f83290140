"""The HTTP transport to a modelloop server, shared by every remote store.

One ``httpx.Client`` per transport keeps connections alive, created on first use: building a
store is free, and a store that is never used never opens a connection. The server reports errors
as ``{"error_code", "message", "details"?}``; they are raised here as the same
:mod:`modelloop.errors` class, so code written against a local store handles remote failures
unchanged. A failure to connect raises ``ServerUnavailable`` (nothing was sent: safe to retry); a
connection lost once the request was sent raises ``ConnectionLost`` (it may have been applied).
"""

from __future__ import annotations

import io
import re
import threading
from collections.abc import Iterator, Mapping
from typing import Any, BinaryIO
from urllib.parse import quote

import httpx
import orjson

from modelloop._version import __version__
from modelloop.errors import (
    Conflict,
    ConnectionLost,
    InvalidArgument,
    ModelloopError,
    NotFound,
    PayloadTooLarge,
    ServerUnavailable,
    Unauthorized,
    error_from_code,
)

DEFAULT_TIMEOUT = 60.0
API = "/api/v1"
USER_HEADER = "X-Modelloop-User"  # who acts, on a server without authentication
_URL = re.compile(r"^https?://[^/?#]+", re.IGNORECASE)
_BY_STATUS: dict[int, type[ModelloopError]] = {
    401: Unauthorized,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    422: InvalidArgument,
    502: ConnectionLost,  # a proxy: the request may have reached the server
    503: ServerUnavailable,
    504: ConnectionLost,
}


class Transport:
    """Requests to ``<url>/api/v1``: pooled connections, bearer token, errors as exceptions."""

    def __init__(
        self, url: str, *, token: str | None = None, timeout: float = DEFAULT_TIMEOUT
    ) -> None:
        if not _URL.match(url):
            raise InvalidArgument(f"Invalid tracking URI {url!r}: expected http(s)://host[:port]")
        self.url = url.rstrip("/")
        self._token = token
        self._timeout = timeout
        self._http: httpx.Client | None = None
        self._lock = threading.Lock()

    def close(self) -> None:
        """Close pooled connections; a later call opens new ones."""
        with self._lock:
            http, self._http = self._http, None
        if http is not None:
            http.close()

    def client(self) -> httpx.Client:
        with self._lock:
            if self._http is None:
                headers = {"User-Agent": f"modelloop/{__version__}", "Accept": "application/json"}
                if self._token:
                    headers["Authorization"] = f"Bearer {self._token}"
                self._http = httpx.Client(
                    base_url=self.url,
                    headers=headers,
                    timeout=httpx.Timeout(self._timeout, connect=min(self._timeout, 10.0)),
                )
            return self._http

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        params: Mapping[str, str] | None = None,
        content: bytes | BinaryIO | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        """One request with a JSON (or raw) body; the decoded JSON answer, None for 204."""
        merged = dict(headers or {})
        if body is not None:
            content = orjson.dumps(body)
            merged["Content-Type"] = "application/json"
        request = self.client().build_request(
            method, f"{API}{path}", params=params, content=content, headers=merged
        )
        response = self.send(request)
        if response.status_code == 204 or not response.content:
            return None
        try:
            return orjson.loads(response.content)
        except orjson.JSONDecodeError:
            raise ModelloopError(
                f"{method} {response.url} did not answer JSON: is {self.url} a modelloop server?"
            ) from None

    def open(self, path: str, params: Mapping[str, str] | None = None) -> BinaryIO:
        """A streamed ``GET`` as a readable binary file; close it to release the connection."""
        request = self.client().build_request("GET", f"{API}{path}", params=params)
        response = self.send(request, stream=True)
        return io.BufferedReader(_ResponseStream(response, self.url), 1024 * 1024)

    def send(self, request: httpx.Request, stream: bool = False) -> httpx.Response:
        try:
            response = self.client().send(request, stream=stream)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise ServerUnavailable(  # nothing was sent: safe to retry
                f"Cannot reach the modelloop server at {self.url}: {str(exc) or type(exc).__name__}"
            ) from exc
        except httpx.TransportError as exc:
            raise ConnectionLost(
                f"Lost the connection to {self.url} during {request.method} {request.url.path}; "
                f"the server may have applied it: {str(exc) or type(exc).__name__}"
            ) from exc
        if not response.is_success:  # redirects too: the API never redirects
            try:
                response.read()
            except httpx.TransportError as exc:
                raise ServerUnavailable(f"Lost the connection to {self.url}: {exc}") from exc
            finally:
                response.close()
            raise error_for(response)
        return response


class HttpStore:
    """What every domain's store on a server shares: one :class:`Transport`, its URL, ``close``
    and calls that name who acts (a server without authentication records that name; one with
    it records the token's user)."""

    def __init__(
        self, url: str, *, token: str | None = None, timeout: float = DEFAULT_TIMEOUT
    ) -> None:
        self._transport = Transport(url, token=token, timeout=timeout)
        self.url = self._transport.url

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"

    def close(self) -> None:
        self._transport.close()

    def _call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        actor: str | None = None,
        params: Mapping[str, str | None] | None = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        sent = dict(headers or {})
        if actor is not None:
            sent[USER_HEADER] = actor
        query = {k: v for k, v in (params or {}).items() if v is not None}
        # No params at all when none are set: an empty mapping would drop a query in ``path``.
        return self._transport.call(
            method, path, body, params=query or None, content=content, headers=sent or None
        )


class _ResponseStream(io.RawIOBase):
    """An HTTP response body as a raw binary file."""

    def __init__(self, response: httpx.Response, url: str) -> None:
        self._response = response
        self._url = url
        self._chunks: Iterator[bytes] = response.iter_bytes()
        self._pending = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._pending:
            try:
                self._pending = memoryview(next(self._chunks))
            except StopIteration:
                return 0
            except httpx.TransportError as exc:
                raise ServerUnavailable(f"Lost the connection to {self._url}: {exc}") from exc
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size

    def close(self) -> None:
        if not self.closed:
            self._response.close()
        super().close()


def error_for(response: httpx.Response) -> ModelloopError:
    """The exception a server's error answer stands for."""
    try:
        payload = orjson.loads(response.content)
        code, message = payload["error_code"], payload["message"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        code = message = None
    if isinstance(code, str) and isinstance(message, str):
        details = payload.get("details") if isinstance(payload, dict) else None
        return error_from_code(code, message, details if isinstance(details, list) else None)
    cls = _BY_STATUS.get(response.status_code, ModelloopError)
    text = response.text[:200].strip()
    return cls(
        f"{response.request.method} {response.request.url} answered HTTP "
        f"{response.status_code}{': ' + text if text else ''}"
    )


def segment(text: str) -> str:
    """One URL path segment; dots too, so '.' and '..' are never read as dot-segments."""
    return quote(text, safe="").replace(".", "%2E")
