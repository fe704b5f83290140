"""``ActiveRun``: the handle ``ml.start_run`` returns, bound to one run and one client.

Used as a context manager it ends the run: FINISHED on a normal exit, FAILED with the error
recorded when the block raises, KILLED on Ctrl-C. Either way queued metrics are written first.
"""

from __future__ import annotations

import contextvars
import traceback
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from modelloop.tracking.entities import ArtifactInfo, Run, RunStatus

if TYPE_CHECKING:
    import pandas as pd

    from modelloop.tracking.client import Client


# The runs active in this context, innermost last: ``ml.active_run()`` reads it, ``start_run``
# pushes, and a run leaves it when it ends, however it was started.
active_runs: contextvars.ContextVar[tuple[ActiveRun, ...]] = contextvars.ContextVar(
    "modelloop_active_runs", default=()
)


class ActiveRun:
    def __init__(self, client: Client, run: Run) -> None:
        self.client = client
        self.run_id = run.run_id
        self.experiment_id = run.experiment_id
        self.name = run.name
        self._ended = False

    def __repr__(self) -> str:
        return f"<ActiveRun {self.name!r} id={self.run_id}>"

    @property
    def info(self) -> Run:
        """The run as stored now (params, tags, latest metrics, status)."""
        return self.client.get_run(self.run_id)

    def log_metric(self, key: str, value: float, step: int = 0) -> None:
        self.client.log_metric(self.run_id, key, value, step)

    def log_metrics(self, metrics: Mapping[str, float], step: int = 0) -> None:
        self.client.log_metrics(self.run_id, metrics, step)

    def log_param(self, key: str, value: object) -> None:
        self.client.log_params(self.run_id, {key: value})

    def log_params(self, params: Mapping[str, object]) -> None:
        self.client.log_params(self.run_id, params)

    def set_tag(self, key: str, value: object) -> None:
        self.client.set_tags(self.run_id, {key: value})

    def set_tags(self, tags: Mapping[str, object]) -> None:
        self.client.set_tags(self.run_id, tags)

    def log_artifact(
        self, local_path: str | Path, artifact_path: str | None = None
    ) -> ArtifactInfo:
        return self.client.log_artifact(self.run_id, local_path, artifact_path)

    def log_artifacts(
        self, local_dir: str | Path, artifact_path: str | None = None
    ) -> list[ArtifactInfo]:
        return self.client.log_artifacts(self.run_id, local_dir, artifact_path)

    def log_text(self, text: str, artifact_path: str) -> ArtifactInfo:
        return self.client.log_bytes(self.run_id, text.encode("utf-8"), artifact_path)

    def flush(self) -> None:
        """Return once every metric logged so far is durable."""
        self.client.flush()

    def metric_history(self, key: str) -> pd.DataFrame:
        return self.client.metric_history(self.run_id, key)

    def end(self, status: RunStatus = RunStatus.FINISHED, error: str | None = None) -> Run:
        active_runs.set(tuple(r for r in active_runs.get() if r is not self))
        self._ended = True
        return self.client.end_run(self.run_id, status, error)

    def __enter__(self) -> ActiveRun:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._ended:
            return
        if exc is None:
            self.end(RunStatus.FINISHED)
        elif isinstance(exc, KeyboardInterrupt):
            self.end(RunStatus.KILLED, "KeyboardInterrupt")
        else:
            detail = "".join(traceback.format_exception(exc_type, exc, tb))
            self.end(RunStatus.FAILED, detail[-8000:])
