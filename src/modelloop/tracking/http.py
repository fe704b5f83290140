"""Tracking through a modelloop server: the :class:`TrackingStore` protocol over HTTP.

One ``httpx.Client`` per store keeps connections alive, so the hot path (metric batches from the
background writer) costs one request per batch, not one connection. The server reports errors as
``{"error_code", "message"}``; they are raised here as the same :mod:`modelloop.errors` class,
so code written against the local store handles remote failures unchanged. A server that cannot
be reached raises ``ServerUnavailable`` (the writer retries those).

The ``httpx.Client`` is created on first use: building a store is free, and a ``Client`` that is
never used never opens a connection or loads a certificate bundle.
"""

from __future__ import annotations

import io
import math
import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO, cast
from urllib.parse import quote

import httpx
import numpy as np
import orjson

from modelloop._version import __version__
from modelloop.artifacts import canonical_path
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
from modelloop.tracking.entities import (
    ArtifactInfo,
    Experiment,
    Metric,
    MetricSeries,
    Run,
    RunSpec,
    RunStatus,
    check_run_id,
)

DEFAULT_TIMEOUT = 60.0
_API = "/api/v1"
_CHUNK = 1024 * 1024
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


class HttpTrackingStore:
    """Implements :class:`~modelloop.tracking.store.TrackingStore` against a server's REST API."""

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

    def __repr__(self) -> str:
        return f"HttpTrackingStore({self.url!r})"

    def close(self) -> None:
        """Close pooled connections; a later call opens new ones."""
        with self._lock:
            http, self._http = self._http, None
        if http is not None:
            http.close()

    # -- experiments -------------------------------------------------------------------------

    def create_experiment(self, name: str, description: str | None = None) -> Experiment:
        body = {"name": name, "description": description}
        return _experiment(self._call("POST", "/experiments", body))

    def get_experiment(self, experiment_id: str) -> Experiment:
        return _experiment(self._call("GET", f"/experiments/{_segment(experiment_id)}"))

    def get_experiment_by_name(self, name: str) -> Experiment | None:
        try:
            return _experiment(self._call("GET", f"/experiments/by-name/{_segment(name)}"))
        except NotFound:
            return None

    def list_experiments(self) -> list[Experiment]:
        return [_experiment(e) for e in self._call("GET", "/experiments")["experiments"]]

    # -- runs --------------------------------------------------------------------------------

    def create_run(self, spec: RunSpec) -> Run:
        body = {
            "experiment_id": spec.experiment_id,
            "name": spec.name,
            "parent_run_id": spec.parent_run_id,
            "user": spec.user,
            "params": dict(spec.params),
            "tags": dict(spec.tags),
            "source": dict(spec.source),
            "environment": dict(spec.environment),
        }
        return _run(self._call("POST", "/runs", body))

    def get_run(self, run_id: str) -> Run:
        return _run(self._call("GET", f"/runs/{check_run_id(run_id)}"))

    def end_run(self, run_id: str, status: RunStatus, error: str | None = None) -> Run:
        body = {"status": RunStatus(status).value, "error": error}
        return _run(self._call("POST", f"/runs/{check_run_id(run_id)}/end", body))

    def log_batch(
        self,
        run_id: str,
        metrics: Sequence[Metric] = (),
        params: Mapping[str, str] | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> None:
        body = {
            "metrics": [
                [
                    m.key,
                    m.value if math.isfinite(m.value) else _non_finite(m.value),
                    m.step,
                    m.timestamp,
                ]
                for m in metrics
            ],
            "params": dict(params or {}),
            "tags": dict(tags or {}),
        }
        self._call("POST", f"/runs/{check_run_id(run_id)}/batch", body)

    def metric_history(self, run_id: str, key: str) -> MetricSeries:
        path = f"/runs/{check_run_id(run_id)}/metrics/{_segment(key)}/history"
        data = self._call("GET", path)
        return MetricSeries(
            key=data["key"],
            steps=np.asarray(data["steps"], dtype=np.int64),
            # null is NaN; "NaN", "Infinity" and "-Infinity" parse as floats too
            values=np.asarray(data["values"], dtype=np.float64),
            timestamps=np.asarray(data["timestamps"], dtype=np.int64),
        )

    def search_runs(
        self,
        experiment_ids: Sequence[str],
        filter: str | None = None,
        order_by: Sequence[str] = (),
        max_results: int = 1000,
    ) -> list[Run]:
        body = {
            "experiment_ids": list(experiment_ids),
            "filter": filter,
            "order_by": list(order_by),
            "max_results": max_results,
        }
        return [_run(r) for r in self._call("POST", "/runs/search", body)["runs"]]

    # -- artifacts ---------------------------------------------------------------------------

    def put_artifact(self, run_id: str, path: str, source: Path | bytes) -> ArtifactInfo:
        """Upload ``source``; a file is streamed from disk, never read whole into memory."""
        url = f"/runs/{check_run_id(run_id)}/artifact"
        params = {"path": canonical_path(path)}  # refuse locally what the server would refuse
        headers = {"Content-Type": "application/octet-stream"}
        if isinstance(source, bytes):
            return _artifact(self._call("PUT", url, params=params, content=source, headers=headers))
        with open(source, "rb") as file:  # httpx reads it in chunks and sends its length
            return _artifact(self._call("PUT", url, params=params, content=file, headers=headers))

    def list_artifacts(self, run_id: str, prefix: str = "") -> list[ArtifactInfo]:
        params = {"prefix": prefix} if prefix else None
        data = self._call("GET", f"/runs/{check_run_id(run_id)}/artifacts", params=params)
        return [_artifact(a) for a in data["artifacts"]]

    def open_artifact(self, run_id: str, path: str) -> BinaryIO:
        """A readable stream of the artifact; close it to release the connection."""
        http = self._client()
        request = http.build_request(
            "GET", f"{_API}/runs/{check_run_id(run_id)}/artifact", params={"path": path}
        )
        response = self._send(http, request, stream=True)
        return cast(BinaryIO, io.BufferedReader(_ResponseStream(response, self.url), _CHUNK))

    # -- transport ---------------------------------------------------------------------------

    def _client(self) -> httpx.Client:
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

    def _call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        params: Mapping[str, str] | None = None,
        content: bytes | BinaryIO | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        """One request with a JSON (or raw) body; the decoded JSON answer, None for 204."""
        if body is not None:
            content = orjson.dumps(body)
            headers = {"Content-Type": "application/json"}
        http = self._client()
        request = http.build_request(
            method, f"{_API}{path}", params=params, content=content, headers=headers
        )
        response = self._send(http, request)
        if response.status_code == 204 or not response.content:
            return None
        try:
            return orjson.loads(response.content)
        except orjson.JSONDecodeError:
            raise ModelloopError(
                f"{method} {response.url} did not answer JSON: is {self.url} a modelloop server?"
            ) from None

    def _send(
        self, http: httpx.Client, request: httpx.Request, stream: bool = False
    ) -> httpx.Response:
        try:
            response = http.send(request, stream=stream)
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
            raise _error(response)
        return response


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


def _error(response: httpx.Response) -> ModelloopError:
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


def _segment(text: str) -> str:
    """One URL path segment; dots too, so '.' and '..' are never read as dot-segments."""
    return quote(text, safe="").replace(".", "%2E")


def _non_finite(value: float) -> str | None:
    """NaN as null and infinities as strings: JSON has neither, orjson writes both as null."""
    return None if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")


def _experiment(data: dict[str, Any]) -> Experiment:
    return Experiment(
        experiment_id=data["experiment_id"],
        name=data["name"],
        created_at=data["created_at"],
        description=data.get("description"),
    )


def _run(data: dict[str, Any]) -> Run:
    return Run(
        run_id=data["run_id"],
        experiment_id=data["experiment_id"],
        name=data["name"],
        status=RunStatus(data["status"]),
        start_time=data["start_time"],
        end_time=data["end_time"],
        parent_run_id=data["parent_run_id"],
        user=data["user"],
        source=data["source"],
        environment=data["environment"],
        error=data["error"],
        params=data["params"],
        tags=data["tags"],
        metrics={k: math.nan if v is None else float(v) for k, v in data["metrics"].items()},
    )


def _artifact(data: dict[str, Any]) -> ArtifactInfo:
    return ArtifactInfo(path=data["path"], digest=data["digest"], size=data["size"])
