"""Tracking through a modelloop server: the :class:`TrackingStore` protocol over HTTP.

Requests go through :class:`modelloop.transport.Transport` (pooled connections, the same error
classes as the local store). The hot path, metric batches from the background writer, costs one
request per batch; the writer retries ``ServerUnavailable`` but never ``ConnectionLost``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from modelloop.artifacts import canonical_path
from modelloop.errors import NotFound
from modelloop.tracking.entities import (
    ArtifactInfo,
    DatasetInput,
    Experiment,
    Lifecycle,
    Metric,
    MetricSeries,
    Run,
    RunSpec,
    RunStatus,
    check_run_id,
)
from modelloop.transport import DEFAULT_TIMEOUT, Transport, segment


class HttpTrackingStore:
    """Implements :class:`~modelloop.tracking.store.TrackingStore` against a server's REST API."""

    def __init__(
        self, url: str, *, token: str | None = None, timeout: float = DEFAULT_TIMEOUT
    ) -> None:
        self._transport = Transport(url, token=token, timeout=timeout)
        self.url = self._transport.url
        self._call = self._transport.call

    def __repr__(self) -> str:
        return f"HttpTrackingStore({self.url!r})"

    def close(self) -> None:
        """Close pooled connections; a later call opens new ones."""
        self._transport.close()

    # -- experiments -------------------------------------------------------------------------

    def create_experiment(self, name: str, description: str | None = None) -> Experiment:
        body = {"name": name, "description": description}
        return _experiment(self._call("POST", "/experiments", body))

    def get_experiment(self, experiment_id: str) -> Experiment:
        return _experiment(self._call("GET", f"/experiments/{segment(experiment_id)}"))

    def get_experiment_by_name(self, name: str) -> Experiment | None:
        try:
            return _experiment(self._call("GET", f"/experiments/by-name/{segment(name)}"))
        except NotFound:
            return None

    def list_experiments(self, lifecycle: Lifecycle = "active") -> list[Experiment]:
        data = self._call("GET", "/experiments", params={"lifecycle": lifecycle})
        return [_experiment(e) for e in data["experiments"]]

    def search_experiments(
        self,
        filter: str | None = None,
        order_by: Sequence[str] = (),
        max_results: int = 1000,
        offset: int = 0,
        lifecycle: Lifecycle = "active",
    ) -> list[Experiment]:
        body = {
            "filter": filter,
            "order_by": list(order_by),
            "max_results": max_results,
            "offset": offset,
            "lifecycle": lifecycle,
        }
        return [
            _experiment(e) for e in self._call("POST", "/experiments/search", body)["experiments"]
        ]

    def rename_experiment(self, experiment_id: str, name: str) -> Experiment:
        path = f"/experiments/{segment(experiment_id)}"
        return _experiment(self._call("PATCH", path, {"name": name}))

    def delete_experiment(self, experiment_id: str) -> Experiment:
        return _experiment(self._call("DELETE", f"/experiments/{segment(experiment_id)}"))

    def restore_experiment(self, experiment_id: str) -> Experiment:
        path = f"/experiments/{segment(experiment_id)}/restore"
        return _experiment(self._call("POST", path))

    def set_experiment_tags(self, experiment_id: str, tags: Mapping[str, str]) -> None:
        path = f"/experiments/{segment(experiment_id)}/tags"
        self._call("PUT", path, {"tags": dict(tags)})

    def delete_experiment_tag(self, experiment_id: str, key: str) -> None:
        self._call("DELETE", f"/experiments/{segment(experiment_id)}/tags/{segment(key)}")

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
            "start_time": spec.start_time,
        }
        return _run(self._call("POST", "/runs", body))

    def get_run(self, run_id: str) -> Run:
        return _run(self._call("GET", f"/runs/{check_run_id(run_id)}"))

    def rename_run(self, run_id: str, name: str) -> Run:
        return _run(self._call("PATCH", f"/runs/{check_run_id(run_id)}", {"name": name}))

    def resume_run(self, run_id: str) -> Run:
        return _run(self._call("POST", f"/runs/{check_run_id(run_id)}/resume"))

    def delete_run(self, run_id: str) -> Run:
        return _run(self._call("DELETE", f"/runs/{check_run_id(run_id)}"))

    def restore_run(self, run_id: str) -> Run:
        return _run(self._call("POST", f"/runs/{check_run_id(run_id)}/restore"))

    def delete_tag(self, run_id: str, key: str) -> None:
        self._call("DELETE", f"/runs/{check_run_id(run_id)}/tags/{segment(key)}")

    def log_inputs(self, run_id: str, inputs: Sequence[DatasetInput]) -> None:
        body = {
            "inputs": [
                {
                    "name": i.name,
                    "digest": i.digest,
                    "source_type": i.source_type,
                    "source": i.source,
                    "schema": i.schema,
                    "profile": i.profile,
                    "tags": dict(i.tags),
                }
                for i in inputs
            ]
        }
        self._call("POST", f"/runs/{check_run_id(run_id)}/inputs", body)

    def run_inputs(self, run_id: str) -> list[DatasetInput]:
        data = self._call("GET", f"/runs/{check_run_id(run_id)}/inputs")
        return [
            DatasetInput(
                i["name"],
                i["digest"],
                i["source_type"],
                i["source"],
                i["schema"],
                i["profile"],
                i["tags"],
            )
            for i in data["inputs"]
        ]

    def end_run(
        self,
        run_id: str,
        status: RunStatus,
        error: str | None = None,
        *,
        end_time: int | None = None,
    ) -> Run:
        body = {"status": RunStatus(status).value, "error": error, "end_time": end_time}
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
        path = f"/runs/{check_run_id(run_id)}/metrics/{segment(key)}/history"
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
        offset: int = 0,
        lifecycle: Lifecycle = "active",
    ) -> list[Run]:
        body = {
            "experiment_ids": list(experiment_ids),
            "filter": filter,
            "order_by": list(order_by),
            "max_results": max_results,
            "offset": offset,
            "lifecycle": lifecycle,
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
        return self._transport.open(f"/runs/{check_run_id(run_id)}/artifact", {"path": path})


def _non_finite(value: float) -> str | None:
    """NaN as null and infinities as strings: JSON has neither, orjson writes both as null."""
    return None if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")


def _experiment(data: dict[str, Any]) -> Experiment:
    return Experiment(
        experiment_id=data["experiment_id"],
        name=data["name"],
        created_at=data["created_at"],
        description=data.get("description"),
        tags=data.get("tags", {}),
        deleted_at=data.get("deleted_at"),
        updated_at=data.get("updated_at"),
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
        deleted_at=data.get("deleted_at"),
    )


def _artifact(data: dict[str, Any]) -> ArtifactInfo:
    return ArtifactInfo(path=data["path"], digest=data["digest"], size=data["size"])
