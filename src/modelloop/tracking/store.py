"""The storage interfaces of tracking, one small protocol per aggregate.

Implementations: :class:`modelloop.tracking.sql.SqlTrackingStore` (SQLite/PostgreSQL + blob store)
and :class:`modelloop.tracking.http.HttpTrackingStore` (a modelloop server). One contract suite,
``tests/tracking/test_store_contract.py``, runs against all of them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import BinaryIO, Protocol

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
)


class ExperimentStore(Protocol):
    """Deleting an experiment hides it and its runs (restorable, nothing erased); a get still
    finds it, with ``deleted_at`` set."""

    def create_experiment(self, name: str, description: str | None = None) -> Experiment: ...
    def get_experiment(self, experiment_id: str) -> Experiment: ...
    def get_experiment_by_name(self, name: str) -> Experiment | None: ...
    def list_experiments(self, lifecycle: Lifecycle = "active") -> list[Experiment]: ...
    def search_experiments(
        self,
        filter: str | None = None,
        order_by: Sequence[str] = (),
        max_results: int = 1000,
        offset: int = 0,
        lifecycle: Lifecycle = "active",
    ) -> list[Experiment]: ...
    def rename_experiment(self, experiment_id: str, name: str) -> Experiment: ...
    def delete_experiment(self, experiment_id: str) -> Experiment:
        """Its live runs are deleted with it, and restored with it."""
        ...

    def restore_experiment(self, experiment_id: str) -> Experiment: ...
    def set_experiment_tags(self, experiment_id: str, tags: Mapping[str, str]) -> None: ...
    def delete_experiment_tag(self, experiment_id: str, key: str) -> None: ...


class RunStore(Protocol):
    """A deleted run is hidden from searches unless asked for and refuses writes until
    restored; a get still finds it, with ``deleted_at`` set."""

    def create_run(self, spec: RunSpec) -> Run: ...
    def get_run(self, run_id: str) -> Run: ...
    def rename_run(self, run_id: str, name: str) -> Run: ...
    def resume_run(self, run_id: str) -> Run:
        """An ended run RUNNING again (its end time and error cleared), to log more to it."""
        ...

    def delete_run(self, run_id: str) -> Run: ...
    def restore_run(self, run_id: str) -> Run: ...
    def delete_tag(self, run_id: str, key: str) -> None: ...
    def log_inputs(self, run_id: str, inputs: Sequence[DatasetInput]) -> None:
        """A dataset already recorded for the run (same name and digest) is kept as it was."""
        ...

    def run_inputs(self, run_id: str) -> list[DatasetInput]: ...
    def end_run(
        self,
        run_id: str,
        status: RunStatus,
        error: str | None = None,
        *,
        end_time: int | None = None,
    ) -> Run:
        """End a RUNNING run (again with the same status is a no-op); ``end_time`` defaults to
        now (a sweep dates a dead run at its last sign of life, an importer keeps the original)."""
        ...

    def log_batch(
        self,
        run_id: str,
        metrics: Sequence[Metric] = (),
        params: Mapping[str, str] | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> None:
        """Params are immutable (a different value raises Conflict); tags are overwritten."""
        ...

    def metric_history(self, run_id: str, key: str) -> MetricSeries: ...
    def search_runs(
        self,
        experiment_ids: Sequence[str],
        filter: str | None = None,
        order_by: Sequence[str] = (),
        max_results: int = 1000,
        offset: int = 0,
        lifecycle: Lifecycle = "active",
    ) -> list[Run]:
        """At most ``max_results`` runs after skipping ``offset`` (a page of a long list)."""
        ...


class ArtifactStore(Protocol):
    def put_artifact(self, run_id: str, path: str, source: Path | bytes) -> ArtifactInfo:
        """Store ``source`` as the run's artifact ``path`` (immutable: a different content
        under an existing path raises Conflict)."""
        ...

    def list_artifacts(self, run_id: str, prefix: str = "") -> list[ArtifactInfo]: ...
    def open_artifact(self, run_id: str, path: str) -> BinaryIO: ...


class TrackingStore(ExperimentStore, RunStore, ArtifactStore, Protocol):
    """Everything a :class:`~modelloop.tracking.client.Client` needs from its backend."""

    def close(self) -> None: ...
