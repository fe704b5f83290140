"""The registry and audit REST routes, spoken to in raw HTTP on a real server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from modelloop.settings import load_settings
from modelloop.tracking.client import open_store
from modelloop.tracking.entities import RunSpec
from tests.live_server import live_server


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[httpx.Client, str]]:
    """A server without authentication, a client on it, and a run holding a package."""
    settings = load_settings({"MODELLOOP_HOME": str(tmp_path)})
    tracking = open_store(settings)
    exp = tracking.create_experiment("e")
    run_id = tracking.create_run(RunSpec(experiment_id=exp.experiment_id)).run_id
    tracking.put_artifact(run_id, "model/model.txt", b"tree\n")
    with live_server(settings) as url, httpx.Client(base_url=url + "/api/v1") as client:
        yield client, run_id


def _version(client: httpx.Client, run_id: str, name: str = "fraud") -> dict[str, object]:
    response = client.post(f"/models/{name}/versions", json={"run_id": run_id})
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def test_models_and_versions(api: tuple[httpx.Client, str]) -> None:
    client, run_id = api
    created = client.post("/models", json={"name": "fraud", "tags": {"team": "risk"}})
    assert created.status_code == 201
    assert created.json()["tags"] == {"team": "risk"}
    version = _version(client, run_id)
    assert (version["version"], version["status"], version["aliases"]) == (1, "READY", [])
    assert client.get("/models/fraud/versions/1").json() == version
    assert client.get("/models/fraud/versions").json() == {"versions": [version]}
    assert client.get("/models").json()["models"][0]["latest_version"] == 1
    patched = client.patch("/models/fraud", json={"description": "card fraud"})
    assert patched.json()["description"] == "card fraud"
    archived = client.post(
        "/models/fraud/versions/1/status", json={"status": "ARCHIVED", "reason": "old"}
    )
    assert archived.json()["status"] == "ARCHIVED"


def test_errors_travel_as_codes(api: tuple[httpx.Client, str]) -> None:
    client, run_id = api
    _version(client, run_id)
    cases = [
        (client.get("/models/nope"), 404, "NOT_FOUND"),
        (client.get("/models/fraud/versions/7"), 404, "NOT_FOUND"),
        (client.get("/models/fraud/versions/x"), 422, "INVALID_ARGUMENT"),
        (client.get("/models/fraud/versions/0"), 422, "INVALID_ARGUMENT"),
        (client.post("/models", json={"name": "fraud"}), 409, "ALREADY_EXISTS"),
        (client.post("/models", json={"name": "a", "owner": "x"}), 422, "INVALID_ARGUMENT"),
        (
            client.put("/models/fraud/aliases/champion", json={"version": 1, "reason": "r"}),
            403,
            "FORBIDDEN",
        ),
        (
            client.put("/models/fraud/aliases/challenger", json={"version": 1, "reason": ""}),
            422,
            "INVALID_ARGUMENT",
        ),
        (
            client.put(
                "/models/fraud/aliases/challenger",
                json={"version": 1, "reason": "r", "expected_version": 3},
            ),
            409,
            "CONFLICT",
        ),
        (client.get("/audit/verify", params={"anchor": "nope"}), 422, "INVALID_ARGUMENT"),
        (client.post("/alias-requests/abc/approve", json={}), 404, "NOT_FOUND"),
    ]
    for response, status, code in cases:
        assert (response.status_code, response.json()["error_code"]) == (status, code), (
            response.request.url,
            response.text,
        )


def test_alias_routes(api: tuple[httpx.Client, str]) -> None:
    client, run_id = api
    _version(client, run_id)
    moved = client.put("/models/fraud/aliases/challenger", json={"version": 1, "reason": "r"})
    assert moved.status_code == 200
    assert {k: moved.json()[k] for k in ("name", "alias", "version")} == {
        "name": "fraud",
        "alias": "challenger",
        "version": 1,
    }
    assert client.get("/models/fraud/aliases/challenger").json()["version"] == 1
    missing_reason = client.request("DELETE", "/models/fraud/aliases/challenger", json={})
    assert missing_reason.status_code == 422
    deleted = client.request("DELETE", "/models/fraud/aliases/challenger", json={"reason": "done"})
    assert deleted.status_code == 204
    assert client.get("/models/fraud/aliases/challenger").status_code == 404


def test_the_claimed_user_is_the_actor_without_authentication(
    api: tuple[httpx.Client, str],
) -> None:
    client, run_id = api
    _version(client, run_id)
    requested = client.post(
        "/models/fraud/aliases/champion/requests",
        json={"version": 1, "reason": "ready"},
        headers={"X-Modelloop-User": "alice"},
    )
    assert requested.status_code == 201
    request_id = requested.json()["request_id"]
    self_approval = client.post(
        f"/alias-requests/{request_id}/approve", json={}, headers={"X-Modelloop-User": "alice"}
    )
    assert self_approval.status_code == 403
    approved = client.post(
        f"/alias-requests/{request_id}/approve",
        json={"reason": "ok"},
        headers={"X-Modelloop-User": "bob"},
    )
    assert approved.json()["status"] == "APPROVED"
    pending = client.get("/alias-requests", params={"status": "PENDING"}).json()
    assert pending == {"requests": []}
    events = client.get("/audit", params={"model": "fraud"}).json()["events"]
    assert [e["actor"] for e in events] == ["anonymous", "anonymous", "alice", "bob", "bob"]
    assert client.get("/audit", params={"limit": 1}).json()["events"] == events[-1:]
    verification = client.get("/audit/verify").json()
    assert verification["ok"] is True
    assert verification["head_seq"] == 5


@pytest.mark.parametrize("claimed", ["", "x" * 257, "a\tb"])
def test_a_malformed_claim_is_refused(api: tuple[httpx.Client, str], claimed: str) -> None:
    client, _ = api
    response = client.get("/models", headers={"X-Modelloop-User": claimed})
    if claimed == "":
        assert response.status_code == 200  # an empty claim is no claim: anonymous
    else:
        assert response.status_code == 422
        assert "X-Modelloop-User" in response.json()["message"]


def test_openapi_documents_the_registry(api: tuple[httpx.Client, str]) -> None:
    client, _ = api
    spec = httpx.get(client.base_url.copy_with(path="/openapi.json")).json()
    paths = set(spec["paths"])
    assert {
        "/api/v1/models",
        "/api/v1/models/{name}/versions/{version}",
        "/api/v1/models/{name}/aliases/{alias}",
        "/api/v1/alias-requests/{request_id}/approve",
        "/api/v1/audit",
        "/api/v1/audit/verify",
    } <= paths
