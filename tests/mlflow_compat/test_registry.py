"""MLflow's model registry API through the real ``mlflow`` client: what it writes is modelloop's
registry (the versions ``client.registry`` lists, its audit events, its approval rules)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import mlflow
import pytest
from mlflow.entities.model_registry import ModelVersion, RegisteredModel
from mlflow.exceptions import MlflowException, RestException
from mlflow.models import ModelSignature
from mlflow.store.artifact.models_artifact_repo import ModelsArtifactRepository
from mlflow.tracking import MlflowClient
from mlflow.types import ColSpec, Schema

import modelloop as ml
from modelloop.auth import Role, Users
from modelloop.errors import Forbidden
from modelloop.registry.http import HttpRegistryStore
from modelloop.registry.store import RegistryStore
from modelloop.settings import Settings
from modelloop.store import open_database
from modelloop.tracking.client import open_store
from modelloop.tracking.logged_models import LoggedModels, LoggedModelSpec
from modelloop.tracking.sql import SqlTrackingStore
from tests.conftest import store_settings
from tests.live_server import live_server
from tests.mlflow_compat.conftest import MlflowServer


@pytest.fixture
def ours(mlflow_server: MlflowServer) -> Iterator[ml.Client]:
    """modelloop's own client on the store the server serves, to create runs and read back."""
    client = ml.Client(settings=mlflow_server.settings)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def mlflow_client(mlflow_server: MlflowServer) -> MlflowClient:
    return MlflowClient(mlflow_server.url, mlflow_server.url)


def _run(ours: ml.Client, files: dict[str, bytes] | None = None) -> str:
    """A run with a model package under ``model/`` (what an MLflow flavor would have logged)."""
    run_id = ours.create_run("mlflow-registry").run_id
    for path, content in (files or {"model/MLmodel": b"flavors: {}\n"}).items():
        ours.log_bytes(run_id, content, path)
    return run_id


def _registry(ours: ml.Client) -> RegistryStore:
    return ours.registry.store


def _error(raised: pytest.ExceptionInfo[MlflowException]) -> tuple[str, str]:
    return raised.value.error_code, raised.value.message


# -- registered models ---------------------------------------------------------------------------


def test_registered_models_round_trip(
    mlflow_client: MlflowClient, ours: ml.Client, mlflow_server: MlflowServer
) -> None:
    created = mlflow_client.create_registered_model(
        "fraud", tags={"team": "risk"}, description="card fraud"
    )
    assert isinstance(created, RegisteredModel)
    assert (created.name, created.description, created.tags) == (
        "fraud",
        "card fraud",
        {"team": "risk"},
    )
    stored = _registry(ours).get_registered_model("fraud")
    assert (stored.description, stored.tags) == ("card fraud", {"team": "risk"})
    assert created.creation_timestamp == stored.created_at

    ajax = httpx.get(
        f"{mlflow_server.url}/ajax-api/2.0/mlflow/registered-models/get", params={"name": "fraud"}
    )
    assert ajax.json()["registered_model"]["description"] == "card fraud"  # the UI's prefix
    got = mlflow_client.get_registered_model("fraud")
    assert (got.name, got.description, got.tags, got.latest_versions) == (
        "fraud",
        "card fraud",
        {"team": "risk"},
        [],
    )
    updated = mlflow_client.update_registered_model("fraud", description="v2")
    assert updated.description == "v2"
    assert _registry(ours).get_registered_model("fraud").description == "v2"

    with pytest.raises(RestException) as raised:
        mlflow_client.create_registered_model("fraud")
    assert raised.value.error_code == "RESOURCE_ALREADY_EXISTS"
    with pytest.raises(RestException) as raised:
        mlflow_client.get_registered_model("nope")
    assert raised.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    assert "nope" in raised.value.message

    actions = [(e.action, e.actor) for e in _registry(ours).audit_events("fraud")]
    assert actions == [("model.create", "anonymous"), ("model.update", "anonymous")]


def test_model_tags_set_and_delete(mlflow_client: MlflowClient, ours: ml.Client) -> None:
    mlflow_client.create_registered_model("fraud")
    mlflow_client.set_registered_model_tag("fraud", "team", "risk")
    mlflow_client.set_registered_model_tag("fraud", "tier", "1")
    mlflow_client.delete_registered_model_tag("fraud", "tier")
    assert mlflow_client.get_registered_model("fraud").tags == {"team": "risk"}
    assert _registry(ours).get_registered_model("fraud").tags == {"team": "risk"}
    last = _registry(ours).audit_events("fraud")[-1]
    assert (last.action, last.before, last.after) == (
        "model.update",
        {"description": None, "tags": {"team": "risk", "tier": "1"}},
        {"description": None, "tags": {"team": "risk"}},
    )


def test_rename_and_delete(mlflow_client: MlflowClient, ours: ml.Client) -> None:
    run_id = _run(ours)
    mlflow_client.create_model_version("fraud", f"runs:/{run_id}/model", run_id)
    mlflow_client.rename_registered_model("fraud", "fraud-v2")
    assert mlflow_client.get_registered_model("fraud-v2").latest_versions[0].version == "1"
    assert [v.name for v in _registry(ours).list_model_versions("fraud-v2")] == ["fraud-v2"]
    mlflow_client.set_registered_model_alias("fraud-v2", "challenger", 1)
    with pytest.raises(RestException) as raised:
        mlflow_client.rename_registered_model("fraud-v2", "fraud-v3")
    assert raised.value.error_code == "INVALID_STATE"
    assert "challenger" in raised.value.message
    with pytest.raises(RestException) as raised:
        mlflow_client.delete_model_version("fraud-v2", 1)
    assert raised.value.error_code == "INVALID_STATE"
    assert "aliased as challenger" in raised.value.message
    mlflow_client.delete_registered_model_alias("fraud-v2", "challenger")
    mlflow_client.delete_model_version("fraud-v2", 1)
    with pytest.raises(RestException) as raised:
        mlflow_client.get_model_version("fraud-v2", 1)
    assert raised.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    mlflow_client.delete_registered_model("fraud-v2")
    with pytest.raises(RestException):
        mlflow_client.get_registered_model("fraud-v2")
    actions = [e.action for e in _registry(ours).audit_events("fraud-v2")]
    assert actions[-3:] == ["alias.delete", "model_version.delete", "model.delete"]
    assert _registry(ours).verify_audit().ok


# -- versions ------------------------------------------------------------------------------------


def test_versions_from_runs_uris(mlflow_client: MlflowClient, ours: ml.Client) -> None:
    run_id = _run(ours)
    version = mlflow_client.create_model_version(
        "fraud", f"runs:/{run_id}/model", run_id, tags={"stage": "dev"}, description="first"
    )
    assert isinstance(version, ModelVersion)
    assert (version.name, version.version, version.run_id, version.status) == (
        "fraud",
        "1",
        run_id,
        "READY",
    )
    assert (version.tags, version.description, version.current_stage) == (
        {"stage": "dev"},
        "first",
        "None",
    )
    experiment = ours.get_run(run_id).experiment_id
    expected_uri = f"mlflow-artifacts:/{experiment}/{run_id}/artifacts/model"
    assert version.source == f"runs:/{run_id}/model"
    assert mlflow_client.get_model_version_download_uri("fraud", "1") == expected_uri

    stored = _registry(ours).get_model_version("fraud", 1)
    assert (stored.run_id, stored.artifact_path, stored.created_by) == (
        run_id,
        "model",
        "anonymous",
    )
    assert (stored.tags, stored.description) == ({"stage": "dev"}, "first")
    # The same package named as the artifact proxy names it is the same run and path.
    second = mlflow_client.create_model_version("fraud", expected_uri)
    assert (second.version, second.run_id) == ("2", run_id)
    assert _registry(ours).get_model_version("fraud", 2).package_digest == stored.package_digest
    assert [e.action for e in _registry(ours).audit_events("fraud")] == [
        "model.create",
        "model_version.create",
        "model_version.create",
    ]


def test_versions_from_logged_models(
    mlflow_client: MlflowClient, ours: ml.Client, mlflow_server: MlflowServer
) -> None:
    """MLflow 3 registers ``models:/m-...``: the logged model's run and folder."""
    tracking = open_store(mlflow_server.settings)
    assert isinstance(tracking, SqlTrackingStore)
    experiment = tracking.create_experiment("logged")
    logged = LoggedModels(tracking).create(LoggedModelSpec(experiment.experiment_id, "clf"))
    tracking.put_artifact(logged.run_id, f"{logged.artifact_path}/MLmodel", b"flavors: {}\n")
    source = f"models:/{logged.model_id}"
    version = mlflow_client.create_model_version("fraud", source, model_id=logged.model_id)
    assert (version.run_id, version.source) == (logged.run_id, source)
    answer = httpx.get(
        f"{mlflow_server.url}/api/2.0/mlflow/model-versions/get",
        params={"name": "fraud", "version": "1"},
    )
    assert answer.json()["model_version"]["model_id"] == logged.model_id
    stored = _registry(ours).get_model_version("fraud", 1)
    assert (stored.run_id, stored.artifact_path) == (logged.run_id, f"models/{logged.model_id}")
    assert mlflow_client.get_model_version_download_uri("fraud", "1") == (
        f"mlflow-artifacts:/{experiment.experiment_id}/{logged.run_id}/artifacts/"
        f"models/{logged.model_id}"
    )
    with pytest.raises(RestException) as raised:
        mlflow_client.create_model_version("fraud", "models:/m-" + "0" * 32)
    assert raised.value.error_code == "RESOURCE_DOES_NOT_EXIST"


def test_copy_model_version(mlflow_client: MlflowClient, ours: ml.Client) -> None:
    """``copy_model_version`` sends ``models:/NAME/VERSION``: the same run and package."""
    run_id = _run(ours)
    mlflow_client.create_model_version("fraud", f"runs:/{run_id}/model", run_id, tags={"a": "1"})
    mlflow_client.set_registered_model_alias("fraud", "challenger", "1")
    copied = mlflow_client.copy_model_version("models:/fraud@challenger", "fraud-eu")
    assert (copied.name, copied.version, copied.run_id, copied.tags) == (
        "fraud-eu",
        "1",
        run_id,
        {"a": "1"},
    )
    original, copy = (_registry(ours).get_model_version(n, 1) for n in ("fraud", "fraud-eu"))
    assert (copy.run_id, copy.artifact_path) == (original.run_id, original.artifact_path)
    assert copy.package_digest == original.package_digest
    with pytest.raises(MlflowException) as raised:
        mlflow_client.copy_model_version("models:/fraud/7", "fraud-eu")
    assert "no version 7" in raised.value.message


def test_get_update_and_tag_versions(mlflow_client: MlflowClient, ours: ml.Client) -> None:
    run_id = _run(ours)
    mlflow_client.create_model_version("fraud", f"runs:/{run_id}/model", run_id)
    updated = mlflow_client.update_model_version("fraud", "1", description="calibrated")
    assert updated.description == "calibrated"
    mlflow_client.set_model_version_tag("fraud", "1", "validated", "yes")
    mlflow_client.set_model_version_tag("fraud", "1", "owner", "ann")
    mlflow_client.delete_model_version_tag("fraud", "1", "owner")
    got = mlflow_client.get_model_version("fraud", "1")
    assert (got.description, got.tags) == ("calibrated", {"validated": "yes"})
    stored = _registry(ours).get_model_version("fraud", 1)
    assert (stored.description, stored.tags) == ("calibrated", {"validated": "yes"})
    assert [e.action for e in _registry(ours).audit_events("fraud")][-4:] == [
        "model_version.update"
    ] * 4


# -- search --------------------------------------------------------------------------------------


def test_search_registered_models(mlflow_client: MlflowClient, ours: ml.Client) -> None:
    for name, team in (("fraud-a", "risk"), ("fraud-b", "growth"), ("churn", "risk")):
        mlflow_client.create_registered_model(name, tags={"team": team})
    found = mlflow_client.search_registered_models()
    assert [m.name for m in found] == ["churn", "fraud-a", "fraud-b"]
    liked = mlflow_client.search_registered_models(filter_string="name LIKE 'fraud%'")
    assert [m.name for m in liked] == ["fraud-a", "fraud-b"]
    tagged = mlflow_client.search_registered_models(
        filter_string="tags.team = 'risk'", order_by=["name DESC"]
    )
    assert [m.name for m in tagged] == ["fraud-a", "churn"]
    both = mlflow_client.search_registered_models(
        filter_string="name ILIKE 'FRAUD%' AND tags.team != 'risk'"
    )
    assert [m.name for m in both] == ["fraud-b"]
    first = mlflow_client.search_registered_models(max_results=2)
    assert [m.name for m in first] == ["churn", "fraud-a"]
    assert first.token
    rest = mlflow_client.search_registered_models(max_results=2, page_token=first.token)
    assert [m.name for m in rest] == ["fraud-b"]
    assert not rest.token


def test_search_model_versions(mlflow_client: MlflowClient, ours: ml.Client) -> None:
    runs = [_run(ours) for _ in range(3)]
    for name, run_id in (("fraud", runs[0]), ("fraud", runs[1]), ("churn", runs[2])):
        mlflow_client.create_model_version(name, f"runs:/{run_id}/model", run_id)
    mlflow_client.set_model_version_tag("fraud", "2", "validated", "yes")

    by_name = mlflow_client.search_model_versions("name='fraud'")
    assert sorted((v.name, v.version) for v in by_name) == [("fraud", "1"), ("fraud", "2")]
    ordered = mlflow_client.search_model_versions("name = 'fraud'", order_by=["version_number ASC"])
    assert [v.version for v in ordered] == ["1", "2"]
    by_run = mlflow_client.search_model_versions(f"run_id = '{runs[2]}'")
    assert [(v.name, v.version) for v in by_run] == [("churn", "1")]
    in_runs = mlflow_client.search_model_versions(
        f"run_id IN ('{runs[0]}', '{runs[2]}')", order_by=["name ASC"]
    )
    assert [(v.name, v.version) for v in in_runs] == [("churn", "1"), ("fraud", "1")]
    by_source = mlflow_client.search_model_versions(f"source_path = 'runs:/{runs[1]}/model'")
    assert [(v.name, v.version) for v in by_source] == [("fraud", "2")]
    tagged = mlflow_client.search_model_versions("tags.validated = 'yes'")
    assert [(v.name, v.version) for v in tagged] == [("fraud", "2")]
    newer = mlflow_client.search_model_versions("name = 'fraud' AND version_number > 1")
    assert [v.version for v in newer] == ["2"]
    page = mlflow_client.search_model_versions(
        max_results=2, order_by=["name ASC", "version_number DESC"]
    )
    assert [(v.name, v.version) for v in page] == [("churn", "1"), ("fraud", "2")]
    assert page.token
    rest = mlflow_client.search_model_versions(
        max_results=2, order_by=["name ASC", "version_number DESC"], page_token=page.token
    )
    assert [(v.name, v.version) for v in rest] == [("fraud", "1")]
    assert not rest.token


@pytest.mark.parametrize(
    ("filter_string", "expected"),
    [
        ("name = fraud", "quoted string"),
        ("nonsense = 'x'", "unknown field 'nonsense'"),
        ("name = 'a' OR name = 'b'", "no OR"),
        ("version_number > 'x'", "integer"),
        ("name > 'a'", "does not apply"),
        ("name = 'a' AND", "ends too early"),
    ],
)
def test_bad_filters_are_mlflow_errors(
    mlflow_client: MlflowClient, filter_string: str, expected: str
) -> None:
    with pytest.raises(RestException) as raised:
        mlflow_client.search_model_versions(filter_string)
    assert raised.value.error_code == "INVALID_PARAMETER_VALUE"
    assert expected in raised.value.message


# -- aliases -------------------------------------------------------------------------------------


def test_aliases_and_models_uris(mlflow_client: MlflowClient, ours: ml.Client) -> None:
    run_ids = [_run(ours), _run(ours)]
    for run_id in run_ids:
        mlflow_client.create_model_version("fraud", f"runs:/{run_id}/model", run_id)
    mlflow_client.set_registered_model_alias("fraud", "challenger", "2")
    found = mlflow_client.get_model_version_by_alias("fraud", "challenger")
    assert (found.version, found.run_id, found.aliases) == ("2", run_ids[1], ["challenger"])
    assert mlflow_client.get_registered_model("fraud").aliases == {"challenger": "2"}
    assert ours.registry.resolve_model_uri("models:/fraud@challenger").version == 2
    event = _registry(ours).audit_events("fraud")[-1]
    assert (event.action, event.after, event.reason) == (
        "alias.move",
        {"version": 2},
        "set through MLflow's set_registered_model_alias",
    )
    # models:/ URIs resolve through the registry endpoints, as the client resolves them.
    experiment = ours.get_run(run_ids[1]).experiment_id
    expected = f"mlflow-artifacts:/{experiment}/{run_ids[1]}/artifacts/model"
    assert ModelsArtifactRepository.get_underlying_uri("models:/fraud@challenger") == expected
    assert ModelsArtifactRepository.get_underlying_uri("models:/fraud/2") == expected
    assert ModelsArtifactRepository.get_underlying_uri("models:/fraud/latest") == expected

    mlflow_client.delete_registered_model_alias("fraud", "challenger")
    with pytest.raises(RestException) as raised:
        mlflow_client.get_model_version_by_alias("fraud", "challenger")
    assert raised.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    assert _registry(ours).audit_events("fraud")[-1].action == "alias.delete"


def test_protected_alias_needs_an_approved_request(
    mlflow_client: MlflowClient, ours: ml.Client
) -> None:
    run_id = _run(ours)
    mlflow_client.create_model_version("fraud", f"runs:/{run_id}/model", run_id)
    with pytest.raises(RestException) as raised:
        mlflow_client.set_registered_model_alias("fraud", "champion", "1")
    code, message = _error(raised)
    assert code == "PERMISSION_DENIED"
    assert "protected" in message
    assert "modelloop models request-alias fraud champion 1" in message
    assert "modelloop models approve" in message
    assert _registry(ours).get_registered_model("fraud").aliases == {}

    request = _registry(ours).request_alias(
        "fraud", "champion", 1, actor="alice", reason="beats the baseline"
    )
    _registry(ours).approve_request(request.request_id, actor="bob")
    assert mlflow_client.get_model_version_by_alias("fraud", "champion").version == "1"
    events = len(_registry(ours).audit_events("fraud"))
    mlflow_client.set_registered_model_alias("fraud", "champion", "1")  # already there: a no-op
    assert len(_registry(ours).audit_events("fraud")) == events
    with pytest.raises(RestException) as raised:
        mlflow_client.delete_registered_model_alias("fraud", "champion")
    assert raised.value.error_code == "PERMISSION_DENIED"
    assert _registry(ours).get_registered_model("fraud").aliases == {"champion": 1}


# -- stages and bad input ------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:.*deprecated:FutureWarning")
def test_stages_are_not_modelloops(mlflow_client: MlflowClient, ours: ml.Client) -> None:
    run_ids = [_run(ours), _run(ours)]
    for run_id in run_ids:
        mlflow_client.create_model_version("fraud", f"runs:/{run_id}/model", run_id)
    _registry(ours).set_version_status("fraud", 2, "ARCHIVED", actor="alice", reason="bad")
    latest = mlflow_client.get_latest_versions("fraud")
    assert [(v.version, v.current_stage) for v in latest] == [("1", "None")]
    both = mlflow_client.get_latest_versions("fraud", ["None", "Archived"])
    assert [(v.version, v.current_stage) for v in both] == [("1", "None"), ("2", "Archived")]
    # models:/NAME/latest is the highest READY version, never an archived one.
    assert ModelsArtifactRepository.get_underlying_uri("models:/fraud/latest").endswith(
        f"/{run_ids[0]}/artifacts/model"
    )
    with pytest.raises(MlflowException) as raised:
        mlflow_client.get_latest_versions("fraud", ["Production"])
    assert "alias" in raised.value.message
    with pytest.raises(MlflowException) as raised:
        mlflow_client.transition_model_version_stage("fraud", "1", "Production")
    assert raised.value.error_code == "NOT_IMPLEMENTED"
    assert "alias" in raised.value.message


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("s3://bucket/model", "Unsupported model version source 's3://bucket/model'"),
        ("runs:/nope/model", "run"),
        ("runs:/{run_id}/../escape", "unsafe"),
        ("runs:/{run_id}/missing", "no artifacts under 'missing'"),
        ("mlflow-artifacts:/999/{run_id}/artifacts/model", "not 999"),
    ],
)
def test_bad_sources_are_named(
    mlflow_client: MlflowClient, ours: ml.Client, source: str, expected: str
) -> None:
    run_id = _run(ours)
    with pytest.raises(RestException) as raised:
        mlflow_client.create_model_version("fraud", source.format(run_id=run_id))
    assert raised.value.error_code in {"INVALID_PARAMETER_VALUE", "RESOURCE_DOES_NOT_EXIST"}
    assert expected.lower() in raised.value.message.lower()


def test_bad_input_is_an_mlflow_error(mlflow_server: MlflowServer) -> None:
    api = f"{mlflow_server.url}/api/2.0/mlflow"
    cases = [
        ("GET", "/registered-models/get", {}, "Missing value for required parameter 'name'"),
        ("GET", "/model-versions/get", {"name": "m", "version": "x"}, "versions are integers"),
        ("POST", "/registered-models/create", {"name": "a/b"}, "model name"),
        ("POST", "/registered-models/create", {"name": 3}, "not a string"),
        ("GET", "/registered-models/search", {"max_results": "0"}, "max_results"),
        ("GET", "/registered-models/search", {"page_token": "garbage"}, "page_token"),
        ("GET", "/registered-models/search", {"order_by": "size"}, "order by one of"),
    ]
    for method, path, args, expected in cases:
        sent = {"params": args} if method == "GET" else {"json": args}
        answer = httpx.request(method, api + path, **sent)  # type: ignore[arg-type]
        assert answer.status_code == 400, (path, answer.text)
        assert answer.json()["error_code"] == "INVALID_PARAMETER_VALUE"
        assert expected in answer.json()["message"], answer.text


# -- who acts ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Team:
    url: str
    settings: Settings
    tokens: dict[str, str]  # user -> token


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def team(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Team]:
    """A server with authentication: alice edits, bob approves, vera only reads."""
    with store_settings(tmp_path, request.param) as settings:
        users = Users(open_database(settings.database_url))
        tokens = {
            name: users.add(name, role, actor="admin")[1]
            for name, role in (
                ("alice", Role.editor),
                ("bob", Role.approver),
                ("vera", Role.viewer),
            )
        }
        with live_server(settings) as url:
            monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
            mlflow.set_tracking_uri(url)
            mlflow.set_registry_uri(url)
            try:
                yield Team(url, settings, tokens)
            finally:
                mlflow.set_tracking_uri("")


def test_mlflow_calls_act_as_the_tokens_user(team: Team, monkeypatch: pytest.MonkeyPatch) -> None:
    client = MlflowClient(team.url, team.url)
    local = ml.Client(settings=team.settings)
    try:
        run_id = _run(local)
        monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", team.tokens["alice"])
        client.create_model_version("fraud", f"runs:/{run_id}/model", run_id)
        client.set_registered_model_alias("fraud", "challenger", "1")
        with pytest.raises(RestException) as raised:
            client.set_registered_model_alias("fraud", "champion", "1")
        assert raised.value.error_code == "PERMISSION_DENIED"
        as_alice = HttpRegistryStore(team.url, token=team.tokens["alice"])
        as_bob = HttpRegistryStore(team.url, token=team.tokens["bob"])
        try:
            request = as_alice.request_alias("fraud", "champion", 1, actor="-", reason="ready")
            with pytest.raises(Forbidden, match="approver"):
                as_alice.approve_request(request.request_id, actor="-")
            as_bob.approve_request(request.request_id, actor="-")
        finally:
            as_alice.close()
            as_bob.close()

        monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", team.tokens["vera"])
        assert client.get_model_version_by_alias("fraud", "champion").version == "1"
        assert [m.name for m in client.search_registered_models()] == ["fraud"]
        latest = ModelsArtifactRepository.get_underlying_uri("models:/fraud/latest")
        assert latest.endswith(f"/{run_id}/artifacts/model")  # a read, though MLflow POSTs it
        with pytest.raises(RestException) as raised:
            client.set_registered_model_tag("fraud", "k", "v")
        assert "'vera' has the viewer role" in raised.value.message
        assert local.registry.store.get_registered_model("fraud").tags == {}

        events = [(e.action, e.actor) for e in local.registry.store.audit_events("fraud")]
        assert events == [
            ("model.create", "alice"),
            ("model_version.create", "alice"),
            ("alias.move", "alice"),
            ("alias_request.create", "alice"),
            ("alias_request.approve", "bob"),
            ("alias.move", "bob"),
        ]
        assert local.registry.get_version("fraud", 1).created_by == "alice"
    finally:
        local.close()


# -- the fluent API, end to end ------------------------------------------------------------------


def test_register_model_from_a_run(
    mlflow_server: MlflowServer, ours: ml.Client, tmp_path: Path
) -> None:
    """``mlflow.register_model("runs:/...")`` on a run whose ``model`` folder holds an MLmodel:
    the version is that run and folder, and ``models:/`` URIs download it."""
    package = tmp_path / "model"
    package.mkdir()
    (package / "MLmodel").write_text("flavors: {}\n")
    (package / "weights.txt").write_text("0.5\n")
    mlflow.set_experiment("fluent-registry")
    with mlflow.start_run() as run:
        mlflow.log_artifacts(str(package), artifact_path="model")
    version = mlflow.register_model(f"runs:/{run.info.run_id}/model", "fraud")
    assert (version.name, version.version, version.status) == ("fraud", "1", "READY")
    stored = ours.registry.get_version("fraud", 1)
    assert (stored.run_id, stored.artifact_path) == (run.info.run_id, "model")
    MlflowClient().set_registered_model_alias("fraud", "challenger", 1)
    fetched = mlflow.artifacts.download_artifacts(
        "models:/fraud@challenger", dst_path=str(tmp_path / "out")
    )
    assert (Path(fetched) / "weights.txt").read_text() == "0.5\n"
    again = mlflow.register_model(f"runs:/{run.info.run_id}/model", "fraud")
    assert again.version == "2"  # the model exists: a new version of it


@pytest.mark.filterwarnings("ignore:.*Any type hint is inferred:UserWarning")
def test_log_model_with_a_registered_name_loads_by_alias(
    mlflow_server: MlflowServer, ours: ml.Client
) -> None:
    """MLflow 3: ``log_model(..., registered_model_name=)`` registers the logged model
    (``models:/m-...``), and ``load_model("models:/NAME@ALIAS")`` predicts with it."""
    sklearn = pytest.importorskip("sklearn.linear_model")
    import numpy as np

    x = np.array([[0.0], [1.0], [2.0], [3.0]])
    fitted = sklearn.LinearRegression().fit(x, 2 * x[:, 0] + 1)
    mlflow.set_experiment("fluent-registry")
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(
            fitted, name="clf", registered_model_name="fraud", pip_requirements=["scikit-learn"]
        )
    assert str(info.registered_model_version) == "1"
    stored = ours.registry.get_version("fraud", 1)
    assert stored.artifact_path == f"models/{info.model_id}"
    MlflowClient().set_registered_model_alias("fraud", "challenger", 1)
    loaded = mlflow.pyfunc.load_model("models:/fraud@challenger")
    assert list(loaded.predict(np.array([[4.0]]))) == pytest.approx([9.0])


@pytest.mark.filterwarnings("ignore:.*Any type hint is inferred:UserWarning")  # mlflow's import
def test_a_version_registered_through_mlflow_serves_in_modelloop(
    mlflow_server: MlflowServer, ours: ml.Client
) -> None:
    """``mlflow.lightgbm.log_model(..., registered_model_name=)``: the version records the
    LightGBM flavor and signature read from the files, so modelloop loads it natively (no
    pickle) and predicts what the booster predicts."""
    lightgbm = pytest.importorskip("lightgbm")
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"amount": rng.random(200), "hour": rng.integers(0, 24, 200)})
    label = (frame["amount"] > 0.5).astype(int)
    booster = lightgbm.train(
        {"objective": "binary", "verbose": -1}, lightgbm.Dataset(frame, label), num_boost_round=5
    )
    mlflow.set_experiment("fluent-registry")
    with mlflow.start_run():
        mlflow.lightgbm.log_model(
            booster,
            name="model",
            registered_model_name="fraud",
            signature=ModelSignature(
                Schema([ColSpec("double", "amount"), ColSpec("long", "hour")]),
                Schema([ColSpec("double")]),
            ),
        )
    stored = ours.registry.get_version("fraud", 1)
    assert stored.flavor == "lightgbm"
    assert stored.signature is not None
    assert [c["name"] for c in stored.signature["inputs"]] == ["amount", "hour"]
    model = ours.registry.load_model("models:/fraud/1")
    np.testing.assert_allclose(model.predict(frame.head(20)), booster.predict(frame.head(20)))
