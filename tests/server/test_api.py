"""The REST API through a real server: the HTTP store, raw requests, and the SDK end to end."""

from __future__ import annotations

import dataclasses
import math
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

import modelloop as ml
from modelloop.errors import (
    AlreadyExists,
    Conflict,
    InvalidArgument,
    InvalidFilter,
    ModelloopError,
    NotFound,
    ServerUnavailable,
)
from modelloop.settings import load_settings
from modelloop.tracking.entities import Experiment, Metric, RunSpec, RunStatus, new_id
from modelloop.tracking.http import HttpTrackingStore
from tests.live_server import live_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    settings = load_settings({"MODELLOOP_HOME": str(tmp_path_factory.mktemp("api"))})
    with live_server(settings) as url:
        yield url


@pytest.fixture
def store(server: str) -> Iterator[HttpTrackingStore]:
    remote = HttpTrackingStore(server)
    yield remote
    remote.close()


@pytest.fixture
def http(server: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server, timeout=30) as client:
        yield client


@pytest.fixture
def experiment(store: HttpTrackingStore) -> Experiment:
    return store.create_experiment(f"exp-{uuid.uuid4().hex[:8]}", "made by a test")


def _error(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["error_code"] == code, body
    assert isinstance(body["message"], str)
    return str(body["message"])


# -- experiments -------------------------------------------------------------------------------


def test_experiment_round_trip(store: HttpTrackingStore, http: httpx.Client) -> None:
    created = store.create_experiment("round-trip", "the description")
    assert store.get_experiment(created.experiment_id) == created
    assert store.get_experiment_by_name("round-trip") == created
    assert created in store.list_experiments()
    assert store.get_experiment_by_name("no-such-experiment") is None
    with pytest.raises(AlreadyExists, match="round-trip"):
        store.create_experiment("round-trip")
    with pytest.raises(NotFound):
        store.get_experiment(new_id())

    response = http.post("/api/v1/experiments", json={"name": "round-trip"})
    _error(response, 409, "ALREADY_EXISTS")
    _error(http.get("/api/v1/experiments/by-name/no-such-experiment"), 404, "NOT_FOUND")
    listed = http.get("/api/v1/experiments").json()["experiments"]
    assert created.experiment_id in {e["experiment_id"] for e in listed}


@pytest.mark.parametrize("name", ["a/b", "..", ".", "x?y#z&w=1", "spaced name", "ünïcødé", "%2e"])
def test_experiment_names_survive_the_url(store: HttpTrackingStore, name: str) -> None:
    created = store.create_experiment(f"{name}-{uuid.uuid4().hex[:6]}")
    assert store.get_experiment_by_name(created.name) == created


# -- runs ---------------------------------------------------------------------------------------


def test_run_round_trip(store: HttpTrackingStore, experiment: Experiment) -> None:
    parent = store.create_run(RunSpec(experiment.experiment_id, name="parent"))
    spec = RunSpec(
        experiment.experiment_id,
        name="child",
        parent_run_id=parent.run_id,
        user="ada",
        params={"lr": "0.05", "model": "lgbm"},
        tags={"team": "fraud"},
        source={"git": {"commit": "abc", "dirty": False}, "argv": ["train.py", "--fast"]},
        environment={"python": "3.11", "packages": {"numpy": "2.0"}},
    )
    run = store.create_run(spec)
    assert run.status is RunStatus.RUNNING
    assert (run.name, run.user, run.parent_run_id) == ("child", "ada", parent.run_id)
    assert run.params == spec.params
    assert run.tags == spec.tags
    assert run.source == spec.source
    assert run.environment == spec.environment
    assert store.get_run(run.run_id) == run
    with pytest.raises(NotFound):
        store.create_run(RunSpec(new_id()))


def test_batch_logging_with_nan_and_history(
    store: HttpTrackingStore, experiment: Experiment
) -> None:
    run = store.create_run(RunSpec(experiment.experiment_id))
    points = [
        Metric("train/loss", 0.5, 2, 1000),
        Metric("train/loss", math.nan, 1, 1001),
        Metric("train/loss", math.inf, 0, 1002),
        Metric("train/loss", -math.inf, 3, 1003),
        Metric("auc", 0.75, 0, 1000),
    ]
    store.log_batch(run.run_id, points, params={"seed": "7"}, tags={"stage": "dev"})
    store.log_batch(run.run_id, [Metric("train/loss", 0.25, 4, 1004)])

    series = store.metric_history(run.run_id, "train/loss")
    assert series.key == "train/loss"
    assert series.steps.tolist() == [0, 1, 2, 3, 4]
    np.testing.assert_array_equal(series.values, [math.inf, math.nan, 0.5, -math.inf, 0.25])
    assert series.timestamps.tolist() == [1002, 1001, 1000, 1003, 1004]
    assert series.values.dtype == np.float64
    assert series.steps.dtype == np.int64

    stored = store.get_run(run.run_id)
    assert stored.metrics == {"train/loss": 0.25, "auc": 0.75}
    assert stored.params == {"seed": "7"}
    assert stored.tags == {"stage": "dev"}
    assert len(store.metric_history(run.run_id, "never-logged")) == 0


def test_latest_infinite_metric_survives_json(
    store: HttpTrackingStore, experiment: Experiment
) -> None:
    run = store.create_run(RunSpec(experiment.experiment_id))
    store.log_batch(run.run_id, [Metric("up", math.inf, 0, 1), Metric("down", -math.inf, 0, 1)])
    assert store.get_run(run.run_id).metrics == {"up": math.inf, "down": -math.inf}


def test_raw_batch_spells_nan_as_null_or_strings(
    store: HttpTrackingStore, http: httpx.Client, experiment: Experiment
) -> None:
    run = store.create_run(RunSpec(experiment.experiment_id))
    body = {
        "metrics": [
            ["m", None, 0, 1],
            ["m", "NaN", 1, 1],
            ["m", "Infinity", 2, 1],
            ["m", "-Infinity", 3, 1],
            ["m", 7, 4, 1],
        ]
    }
    response = http.post(f"/api/v1/runs/{run.run_id}/batch", json=body)
    assert response.status_code == 204, response.text
    history = http.get(f"/api/v1/runs/{run.run_id}/metrics/m/history").json()
    assert history == {
        "key": "m",
        "steps": [0, 1, 2, 3, 4],
        "values": [None, None, "Infinity", "-Infinity", 7.0],
        "timestamps": [1, 1, 1, 1, 1],
    }


def test_large_batch_round_trips(store: HttpTrackingStore, experiment: Experiment) -> None:
    run = store.create_run(RunSpec(experiment.experiment_id))
    points = [Metric("loss", 1.0 / (i + 1), i, 1_700_000_000_000 + i) for i in range(20_000)]
    store.log_batch(run.run_id, points)
    series = store.metric_history(run.run_id, "loss")
    assert len(series) == 20_000
    np.testing.assert_allclose(series.values, [p.value for p in points])


def test_search_with_filter_and_order_by(store: HttpTrackingStore, experiment: Experiment) -> None:
    runs = {}
    for name, model, auc in [("a", "lgbm", 0.91), ("b", "lgbm", 0.95), ("c", "xgb", 0.99)]:
        run = store.create_run(
            RunSpec(experiment.experiment_id, name=name, params={"model": model})
        )
        store.log_batch(run.run_id, [Metric("auc", auc, 0, 1)])
        runs[name] = run.run_id
    found = store.search_runs(
        [experiment.experiment_id],
        filter="metrics.auc > 0.9 and params.model = 'lgbm'",
        order_by=["metrics.auc DESC"],
    )
    assert [r.name for r in found] == ["b", "a"]
    assert found[0].metrics == {"auc": 0.95}
    everything = store.search_runs([experiment.experiment_id], order_by=["metrics.auc ASC"])
    assert [r.name for r in everything] == ["a", "b", "c"]
    assert len(store.search_runs([experiment.experiment_id], max_results=1)) == 1
    assert store.search_runs([new_id()]) == []


def test_end_run(store: HttpTrackingStore, experiment: Experiment) -> None:
    run = store.create_run(RunSpec(experiment.experiment_id))
    ended = store.end_run(run.run_id, RunStatus.FAILED, "diverged")
    assert ended.status is RunStatus.FAILED
    assert ended.error == "diverged"
    assert ended.end_time is not None
    with pytest.raises(Conflict):
        store.end_run(run.run_id, RunStatus.FINISHED)
    with pytest.raises(InvalidArgument):
        store.end_run(store.create_run(RunSpec(experiment.experiment_id)).run_id, RunStatus.RUNNING)


def test_param_conflict_is_409(
    store: HttpTrackingStore, http: httpx.Client, experiment: Experiment
) -> None:
    run = store.create_run(RunSpec(experiment.experiment_id, params={"lr": "0.1"}))
    store.log_batch(run.run_id, params={"lr": "0.1"})  # the same value again is fine
    with pytest.raises(Conflict, match="lr"):
        store.log_batch(run.run_id, params={"lr": "0.2"})
    response = http.post(f"/api/v1/runs/{run.run_id}/batch", json={"params": {"lr": "0.3"}})
    assert "immutable" in _error(response, 409, "CONFLICT")
    assert store.get_run(run.run_id).params == {"lr": "0.1"}


def test_unknown_run_is_404(store: HttpTrackingStore, http: httpx.Client) -> None:
    missing = new_id()
    with pytest.raises(NotFound):
        store.get_run(missing)
    with pytest.raises(NotFound):
        store.log_batch(missing, [Metric("m", 1.0, 0, 1)])
    with pytest.raises(NotFound):
        store.metric_history(missing, "m")
    with pytest.raises(NotFound):
        store.end_run(missing, RunStatus.FINISHED)
    assert missing in _error(http.get(f"/api/v1/runs/{missing}"), 404, "NOT_FOUND")


def test_bad_filter_is_422_naming_the_token(
    store: HttpTrackingStore, http: httpx.Client, experiment: Experiment
) -> None:
    body = {"experiment_ids": [experiment.experiment_id], "filter": "metrics.auc >> 0.5"}
    message = _error(http.post("/api/v1/runs/search", json=body), 422, "INVALID_FILTER")
    assert ">" in message
    with pytest.raises(InvalidFilter, match="bogus"):
        store.search_runs([experiment.experiment_id], filter="bogus.key = 1")
    with pytest.raises(InvalidArgument):
        store.search_runs([experiment.experiment_id], order_by=["metrics.auc SIDEWAYS"])


def test_openapi_is_served(http: httpx.Client) -> None:
    spec = http.get("/openapi.json").json()
    assert spec["info"]["title"] == "modelloop"
    paths = spec["paths"]
    for path, method in [
        ("/api/v1/experiments", "post"),
        ("/api/v1/experiments", "get"),
        ("/api/v1/experiments/{experiment_id}", "get"),
        ("/api/v1/experiments/by-name/{name}", "get"),
        ("/api/v1/runs", "post"),
        ("/api/v1/runs/{run_id}", "get"),
        ("/api/v1/runs/{run_id}/end", "post"),
        ("/api/v1/runs/{run_id}/batch", "post"),
        ("/api/v1/runs/{run_id}/metrics/{key}/history", "get"),
        ("/api/v1/runs/search", "post"),
        ("/api/v1/runs/{run_id}/artifact", "put"),
        ("/api/v1/runs/{run_id}/artifact", "get"),
        ("/api/v1/runs/{run_id}/artifacts", "get"),
        ("/health", "get"),
    ]:
        assert method in paths[path], (path, method)
    assert spec["components"]["securitySchemes"]["bearerToken"]["scheme"] == "bearer"
    assert "ErrorOut" in spec["components"]["schemas"]
    docs = http.get("/docs")
    assert docs.status_code == 200
    assert "swagger" in docs.text.lower()


def test_store_construction_is_free_and_unreachable_servers_are_named() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    remote = HttpTrackingStore(url)  # no request, no error
    try:
        with pytest.raises(ServerUnavailable, match=url):
            remote.list_experiments()
    finally:
        remote.close()
    with pytest.raises(InvalidArgument, match="tracking URI"):
        HttpTrackingStore("ftp://example.com")


# -- the SDK through the server ------------------------------------------------------------------


def test_sdk_end_to_end(server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MODELLOOP_TOKEN", raising=False)
    client = ml.Client(tracking_uri=server)
    try:
        assert isinstance(client.store, HttpTrackingStore)
        run = client.create_run("sdk-e2e", name="sdk", params={"lr": 0.05}, tags={"k": "v"})
        for step in range(100):
            client.log_metric(run.run_id, "loss", 1.0 / (step + 1), step=step)
        client.log_metric(run.run_id, "loss", math.nan, step=100)
        client.flush()

        history = client.metric_history(run.run_id, "loss")
        assert history["step"].tolist() == list(range(101))
        assert history["value"].iloc[0] == 1.0
        assert math.isnan(history["value"].iloc[-1])

        frame = client.search_runs("sdk-e2e", filter="params.lr = '0.05'")
        assert frame["run_id"].tolist() == [run.run_id]
        assert frame["tags.k"].tolist() == ["v"]

        model = tmp_path / "model.bin"
        model.write_bytes(bytes(range(256)) * 4096)  # 1 MiB, binary, with newlines
        info = client.log_artifact(run.run_id, model, artifact_path="weights")
        assert info.path == "weights/model.bin"
        assert info.size == model.stat().st_size
        assert client.read_artifact(run.run_id, "weights/model.bin") == model.read_bytes()
        assert [a.path for a in client.list_artifacts(run.run_id)] == ["weights/model.bin"]
        copied = client.download_artifacts(run.run_id, tmp_path / "out")
        assert copied[0].read_bytes() == model.read_bytes()
        with pytest.raises(NotFound):
            client.read_artifact(run.run_id, "weights/missing.bin")

        ended = client.end_run(run.run_id)
        assert ended.status is RunStatus.FINISHED
        assert math.isnan(ended.metrics["loss"])
    finally:
        client.close()


def test_unexpected_errors_are_500_json_without_a_traceback(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A real misconfiguration: the artifact root lies below a regular file.
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    settings = dataclasses.replace(
        load_settings({"MODELLOOP_HOME": str(tmp_path)}), artifact_uri=str(blocker / "artifacts")
    )
    with live_server(settings) as url:
        store = HttpTrackingStore(url)
        try:
            experiment = store.create_experiment("broken-artifacts")
            run = store.create_run(RunSpec(experiment.experiment_id))
            with httpx.Client(base_url=url, timeout=30) as client:
                response = client.put(
                    f"/api/v1/runs/{run.run_id}/artifact", params={"path": "x"}, content=b"x"
                )
                assert response.status_code == 500
                assert response.json() == {
                    "error_code": "INTERNAL_ERROR",
                    "message": "Internal server error; the server log has the details",
                }
                assert client.get("/health").status_code == 200
            with pytest.raises(ModelloopError, match="Internal server error"):
                store.put_artifact(run.run_id, "y", b"y")
            assert store.get_run(run.run_id).run_id == run.run_id  # still serving
        finally:
            store.close()
    assert "Unexpected error on PUT" in caplog.text
    assert "NotADirectoryError" in caplog.text or "FileExistsError" in caplog.text
