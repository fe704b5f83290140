"""modelloop: the whole loop of a production model's life in one install.

import modelloop as ml

with ml.start_run(experiment="fraud", params={"lr": 0.05}) as run:
    run.log_metric("auc", 0.93, step=1)
"""

from modelloop._version import __version__
from modelloop.errors import (
    AlreadyExists,
    Conflict,
    InvalidArgument,
    InvalidFilter,
    ModelloopError,
    NotFound,
    UnsafePath,
)
from modelloop.settings import Settings, load_settings
from modelloop.tracking.client import Client
from modelloop.tracking.entities import ArtifactInfo, Experiment, Metric, Run, RunStatus
from modelloop.tracking.fluent import active_run, get_client, search_runs, start_run
from modelloop.tracking.run import ActiveRun

__all__ = [
    "ActiveRun",
    "AlreadyExists",
    "ArtifactInfo",
    "Client",
    "Conflict",
    "Experiment",
    "InvalidArgument",
    "InvalidFilter",
    "Metric",
    "ModelloopError",
    "NotFound",
    "Run",
    "RunStatus",
    "Settings",
    "UnsafePath",
    "__version__",
    "active_run",
    "get_client",
    "load_settings",
    "search_runs",
    "start_run",
]
