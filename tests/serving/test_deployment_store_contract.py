"""One contract for every DeploymentStore: SQLite, PostgreSQL, and the HTTP client to a server;
then the SDK (``ml.apply_deployment`` ...) and ``ml.load_predictions`` through a live server,
exactly as on the local store."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pandas as pd
import pytest

import modelloop as ml
from modelloop import audit
from modelloop.auth import Role, Users
from modelloop.errors import Forbidden, InvalidArgument, NotFound
from modelloop.registry.entities import ModelVersionSpec
from modelloop.registry.sql import SqlRegistryStore
from modelloop.serving.deployment import Deployment, parse_deployment
from modelloop.serving.feedback import Label, record_feedback
from modelloop.serving.http import HttpDeploymentStore
from modelloop.serving.prediction_log import PredictionLog
from modelloop.serving.sql import SqlDeploymentStore
from modelloop.serving.store import DeploymentStore, open_deployment_store
from modelloop.settings import Settings
from modelloop.store import Database, open_database
from modelloop.tracking.client import open_store
from modelloop.tracking.entities import RunSpec
from tests.conftest import store_settings
from tests.live_server import live_server
from tests.serving.conftest import log_batch


@dataclass
class Env:
    store: DeploymentStore
    settings: Settings  # the local store's (the server's, for http)

    @property
    def db(self) -> Database:
        return open_database(self.settings.database_url)

    def versions(self, name: str, count: int = 2, aliases: dict[str, int] | None = None) -> None:
        """``count`` versions of ``name`` in the registry, with ``aliases``."""
        tracking = open_store(self.settings)
        found = tracking.get_experiment_by_name("deploy")
        exp = found if found is not None else tracking.create_experiment("deploy")
        registry = SqlRegistryStore(self.db, protected_aliases=frozenset())
        for _ in range(count):
            run_id = tracking.create_run(RunSpec(experiment_id=exp.experiment_id)).run_id
            tracking.put_artifact(run_id, "model/model.txt", b"tree\n")
            registry.create_model_version(ModelVersionSpec(name, run_id), actor="t")
        for alias, version in (aliases or {}).items():
            registry.set_alias(name, alias, version, actor="t", reason="test")

    def events(self, name: str) -> list[audit.AuditEvent]:
        return audit.events(self.db, object_type="deployment", object_id=name)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres), "http"])
def env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Env]:
    backend = "sqlite" if request.param == "http" else request.param
    with store_settings(tmp_path, backend) as settings:
        if request.param != "http":
            store = open_deployment_store(settings)
            assert isinstance(store, SqlDeploymentStore)
            yield Env(store, settings)
            return
        with live_server(settings) as url:
            remote = open_deployment_store(dataclasses.replace(settings, tracking_uri=url))
            assert isinstance(remote, HttpDeploymentStore)
            try:
                yield Env(remote, settings)
            finally:
                remote.close()


@pytest.fixture
def store(env: Env) -> DeploymentStore:
    return env.store


def _single(name: str = "fraud-online", model: str = "fraud@stable") -> Deployment:
    return parse_deployment({"name": name, "model": model})


def _canary() -> Deployment:
    return parse_deployment(
        {
            "name": "fraud-online",
            "model": "fraud@stable",
            "challenger": "fraud/2",
            "mode": "canary",
            "canary_percent": 20,
            "sticky_key": "card_id",
            "log_keys": ["card_id"],
            "explain_top_k": 5,
        }
    )


# -- apply, get, list, delete ----------------------------------------------------------------


def test_apply_get_list_delete(env: Env, store: DeploymentStore) -> None:
    env.versions("fraud", aliases={"stable": 1})
    assert store.list() == []
    assert store.apply(_single(), actor="alice") is True
    assert store.apply(_single("b-side", "fraud/1"), actor="bob") is True
    stored = store.get("fraud-online")
    assert stored.deployment == _single()
    assert stored.updated_by == "alice"
    assert stored.updated_at > 1_700_000_000_000
    assert [s.deployment.name for s in store.list()] == ["b-side", "fraud-online"]
    assert store.list()[1] == stored

    assert store.apply(_canary(), actor="carol") is True  # replaced whole
    replaced = store.get("fraud-online")
    assert replaced.deployment == _canary()
    assert replaced.deployment.challenger is not None
    assert str(replaced.deployment.challenger) == "fraud/2"
    assert replaced.deployment.log_keys == ("card_id",)
    assert replaced.updated_by == "carol"

    assert store.delete("fraud-online", actor="dave") is True
    with pytest.raises(NotFound):
        store.get("fraud-online")
    assert [s.deployment.name for s in store.list()] == ["b-side"]
    assert store.delete("fraud-online", actor="dave") is False  # nothing left to delete


def test_unchanged_reapply_is_false_and_not_audited(env: Env, store: DeploymentStore) -> None:
    env.versions("fraud", aliases={"stable": 1})
    assert store.apply(_single(), actor="alice") is True
    first = store.get("fraud-online")
    assert store.apply(_single(), actor="bob") is False
    assert store.get("fraud-online") == first  # still alice's, at alice's time
    assert len(env.events("fraud-online")) == 1


def test_changes_are_audited_with_their_actor(env: Env, store: DeploymentStore) -> None:
    env.versions("fraud", aliases={"stable": 1})
    store.apply(_single(), actor="alice")
    store.apply(_canary(), actor="bob")
    store.delete("fraud-online", actor="carol")
    events = env.events("fraud-online")
    assert [(e.action, e.actor) for e in events] == [
        ("deployment.apply", "alice"),
        ("deployment.apply", "bob"),
        ("deployment.delete", "carol"),
    ]
    assert events[0].before is None
    assert events[0].after == _single().to_record()
    assert events[1].before == _single().to_record()
    assert events[1].after == _canary().to_record()
    assert events[2].before == _canary().to_record()
    assert events[2].after is None
    assert audit.verify(env.db).ok


# -- the models it names ---------------------------------------------------------------------


def test_models_must_exist_with_the_same_message_everywhere(
    env: Env, store: DeploymentStore
) -> None:
    with pytest.raises(NotFound) as missing:
        store.apply(_single(), actor="alice")
    assert missing.value.message == (
        "Deployment 'fraud-online' names no model to serve: model fraud@stable: "
        "Registered model 'fraud' does not exist"
    )
    assert missing.value.details == [
        {"field": "model", "message": "Registered model 'fraud' does not exist"}
    ]

    env.versions("fraud", aliases={"stable": 1})
    canary = parse_deployment(
        {
            "name": "fraud-online",
            "model": "fraud@champion",
            "challenger": "fraud/7",
            "mode": "shadow",
        }
    )
    with pytest.raises(NotFound) as both:
        store.apply(canary, actor="alice")
    assert both.value.details == [
        {
            "field": "model",
            "message": "Model 'fraud' has no alias 'champion' (its aliases: stable (v1))",
        },
        {
            "field": "challenger",
            "message": "Model 'fraud' has no version 7 (its latest version is 2)",
        },
    ]
    assert both.value.message.startswith("Deployment 'fraud-online' names no model to serve: ")
    assert "model fraud@champion: Model 'fraud' has no alias 'champion'" in both.value.message
    assert "challenger fraud/7: Model 'fraud' has no version 7" in both.value.message
    assert store.list() == []  # nothing stored, nothing audited
    assert env.events("fraud-online") == []


def test_a_model_without_aliases_says_so(env: Env, store: DeploymentStore) -> None:
    env.versions("fraud", count=1)
    with pytest.raises(NotFound, match=r"no alias 'stable' \(its aliases: none yet\)"):
        store.apply(_single(), actor="alice")


# -- what is refused ---------------------------------------------------------------------------


def test_get_of_an_unknown_deployment_says_how_to_create_one(store: DeploymentStore) -> None:
    with pytest.raises(NotFound) as caught:
        store.get("nope")
    assert caught.value.message == (
        "No deployment named 'nope': create it with 'modelloop deployments apply'"
    )


def test_delete_of_an_unknown_deployment_is_false(env: Env, store: DeploymentStore) -> None:
    assert store.delete("nope", actor="alice") is False
    assert env.events("nope") == []


@pytest.mark.parametrize("name", ["", "a/b", "-x", "x" * 129, "a b", "..", "é", "d\n", "a%2fb"])
def test_bad_names_are_refused_before_any_lookup(store: DeploymentStore, name: str) -> None:
    for call in (lambda: store.get(name), lambda: store.delete(name, actor="alice")):
        with pytest.raises(InvalidArgument, match="a deployment name is 1-128 letters") as caught:
            call()
        assert caught.value.details == [
            {
                "field": "name",
                "message": "a deployment name is 1-128 letters, digits, '_', '.', '-', "
                "starting with a letter or digit",
            }
        ]


@pytest.mark.parametrize(
    ("document", "field", "message"),
    [
        ({"explain_top_k": 1000}, "explain_top_k", "less than or equal to 100"),
        ({"replicas": 2}, "replicas", "unknown setting (known: name, model, challenger"),
        ({"model": "fraud"}, "model", "'fraud' is not a model reference"),
        ({"model": {"name": "fraud"}}, "model", "expected a string: NAME@ALIAS"),
        ({"mode": "canary"}, "deployment", "mode 'canary' needs a challenger"),
        ({"allow_pickle": True}, "allow_pickle", "not a deployment setting"),
    ],
)
def test_bad_documents_name_the_field_on_every_backend(
    env: Env, document: dict[str, object], field: str, message: str
) -> None:
    env.versions("fraud", aliases={"stable": 1})
    settings = _sdk_settings(env)
    with pytest.raises(InvalidArgument) as caught:
        ml.apply_deployment({"name": "d", "model": "fraud@stable", **document}, settings=settings)
    assert caught.value.details is not None
    assert caught.value.details[0]["field"] == field
    assert message in caught.value.details[0]["message"]
    assert env.store.list() == []


def _sdk_settings(env: Env) -> Settings:
    """Settings that make the SDK talk to ``env``'s backend."""
    if isinstance(env.store, HttpDeploymentStore):
        return dataclasses.replace(env.settings, tracking_uri=env.store.url)
    return env.settings


# -- the REST routes ---------------------------------------------------------------------------


@pytest.fixture
def server(sqlite_settings: Settings) -> Iterator[tuple[str, Env]]:
    with live_server(sqlite_settings) as url:
        env = Env(SqlDeploymentStore(open_database(sqlite_settings.database_url)), sqlite_settings)
        env.versions("fraud", aliases={"stable": 1})
        yield url, env


def test_put_answers_changed_and_the_record(server: tuple[str, Env]) -> None:
    url, env = server
    with httpx.Client(base_url=f"{url}/api/v1") as http:
        body = {"model": "fraud@stable"}  # the URL names it
        first = http.put("/deployments/fraud-online", json=body, headers={"X-Modelloop-User": "al"})
        again = http.put("/deployments/fraud-online", json=body)
        listed = http.get("/deployments")
    assert first.status_code == 200, first.text
    record = first.json()["deployment"]
    assert first.json()["changed"] is True
    assert record == {
        "name": "fraud-online",
        "model": "fraud@stable",
        "mode": "single",
        "explain_top_k": 3,
        "log_predictions": True,
        "updated_at": record["updated_at"],
        "updated_by": "al",
    }
    assert again.json() == {"changed": False, "deployment": record}
    assert listed.json() == {"deployments": [record]}
    assert env.store.get("fraud-online").to_record() == record


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/deployments/d", {"model": "fraud@stable", "canary_percent": 5}, "deployment"),
        ("/deployments/d", {"model": "fraud@stable", "explain_top_k": -1}, "explain_top_k"),
        ("/deployments/d", {"name": "other", "model": "fraud@stable"}, "name"),
        ("/deployments/d", {"model": "fraud@stable", "allow_pickle": True}, "allow_pickle"),
        ("/deployments/-d", {"model": "fraud@stable"}, "path.name"),
    ],
)
def test_put_refuses_bad_documents_with_the_field(
    server: tuple[str, Env], path: str, body: dict[str, object], field: str
) -> None:
    url, env = server
    with httpx.Client(base_url=f"{url}/api/v1") as http:
        answer = http.put(path, json=body)
    assert answer.status_code == 422, answer.text
    assert answer.json()["error_code"] == "INVALID_ARGUMENT"
    assert answer.json()["details"][0]["field"] == field
    assert env.store.list() == []


def test_put_of_missing_models_is_a_404_naming_them(server: tuple[str, Env]) -> None:
    url, _ = server
    with httpx.Client(base_url=f"{url}/api/v1") as http:
        answer = http.put("/deployments/d", json={"model": "nope@stable"})
        delete = http.delete("/deployments/d")
    assert answer.status_code == 404
    assert answer.json()["details"] == [
        {"field": "model", "message": "Registered model 'nope' does not exist"}
    ]
    assert delete.status_code == 404


def test_writes_need_the_editor_role_and_record_the_token_user(sqlite_settings: Settings) -> None:
    db = open_database(sqlite_settings.database_url)
    env = Env(SqlDeploymentStore(db), sqlite_settings)
    env.versions("fraud", aliases={"stable": 1})
    _, viewer = Users(db).add("vera", Role.viewer, actor="admin")
    _, editor = Users(db).add("ed", Role.editor, actor="admin")
    with live_server(sqlite_settings) as url:
        as_viewer = open_deployment_store(
            dataclasses.replace(sqlite_settings, tracking_uri=url, token=viewer)
        )
        as_editor = open_deployment_store(
            dataclasses.replace(sqlite_settings, tracking_uri=url, token=editor)
        )
        with pytest.raises(Forbidden, match="needs editor"):
            as_viewer.apply(_single(), actor="vera")
        assert as_editor.apply(_single(), actor="someone-else") is True  # the token decides
        assert as_viewer.get("fraud-online").updated_by == "ed"  # reads are a viewer's
        with pytest.raises(Forbidden, match="needs editor"):
            as_viewer.delete("fraud-online", actor="vera")
        assert as_editor.delete("fraud-online", actor="ed") is True
        as_viewer.close()
        as_editor.close()
    assert [e.actor for e in env.events("fraud-online")] == ["ed", "ed"]


# -- the SDK through a server, exactly as locally -----------------------------------------------


def test_the_sdk_works_through_a_server_as_locally(
    sqlite_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = Env(SqlDeploymentStore(open_database(sqlite_settings.database_url)), sqlite_settings)
    env.versions("fraud", aliases={"stable": 1})
    file = tmp_path / "fraud-online.yaml"
    file.write_text("name: fraud-online\nmodel: fraud@stable\nexplain_top_k: 4\n")
    with live_server(sqlite_settings) as url:
        remote = dataclasses.replace(sqlite_settings, tracking_uri=url)
        assert ml.apply_deployment(file, settings=remote, actor="alice") is True  # a YAML path
        assert ml.apply_deployment(str(file), settings=remote, actor="alice") is False
        assert ml.get_deployment("fraud-online", settings=remote).deployment.explain_top_k == 4

        # Only the environment: MODELLOOP_TRACKING_URI names the server.
        monkeypatch.setenv("MODELLOOP_TRACKING_URI", url)
        monkeypatch.setenv("MODELLOOP_HOME", str(tmp_path / "laptop"))  # nothing local to find
        monkeypatch.setenv("MODELLOOP_USER", "bob")
        assert ml.apply_deployment({"name": "b", "model": "fraud/2"}) is True  # a mapping
        assert ml.apply_deployment(_canary()) is True  # a Deployment
        assert [s.deployment.name for s in ml.list_deployments()] == ["b", "fraud-online"]
        stored = ml.get_deployment("fraud-online")
        assert (stored.deployment, stored.updated_by) == (_canary(), "bob")
        with pytest.raises(NotFound, match="No deployment named 'c'"):
            ml.get_deployment("c")
        with pytest.raises(NotFound, match="Registered model 'nope' does not exist"):
            ml.apply_deployment({"name": "c", "model": "nope@stable"})
        ml.delete_deployment("b")
        with pytest.raises(NotFound, match="No deployment named 'b'"):
            ml.delete_deployment("b")
    # It all happened in the server's database, as the server's audit trail says.
    assert [s.deployment.name for s in env.store.list()] == ["fraud-online"]
    assert env.store.get("fraud-online").deployment == _canary()
    assert [(e.action, e.actor) for e in env.events("b")] == [
        ("deployment.apply", "bob"),
        ("deployment.delete", "bob"),
    ]
    assert not (tmp_path / "laptop").exists()  # no local store was made


def test_the_sdk_gives_the_same_answers_locally(sqlite_settings: Settings, tmp_path: Path) -> None:
    env = Env(SqlDeploymentStore(open_database(sqlite_settings.database_url)), sqlite_settings)
    env.versions("fraud", aliases={"stable": 1})
    file = tmp_path / "fraud-online.yaml"
    file.write_text("name: fraud-online\nmodel: fraud@stable\nexplain_top_k: 4\n")
    assert ml.apply_deployment(file, settings=sqlite_settings, actor="alice") is True
    assert ml.apply_deployment(file, settings=sqlite_settings, actor="alice") is False
    assert ml.list_deployments(settings=sqlite_settings)[0].deployment.explain_top_k == 4
    ml.delete_deployment("fraud-online", settings=sqlite_settings)
    with pytest.raises(NotFound, match="No deployment named 'fraud-online'"):
        ml.delete_deployment("fraud-online", settings=sqlite_settings)


# -- ml.load_predictions through a server ------------------------------------------------------

DAY_MS = 1_767_225_600_000  # 2026-01-01


def test_predictions_through_a_server_equal_the_local_read(
    sqlite_settings: Settings, tmp_path: Path
) -> None:
    log = PredictionLog(sqlite_settings.prediction_log_uri)
    first, second = log_batch(DAY_MS, 3, "fraud", 1), log_batch(DAY_MS + 3_600_000, 2, "fraud", 2)
    log.append(first)
    log.append(second)
    log.append(log_batch(DAY_MS, 2, "other", 1))
    log.close()
    record_feedback(
        open_database(sqlite_settings.database_url),
        [Label(first.prediction_ids[0], 1.0, None), Label(second.prediction_ids[1], None, "cb")],
        log_uri=sqlite_settings.prediction_log_uri,
        received_by="tester",
    )
    queries: list[dict[str, object]] = [
        {},
        {"start": "2026-01-01T00:30:00", "end": "2026-01-02"},
        {"version": 1, "with_labels": False},
        {"deployment": "elsewhere"},  # nothing: an empty table with the columns
    ]
    with live_server(sqlite_settings) as url:
        remote = dataclasses.replace(
            sqlite_settings,
            tracking_uri=url,
            prediction_log_uri=str(tmp_path / "laptop-log"),  # never read: the server's is
        )
        for query in queries:
            local = ml.load_predictions("fraud", settings=sqlite_settings, **query)  # type: ignore[arg-type]
            through = ml.load_predictions("fraud", settings=remote, **query)  # type: ignore[arg-type]
            pd.testing.assert_frame_equal(through, local)
        everything = ml.load_predictions("fraud", settings=remote)
        with pytest.raises(InvalidArgument, match="is before start"):
            ml.load_predictions("fraud", "2026-01-02", "2026-01-01", settings=remote)
        with httpx.Client(base_url=f"{url}/api/v1") as http:
            backwards = http.get(
                "/predictions",
                params={"model": "fraud", "start": "2026-01-02", "end": "2026-01-01"},
            )
            bad_model = http.get("/predictions", params={"model": "a/b"})
    assert len(everything) == 5
    assert everything["label"].notna().sum() == 1
    assert everything["label_text"].tolist().count("cb") == 1
    assert backwards.status_code == 422
    assert backwards.json()["details"][0]["field"] == "query.end"
    assert bad_model.status_code == 422
    assert "model name" in bad_model.json()["message"]  # the registry's own words


def test_the_cli_declares_deployments_through_a_server(
    sqlite_settings: Settings, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from modelloop.cli import app

    env = Env(SqlDeploymentStore(open_database(sqlite_settings.database_url)), sqlite_settings)
    env.versions("fraud", aliases={"stable": 1})
    with live_server(sqlite_settings) as url:
        runner = CliRunner(
            env={
                "COLUMNS": "200",
                "MODELLOOP_TRACKING_URI": url,
                "MODELLOOP_HOME": str(tmp_path / "laptop"),
                "MODELLOOP_USER": "carol",
            }
        )
        args = ["deployments", "apply", "--name", "fraud-online", "--model", "fraud@stable"]
        applied = runner.invoke(app, args)
        same = runner.invoke(app, args)
        missing = runner.invoke(app, [*args[:-1], "fraud@nosuch"])
        listed = runner.invoke(app, ["deployments", "list", "--output", "json"])
        shown = runner.invoke(app, ["deployments", "show", "fraud-online"])
        unknown = runner.invoke(app, ["deployments", "show", "nope"])
    assert applied.exit_code == 0, applied.output
    assert applied.output.strip() == "Deployment fraud-online applied"
    assert same.output.strip() == "Deployment fraud-online unchanged"
    assert missing.exit_code == 3
    assert "no alias 'nosuch' (its aliases: stable (v1))" in missing.output
    assert '"updated_by": "carol"' in listed.output
    assert "model: fraud@stable" in shown.output
    assert unknown.exit_code == 3
    assert "No deployment named 'nope'" in unknown.output
    assert env.store.get("fraud-online").updated_by == "carol"  # in the server's database
    assert not (tmp_path / "laptop").exists()
