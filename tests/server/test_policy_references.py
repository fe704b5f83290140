"""A policy names a deployment, a registered model and a monitor: each must exist when the policy
is applied (SDK, CLI and REST alike), and a step takes no body but an empty object."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from modelloop.automation.policy import apply_policy, get_policy
from modelloop.errors import NotFound
from modelloop.monitoring.fluent import apply_monitor
from modelloop.registry.entities import ModelVersionSpec
from modelloop.registry.sql import SqlRegistryStore
from modelloop.serving.deployment import parse_deployment
from modelloop.serving.fluent import apply_deployment
from modelloop.settings import Settings, load_settings
from modelloop.tracking.client import open_store
from modelloop.tracking.entities import RunSpec
from tests.live_server import live_server

POLICY = {
    "deployment": "fraud-online",
    "model": "fraud-detector",
    "monitor": "fraud-watch",
    "training": {"function": "my_package.fraud:train"},
}


def seed_references(settings: Settings) -> None:
    """The registered model (one version), the deployment serving it and its monitor."""
    tracking = open_store(settings)
    exp = tracking.create_experiment("refs")
    run_id = tracking.create_run(RunSpec(experiment_id=exp.experiment_id)).run_id
    tracking.put_artifact(run_id, "model/model.txt", b"tree\n")
    registry = SqlRegistryStore(tracking.db)
    registry.create_registered_model("fraud-detector", actor="test")
    spec = ModelVersionSpec(name="fraud-detector", run_id=run_id)
    registry.create_model_version(spec, actor="test")
    deployment = parse_deployment({"name": "fraud-online", "model": "models:/fraud-detector/1"})
    apply_deployment(deployment, settings=settings)
    apply_monitor({"name": "fraud-watch", "deployment": "fraud-online"}, settings=settings)


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[httpx.Client, Settings]]:
    settings = load_settings({"MODELLOOP_HOME": str(tmp_path / "home")})
    with live_server(settings) as url, httpx.Client(base_url=url + "/api/v1") as client:
        yield client, settings


def test_the_sdk_refuses_a_policy_naming_what_does_not_exist(home: Path) -> None:
    settings = load_settings()
    with pytest.raises(NotFound) as caught:
        apply_policy({"name": "loop", **POLICY}, settings=settings)
    assert [d["field"] for d in caught.value.details or []] == ["deployment", "model", "monitor"]
    assert "fraud-online" in caught.value.message
    with pytest.raises(NotFound):
        get_policy("loop", settings=settings)  # nothing was stored
    seed_references(settings)
    assert apply_policy({"name": "loop", **POLICY}, settings=settings) is True


@pytest.mark.parametrize(
    ("field", "value"),
    [("deployment", "nope-online"), ("model", "nope-model"), ("monitor", "nope-watch")],
)
def test_put_refuses_each_missing_reference_by_its_field(
    api: tuple[httpx.Client, Settings], field: str, value: str
) -> None:
    client, settings = api
    seed_references(settings)
    refused = client.put("/policies/loop", json={**POLICY, field: value})
    assert refused.status_code == 404, refused.text
    body = refused.json()
    assert body["error_code"] == "NOT_FOUND"
    assert [d["field"] for d in body["details"]] == [field]
    assert value in body["details"][0]["message"]
    assert client.get("/policies/loop").status_code == 404
    accepted = client.put("/policies/loop", json=POLICY)
    assert accepted.status_code == 200, accepted.text


def test_a_model_name_no_model_can_have_is_a_422_naming_model(
    api: tuple[httpx.Client, Settings],
) -> None:
    client, settings = api
    seed_references(settings)
    refused = client.put("/policies/loop", json={**POLICY, "model": "no/slashes"})
    assert refused.status_code == 422, refused.text
    assert [d["field"] for d in refused.json()["details"]] == ["model"]


@pytest.mark.parametrize(
    ("content", "headers"),
    [
        (b"\xff\xfe not utf-8", {"content-type": "application/json"}),
        (b"{not json", {"content-type": "application/json"}),
        (b"[]", {"content-type": "application/json"}),
        (b'{"now": 5}', {"content-type": "application/json"}),
    ],
    ids=["invalid-utf8", "not-json", "array", "unknown-field"],
)
def test_step_refuses_a_body_it_does_not_take(
    api: tuple[httpx.Client, Settings], content: bytes, headers: dict[str, str]
) -> None:
    client, settings = api
    seed_references(settings)
    assert client.put("/policies/loop", json=POLICY).status_code == 200
    refused = client.post("/policies/loop/step", content=content, headers=headers)
    assert refused.status_code == 422, refused.text
    assert refused.json()["details"][0]["field"].startswith("body")


def test_step_takes_no_body_or_an_empty_object(api: tuple[httpx.Client, Settings]) -> None:
    client, settings = api
    seed_references(settings)
    assert client.put("/policies/loop", json=POLICY).status_code == 200
    for kwargs in ({}, {"json": {}}):
        stepped = client.post("/policies/loop/step", **kwargs)  # type: ignore[arg-type]
        assert stepped.status_code == 200, stepped.text
        assert isinstance(stepped.json()["decisions"], list)
