"""Unchanged MLflow tracking code against ``modelloop server``: the real ``mlflow`` client writes
and reads, and what it writes is a modelloop run (read back with ``ml.Client``)."""

from __future__ import annotations

import math
import time
from pathlib import Path

import httpx
import mlflow
import pytest
from mlflow.entities import Metric, Param, RunStatus, RunTag, ViewType
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

import modelloop as ml
from modelloop.auth import Role, Users
from modelloop.store import open_database
from modelloop.tracking.entities import RunStatus as MlRunStatus
from tests.conftest import store_settings
from tests.live_server import live_server
from tests.mlflow_compat.conftest import MlflowServer


def _modelloop(server: MlflowServer) -> ml.Client:
    return ml.Client(settings=server.settings)


def test_fluent_api_writes_a_modelloop_run(mlflow_server: MlflowServer) -> None:
    experiment = mlflow.set_experiment("churn")
    assert experiment.artifact_location == f"mlflow-artifacts:/{experiment.experiment_id}"
    with mlflow.start_run(run_name="lgbm") as run:
        mlflow.log_param("learning_rate", 0.05)
        mlflow.log_params({"model": "lgbm", "depth": 6})
        for step in range(5):
            mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
        mlflow.log_metrics({"auc": 0.91, "precision": 0.74}, step=4)
        mlflow.set_tag("owner", "risk-team")
        mlflow.set_tags({"stage": "dev"})
        run_id = run.info.run_id
    assert run.info.artifact_uri == (
        f"mlflow-artifacts:/{experiment.experiment_id}/{run_id}/artifacts"
    )

    fetched = mlflow.get_run(run_id)
    assert fetched.info.status == "FINISHED"
    assert fetched.info.run_name == "lgbm"
    assert fetched.info.end_time >= fetched.info.start_time
    assert fetched.data.params == {"learning_rate": "0.05", "model": "lgbm", "depth": "6"}
    assert fetched.data.metrics == {"loss": 0.2, "auc": 0.91, "precision": 0.74}
    assert fetched.data.tags["owner"] == "risk-team"
    assert fetched.data.tags["stage"] == "dev"
    assert fetched.data.tags["mlflow.runName"] == "lgbm"

    client = _modelloop(mlflow_server)
    try:
        stored = client.get_run(run_id)
        assert stored.name == "lgbm"
        assert stored.status is MlRunStatus.FINISHED
        assert (stored.start_time, stored.end_time) == (
            fetched.info.start_time,
            fetched.info.end_time,
        )
        assert stored.params == fetched.data.params
        assert stored.metrics == fetched.data.metrics
        assert stored.tags["owner"] == "risk-team"
        assert stored.experiment_id == experiment.experiment_id
        assert client.get_experiment("churn").experiment_id == experiment.experiment_id
        frame = client.search_runs("churn", filter="metrics.auc > 0.9 and params.model = 'lgbm'")
        assert list(frame["run_id"]) == [run_id]
    finally:
        client.close()


def test_a_failing_block_ends_the_run_failed_and_nested_runs_have_their_parent(
    mlflow_server: MlflowServer,
) -> None:
    mlflow.set_experiment("sweep")
    with (
        mlflow.start_run(run_name="parent") as parent,
        mlflow.start_run(run_name="child", nested=True) as child,
    ):
        mlflow.log_metric("auc", 0.8)
    with pytest.raises(ZeroDivisionError), mlflow.start_run() as failed:
        1 / 0  # noqa: B018
    assert mlflow.get_run(failed.info.run_id).info.status == "FAILED"
    client = _modelloop(mlflow_server)
    try:
        assert client.get_run(child.info.run_id).parent_run_id == parent.info.run_id
        assert client.get_run(failed.info.run_id).status is MlRunStatus.FAILED
    finally:
        client.close()
    children = mlflow.search_runs(
        filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'", output_format="list"
    )
    assert [r.info.run_id for r in children] == [child.info.run_id]
    named = mlflow.search_runs(filter_string="tags.mlflow.runName = 'child'", output_format="list")
    assert [r.info.run_id for r in named] == [child.info.run_id]


def test_the_default_experiment(mlflow_server: MlflowServer) -> None:
    with mlflow.start_run() as run:  # no experiment set: MLflow's "0"
        mlflow.log_metric("m", 1.0)
    client = _modelloop(mlflow_server)
    try:
        default = client.get_experiment("default")
        assert client.get_run(run.info.run_id).experiment_id == default.experiment_id
    finally:
        client.close()
    assert MlflowClient().get_experiment("0").name == "default"


def test_mlflow_client_end_to_end(mlflow_server: MlflowServer) -> None:
    client = MlflowClient()
    experiment_id = client.create_experiment("fraud", tags={"team": "risk"})
    assert client.get_experiment(experiment_id).tags == {"team": "risk"}
    assert client.get_experiment_by_name("fraud").experiment_id == experiment_id
    assert client.get_experiment_by_name("nope") is None
    client.set_experiment_tag(experiment_id, "stage", "dev")
    client.delete_experiment_tag(experiment_id, "team")
    assert client.get_experiment(experiment_id).tags == {"stage": "dev"}
    client.rename_experiment(experiment_id, "card-fraud")
    assert client.get_experiment(experiment_id).name == "card-fraud"

    start = int(time.time() * 1000) - 60_000
    run = client.create_run(experiment_id, start_time=start, tags={"a": "1"}, run_name="r1")
    run_id = run.info.run_id
    assert run.info.start_time == start
    client.log_param(run_id, "lr", "0.1")
    client.log_metric(run_id, "loss", 0.5, timestamp=start + 1, step=1)
    client.set_tag(run_id, "b", "2")
    client.delete_tag(run_id, "a")
    client.log_batch(
        run_id,
        metrics=[Metric("auc", 0.9, start + 2, 3), Metric("auc", 0.95, start + 3, 4)],
        params=[Param("depth", "6")],
        tags=[RunTag("c", "3")],
    )
    client.set_tag(run_id, "mlflow.runName", "tagged")  # MLflow's way to rename
    assert client.get_run(run_id).info.run_name == "tagged"
    client.update_run(run_id, name="renamed")
    client.set_terminated(run_id, "KILLED", end_time=start + 10_000)
    got = client.get_run(run_id)
    assert got.info.run_name == "renamed"
    assert got.info.status == "KILLED"
    assert got.info.end_time == start + 10_000
    assert got.data.params == {"lr": "0.1", "depth": "6"}
    assert got.data.metrics == {"loss": 0.5, "auc": 0.95}
    assert {k: v for k, v in got.data.tags.items() if not k.startswith("mlflow.")} == {
        "b": "2",
        "c": "3",
    }
    assert [(m.step, m.value) for m in client.get_metric_history(run_id, "auc")] == [
        (3, 0.9),
        (4, 0.95),
    ]

    stored = _modelloop(mlflow_server)
    try:
        mine = stored.get_run(run_id)
        assert (mine.name, mine.status) == ("renamed", MlRunStatus.KILLED)
        assert mine.end_time == start + 10_000
        assert mine.tags == {"b": "2", "c": "3"}
        assert stored.get_experiment("card-fraud").tags == {"stage": "dev"}
    finally:
        stored.close()


def test_search_runs_filters_orders_and_pages(mlflow_server: MlflowServer) -> None:
    client = MlflowClient()
    experiment_id = client.create_experiment("search")
    ids = {}
    for i, (model, auc) in enumerate(
        [("lgbm", 0.91), ("lgbm", 0.95), ("xgb", 0.93), ("logreg", 0.80), ("xgb", 0.70)]
    ):
        run = client.create_run(experiment_id, run_name=f"r{i}", start_time=1000 + i)
        client.log_batch(
            run.info.run_id,
            metrics=[Metric("auc", auc, 0, 0)],
            params=[Param("model", model)],
            tags=[RunTag("i", str(i))],
        )
        ids[run.info.run_id] = f"r{i}"

    def names(filter: str = "", order_by: list[str] | None = None) -> list[str]:
        found = client.search_runs([experiment_id], filter, order_by=order_by)
        return [r.info.run_name for r in found]

    assert names() == ["r4", "r3", "r2", "r1", "r0"]  # newest first
    assert names("metrics.auc > 0.9 and params.model = 'lgbm'", ["metrics.auc DESC"]) == [
        "r1",
        "r0",
    ]
    assert names("params.model IN ('xgb', 'logreg')", ["attributes.start_time ASC"]) == [
        "r2",
        "r3",
        "r4",
    ]
    assert names("tags.i = '3'") == ["r3"]
    assert names("attributes.run_name LIKE 'r%' and metrics.auc < 0.85") == ["r4", "r3"]
    assert names("attributes.status = 'RUNNING'", ["metrics.`auc` ASC"])[:2] == ["r4", "r3"]

    pages, token = [], None
    while True:
        page = client.search_runs(
            [experiment_id], order_by=["metrics.auc DESC"], max_results=2, page_token=token
        )
        pages.append([r.info.run_name for r in page])
        token = page.token
        if token is None:
            break
    assert pages == [["r1", "r2"], ["r0", "r3"], ["r4"]]

    frame = mlflow.search_runs(experiment_ids=[experiment_id], filter_string="params.model='xgb'")
    assert sorted(frame["tags.mlflow.runName"]) == ["r2", "r4"]
    assert set(frame["metrics.auc"]) == {0.93, 0.70}

    with pytest.raises(MlflowException, match="page_token") as bad:
        client.search_runs([experiment_id], page_token="not-a-token")
    assert bad.value.error_code == "INVALID_PARAMETER_VALUE"
    first = client.search_runs([experiment_id], max_results=2)
    with pytest.raises(MlflowException, match="another query"):
        client.search_runs(
            [experiment_id], "metrics.auc > 0", max_results=2, page_token=first.token
        )
    with pytest.raises(MlflowException, match="position") as bad:
        client.search_runs([experiment_id], "metrics.auc >")
    assert bad.value.error_code == "INVALID_PARAMETER_VALUE"

    stored = _modelloop(mlflow_server)
    try:
        found = stored.search_runs("search", filter="metrics.auc > 0.92")
        assert sorted(found["name"]) == ["r1", "r2"]
    finally:
        stored.close()


def test_search_experiments_and_pages(mlflow_server: MlflowServer) -> None:
    client = MlflowClient()
    for name in ("exp-a", "exp-b", "exp-c", "other"):
        client.create_experiment(name, tags={"kind": name.split("-")[0]})
    found = client.search_experiments(filter_string="name LIKE 'exp-%'", order_by=["name DESC"])
    assert [e.name for e in found] == ["exp-c", "exp-b", "exp-a"]
    assert [e.name for e in client.search_experiments(filter_string="tags.kind = 'other'")] == [
        "other"
    ]
    first = client.search_experiments(max_results=2, order_by=["name"])
    second = client.search_experiments(max_results=2, order_by=["name"], page_token=first.token)
    assert [e.name for e in first] + [e.name for e in second] == [
        "exp-a",
        "exp-b",
        "exp-c",
        "other",
    ]
    assert second.token is None
    client.set_experiment_tag(client.get_experiment_by_name("exp-a").experiment_id, "k", "v")
    latest = client.search_experiments(order_by=["last_update_time DESC"], max_results=1)
    assert [e.name for e in latest] == ["exp-a"]
    assert latest[0].last_update_time >= latest[0].creation_time


def test_metric_history_round_trips_exactly(mlflow_server: MlflowServer) -> None:
    client = MlflowClient()
    run = client.create_run(client.create_experiment("history"))
    run_id = run.info.run_id
    points = [Metric("loss", 1.0 / (s + 1), 1_700_000_000_000 + s, s) for s in range(2500)]
    for start in range(0, len(points), 1000):
        client.log_batch(run_id, metrics=points[start : start + 1000])
    client.log_metric(run_id, "loss", math.nan, timestamp=1_800_000_000_000, step=2500)
    client.log_metric(run_id, "loss", math.inf, timestamp=1_800_000_000_001, step=2501)
    history = client.get_metric_history(run_id, "loss")
    assert [(m.step, m.timestamp) for m in history[:2500]] == [
        (p.step, p.timestamp) for p in points
    ]
    assert [m.value for m in history[:2500]] == [p.value for p in points]
    assert math.isnan(history[2500].value)
    assert history[2501].value == math.inf

    # paged as the REST API pages it
    url = f"{mlflow_server.url}/api/2.0/mlflow/metrics/get-history"
    query = {"run_id": run_id, "metric_key": "loss", "max_results": 1000}
    first = httpx.get(url, params=query).json()
    assert [m["step"] for m in first["metrics"]] == list(range(1000))
    second = httpx.get(url, params={**query, "page_token": first["next_page_token"]}).json()
    assert [m["step"] for m in second["metrics"]] == list(range(1000, 2000))
    bad = httpx.get(url, params={**query, "page_token": "%%%"})
    assert bad.status_code == 400
    assert bad.json()["error_code"] == "INVALID_PARAMETER_VALUE"

    # what MLflow's UI charts ask for: a few points per run, spread over the steps in range
    bulk = httpx.get(
        f"{mlflow_server.url}/ajax-api/2.0/mlflow/metrics/get-history-bulk-interval",
        params={
            "run_ids": [run_id],
            "metric_key": "loss",
            "max_results": 5,
            "start_step": 0,
            "end_step": 2000,
        },
    )
    assert bulk.status_code == 200, bulk.text
    spread = bulk.json()["metrics"]
    assert [m["step"] for m in spread] == [0, 500, 1000, 1500, 2000]
    assert {m["run_id"] for m in spread} == {run_id}
    assert [m["value"] for m in spread] == [points[s].value for s in (0, 500, 1000, 1500, 2000)]


def test_delete_and_restore(mlflow_server: MlflowServer) -> None:
    client = MlflowClient()
    experiment_id = client.create_experiment("lifecycle")
    kept = client.create_run(experiment_id).info.run_id
    gone = client.create_run(experiment_id).info.run_id
    client.delete_run(gone)
    assert client.get_run(gone).info.lifecycle_stage == "deleted"
    assert [r.info.run_id for r in client.search_runs([experiment_id])] == [kept]
    deleted = client.search_runs([experiment_id], run_view_type=ViewType.DELETED_ONLY)
    assert [r.info.run_id for r in deleted] == [gone]
    assert len(client.search_runs([experiment_id], run_view_type=ViewType.ALL)) == 2
    with pytest.raises(MlflowException, match="deleted") as bad:
        client.log_metric(gone, "m", 1.0)
    assert bad.value.error_code == "INVALID_PARAMETER_VALUE"
    client.restore_run(gone)
    assert client.get_run(gone).info.lifecycle_stage == "active"

    client.delete_experiment(experiment_id)
    assert client.get_experiment(experiment_id).lifecycle_stage == "deleted"
    assert "lifecycle" not in [e.name for e in client.search_experiments()]
    assert [e.name for e in client.search_experiments(view_type=ViewType.DELETED_ONLY)] == [
        "lifecycle"
    ]
    assert client.search_runs([experiment_id]) == []
    with pytest.raises(MlflowException, match="deleted"):
        mlflow.set_experiment("lifecycle")
    client.restore_experiment(experiment_id)
    assert len(client.search_runs([experiment_id])) == 2

    stored = _modelloop(mlflow_server)
    try:
        assert stored.get_run(gone).deleted_at is None
    finally:
        stored.close()


def test_params_are_immutable_and_batches_are_limited(mlflow_server: MlflowServer) -> None:
    client = MlflowClient()
    run_id = client.create_run(client.create_experiment("limits")).info.run_id
    client.log_param(run_id, "lr", "0.1")
    client.log_param(run_id, "lr", "0.1")  # the same value again is fine
    with pytest.raises(MlflowException, match="immutable") as bad:
        client.log_param(run_id, "lr", "0.2")
    assert bad.value.error_code == "INVALID_PARAMETER_VALUE"
    # MlflowClient.log_batch splits a long batch itself; the server enforces MLflow's limits
    url = f"{mlflow_server.url}/api/2.0/mlflow/runs/log-batch"
    point = {"key": "m", "value": 1.0, "timestamp": 1, "step": 0}
    for body, why in [
        ({"metrics": [point] * 1001}, "at most 1000 metrics"),
        ({"params": [{"key": f"p{i}", "value": "1"} for i in range(101)]}, "at most 100 params"),
        ({"tags": [{"key": f"t{i}", "value": "1"} for i in range(101)]}, "at most 100 tags"),
    ]:
        answer = httpx.post(url, json={"run_id": run_id, **body})
        assert answer.status_code == 400
        assert answer.json()["error_code"] == "INVALID_PARAMETER_VALUE"
        assert why in answer.json()["message"]
    with pytest.raises(MlflowException, match="6000"):
        client.log_param(run_id, "long", "x" * 6001)
    params = [{"key": "a", "value": "1"}, {"key": "a", "value": "2"}]
    twice = httpx.post(url, json={"run_id": run_id, "params": params})
    assert twice.status_code == 400
    assert "twice" in twice.json()["message"]
    assert client.get_run(run_id).data.params == {"lr": "0.1"}
    client.log_batch(run_id, metrics=[Metric("m", 1.0, 1, s) for s in range(1000)])
    assert len(client.get_metric_history(run_id, "m")) == 1000


def test_bad_input_is_an_mlflow_error_that_says_why(mlflow_server: MlflowServer) -> None:
    client = MlflowClient()
    with pytest.raises(MlflowException) as missing:
        client.get_run("0" * 32)
    assert missing.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    assert "0" * 32 in missing.value.message
    run_id = client.create_run(client.create_experiment("bad")).info.run_id
    with pytest.raises(MlflowException, match="Invalid metric key") as bad:
        client.log_metric(run_id, "bad;key", 1.0)
    assert bad.value.error_code == "INVALID_PARAMETER_VALUE"
    with pytest.raises(MlflowException, match="already exists") as taken:
        client.create_experiment("bad")
    assert taken.value.error_code == "RESOURCE_ALREADY_EXISTS"
    with pytest.raises(MlflowException, match="Invalid tag key"):
        client.create_experiment("tagged", tags={"bad\nkey": "x"})
    assert client.get_experiment_by_name("tagged") is None  # all or nothing
    with pytest.raises(MlflowException, match="artifact_location") as unsupported:
        client.create_experiment("elsewhere", artifact_location="s3://bucket/path")
    assert unsupported.value.error_code == "NOT_IMPLEMENTED"

    url = f"{mlflow_server.url}/api/2.0/mlflow"
    for method, path, body in [
        ("POST", "/runs/create", "not json"),
        ("POST", "/runs/log-metric", '{"run_id": "' + "a" * 32 + '", "key": "m"}'),
        ("POST", "/runs/search", '{"experiment_ids": "x", "max_results": 0}'),
        ("POST", "/runs/search", '{"run_view_type": "SOMETIMES"}'),
        ("POST", "/runs/search", '{"run_view_type": ["ALL"]}'),
        ("POST", "/experiments/search", '{"view_type": true}'),
        ("POST", "/runs/update", '{"run_id": "' + run_id + '", "status": {"a": 1}}'),
        ("POST", "/runs/log-batch", '{"run_id": "' + run_id + '", "params": [{"key": 1}]}'),
        ("POST", "/runs/log-inputs", '{"run_id": "' + run_id + '", "datasets": [{}]}'),
        ("GET", "/experiments/get", None),
    ]:
        answer = httpx.request(method, url + path, content=body)
        assert answer.status_code == 400, (path, answer.text)
        assert answer.json()["error_code"] == "INVALID_PARAMETER_VALUE", answer.text


def test_an_ended_run_is_resumed_and_ends_again(mlflow_server: MlflowServer) -> None:
    mlflow.set_experiment("resume")
    with mlflow.start_run() as run:
        mlflow.log_metric("loss", 0.5, step=0)
    with mlflow.start_run(run_id=run.info.run_id):
        assert mlflow.get_run(run.info.run_id).info.status == "RUNNING"
        mlflow.log_metric("loss", 0.25, step=1)
    client = MlflowClient()
    assert client.get_run(run.info.run_id).info.status == "FINISHED"
    assert [m.value for m in client.get_metric_history(run.info.run_id, "loss")] == [0.5, 0.25]
    client.set_terminated(run.info.run_id)  # the same end again is a no-op
    with pytest.raises(MlflowException, match="already ended as FINISHED") as bad:
        client.set_terminated(run.info.run_id, "KILLED")  # modelloop: an end is not rewritten
    assert bad.value.error_code == "INVALID_STATE"
    with pytest.raises(MlflowException, match="SCHEDULED") as bad:
        client.update_run(run.info.run_id, status=RunStatus.to_string(RunStatus.SCHEDULED))
    assert bad.value.error_code == "NOT_IMPLEMENTED"


def test_log_input_records_the_dataset_on_the_run(mlflow_server: MlflowServer) -> None:
    import pandas as pd

    frame = pd.DataFrame({"amount": [1.0, 2.5], "fraud": [0, 1]})
    dataset = mlflow.data.from_pandas(
        frame, source="https://example.com/cards.parquet", name="cards"
    )
    mlflow.set_experiment("inputs")
    with mlflow.start_run() as run:
        mlflow.log_input(dataset, context="training")
    (logged,) = mlflow.get_run(run.info.run_id).inputs.dataset_inputs
    found = mlflow.search_runs(
        filter_string="datasets.name = 'cards' and datasets.context = 'training'",
        output_format="list",
    )
    assert [r.info.run_id for r in found] == [run.info.run_id]
    assert (logged.dataset.name, logged.dataset.digest) == ("cards", dataset.digest)
    assert {t.key: t.value for t in logged.tags}["mlflow.data.context"] == "training"
    assert '"num_rows": 2' in logged.dataset.profile
    client = _modelloop(mlflow_server)
    try:
        (stored,) = client.store.run_inputs(run.info.run_id)
        assert (stored.name, stored.digest, stored.source_type) == (
            "cards",
            dataset.digest,
            logged.dataset.source_type,
        )
    finally:
        client.close()


def test_sklearn_autolog_records_params_metrics_and_its_dataset(
    mlflow_server: MlflowServer,
) -> None:
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    features, target = load_iris(return_X_y=True, as_frame=True)
    mlflow.set_experiment("autolog")
    mlflow.sklearn.autolog(log_models=False, silent=True)
    try:
        with mlflow.start_run() as run:
            LogisticRegression(max_iter=300, C=0.5).fit(features, target)
    finally:
        mlflow.sklearn.autolog(disable=True)
    got = mlflow.get_run(run.info.run_id)
    assert got.data.params["C"] == "0.5"
    assert got.data.params["max_iter"] == "300"
    assert 0.9 < got.data.metrics["training_accuracy_score"] <= 1.0
    assert [d.dataset.name for d in got.inputs.dataset_inputs] == ["dataset"]
    client = _modelloop(mlflow_server)
    try:
        stored = client.get_run(run.info.run_id)
        assert stored.params == got.data.params
        assert stored.metrics == got.data.metrics
        assert [i.digest for i in client.store.run_inputs(run.info.run_id)] == [
            got.inputs.dataset_inputs[0].dataset.digest
        ]
    finally:
        client.close()


def test_on_a_server_with_users_runs_are_the_tokens_and_viewers_only_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with store_settings(tmp_path, "sqlite") as settings:
        users = Users(open_database(settings.database_url))
        tokens = {
            name: users.add(name, role, actor="admin")[1]
            for name, role in (("alice", Role.editor), ("vera", Role.viewer))
        }
        with live_server(settings) as url:
            monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
            mlflow.set_tracking_uri(url)
            try:
                monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", tokens["alice"])
                client = MlflowClient()
                experiment_id = client.create_experiment("shared")
                run = client.create_run(experiment_id)  # the client says its OS user
                client.log_metric(run.info.run_id, "auc", 0.9)
                assert client.get_run(run.info.run_id).info.user_id == "alice"

                monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", tokens["vera"])
                assert [r.info.run_id for r in client.search_runs([experiment_id])] == [
                    run.info.run_id
                ]
                assert [e.name for e in client.search_experiments()] == ["shared"]
                assert client.get_metric_history(run.info.run_id, "auc")[0].value == 0.9
                with pytest.raises(MlflowException, match="'vera' has the viewer role"):
                    client.log_metric(run.info.run_id, "auc", 0.1)
                with pytest.raises(MlflowException, match="'vera' has the viewer role"):
                    client.delete_run(run.info.run_id)
            finally:
                mlflow.set_tracking_uri("")
