"""``MLFLOW_TRACKING_URI=modelloop://HOST:PORT``: MLflow's own code through the store plugin
(``modelloop.mlflow_store``, found by MLflow through modelloop's entry points) behaves as over
``http://``: the same scenarios pass, and both transports read the same answers."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mlflow
import pytest
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException, RestException
from mlflow.tracking import MlflowClient

from modelloop.auth import Role, Users
from modelloop.mlflow_store._stores import ModelloopTrackingStore, http_uri
from modelloop.store import open_database
from tests.conftest import store_settings
from tests.live_server import live_server
from tests.mlflow_compat import test_artifacts, test_autolog, test_registry, test_tracking
from tests.mlflow_compat.conftest import MlflowServer
from tests.mlflow_compat.test_autolog import data, sklearn_autolog  # noqa: F401 (fixtures)
from tests.mlflow_compat.test_registry import ours  # noqa: F401 (a fixture)

pytestmark = test_autolog.pytestmark


def _modelloop_uri(url: str) -> str:
    return "modelloop://" + url.removeprefix("http://")


@pytest.fixture
def plugin_server(mlflow_server: MlflowServer, monkeypatch: pytest.MonkeyPatch) -> MlflowServer:
    """The server, with MLflow pointed at it by a ``modelloop://`` URI."""
    uri = _modelloop_uri(mlflow_server.url)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    assert isinstance(MlflowClient()._tracking_client.store, ModelloopTrackingStore)
    return mlflow_server


Scenario = Callable[[MlflowServer, pytest.FixtureRequest], None]


def _given(scenario: Callable[..., None], *fixtures: str) -> Scenario:
    """``scenario(server, *fixtures)``, the fixtures as pytest gives them to the original."""
    return lambda server, request: scenario(
        server, *(request.getfixturevalue(name) for name in fixtures)
    )


def _autologged(scenario: Callable[..., None]) -> Scenario:
    def run(server: MlflowServer, request: pytest.FixtureRequest) -> None:
        request.getfixturevalue("sklearn_autolog")
        scenario(server, request.getfixturevalue("data"))

    return run


# What the http:// suites check, run again through the plugin: the hot calls it takes over
# (log_metric/param/batch, set_tag, history, search) and what still goes MLflow's own way.
SCENARIOS: dict[str, Scenario] = {
    "fluent": _given(test_tracking.test_fluent_api_writes_a_modelloop_run),
    "client": _given(test_tracking.test_mlflow_client_end_to_end),
    "search": _given(test_tracking.test_search_runs_filters_orders_and_pages),
    "history": _given(test_tracking.test_metric_history_round_trips_exactly),
    "immutable params": _given(test_tracking.test_params_are_immutable_and_batches_are_limited),
    "bad input": _given(test_tracking.test_bad_input_is_an_mlflow_error_that_says_why),
    "dataset inputs": _given(test_tracking.test_log_input_records_the_dataset_on_the_run),
    "artifacts": _given(test_artifacts.test_the_fluent_api_and_mlflow_client, "tmp_path"),
    "sklearn autolog": _autologged(test_autolog.test_sklearn_autolog),
    "registered by log_model": _given(
        test_registry.test_log_model_with_a_registered_name_loads_by_alias, "ours"
    ),
}


@pytest.mark.parametrize("scenario", SCENARIOS.values(), ids=SCENARIOS.keys())
def test_the_http_scenarios_pass_over_a_modelloop_uri(
    plugin_server: MlflowServer, request: pytest.FixtureRequest, scenario: Scenario
) -> None:
    scenario(plugin_server, request)


def _same(a: Any, b: Any) -> bool:
    """Equal, with NaN equal to itself (dictionaries of runs hold metric values)."""
    return repr(a) == repr(b)


def test_both_transports_read_the_same_answers(plugin_server: MlflowServer) -> None:
    lean = MlflowClient()
    rest = MlflowClient(plugin_server.url)
    experiment_id = lean.create_experiment("same")
    run_ids = []
    for i in range(3):
        run_id = lean.create_run(experiment_id, run_name=f"r{i}").info.run_id
        lean.log_batch(
            run_id,
            metrics=[Metric("auc", 0.9 - i / 10, 1_000 + i, i), Metric("odd", math.nan, 5, 0)],
            params=[Param("model", f"m{i}")],
            tags=[RunTag("team", "risk")],
        )
        lean.log_metric(run_id, "loss", math.inf, step=7)
        lean.log_param(run_id, "depth", str(i))
        lean.set_tag(run_id, "i", str(i))
        run_ids.append(run_id)
    lean.set_terminated(run_ids[0])

    for run_id in run_ids:
        assert _same(lean.get_run(run_id).to_dictionary(), rest.get_run(run_id).to_dictionary())
        for key in ("auc", "odd", "loss"):
            assert _same(lean.get_metric_history(run_id, key), rest.get_metric_history(run_id, key))
    query = {"filter_string": "params.model != 'm9'", "order_by": ["metrics.auc ASC"]}
    by_lean = lean.search_runs([experiment_id], **query)
    by_rest = rest.search_runs([experiment_id], **query)
    assert [r.info.run_name for r in by_lean] == ["r2", "r1", "r0"]
    assert _same([r.to_dictionary() for r in by_lean], [r.to_dictionary() for r in by_rest])
    first = lean.search_runs([experiment_id], max_results=2)
    second = lean.search_runs([experiment_id], max_results=2, page_token=first.token)
    assert [len(first), len(second)] == [2, 1]
    assert second.token is None


def test_errors_are_what_mlflows_client_raises(plugin_server: MlflowServer) -> None:
    client = MlflowClient()
    with pytest.raises(RestException) as missing:
        client.log_metric("0" * 32, "auc", 0.5)
    assert missing.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    with pytest.raises(RestException) as malformed:
        client.get_metric_history("not-a-run", "auc")
    assert malformed.value.error_code == "INVALID_PARAMETER_VALUE"
    assert "run id" in malformed.value.message


def test_tokens_apply_per_call_as_with_mlflows_client(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MLflow reads MLFLOW_TRACKING_TOKEN on every call; so does the plugin, and a viewer's
    token is refused writes through it with the server's reason."""
    with store_settings(tmp_path, "sqlite") as settings:
        users = Users(open_database(settings.database_url))
        tokens = {
            name: users.add(name, role, actor="admin")[1]
            for name, role in (("alice", Role.editor), ("vera", Role.viewer))
        }
        with live_server(settings) as url:
            client = MlflowClient(_modelloop_uri(url))
            monkeypatch.delenv("MLFLOW_TRACKING_TOKEN", raising=False)
            with pytest.raises(MlflowException) as anonymous:
                client.search_experiments()
            assert anonymous.value.error_code == "UNAUTHENTICATED"

            monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", tokens["alice"])
            run = client.create_run(client.create_experiment("shared"))
            client.log_metric(run.info.run_id, "auc", 0.9)
            assert client.get_run(run.info.run_id).info.user_id == "alice"

            monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", tokens["vera"])
            assert client.get_metric_history(run.info.run_id, "auc")[0].value == 0.9
            with pytest.raises(MlflowException, match="'vera' has the viewer role"):
                client.log_metric(run.info.run_id, "auc", 0.1)
            with pytest.raises(MlflowException, match="'vera' has the viewer role"):
                client.log_batch(run.info.run_id, metrics=[Metric("auc", 0.1, 0, 1)])


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("modelloop://127.0.0.1:5000", "http://127.0.0.1:5000"),
        ("modelloop://127.0.0.1:5000/", "http://127.0.0.1:5000"),
        ("modelloop+https://ml.example.com/prefix", "https://ml.example.com/prefix"),
        ("http://127.0.0.1:5000", "http://127.0.0.1:5000"),
    ],
)
def test_modelloop_uris_name_the_server(uri: str, expected: str) -> None:
    assert http_uri(uri) == expected


def test_a_modelloop_uri_without_a_server_is_refused() -> None:
    with pytest.raises(MlflowException, match=r"modelloop://127\.0\.0\.1:5000"):
        http_uri("modelloop:///just/a/path")
