"""The real ``mlflow`` client (pinned in the dev extra) against a real ``modelloop server`` on
127.0.0.1, on SQLite and on PostgreSQL: ``mlflow_server`` sets ``MLFLOW_TRACKING_URI`` as a user
would and yields the server's URL and the settings of the store behind it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from modelloop.settings import Settings
from tests.conftest import store_settings
from tests.live_server import live_server

# Before mlflow is imported: no telemetry leaves the machine, a failing call fails at once
# instead of being retried with backoff, and traces are written when logged (exported later in
# the background, the test stores' trace went to MLflow's default store, ./mlruns, once the
# builder had reset the tracking URI).
os.environ.update(
    MLFLOW_DISABLE_TELEMETRY="true",
    DO_NOT_TRACK="true",
    MLFLOW_HTTP_REQUEST_MAX_RETRIES="0",
    MLFLOW_ENABLE_ASYNC_TRACE_LOGGING="false",
    MLFLOW_HTTP_REQUEST_TIMEOUT="60",
    GIT_PYTHON_REFRESH="quiet",
)

import mlflow

from tests.mlflow_compat.mlflow_stores import MlflowStore, build_store


@pytest.fixture(autouse=True)
def _forget_the_active_experiment() -> Iterator[None]:
    """``mlflow.set_experiment`` remembers its id process-wide, in the module and in the
    ``MLFLOW_EXPERIMENT_ID`` environment variable, which every later fluent call (and MLflow's
    own store building in session fixtures) then asks the current server for: each test starts
    and ends without it, as a fresh process would."""
    os.environ.pop("MLFLOW_EXPERIMENT_ID", None)
    mlflow.tracking.fluent._active_experiment_id = None
    yield
    os.environ.pop("MLFLOW_EXPERIMENT_ID", None)
    mlflow.tracking.fluent._active_experiment_id = None


@dataclass(frozen=True)
class MlflowServer:
    url: str
    settings: Settings  # the store the server serves, for reading facts back with modelloop


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def mlflow_server(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[MlflowServer]:
    with store_settings(tmp_path, request.param) as settings, live_server(settings) as url:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
        mlflow.set_tracking_uri(url)
        mlflow.set_registry_uri(url)
        try:
            yield MlflowServer(url, settings)
        finally:
            while mlflow.active_run() is not None:
                mlflow.end_run()
            mlflow.set_tracking_uri("")


# -- MLflow stores to import from (modelloop import mlflow) --------------------------------------


@pytest.fixture(scope="session")
def mlflow_sqlite(tmp_path_factory: pytest.TempPathFactory) -> MlflowStore:
    """A ``sqlite:///`` MLflow store (see tests/mlflow_compat/mlflow_stores.py), built once."""
    return build_store("sqlite", tmp_path_factory.mktemp("mlflow-sqlite"))


@pytest.fixture(scope="session")
def mlflow_file(tmp_path_factory: pytest.TempPathFactory) -> MlflowStore:
    """The same content in an MLflow file store (``mlruns``), built once."""
    return build_store("file", tmp_path_factory.mktemp("mlflow-file"))


@pytest.fixture(params=["sqlite", "file"])
def mlflow_store(request: pytest.FixtureRequest) -> MlflowStore:
    store: MlflowStore = request.getfixturevalue(f"mlflow_{request.param}")
    return store


@pytest.fixture(scope="session")
def mlflow_http(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowStore]:
    """The same content written through a real ``mlflow server`` (SQLite behind it, artifacts
    proxied as ``mlflow-artifacts:/``), which keeps serving it for the session."""
    root = tmp_path_factory.mktemp("mlflow-server")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = [
        str(Path(sys.executable).with_name("mlflow")),
        "server",
        "--backend-store-uri",
        f"sqlite:///{root / 'mlflow.db'}",
        "--artifacts-destination",
        str(root / "served"),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    log = open(root / "server.log", "wb")  # noqa: SIM115 - closed below, after the server
    server = subprocess.Popen(command, stdout=log, stderr=log, start_new_session=True, cwd=root)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180  # MLflow migrates its database first
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"mlflow server did not start: {(root / 'server.log').read_text()}"
                )
            time.sleep(0.5)
        yield build_store("server", root, server=url)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
        log.close()
