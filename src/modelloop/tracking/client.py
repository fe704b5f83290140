"""The one object behind the SDK: a tracking store (local SQL or a remote server) plus a writer.

Whether calls go to the embedded store or over HTTP is decided here and nowhere else: the
``Client`` picks an implementation of :class:`~modelloop.tracking.store.TrackingStore` from the
settings (``MODELLOOP_TRACKING_URI`` set -> HTTP, else SQLite/PostgreSQL + blob store).
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelloop.artifacts import canonical_path, contained_path
from modelloop.errors import Conflict, InvalidArgument, NotFound
from modelloop.settings import Settings, load_settings
from modelloop.tracking import source
from modelloop.tracking._writer import MetricWriter
from modelloop.tracking.entities import (
    ArtifactInfo,
    Experiment,
    Metric,
    Run,
    RunSpec,
    RunStatus,
    check_metric,
    now_ms,
)
from modelloop.tracking.liveness import ENV_PROCESS, Heartbeat, this_process
from modelloop.tracking.store import TrackingStore

if TYPE_CHECKING:
    import pandas as pd

DEFAULT_EXPERIMENT = "default"


def open_store(settings: Settings) -> TrackingStore:
    """The tracking backend named by the settings."""
    if settings.tracking_uri is not None:
        from modelloop.tracking.http import HttpTrackingStore

        return HttpTrackingStore(settings.tracking_uri, token=settings.token)
    from modelloop.artifacts import BlobStore
    from modelloop.store import open_database
    from modelloop.tracking.sql import SqlTrackingStore

    return SqlTrackingStore(open_database(settings.database_url), BlobStore(settings.artifact_uri))


class Client:
    """Experiments, runs, metrics and artifacts, locally or through a server alike."""

    def __init__(
        self,
        tracking_uri: str | None = None,
        *,
        settings: Settings | None = None,
        store: TrackingStore | None = None,
    ) -> None:
        settings = settings or load_settings()
        if tracking_uri is not None:
            settings = dataclasses.replace(settings, tracking_uri=tracking_uri.rstrip("/"))
        self.settings = settings
        self.store = store if store is not None else open_store(settings)
        self._writer = MetricWriter(self.store)
        self._heartbeat: Heartbeat | None = None

    def close(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.close()
        self._writer.close()
        self.store.close()

    # -- experiments -------------------------------------------------------------------------

    def create_experiment(self, name: str, description: str | None = None) -> Experiment:
        return self.store.create_experiment(name, description)

    def get_experiment(self, name_or_id: str) -> Experiment:
        """Look an experiment up by name first, then by id."""
        found = self.store.get_experiment_by_name(name_or_id)
        return found if found is not None else self.store.get_experiment(name_or_id)

    def list_experiments(self) -> list[Experiment]:
        return self.store.list_experiments()

    def delete_experiment(self, name_or_id: str) -> Experiment:
        """Hide the experiment and its runs from listings and searches (restorable)."""
        return self.store.delete_experiment(self.get_experiment(name_or_id).experiment_id)

    def restore_experiment(self, name_or_id: str) -> Experiment:
        """Undo :meth:`delete_experiment`; runs deleted before it stay deleted."""
        return self.store.restore_experiment(self.get_experiment(name_or_id).experiment_id)

    def get_or_create_experiment(self, name: str) -> Experiment:
        from modelloop.errors import AlreadyExists

        found = self.store.get_experiment_by_name(name)
        if found is not None:
            return found
        try:
            return self.store.create_experiment(name)
        except AlreadyExists:  # another process created it between our two calls
            return self.get_experiment(name)

    # -- runs --------------------------------------------------------------------------------

    def create_run(
        self,
        experiment: str = DEFAULT_EXPERIMENT,
        *,
        name: str | None = None,
        params: Mapping[str, object] | None = None,
        tags: Mapping[str, object] | None = None,
        parent_run_id: str | None = None,
        heartbeat: bool = False,
    ) -> Run:
        """Start a run in ``experiment`` (created if missing), recording code and environment.

        ``heartbeat=True`` (what ``ml.start_run`` does) says this process owns the run until
        :meth:`end_run`: the run records the process and a heartbeat tag, so that a sweep can
        mark it KILLED if the process dies first (see :mod:`modelloop.tracking.liveness`).
        """
        exp = self.get_or_create_experiment(experiment)
        interval = self.settings.heartbeat_seconds if heartbeat else 0.0
        environment = source.environment()
        if interval > 0:
            environment = {**environment, ENV_PROCESS: this_process(interval).record()}
        run = self.store.create_run(
            RunSpec(
                experiment_id=exp.experiment_id,
                name=name,
                parent_run_id=parent_run_id,
                user=source.current_user(),
                params={k: _text(v) for k, v in (params or {}).items()},
                tags={k: _text(v) for k, v in (tags or {}).items()},
                source=source.code_version(),
                environment=environment,
            )
        )
        if interval > 0:
            if self._heartbeat is None:
                self._heartbeat = Heartbeat(self.store, interval)
            self._heartbeat.add(run.run_id)
        return run

    def get_run(self, run_id: str) -> Run:
        return self.store.get_run(run_id)

    def delete_run(self, run_id: str) -> Run:
        """Hide the run from searches; it stays readable by id, and restorable."""
        return self.store.delete_run(run_id)

    def restore_run(self, run_id: str) -> Run:
        return self.store.restore_run(run_id)

    def end_run(
        self, run_id: str, status: RunStatus = RunStatus.FINISHED, error: str | None = None
    ) -> Run:
        """Write what is still queued, then mark the run ended."""
        try:
            self.flush()
            return self.store.end_run(run_id, status, error)
        finally:
            if self._heartbeat is not None:
                self._heartbeat.discard(run_id)

    def log_metric(
        self, run_id: str, key: str, value: float, step: int = 0, timestamp: int | None = None
    ) -> None:
        """Queue one point (returns at once; see :meth:`flush`)."""
        point = check_metric(key, value, step, now_ms() if timestamp is None else timestamp)
        self._writer.submit(run_id, point)

    def log_metrics(self, run_id: str, metrics: Mapping[str, float], step: int = 0) -> None:
        ts = now_ms()
        for key, value in metrics.items():
            self._writer.submit(run_id, check_metric(key, value, step, ts))

    def log_batch(
        self,
        run_id: str,
        metrics: Iterable[Metric | tuple[str, float, int, int]] = (),
        params: Mapping[str, object] | None = None,
        tags: Mapping[str, object] | None = None,
    ) -> None:
        """Write metrics ``(key, value, step, timestamp_ms)``, params and tags synchronously."""
        points = [check_metric(*m) for m in metrics]
        self.store.log_batch(
            run_id,
            points,
            params={k: _text(v) for k, v in (params or {}).items()},
            tags={k: _text(v) for k, v in (tags or {}).items()},
        )

    def log_params(self, run_id: str, params: Mapping[str, object]) -> None:
        self.store.log_batch(run_id, params={k: _text(v) for k, v in params.items()})

    def set_tags(self, run_id: str, tags: Mapping[str, object]) -> None:
        self.store.log_batch(run_id, tags={k: _text(v) for k, v in tags.items()})

    def flush(self) -> None:
        """Return once every metric logged so far is durable in the store."""
        self._writer.flush()

    def metric_history(self, run_id: str, key: str) -> pd.DataFrame:
        """All points of one metric in step order: columns ``step``, ``value``, ``timestamp``."""
        import pandas as pd

        self.flush()
        series = self.store.metric_history(run_id, key)
        return pd.DataFrame(
            {"step": series.steps, "value": series.values, "timestamp": series.timestamps},
            copy=False,
        )

    def search_runs(
        self,
        experiments: str | Sequence[str] | None = None,
        filter: str | None = None,
        order_by: Sequence[str] | None = None,
        max_results: int = 1000,
    ) -> pd.DataFrame:
        """Runs as a DataFrame, one row per run with ``metrics.*``, ``params.*``, ``tags.*``."""
        return runs_to_frame(self.find_runs(experiments, filter, order_by, max_results))

    def find_runs(
        self,
        experiments: str | Sequence[str] | None = None,
        filter: str | None = None,
        order_by: Sequence[str] | None = None,
        max_results: int = 1000,
    ) -> list[Run]:
        """Like :meth:`search_runs`, as :class:`Run` objects. No experiment means all of them."""
        if experiments is None:
            ids = [e.experiment_id for e in self.list_experiments()]
        else:
            names = [experiments] if isinstance(experiments, str) else list(experiments)
            ids = [self.get_experiment(n).experiment_id for n in names]
        if not ids:
            return []
        return self.store.search_runs(ids, filter, list(order_by or ()), max_results)

    # -- artifacts ---------------------------------------------------------------------------

    def log_artifact(
        self, run_id: str, local_path: str | Path, artifact_path: str | None = None
    ) -> ArtifactInfo:
        """Store a file as ``artifact_path/<file name>`` (or at the run's root)."""
        local = Path(local_path)
        if not local.is_file():
            raise InvalidArgument(f"Cannot log artifact {str(local)!r}: not a file")
        logical = f"{artifact_path}/{local.name}" if artifact_path else local.name
        return self.store.put_artifact(run_id, canonical_path(logical), local)

    def log_artifacts(
        self, run_id: str, local_dir: str | Path, artifact_path: str | None = None
    ) -> list[ArtifactInfo]:
        """Store every file below ``local_dir``; symlinks leading out of it are refused."""
        root = Path(local_dir)
        if not root.is_dir():
            raise InvalidArgument(f"Cannot log artifacts from {str(root)!r}: not a directory")
        logged = []
        for file in sorted(p for p in root.rglob("*") if p.is_file()):
            relative = file.relative_to(root).as_posix()
            contained_path(root, relative)
            logical = f"{artifact_path}/{relative}" if artifact_path else relative
            logged.append(self.store.put_artifact(run_id, canonical_path(logical), file))
        return logged

    def log_bytes(self, run_id: str, data: bytes, artifact_path: str) -> ArtifactInfo:
        return self.store.put_artifact(run_id, canonical_path(artifact_path), data)

    def list_artifacts(self, run_id: str, prefix: str = "") -> list[ArtifactInfo]:
        return self.store.list_artifacts(run_id, prefix)

    def read_artifact(self, run_id: str, path: str) -> bytes:
        with self.store.open_artifact(run_id, path) as stream:
            return stream.read()

    def download_artifacts(self, run_id: str, dest: str | Path, prefix: str = "") -> list[Path]:
        """Copy the run's artifacts (under ``prefix``) into ``dest``, keeping their paths."""
        target = Path(dest)
        infos = self.list_artifacts(run_id, prefix)
        if prefix and not infos:
            raise NotFound(f"Run {run_id} has no artifacts under {prefix!r}")
        _refuse_file_folder_clash(run_id, [info.path for info in infos])
        written = []
        for info in infos:
            out = contained_path(target, info.path)
            out.parent.mkdir(parents=True, exist_ok=True)
            with self.store.open_artifact(run_id, info.path) as src, open(out, "wb") as dst:
                shutil.copyfileobj(src, dst)
            written.append(out)
        return written


def _refuse_file_folder_clash(run_id: str, paths: Sequence[str]) -> None:
    """A run may hold ``a`` and ``a/b``; a directory cannot hold both, so say so before writing."""
    stored = set(paths)
    for path in sorted(stored):
        parts = path.split("/")
        for i in range(1, len(parts)):
            folder = "/".join(parts[:i])
            if folder in stored:
                raise Conflict(
                    f"Run {run_id} holds both {folder!r} and {path!r}: on disk {folder!r} cannot "
                    f"be a file and a folder at once. Download {path!r} alone (prefix={path!r}) "
                    f"and read {folder!r} with read_artifact(run_id, {folder!r})"
                )


def _text(value: object) -> str:
    return value if isinstance(value, str) else str(value)


def runs_to_frame(runs: Sequence[Run]) -> pd.DataFrame:
    """One row per run: attributes, then ``metrics.*``, ``params.*`` and ``tags.*`` columns."""
    import pandas as pd

    records: list[dict[str, Any]] = []
    for run in runs:
        record: dict[str, Any] = {
            "run_id": run.run_id,
            "experiment_id": run.experiment_id,
            "name": run.name,
            "status": run.status.value,
            "start_time": run.start_time,
            "end_time": run.end_time,
            "user": run.user,
            "parent_run_id": run.parent_run_id,
        }
        record.update({f"metrics.{k}": v for k, v in run.metrics.items()})
        record.update({f"params.{k}": v for k, v in run.params.items()})
        record.update({f"tags.{k}": v for k, v in run.tags.items()})
        records.append(record)
    frame = pd.DataFrame.from_records(records)
    if frame.empty:
        return pd.DataFrame(
            columns=["run_id", "experiment_id", "name", "status", "start_time", "end_time"]
        )
    for column in ("start_time", "end_time"):
        frame[column] = pd.to_datetime(frame[column], unit="ms", utc=True)
    return frame
