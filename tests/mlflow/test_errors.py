"""MLflow's error shape on MLflow's paths: an endpoint modelloop does not implement says so (501,
which the client does not retry), never a 500 or a silent no-op."""

from __future__ import annotations

import httpx
import pytest
from mlflow.exceptions import RestException
from mlflow.tracking import MlflowClient

from tests.mlflow.conftest import MlflowServer


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
