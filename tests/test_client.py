"""``ml.Client`` is the one handle: every domain's store from one object, locally and through a
server alike, with the same answers."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

import modelloop as ml
from modelloop.serving.deployment import parse_deployment
from modelloop.settings import Settings
from tests.conftest import store_settings
from tests.live_server import live_server


@pytest.fixture(params=["local", "server"])
def client(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ml.Client]:
    with store_settings(tmp_path, "sqlite") as settings:
        if request.param == "local":
            handle = ml.Client(settings=settings)
            yield handle
            handle.close()
            return
        with live_server(settings) as url:
            handle = ml.Client(settings=dataclasses.replace(settings, tracking_uri=url))
            yield handle
            handle.close()


def _declared(settings: Settings) -> bool:
    return settings.tracking_uri is not None


def test_one_handle_reaches_every_domain(client: ml.Client) -> None:
    """A model registered, a dataset logged, a deployment, a monitor and a policy declared, a
    user added: all through the one handle, read back through it."""
    run = client.create_run("fraud")
    client.log_bytes(run.run_id, b"tree\n", "model/model.txt")
    client.end_run(run.run_id)
    version = client.registry.register_model(run.run_id, "fraud-detector")
    assert (version.name, version.version) == ("fraud-detector", 1)
    assert client.registry.get_version("fraud-detector", 1).run_id == run.run_id

    frame = pd.DataFrame({"amount": [1.5, 2.5], "label": [0, 1]})
    logged = client.datasets.log_version("transactions", frame, actor="tester")
    assert client.datasets.get_version("transactions").digest == logged.digest
    pd.testing.assert_frame_equal(client.datasets.load(logged), frame)

    deployment = {"name": "fraud-online", "model": "fraud-detector/1"}
    assert client.deployments.apply(parse_deployment(deployment), actor="tester")
    assert [d.deployment.name for d in client.deployments.list()] == ["fraud-online"]

    monitor = {
        "name": "fraud",
        "deployment": "fraud-online",
        "model": "fraud-detector",
        "window": "1h",
    }
    assert client.monitors.apply(monitor, actor="tester")
    assert [m.monitor.name for m in client.monitors.list()] == ["fraud"]

    policy = {
        "name": "fraud-loop",
        "deployment": "fraud-online",
        "model": "fraud-detector",
        "monitor": "fraud",
        "training": {"function": "my_package.training:train"},
    }
    assert client.policies.apply(policy, actor="tester")
    assert [p.name for p in client.policies.list()] == ["fraud-loop"]

    _, token = client.users.add("alice", "viewer", actor="tester")
    assert [u.name for u in client.users.list()] == ["alice"]
    assert len(token) >= 40
    # Each store is opened once, on the backend the settings name.
    assert client.datasets is client.datasets
    remote = _declared(client.settings)
    for store in (client.datasets, client.deployments, client.monitors, client.policies):
        assert type(store).__name__.startswith("Http") == remote, type(store).__name__


def test_nothing_named_by_another_declaration_can_be_deleted(client: ml.Client) -> None:
    """A deployment that a monitor and a policy name, or a monitor that a policy names, stays
    (a Conflict that lists who names it) until they go: nothing points at what is gone."""
    run = client.create_run("fraud")
    client.log_bytes(run.run_id, b"tree\n", "model/model.txt")
    client.registry.register_model(run.run_id, "fraud-detector")
    client.deployments.apply(
        parse_deployment({"name": "fraud-online", "model": "fraud-detector/1"}), actor="t"
    )
    monitor = {"name": "fraud", "deployment": "fraud-online", "model": "fraud-detector"}
    client.monitors.apply(monitor | {"window": "1h"}, actor="t")
    client.policies.apply(
        {
            "name": "fraud-loop",
            "deployment": "fraud-online",
            "model": "fraud-detector",
            "monitor": "fraud",
            "training": {"function": "my_package.training:train"},
        },
        actor="t",
    )
    with pytest.raises(ml.Conflict) as refused:
        client.deployments.delete("fraud-online", actor="t")
    assert refused.value.message == (
        "Cannot delete deployment 'fraud-online': monitor 'fraud', policy 'fraud-loop' still "
        "name it; delete or change them first"
    )
    with pytest.raises(ml.Conflict, match="policy 'fraud-loop' still name it; delete or change it"):
        client.monitors.delete("fraud", actor="t")
    assert client.policies.delete("fraud-loop", actor="t")
    assert client.monitors.delete("fraud", actor="t")
    assert client.deployments.delete("fraud-online", actor="t")
    assert client.deployments.list() == []


def test_close_releases_every_store_opened(client: ml.Client) -> None:
    """Each store used is closed (a server's connections released) and forgotten."""
    assert client.deployments.list() == []
    assert client.users.list() == []
    opened = [client.deployments, client.users]
    client.close()
    for name in ("deployments", "users"):
        assert name not in vars(client)
    for store in opened:
        transport = getattr(store, "_transport", None)  # HTTP stores: their pooled connections
        assert transport is None or transport._http is None
    assert (transport is not None) == _declared(client.settings)


def test_get_client_is_the_one_handle(home: Path) -> None:
    """``ml.get_client()`` is an ``ml.Client``: the module-level SDK and the handle share one
    object, so a model registered with ``ml.register_model`` is seen through ``.registry``."""
    with ml.start_run(experiment="fraud") as run:
        run.log_text("tree\n", "model/model.txt")
    ml.register_model(run.run_id, "fraud-detector")
    client = ml.get_client()
    assert isinstance(client, ml.Client)
    assert client is ml.get_client()
    assert [m.name for m in client.registry.list_models()] == ["fraud-detector"]
