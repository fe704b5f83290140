"""One contract for every PolicyStore: SQLite, PostgreSQL, and the HTTP client to a server; then
the SDK, the command line and the loop's hand-started rollout through a server as locally."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import modelloop as ml
from modelloop import audit
from modelloop.automation.decision import Decision
from modelloop.automation.entities import PolicyState, parse_policy
from modelloop.automation.loop import start_rollout, step_policy, timeline
from modelloop.automation.policy import policy_state
from modelloop.automation.sql import SqlPolicyStore
from modelloop.automation.store import PolicyStore, open_policy_store
from modelloop.cli.app import app
from modelloop.errors import InvalidArgument, ModelloopError, NotFound
from modelloop.registry.entities import ModelVersionSpec
from modelloop.registry.sql import SqlRegistryStore
from modelloop.settings import Settings, load_settings
from modelloop.store import open_database
from modelloop.tracking.client import open_store
from modelloop.tracking.entities import RunSpec
from tests.conftest import store_settings
from tests.live_server import live_server
from tests.server.test_policy_references import seed_references

GOOD: dict[str, Any] = {
    "name": "fraud-loop",
    "deployment": "fraud-online",
    "model": "fraud-detector",
    "monitor": "fraud-watch",
    "training": {"function": "my_package.fraud:train", "window": "14d"},
}


@dataclass
class Env:
    store: PolicyStore  # under test
    settings: Settings  # the SDK's settings for the same store (a server's URL for http)
    local: Settings  # the metadata database itself

    def events(self, name: str = "fraud-loop") -> list[audit.AuditEvent]:
        return audit.events(open_database(self.local.database_url), object_type="policy",
                            object_id=name)  # fmt: skip


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres), "http"])
def env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Env]:
    backend = "sqlite" if request.param == "http" else request.param
    with store_settings(tmp_path, backend) as settings:
        seed_references(settings)  # the deployment, registered model and monitor GOOD names
        if request.param != "http":
            yield Env(open_policy_store(settings), settings, settings)
            return
        with live_server(settings) as url:
            remote = dataclasses.replace(settings, tracking_uri=url)
            store = open_policy_store(remote)
            try:
                yield Env(store, remote, settings)
            finally:
                store.close()


def test_the_settings_decide_the_backend(env: Env) -> None:
    expected = "HttpPolicyStore" if env.settings.is_remote else "SqlPolicyStore"
    assert type(env.store).__name__ == expected


# -- declare, read, delete -----------------------------------------------------------------------


def test_apply_get_list_delete(env: Env) -> None:
    assert env.store.list() == []
    assert env.store.apply(GOOD, actor="alice") is True
    stored = env.store.get("fraud-loop")
    assert stored == parse_policy(GOOD)
    assert stored.training.window.days == 14
    other = {**GOOD, "name": "another-loop", "gate": {"metric": "auc_roc"}}
    assert env.store.apply(parse_policy(other), actor="alice") is True  # a Policy as well
    assert [p.name for p in env.store.list()] == ["another-loop", "fraud-loop"]
    assert env.store.list()[0].gate.metric == "auc_roc"

    assert env.store.delete("fraud-loop", actor="bob") is True
    with pytest.raises(NotFound, match="No policy named 'fraud-loop'"):
        env.store.get("fraud-loop")
    assert env.store.delete("fraud-loop", actor="bob") is False
    assert [p.name for p in env.store.list()] == ["another-loop"]
    events = env.events()
    assert [(e.action, e.actor) for e in events] == [("policy.apply", "alice"),
                                                    ("policy.delete", "bob")]  # fmt: skip
    assert events[1].before == parse_policy(GOOD).to_record()
    assert events[1].after is None


def test_reapplying_the_same_policy_changes_and_records_nothing(env: Env) -> None:
    assert env.store.apply(GOOD, actor="alice") is True
    assert env.store.apply(GOOD, actor="bob") is False
    assert env.store.apply(parse_policy(GOOD), actor="bob") is False
    assert [e.actor for e in env.events()] == ["alice"]
    changed = {**GOOD, "training": {**GOOD["training"], "window": "7d"}}
    assert env.store.apply(changed, actor="bob") is True
    last = env.events()[-1]
    assert (last.action, last.actor) == ("policy.apply", "bob")
    assert (last.before or {}).get("training", {}).get("window") == "14d"
    assert (last.after or {}).get("training", {}).get("window") == "7d"
    assert env.store.get("fraud-loop").training.window.days == 7


# -- what a policy names must exist ----------------------------------------------------------------


def _refusal(store: PolicyStore, policy: dict[str, Any]) -> ModelloopError:
    with pytest.raises(ModelloopError) as caught:
        store.apply(policy, actor="alice")
    return caught.value


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("deployment", "nope-online",
         "No deployment named 'nope-online': create it with 'modelloop deployments apply'"),
        ("model", "nope-model", "Registered model 'nope-model' does not exist"),
        ("monitor", "nope-watch",
         "No monitor named 'nope-watch': create it with 'modelloop monitor apply'"),
    ],
)  # fmt: skip
def test_each_missing_reference_is_named_alike_on_every_backend(
    env: Env, field: str, value: str, message: str
) -> None:
    refused = _refusal(env.store, {**GOOD, field: value})
    assert type(refused) is NotFound
    assert refused.message == f"Policy 'fraud-loop' names what does not exist: {field}: {message}"
    assert refused.details == [{"field": field, "message": message}]
    local = _refusal(SqlPolicyStore(env.local), {**GOOD, field: value})
    assert (refused.message, refused.details) == (local.message, local.details)
    with pytest.raises(NotFound):
        env.store.get("fraud-loop")  # nothing was stored
    assert env.events() == []


def test_every_missing_reference_is_named_at_once(env: Env) -> None:
    refused = _refusal(
        env.store, {**GOOD, "deployment": "a-online", "model": "b-model", "monitor": "c-watch"}
    )
    assert type(refused) is NotFound
    assert [d["field"] for d in refused.details or []] == ["deployment", "model", "monitor"]
    for name in ("a-online", "b-model", "c-watch"):
        assert name in refused.message


def test_a_model_name_no_model_can_have_is_invalid_naming_model(env: Env) -> None:
    refused = _refusal(env.store, {**GOOD, "model": "no/slashes"})
    assert type(refused) is InvalidArgument
    assert refused.message.startswith("Invalid model name 'no/slashes'")
    assert refused.details == [{"field": "model", "message": refused.message}]


# -- bad documents and names -----------------------------------------------------------------------


def test_a_bad_document_is_refused_field_by_field(env: Env) -> None:
    bad = {**GOOD, "gate": {"metric": "f1", "bootstrap": 5}, "retries": 3}
    refused = _refusal(env.store, bad)
    assert type(refused) is InvalidArgument
    assert refused.details == [
        {"field": "gate.metric", "message": "the gate compares one of average_precision, "
         "auc_roc, card_precision_at_k, fraud_amount_at_k"},
        {"field": "gate.bootstrap", "message": "Input should be greater than or equal to 100"},
        {"field": "retries", "message": "unknown setting (known: name, deployment, model, "
         "monitor, triggers, training, gate, rollout)"},
    ]  # fmt: skip
    assert refused.message.startswith("policy is not a valid policy: gate.metric: the gate")
    missing = _refusal(env.store, {k: v for k, v in GOOD.items() if k != "training"})
    assert missing.details == [{"field": "training", "message": "Field required"}]
    assert env.store.list() == []


@pytest.mark.parametrize("name", ["fraud loop", "-x", "a/b", "..", "%2e%2e", "x" * 129, "é", ""])
def test_a_name_no_policy_can_have(env: Env, name: str) -> None:
    refused = _refusal(env.store, {**GOOD, "name": name})
    assert type(refused) is InvalidArgument
    assert [d["field"] for d in refused.details or []] == ["name"]
    assert "a name is 1-128 letters, digits, '_', '.', '-'" in refused.message
    # Asked for, it is a policy that is not stored, like any other (never a path elsewhere).
    for read in (env.store.get, env.store.state, env.store.decisions):
        with pytest.raises(NotFound) as caught:
            read(name)
        assert caught.value.message == (
            f"No policy named {name!r}: create it with 'modelloop policy apply'"
        )
    assert env.store.delete(name, actor="alice") is False


def test_an_unknown_policy_is_not_found(env: Env) -> None:
    env.store.apply(GOOD, actor="alice")
    for read in (env.store.get, env.store.state, env.store.decisions):
        with pytest.raises(NotFound) as caught:
            read("nope")
        assert caught.value.message == (
            "No policy named 'nope': create it with 'modelloop policy apply'"
        )
    assert env.store.delete("nope", actor="alice") is False
    assert [e.action for e in env.events()] == ["policy.apply"]


@pytest.mark.parametrize("actor", ["", "   ", "a\nb", "x" * 257])
def test_changes_need_an_actor(env: Env, actor: str) -> None:
    with pytest.raises(InvalidArgument, match="Invalid actor"):
        env.store.apply(GOOD, actor=actor)
    env.store.apply(GOOD, actor="alice")
    with pytest.raises(InvalidArgument, match="Invalid actor"):
        env.store.delete("fraud-loop", actor=actor)
    assert env.store.get("fraud-loop") == parse_policy(GOOD)


# -- the loop's state and decisions ----------------------------------------------------------------


def test_a_fresh_policy_is_idle_with_no_decisions(env: Env) -> None:
    env.store.apply(GOOD, actor="alice")
    assert env.store.state("fraud-loop") == PolicyState("idle")
    assert env.store.states() == {"fraud-loop": PolicyState("idle")}
    assert env.store.decisions("fraud-loop") == []
    assert env.store.decisions("fraud-loop", 5) == []


def test_decisions_recorded_by_the_loop_are_the_timeline(env: Env) -> None:
    env.store.apply(GOOD, actor="alice")
    env.store.apply({**GOOD, "name": "quiet-loop"}, actor="alice")
    loop = SqlPolicyStore(env.local)  # the loop writes where the data is
    steps = [
        Decision("policy.trigger_skipped", 1_000, {"skipped": "cooldown", "reasons": ["drift"]}),
        Decision("policy.trigger", 2_000, {"reasons": ["3 drifted features"], "ap": 0.5}),
        Decision("policy.training_skipped", 3_000, {"reason": "too few rows", "nan": None}),
    ]
    for step in steps:
        state = PolicyState("idle", stage_started_at=500, last_checked_at=step.time, trainings=1)
        loop.record("fraud-loop", state, step, actor="policy:fraud-loop")
    assert env.store.decisions("fraud-loop") == steps
    assert env.store.decisions("fraud-loop", 2) == steps[1:]  # the newest, oldest first
    assert env.store.decisions("fraud-loop", 100) == steps
    expected = PolicyState("idle", stage_started_at=500, last_checked_at=3_000, trainings=1)
    assert env.store.state("fraud-loop") == expected
    assert env.store.states() == {"fraud-loop": expected, "quiet-loop": PolicyState("idle")}
    assert env.store.decisions("quiet-loop") == []
    assert [e.actor for e in env.events()][1:] == ["policy:fraud-loop"] * 3
    for limit in (0, -1, 2**31):
        with pytest.raises(InvalidArgument) as caught:
            env.store.decisions("fraud-loop", limit)
        assert caught.value.details == [
            {"field": "limit", "message": "a number of decisions from 1 to 2147483647"}
        ]


def test_a_rollout_started_by_hand_then_the_policy_deleted(env: Env) -> None:
    challenger = _champion_and_challenger(env.local)
    env.store.apply(GOOD, actor="alice")
    decision = start_rollout("fraud-loop", challenger, stage="canary", settings=env.settings,
                             actor="carol")  # fmt: skip
    assert (decision.action, decision.evidence) == (
        "policy.rollout_started",
        {"version": challenger, "stage": "canary", "by": "carol"},
    )
    assert env.store.decisions("fraud-loop") == [decision]
    state = env.store.state("fraud-loop")
    assert (state.stage, state.challenger_version, state.champion_version) == ("canary", 2, 1)
    assert state.stage_started_at == decision.time
    assert env.store.states()["fraud-loop"] == state
    # Deleted: its state goes, its decisions stay in the audit trail (and in the timeline of a
    # policy declared again under that name); declaring and deleting are no decisions.
    assert env.store.delete("fraud-loop", actor="bob") is True
    env.store.apply(GOOD, actor="alice")
    assert env.store.state("fraud-loop") == PolicyState("idle")
    assert env.store.decisions("fraud-loop") == [decision]
    actions = [e.action for e in env.events()]
    assert actions == ["policy.apply", "policy.rollout_started", "policy.delete", "policy.apply"]


def _champion_and_challenger(settings: Settings) -> int:
    """Version 1 of the seeded model becomes the champion; a version 2 to roll out."""
    tracking = open_store(settings)
    exp = tracking.create_experiment("challenger")
    run_id = tracking.create_run(RunSpec(experiment_id=exp.experiment_id)).run_id
    tracking.put_artifact(run_id, "model/model.txt", b"tree 2\n")
    registry = SqlRegistryStore(tracking.db, protected_aliases=frozenset())
    registry.set_alias("fraud-detector", "champion", 1, actor="test", reason="seed")
    spec = ModelVersionSpec(name="fraud-detector", run_id=run_id)
    return registry.create_model_version(spec, actor="test").version


# -- the SDK and the command line through a server, as locally -------------------------------------


def _sdk_session(url: str | None) -> dict[str, Any]:
    """What the SDK answers for one session of calls (MODELLOOP_TRACKING_URI=url when given)."""
    seen: dict[str, Any] = {}
    with pytest.raises(NotFound) as missing:
        ml.apply_policy({**GOOD, "monitor": "nope-watch"})
    seen["missing"] = (missing.value.message, missing.value.details)
    with pytest.raises(InvalidArgument) as bad:
        ml.apply_policy({**GOOD, "gate": {"metric": "f1"}})
    seen["bad"] = (bad.value.message, bad.value.details)
    seen["applied"] = (ml.apply_policy(GOOD), ml.apply_policy(GOOD))
    seen["get"] = ml.get_policy("fraud-loop").to_record()
    seen["list"] = [p.name for p in ml.list_policies()]
    seen["state"] = policy_state("fraud-loop")
    seen["stepped"] = step_policy("fraud-loop")  # the first look: nothing due, the clock starts
    seen["started"] = policy_state("fraud-loop").stage_started_at is not None
    seen["timeline"] = timeline("fraud-loop")
    shown = CliRunner().invoke(app, ["policy", "show", "fraud-loop", "--output", "json"])
    assert shown.exit_code == 0, shown.output
    seen["cli show"] = json.loads(shown.stdout)["training"]
    listed = CliRunner().invoke(app, ["policy", "list"])
    assert listed.exit_code == 0, listed.output
    seen["cli list"] = "fraud-loop" in listed.stdout and "idle" in listed.stdout
    with pytest.raises(NotFound) as unknown:
        ml.get_policy("nope")
    seen["unknown"] = unknown.value.message
    deleted = CliRunner().invoke(app, ["policy", "delete", "fraud-loop", "--yes"])
    assert deleted.exit_code == 0, deleted.output
    with pytest.raises(NotFound) as gone:
        ml.delete_policy("fraud-loop")
    seen["deleted"] = (gone.value.message, ml.list_policies())
    return seen


def test_the_sdk_and_cli_work_through_a_server_as_locally(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODELLOOP_USER", "alice")
    answers = []
    for where in ("local", "server"):
        for name in ("MODELLOOP_DATABASE_URL", "MODELLOOP_ARTIFACT_URI", "MODELLOOP_TRACKING_URI"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("MODELLOOP_HOME", str(tmp_path / where))
        settings = load_settings()
        seed_references(settings)
        if where == "local":
            answers.append(_sdk_session(None))
        else:
            with live_server(settings) as url:
                monkeypatch.setenv("MODELLOOP_TRACKING_URI", url)
                answers.append(_sdk_session(url))
                with pytest.raises(InvalidArgument, match="own store clock"):
                    step_policy("fraud-loop", now=datetime.now(UTC))
        events = audit.events(open_database(settings.database_url), object_type="policy")
        declared = [(e.action, e.actor) for e in events if e.action.endswith(("apply", "delete"))]
        assert declared == [("policy.apply", "alice"), ("policy.delete", "alice")]
    local, remote = answers
    assert remote == local
    assert local["applied"] == (True, False)
    assert local["list"] == ["fraud-loop"]
    assert local["state"] == PolicyState("idle")
    assert local["started"] is True
    assert local["deleted"] == (
        "No policy named 'fraud-loop': create it with 'modelloop policy apply'",
        [],
    )
