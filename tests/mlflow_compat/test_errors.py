"""MLflow's error shape on MLflow's paths: an endpoint modelloop does not implement says so (501,
which the client does not retry), never a 500 or a silent no-op."""

from __future__ import annotations

import httpx
import pytest
from mlflow.exceptions import RestException
from mlflow.tracking import MlflowClient

from modelloop.settings import Settings
from tests.live_server import live_server
from tests.mlflow_compat.conftest import MlflowServer


def test_an_unknown_endpoint_is_named_in_mlflows_shape(mlflow_server: MlflowServer) -> None:
    answer = httpx.post(f"{mlflow_server.url}/api/2.0/mlflow/no-such/thing", json={})
    assert answer.status_code == 501
    body = answer.json()
    assert body["error_code"] == "NOT_IMPLEMENTED"
    assert "POST /api/2.0/mlflow/no-such/thing" in body["message"]
    assert "docs/mlflow.md" in body["message"]


def test_the_client_raises_mlflows_exception(mlflow_server: MlflowServer) -> None:
    client = MlflowClient(mlflow_server.url)
    with pytest.raises(RestException) as raised:
        client.get_run("0" * 32)
    assert raised.value.error_code in {"RESOURCE_DOES_NOT_EXIST", "NOT_IMPLEMENTED"}


def test_the_middlewares_answers_keep_mlflows_codes(
    sqlite_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Errors raised before any route (auth, the Host check) carry MLflow's codes on MLflow's
    paths too, so the client raises what it would against MLflow's server."""
    token = "t" * 40
    with live_server(sqlite_settings, token=token) as url:
        path = f"{url}/api/2.0/mlflow/experiments/get-by-name"
        anonymous = httpx.get(path, params={"experiment_name": "x"})
        assert anonymous.status_code == 401
        assert anonymous.json()["error_code"] == "UNAUTHENTICATED"
        own = httpx.get(f"{url}/api/v1/experiments")
        assert own.json()["error_code"] == "UNAUTHORIZED"  # modelloop's paths keep modelloop's
        monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "wrong" * 10)
        with pytest.raises(RestException) as raised:
            MlflowClient(url).get_experiment_by_name("x")
        assert raised.value.error_code == "UNAUTHENTICATED"
    with live_server(sqlite_settings) as url:  # no auth: the Host check guards loopback
        path = f"{url}/api/2.0/mlflow/experiments/get-by-name"
        other_host = httpx.get(path, headers={"Host": "evil.example"})
        assert other_host.status_code == 400
        assert other_host.json()["error_code"] == "INVALID_PARAMETER_VALUE"
