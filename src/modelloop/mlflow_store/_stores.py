"""The stores behind ``modelloop://`` URIs (see :mod:`modelloop.mlflow_store`)."""

from __future__ import annotations

import http.client
import json
import math
import ssl
import threading
from base64 import b64encode
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

from mlflow.entities import (
    Metric,
    Param,
    Run,
    RunData,
    RunInfo,
    RunInputs,
    RunOutputs,
    RunStatus,
    RunTag,
    ViewType,
)
from mlflow.exceptions import MlflowException, RestException
from mlflow.protos.service_pb2 import Run as ProtoRun
from mlflow.store.artifact.mlflow_artifacts_repo import MlflowArtifactsRepository
from mlflow.store.entities.paged_list import PagedList
from mlflow.store.model_registry.rest_store import RestStore as RestRegistryStore
from mlflow.store.tracking.rest_store import RestStore
from mlflow.utils.credentials import get_default_host_creds
from mlflow.utils.proto_json_utils import parse_dict

try:
    import orjson

    _loads: Callable[[bytes], Any] = orjson.loads
except ImportError:  # pragma: no cover - modelloop depends on orjson
    _loads = json.loads

SCHEMES = {"modelloop": "http", "modelloop+https": "https"}
_API = "/api/2.0/mlflow"


def http_uri(uri: str) -> str:
    """``modelloop://host:port/path`` as the ``http://`` URI MLflow's REST stores speak to."""
    parts = urlsplit(uri)
    scheme = SCHEMES.get(parts.scheme)
    if scheme is None:
        return uri
    if not parts.netloc:
        raise MlflowException(
            f"Tracking URI {uri!r} names no server: use {parts.scheme}://HOST:PORT, e.g. "
            "modelloop://127.0.0.1:5000"
        )
    return urlunsplit((scheme, parts.netloc, parts.path.rstrip("/"), "", ""))


class ModelloopTrackingStore(RestStore):
    """MLflow's REST tracking store, with the calls a training loop makes in bulk made lean."""

    def __init__(self, store_uri: str) -> None:
        self.uri = http_uri(store_uri)
        super().__init__(lambda: get_default_host_creds(self.uri))
        self._transport: tuple[tuple[Any, ...], _Lean] | None = None

    @property
    def _lean(self) -> _Lean | None:
        """The lean transport for the credentials as they are now (MLflow reads them from the
        environment on every call, so a changed token applies at once); None when they need
        MLflow's own transport (request signing, auth plugins, client certificates)."""
        creds = self.get_host_creds()
        if creds.aws_sigv4 or creds.auth or creds.client_cert_path or creds.use_databricks_sdk:
            return None
        key = (
            creds.token,
            creds.username,
            creds.password,
            creds.ignore_tls_verification,
            creds.server_cert_path,
        )
        if self._transport is None or self._transport[0] != key:
            if self._transport is not None:
                self._transport[1].close()
            self._transport = (key, _Lean(self.uri, creds))
        return self._transport[1]

    def log_metric(self, run_id: str, metric: Metric) -> None:
        lean = self._lean
        if lean is None:
            return super().log_metric(run_id, metric)
        lean.call("POST", "/runs/log-metric", {"run_id": run_id, **_metric(metric)})
        return None

    def log_param(self, run_id: str, param: Param) -> None:
        lean = self._lean
        if lean is None:
            return super().log_param(run_id, param)
        body = {"run_id": run_id, "key": param.key, "value": param.value}
        lean.call("POST", "/runs/log-parameter", body)
        return None

    def set_tag(self, run_id: str, tag: RunTag) -> None:
        lean = self._lean
        if lean is None:
            return super().set_tag(run_id, tag)
        lean.call("POST", "/runs/set-tag", {"run_id": run_id, "key": tag.key, "value": tag.value})
        return None

    def log_batch(
        self,
        run_id: str,
        metrics: Sequence[Metric],
        params: Sequence[Param],
        tags: Sequence[RunTag],
    ) -> None:
        lean = self._lean
        if lean is None:
            return super().log_batch(run_id, metrics, params, tags)
        body = {
            "run_id": run_id,
            "metrics": [_metric(m) for m in metrics],
            "params": [{"key": p.key, "value": p.value} for p in params],
            "tags": [{"key": t.key, "value": t.value} for t in tags],
        }
        lean.call("POST", "/runs/log-batch", body)
        return None

    def get_metric_history(
        self,
        run_id: str,
        metric_key: str,
        max_results: int | None = None,
        page_token: str | None = None,
    ) -> PagedList[Metric]:
        lean = self._lean
        if lean is None:
            return super().get_metric_history(run_id, metric_key, max_results, page_token)
        query = {"run_id": run_id, "metric_key": metric_key}
        if max_results is not None:
            query["max_results"] = str(max_results)
        if page_token:
            query["page_token"] = page_token
        answer = lean.call("GET", "/metrics/get-history", query=query)
        points = [
            Metric(
                m["key"],
                _number(m.get("value", 0.0)),
                int(m.get("timestamp", 0)),
                int(m.get("step", 0)),
                m.get("model_id"),
                m.get("dataset_name"),
                m.get("dataset_digest"),
                m.get("run_id"),
            )
            for m in answer.get("metrics", ())
        ]
        return PagedList(points, answer.get("next_page_token") or None)

    def _search_runs(
        self,
        experiment_ids: Sequence[str],
        filter_string: str,
        run_view_type: int,
        max_results: int,
        order_by: Sequence[str] | None,
        page_token: str | None,
    ) -> tuple[list[Run], str | None]:
        lean = self._lean
        if lean is None:
            return super()._search_runs(
                experiment_ids, filter_string, run_view_type, max_results, order_by, page_token
            )
        body: dict[str, Any] = {
            "experiment_ids": [str(e) for e in experiment_ids],
            "filter": filter_string,
            "run_view_type": ViewType.to_string(run_view_type).upper(),
            "max_results": max_results,
            "order_by": list(order_by or ()),
        }
        if page_token:
            body["page_token"] = page_token
        answer = lean.call("POST", "/runs/search", body)
        return [_run(r) for r in answer.get("runs", ())], answer.get("next_page_token") or None


def registry_store(uri: str) -> RestRegistryStore:
    """MLflow's REST registry store, unchanged, on the server ``uri`` names."""
    server = http_uri(uri)
    return RestRegistryStore(lambda: get_default_host_creds(server))


class ArtifactsRepository(MlflowArtifactsRepository):
    """Entry point ``mlflow.artifact_repository`` for ``mlflow-artifacts:``: MLflow's own, which
    accepts only an http(s) tracking URI to resolve against, given the one a ``modelloop://`` URI
    means. Every other tracking URI resolves exactly as before."""

    @classmethod
    def resolve_uri(cls, artifact_uri: str, tracking_uri: str) -> str:
        return super().resolve_uri(artifact_uri, http_uri(tracking_uri))


def _metric(m: Metric) -> dict[str, Any]:
    value: float | str = m.value
    if not math.isfinite(m.value):  # proto3 JSON, as MLflow's client sends it
        value = "NaN" if math.isnan(m.value) else ("Infinity" if m.value > 0 else "-Infinity")
    point: dict[str, Any] = {"key": m.key, "value": value, "timestamp": m.timestamp, "step": m.step}
    if m.model_id is not None:
        point["model_id"] = m.model_id
    if m.dataset_name is not None:
        point["dataset_name"] = m.dataset_name
        point["dataset_digest"] = m.dataset_digest
    return point


def _number(value: float | str) -> float:
    """A metric value; proto3 JSON sends NaN and the infinities as strings."""
    return float(value)


def _run(answer: dict[str, Any]) -> Run:
    """A run from its JSON; runs with dataset or model inputs or outputs go through MLflow's own
    protobuf parsing, the rest are built directly (parsing is most of a large search's time)."""
    inputs, outputs = answer.get("inputs") or {}, answer.get("outputs") or {}
    if any(inputs.values()) or any(outputs.values()):
        proto = ProtoRun()
        parse_dict(answer, proto)
        return Run.from_proto(proto)
    info, data = answer["info"], answer.get("data") or {}
    end_time = info.get("end_time")
    return Run(
        RunInfo(
            run_id=info["run_id"],
            experiment_id=info["experiment_id"],
            user_id=info.get("user_id", ""),
            status=info.get("status", RunStatus.to_string(RunStatus.RUNNING)),
            start_time=int(info.get("start_time", 0)),
            end_time=int(end_time) if end_time else None,
            lifecycle_stage=info.get("lifecycle_stage", "active"),
            artifact_uri=info.get("artifact_uri", ""),
            run_name=info.get("run_name", ""),
        ),
        RunData(
            metrics=[
                Metric(
                    m["key"],
                    _number(m.get("value", 0.0)),
                    int(m.get("timestamp", 0)),
                    int(m.get("step", 0)),
                )
                for m in data.get("metrics", ())
            ],
            params=[Param(p["key"], p.get("value", "")) for p in data.get("params", ())],
            tags=[RunTag(t["key"], t.get("value", "")) for t in data.get("tags", ())],
        ),
        RunInputs([], []),
        RunOutputs([]),
    )


class _Lean:
    """JSON over one keep-alive connection per thread, with MLflow's errors. A connection the
    server closed while idle is reopened once: the request never reached it."""

    def __init__(self, uri: str, creds: Any) -> None:
        parts = urlsplit(uri)
        self.https = parts.scheme == "https"
        self.netloc = parts.netloc
        self.prefix = parts.path + _API
        self.headers = {"Content-Type": "application/json"}
        if creds.token:
            self.headers["Authorization"] = f"Bearer {creds.token}"
        elif creds.username and creds.password:
            pair = b64encode(f"{creds.username}:{creds.password}".encode()).decode()
            self.headers["Authorization"] = f"Basic {pair}"
        self.context = None
        if self.https:
            self.context = ssl.create_default_context(cafile=creds.server_cert_path or None)
            if creds.ignore_tls_verification:
                self.context.check_hostname = False
                self.context.verify_mode = ssl.CERT_NONE
        self.local = threading.local()
        self.opened: list[http.client.HTTPConnection] = []  # every thread's, to close
        self.lock = threading.Lock()

    def close(self) -> None:
        with self.lock:
            for conn in self.opened:
                conn.close()
            self.opened.clear()

    def call(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        query: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        target = self.prefix + path + ("?" + urlencode(query, quote_via=quote) if query else "")
        payload = None if body is None else json.dumps(body).encode()
        for attempt in (1, 2):
            conn = self._connection()
            try:
                conn.request(method, target, body=payload, headers=self.headers)
                response = conn.getresponse()
                raw = response.read()
                break
            except OSError as e:  # includes the http.client errors of a dropped connection
                self._drop(conn)
                stale = isinstance(e, http.client.RemoteDisconnected | ConnectionResetError)
                if attempt == 1 and (stale or isinstance(e, BrokenPipeError)):
                    continue
                scheme = "https" if self.https else "http"
                raise MlflowException(
                    f"API request to {scheme}://{self.netloc}{target} failed: {e}"
                ) from e
        if response.status != 200:
            try:
                error = _loads(raw)
            except ValueError:
                error = {
                    "error_code": str(response.status),
                    "message": raw.decode(errors="replace"),
                }
            raise RestException(error if isinstance(error, dict) else {"message": str(error)})
        return _loads(raw) if raw else {}

    def _drop(self, conn: http.client.HTTPConnection) -> None:
        conn.close()
        self.local.conn = None
        with self.lock:
            self.opened.remove(conn)

    def _connection(self) -> http.client.HTTPConnection:
        conn: http.client.HTTPConnection | None = getattr(self.local, "conn", None)
        if conn is None:
            if self.https:
                conn = http.client.HTTPSConnection(self.netloc, timeout=120, context=self.context)
            else:
                conn = http.client.HTTPConnection(self.netloc, timeout=120)
            self.local.conn = conn
            with self.lock:
                self.opened.append(conn)
        return conn
