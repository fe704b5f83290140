"""One contract for every RegistryStore: SQLite, PostgreSQL, and the HTTP client to a server."""

from __future__ import annotations

import itertools
import multiprocessing
import threading
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import pytest

from modelloop.audit import AuditEvent
from modelloop.errors import AlreadyExists, Conflict, Forbidden, InvalidArgument, NotFound
from modelloop.registry.client import open_registry_store
from modelloop.registry.entities import ModelVersionSpec, RequestStatus, VersionStatus
from modelloop.serving.deployment import Deployment
from modelloop.serving.store import open_deployment_store
from modelloop.settings import Settings, load_settings
from modelloop.tracking.client import open_store
from tests.registry.conftest import Env, package_digest

# -- registered models ---------------------------------------------------------------------------


def test_models_round_trip(env: Env) -> None:
    created = env.store.create_registered_model(
        "fraud", actor="alice", description="card fraud", tags={"team": "risk"}
    )
    assert (created.name, created.description, created.tags) == (
        "fraud",
        "card fraud",
        {"team": "risk"},
    )
    assert created.latest_version is None
    assert created.aliases == {}
    assert env.store.get_registered_model("fraud") == created
    env.store.create_registered_model("churn", actor="alice")
    assert [m.name for m in env.store.list_registered_models()] == ["churn", "fraud"]
    with pytest.raises(AlreadyExists, match="fraud"):
        env.store.create_registered_model("fraud", actor="bob")
    with pytest.raises(NotFound, match="nope"):
        env.store.get_registered_model("nope")


@pytest.mark.parametrize("name", ["", "a/b", "a@b", "-x", "x" * 257, "a b", "..", "é"])
def test_model_names_are_checked(env: Env, name: str) -> None:
    with pytest.raises(InvalidArgument, match="model name"):
        env.store.create_registered_model(name, actor="alice")


def test_update_model_merges_tags_and_sets_description(env: Env) -> None:
    env.store.create_registered_model("fraud", actor="alice", tags={"team": "risk", "tier": "1"})
    updated = env.store.update_registered_model(
        "fraud", actor="bob", description="v2 features", tags={"tier": "0"}
    )
    assert updated.description == "v2 features"
    assert updated.tags == {"team": "risk", "tier": "0"}
    event = env.store.audit_events("fraud")[-1]
    assert (event.action, event.actor) == ("model.update", "bob")
    assert event.before == {"description": None, "tags": {"team": "risk", "tier": "1"}}
    unchanged = env.store.update_registered_model("fraud", actor="bob", tags={"tier": "0"})
    assert unchanged.tags == updated.tags
    assert len(env.store.audit_events("fraud")) == 2  # nothing changed, nothing audited


# -- versions ------------------------------------------------------------------------------------


def test_version_records_everything_it_was_given(env: Env) -> None:
    files = {"model/model.txt": b"tree\n", "model/modelloop-model.json": b"{}", "other.txt": b"x"}
    run_id = env.run(files)
    spec = ModelVersionSpec(
        name="fraud",
        run_id=run_id,
        artifact_path="model",
        flavor="lightgbm",
        signature={"inputs": [{"name": "amount", "dtype": "float"}]},
        description="first",
        tags={"stage": "dev"},
        metrics={"auc": 0.93, "rows": 1000},
        dataset_digests={"train": "a" * 64},
    )
    version = env.store.create_model_version(spec, actor="alice")
    assert (version.name, version.version, version.run_id) == ("fraud", 1, run_id)
    assert version.status is VersionStatus.READY
    assert version.flavor == "lightgbm"
    assert version.signature == {"inputs": [{"name": "amount", "dtype": "float"}]}
    assert (version.description, version.tags) == ("first", {"stage": "dev"})
    assert version.metrics == {"auc": 0.93, "rows": 1000.0}
    assert version.dataset_digests == {"train": "a" * 64}
    assert version.created_by == "alice"
    assert version.aliases == []
    assert version.uri == "models:/fraud/1"
    package = {k: v for k, v in files.items() if k.startswith("model/")}
    assert version.package_digest == package_digest(package)
    assert env.store.get_model_version("fraud", 1) == version
    assert env.store.get_registered_model("fraud").latest_version == 1  # created on the way


def test_versions_number_from_one_per_model(env: Env) -> None:
    assert [env.version("fraud") for _ in range(3)] == [1, 2, 3]
    assert env.version("churn") == 1
    assert [v.version for v in env.store.list_model_versions("fraud")] == [1, 2, 3]
    with pytest.raises(NotFound, match="no version 9"):
        env.store.get_model_version("fraud", 9)
    with pytest.raises(NotFound):
        env.store.list_model_versions("nope")


def test_same_package_same_digest(env: Env) -> None:
    files = {"model/a.txt": b"1", "model/sub/b.txt": b"2"}
    first = env.store.create_model_version(ModelVersionSpec("m", env.run(files)), actor="a")
    again = env.store.create_model_version(ModelVersionSpec("m", env.run(files)), actor="a")
    other = env.store.create_model_version(
        ModelVersionSpec("m", env.run({"model/a.txt": b"1", "model/sub/b.txt": b"3"})), actor="a"
    )
    assert first.package_digest == again.package_digest != other.package_digest


def test_version_needs_a_run_with_a_package(env: Env) -> None:
    with pytest.raises(NotFound, match="Run"):
        env.store.create_model_version(ModelVersionSpec("m", "0" * 32), actor="a")
    run_id = env.run({"elsewhere/model.txt": b"x"})
    with pytest.raises(NotFound, match="no artifacts under 'model'"):
        env.store.create_model_version(ModelVersionSpec("m", run_id), actor="a")
    with pytest.raises(NotFound):
        env.store.get_registered_model("m")  # nothing half-created
    deleted = env.run()
    env.tracking.delete_run(deleted)
    with pytest.raises(Conflict, match="deleted"):
        env.store.create_model_version(ModelVersionSpec("m", deleted), actor="a")
    env.tracking.restore_run(deleted)
    assert env.store.create_model_version(ModelVersionSpec("m", deleted), actor="a").version == 1


@pytest.mark.parametrize(
    "bad",
    [
        {"run_id": "not-an-id"},
        {"artifact_path": "../escape"},
        {"metrics": {"auc": float("nan")}},
        {"metrics": {"auc": "high"}},
        {"tags": {"bad key!": "x"}},
    ],
)
def test_version_fields_are_checked(env: Env, bad: dict[str, object]) -> None:
    fields: dict[str, object] = {"name": "m", "run_id": env.run(), **bad}
    with pytest.raises(InvalidArgument):
        env.store.create_model_version(ModelVersionSpec(**fields), actor="a")  # type: ignore[arg-type]


def test_update_version(env: Env) -> None:
    env.version("m")
    updated = env.store.update_model_version(
        "m", 1, actor="bob", description="retrained", tags={"k": "v"}
    )
    assert (updated.description, updated.tags) == ("retrained", {"k": "v"})
    assert env.store.audit_events("m")[-1].action == "model_version.update"


# -- aliases -------------------------------------------------------------------------------------


def test_aliases_point_at_versions(env: Env) -> None:
    env.version("m")
    env.version("m")
    alias = env.store.set_alias("m", "challenger", 1, actor="alice", reason="first try")
    assert (alias.name, alias.alias, alias.version, alias.updated_by) == (
        "m",
        "challenger",
        1,
        "alice",
    )
    assert env.store.get_version_by_alias("m", "challenger").version == 1
    env.store.set_alias("m", "challenger", 2, actor="bob", reason="better")
    assert env.store.get_version_by_alias("m", "challenger").version == 2
    assert env.store.get_registered_model("m").aliases == {"challenger": 2}
    assert env.store.get_model_version("m", 2).aliases == ["challenger"]
    assert env.store.get_model_version("m", 1).aliases == []
    moves = [e for e in env.store.audit_events("m") if e.action == "alias.move"]
    assert [(e.before, e.after, e.actor, e.reason) for e in moves] == [
        (None, {"version": 1}, "alice", "first try"),
        ({"version": 1}, {"version": 2}, "bob", "better"),
    ]


def test_moving_an_alias_where_it_is_changes_nothing(env: Env) -> None:
    env.version("m")
    env.store.set_alias("m", "challenger", 1, actor="a", reason="r")
    count = len(env.store.audit_events())
    env.store.set_alias("m", "challenger", 1, actor="a", reason="again")
    assert len(env.store.audit_events()) == count


def test_expected_version_is_compare_and_set(env: Env) -> None:
    for _ in range(3):
        env.version("m")
    env.store.set_alias("m", "challenger", 1, actor="a", reason="r", expected_version=0)
    with pytest.raises(Conflict, match="points at version 1; expected it not to exist"):
        env.store.set_alias("m", "challenger", 2, actor="a", reason="r", expected_version=0)
    with pytest.raises(Conflict, match="expected it to point at version 3"):
        env.store.set_alias("m", "challenger", 2, actor="a", reason="r", expected_version=3)
    env.store.set_alias("m", "challenger", 2, actor="a", reason="r", expected_version=1)
    assert env.store.get_version_by_alias("m", "challenger").version == 2
    with pytest.raises(Conflict):
        env.store.delete_alias("m", "challenger", actor="a", reason="r", expected_version=1)
    with pytest.raises(InvalidArgument):
        env.store.set_alias("m", "challenger", 2, actor="a", reason="r", expected_version=-1)
    env.store.delete_alias("m", "challenger", actor="a", reason="done", expected_version=2)
    with pytest.raises(NotFound, match="no alias 'challenger'"):
        env.store.get_version_by_alias("m", "challenger")


@pytest.mark.parametrize("alias", ["Champion", "3", "v3", "latest", "", "a b", "a/b", "x" * 65])
def test_alias_names_are_checked(env: Env, alias: str) -> None:
    env.version("m")
    with pytest.raises(InvalidArgument, match="alias"):
        env.store.set_alias("m", alias, 1, actor="a", reason="r")


@pytest.mark.parametrize("reason", ["", "   "])
def test_reasons_are_required(env: Env, reason: str) -> None:
    env.version("m")
    with pytest.raises(InvalidArgument, match="reason"):
        env.store.set_alias("m", "challenger", 1, actor="a", reason=reason)
    with pytest.raises(InvalidArgument, match="reason"):
        env.store.set_version_status("m", 1, VersionStatus.ARCHIVED, actor="a", reason=reason)
    with pytest.raises(InvalidArgument, match="reason"):
        env.store.request_alias("m", "champion", 1, actor="a", reason=reason)
    request = env.store.request_alias("m", "champion", 1, actor="a", reason="ok")
    with pytest.raises(InvalidArgument, match="reason"):
        env.store.reject_request(request.request_id, actor="b", reason=reason)
    with pytest.raises(InvalidArgument, match="reason"):
        env.store.approve_request(request.request_id, actor="b", reason=reason)


def test_actors_are_checked(env: Env) -> None:
    with pytest.raises(InvalidArgument):
        env.store.create_registered_model("m", actor="x" * 257)
    env.version("m")
    with pytest.raises(InvalidArgument):
        env.store.set_alias("m", "challenger", 1, actor="x" * 257, reason="r")
    assert env.store.get_registered_model("m").aliases == {}


def test_unknown_models_versions_and_aliases(env: Env) -> None:
    with pytest.raises(NotFound):
        env.store.set_alias("nope", "challenger", 1, actor="a", reason="r")
    env.version("m")
    with pytest.raises(NotFound, match="no version 2"):
        env.store.set_alias("m", "challenger", 2, actor="a", reason="r")
    with pytest.raises(NotFound):
        env.store.delete_alias("m", "challenger", actor="a", reason="r")
    with pytest.raises(NotFound):
        env.store.get_version_by_alias("nope", "challenger")


def test_protected_alias_moves_only_by_request(env: Env) -> None:
    env.version("m")
    with pytest.raises(Forbidden, match="request-alias"):
        env.store.set_alias("m", "champion", 1, actor="alice", reason="ship it")
    with pytest.raises(Forbidden, match="protected"):
        env.store.delete_alias("m", "champion", actor="alice", reason="r")
    assert env.store.get_registered_model("m").aliases == {}


# -- status --------------------------------------------------------------------------------------


def test_archive_and_restore(env: Env) -> None:
    env.version("m")
    env.version("m")
    env.store.set_alias("m", "challenger", 1, actor="a", reason="r")
    with pytest.raises(Conflict, match="aliased as challenger"):
        env.store.set_version_status("m", 1, VersionStatus.ARCHIVED, actor="a", reason="old")
    archived = env.store.set_version_status("m", 2, VersionStatus.ARCHIVED, actor="a", reason="bad")
    assert archived.status is VersionStatus.ARCHIVED
    with pytest.raises(Conflict, match="ARCHIVED"):
        env.store.set_alias("m", "challenger", 2, actor="a", reason="r")
    with pytest.raises(Conflict, match="ARCHIVED"):
        env.store.request_alias("m", "champion", 2, actor="a", reason="r")
    restored = env.store.set_version_status("m", 2, "READY", actor="b", reason="fixed")  # type: ignore[arg-type]
    assert restored.status is VersionStatus.READY
    statuses = [
        (e.before, e.after, e.reason)
        for e in env.store.audit_events("m")
        if e.action == "model_version.status"
    ]
    assert statuses == [
        ({"status": "READY"}, {"status": "ARCHIVED"}, "bad"),
        ({"status": "ARCHIVED"}, {"status": "READY"}, "fixed"),
    ]
    with pytest.raises(InvalidArgument, match="READY or ARCHIVED"):
        env.store.set_version_status("m", 2, "GONE", actor="a", reason="r")  # type: ignore[arg-type]


# -- requests ------------------------------------------------------------------------------------


def test_request_approve_moves_the_alias(env: Env) -> None:
    env.version("m")
    request = env.store.request_alias("m", "champion", 1, actor="alice", reason="beats baseline")
    assert request.status is RequestStatus.PENDING
    assert (request.requested_by, request.version, request.reason) == ("alice", 1, "beats baseline")
    with pytest.raises(Forbidden, match="self-approval"):
        env.store.approve_request(request.request_id, actor="alice")
    approved = env.store.approve_request(request.request_id, actor="bob", reason="checked")
    assert approved.status is RequestStatus.APPROVED
    assert (approved.decided_by, approved.decision_reason) == ("bob", "checked")
    assert env.store.get_version_by_alias("m", "champion").version == 1
    with pytest.raises(Conflict, match="APPROVED"):
        env.store.approve_request(request.request_id, actor="carol")
    move = env.store.audit_events("m")[-1]
    assert (move.action, move.actor, move.reason) == ("alias.move", "bob", "beats baseline")
    assert move.after == {
        "version": 1,
        "request_id": request.request_id,
        "requested_by": "alice",
        "approved_by": "bob",
    }


def test_reject_and_cancel(env: Env) -> None:
    env.version("m")
    first = env.store.request_alias("m", "champion", 1, actor="alice", reason="r")
    with pytest.raises(Forbidden, match="cancel"):
        env.store.reject_request(first.request_id, actor="alice", reason="changed my mind")
    rejected = env.store.reject_request(first.request_id, actor="bob", reason="not yet")
    assert rejected.status is RequestStatus.REJECTED
    second = env.store.request_alias("m", "champion", 1, actor="alice", reason="again")
    with pytest.raises(Forbidden, match="alice"):
        env.store.cancel_request(second.request_id, actor="bob", reason="r")
    assert env.store.cancel_request(second.request_id, actor="alice", reason="oops").status is (
        RequestStatus.CANCELLED
    )
    with pytest.raises(Conflict):
        env.store.approve_request(second.request_id, actor="bob")
    assert env.store.get_registered_model("m").aliases == {}
    assert [r.status for r in env.store.list_requests("m")] == [
        RequestStatus.REJECTED,
        RequestStatus.CANCELLED,
    ]
    assert env.store.list_requests(status=RequestStatus.PENDING) == []
    with pytest.raises(NotFound):
        env.store.get_request("0" * 32)


def test_approval_that_cannot_move_leaves_the_request_pending(env: Env) -> None:
    env.version("m")
    request = env.store.request_alias("m", "champion", 1, actor="alice", reason="r")
    env.store.set_version_status("m", 1, VersionStatus.ARCHIVED, actor="carol", reason="broken")
    with pytest.raises(Conflict, match="ARCHIVED"):
        env.store.approve_request(request.request_id, actor="bob")
    assert env.store.get_request(request.request_id).status is RequestStatus.PENDING
    assert not any(e.action == "alias_request.approve" for e in env.store.audit_events())


# -- tags, renames and deletions -----------------------------------------------------------------


def test_tags_are_deleted_and_audited(env: Env) -> None:
    env.store.create_registered_model("fraud", actor="alice", tags={"team": "risk", "tier": "1"})
    updated = env.store.update_registered_model("fraud", actor="bob", delete_tags=["tier", "nope"])
    assert updated.tags == {"team": "risk"}
    event = env.store.audit_events("fraud")[-1]
    assert (event.action, event.actor, event.after) == (
        "model.update",
        "bob",
        {"description": None, "tags": {"team": "risk"}},
    )
    env.store.update_registered_model("fraud", actor="bob", delete_tags=["nope"])
    assert len(env.store.audit_events("fraud")) == 2  # nothing to delete, nothing audited
    number = env.version("fraud", tags={"stage": "dev", "owner": "ann"})
    version = env.store.update_model_version(
        "fraud", number, actor="bob", tags={"owner": "bo"}, delete_tags=["stage"]
    )
    assert version.tags == {"owner": "bo"}
    assert env.store.get_model_version("fraud", number).tags == {"owner": "bo"}
    with pytest.raises(InvalidArgument, match="both set and deleted"):
        env.store.update_model_version(
            "fraud", number, actor="bob", tags={"owner": "x"}, delete_tags=["owner"]
        )
    with pytest.raises(InvalidArgument):
        env.store.update_registered_model("fraud", actor="bob", delete_tags="team")
    assert env.store.verify_audit().ok


def test_rename_moves_versions_tags_and_requests(env: Env) -> None:
    env.store.create_registered_model("fraud", actor="alice", description="d", tags={"t": "1"})
    env.version("fraud", tags={"v": "1"})
    env.version("fraud")
    pending = env.store.request_alias("fraud", "champion", 2, actor="alice", reason="good")
    renamed = env.store.rename_registered_model("fraud", "fraud-v2", actor="bob")
    assert (renamed.name, renamed.description, renamed.tags) == ("fraud-v2", "d", {"t": "1"})
    assert renamed.latest_version == 2
    assert [(v.name, v.version) for v in env.store.list_model_versions("fraud-v2")] == [
        ("fraud-v2", 1),
        ("fraud-v2", 2),
    ]
    assert env.store.get_model_version("fraud-v2", 1).tags == {"v": "1"}
    assert env.store.get_request(pending.request_id).name == "fraud-v2"
    with pytest.raises(NotFound):
        env.store.get_registered_model("fraud")
    event = env.store.audit_events("fraud")[-1]
    assert (event.action, event.actor, event.after) == ("model.rename", "bob", {"name": "fraud-v2"})
    env.store.approve_request(pending.request_id, actor="carol")
    assert env.store.get_version_by_alias("fraud-v2", "champion").version == 2
    assert env.store.verify_audit().ok


def test_rename_is_refused_when_aliased_taken_or_invalid(env: Env) -> None:
    env.version("fraud")
    env.store.create_registered_model("churn", actor="alice")
    with pytest.raises(AlreadyExists, match="churn"):
        env.store.rename_registered_model("fraud", "churn", actor="bob")
    with pytest.raises(InvalidArgument, match="model name"):
        env.store.rename_registered_model("fraud", "a/b", actor="bob")
    with pytest.raises(NotFound, match="nope"):
        env.store.rename_registered_model("nope", "other", actor="bob")
    env.store.set_alias("fraud", "challenger", 1, actor="alice", reason="try")
    with pytest.raises(Conflict, match="challenger"):
        env.store.rename_registered_model("fraud", "fraud-v2", actor="bob")
    assert env.store.get_model_version("fraud", 1).aliases == ["challenger"]


def test_deleted_version_numbers_are_never_given_again(env: Env) -> None:
    assert [env.version("fraud"), env.version("fraud")] == [1, 2]
    env.store.delete_model_version("fraud", 2, actor="bob", reason="bad package")
    with pytest.raises(NotFound, match="no version 2"):
        env.store.get_model_version("fraud", 2)
    assert [v.version for v in env.store.list_model_versions("fraud")] == [1]
    assert env.store.get_registered_model("fraud").latest_version == 1
    event = env.store.audit_events("fraud")[-1]
    assert (event.action, event.actor, event.reason) == (
        "model_version.delete",
        "bob",
        "bad package",
    )
    assert event.after is None
    assert event.before is not None
    assert event.before["status"] == "READY"
    assert env.version("fraud") == 3  # not 2 again
    env.store.delete_model_version("fraud", 1, actor="bob", reason="old")
    env.store.delete_model_version("fraud", 3, actor="bob", reason="old")
    env.store.delete_registered_model("fraud", actor="bob", reason="retired")
    assert env.version("fraud") == 4  # models:/fraud/1 never means another package
    assert env.store.verify_audit().ok


def test_aliases_and_pending_requests_block_deletion(env: Env) -> None:
    env.version("fraud")
    env.version("fraud")
    env.store.set_alias("fraud", "challenger", 1, actor="alice", reason="try")
    with pytest.raises(Conflict, match="aliased as challenger"):
        env.store.delete_model_version("fraud", 1, actor="bob", reason="x")
    with pytest.raises(Conflict, match="challenger"):
        env.store.delete_registered_model("fraud", actor="bob", reason="x")
    request = env.store.request_alias("fraud", "champion", 2, actor="alice", reason="better")
    with pytest.raises(Conflict, match=request.request_id):
        env.store.delete_model_version("fraud", 2, actor="bob", reason="x")
    env.store.cancel_request(request.request_id, actor="alice", reason="changed my mind")
    env.store.delete_model_version("fraud", 2, actor="bob", reason="x")
    env.store.delete_alias("fraud", "challenger", actor="alice", reason="done")
    with pytest.raises(InvalidArgument, match="reason"):
        env.store.delete_registered_model("fraud", actor="bob", reason=" ")
    env.store.delete_registered_model("fraud", actor="bob", reason="retired")
    with pytest.raises(NotFound):
        env.store.get_registered_model("fraud")
    assert env.store.list_requests("fraud") == []
    event = env.store.audit_events("fraud")[-1]
    assert (event.action, event.reason, event.after) == ("model.delete", "retired", None)
    assert event.before is not None
    assert event.before["versions"] == [1]
    with pytest.raises(NotFound):
        env.store.delete_registered_model("fraud", actor="bob", reason="again")
    assert env.store.verify_audit().ok


def test_stored_deployments_block_renaming_and_deleting_what_they_name(env: Env) -> None:
    env.version("fraud")
    env.version("fraud")
    deployments = open_deployment_store(env.settings)
    try:
        pinned = Deployment.model_validate({"name": "api", "model": "fraud/1"})
        deployments.apply(pinned, actor="alice")
        with pytest.raises(Conflict, match=r"deployment 'api' \(model: fraud/1\)"):
            env.store.delete_model_version("fraud", 1, actor="bob", reason="x")
        env.store.delete_model_version("fraud", 2, actor="bob", reason="not pinned")
        with pytest.raises(Conflict, match="deployment 'api'"):
            env.store.rename_registered_model("fraud", "fraud-v2", actor="bob")
        with pytest.raises(Conflict, match="deployment 'api'"):
            env.store.delete_registered_model("fraud", actor="bob", reason="x")
        deployments.delete("api", actor="alice")
    finally:
        deployments.close()
    env.store.rename_registered_model("fraud", "fraud-v2", actor="bob")
    assert env.store.verify_audit().ok


# -- audit ---------------------------------------------------------------------------------------


def test_every_change_is_audited_and_verifies(env: Env) -> None:
    env.store.create_registered_model("fraud", actor="alice")
    env.version("fraud", actor="alice")
    env.version("fraud-2", actor="bob")  # a name that starts like the other
    env.store.set_alias("fraud", "challenger", 1, actor="alice", reason="r")
    request = env.store.request_alias("fraud", "champion", 1, actor="alice", reason="r")
    env.store.approve_request(request.request_id, actor="bob")
    env.store.delete_alias("fraud", "challenger", actor="alice", reason="r")
    actions = [e.action for e in env.store.audit_events("fraud")]
    assert actions == [
        "model.create",
        "model_version.create",
        "alias.move",
        "alias_request.create",
        "alias_request.approve",
        "alias.move",
        "alias.delete",
    ]
    assert {e.object_id for e in env.store.audit_events("fraud-2")} == {"fraud-2", "fraud-2/1"}
    everything = env.store.audit_events()
    assert [e.seq for e in everything] == list(range(1, len(everything) + 1))
    assert env.store.audit_events(limit=2) == everything[-2:]
    result = env.store.verify_audit()
    assert result.ok, result
    assert (result.checked, result.head_seq, result.head_hash) == (9, 9, everything[-1].hash)
    assert env.store.verify_audit((3, everything[2].hash)).ok
    assert not env.store.verify_audit((3, "0" * 64)).ok


def test_a_failed_change_leaves_no_event(env: Env) -> None:
    env.version("m")
    before = env.store.audit_events()
    with pytest.raises(NotFound):
        env.store.set_alias("m", "challenger", 7, actor="a", reason="r")
    with pytest.raises(Conflict):
        env.store.set_alias("m", "x", 1, actor="a", reason="r", expected_version=5)
    assert env.store.audit_events() == before


# -- concurrency ---------------------------------------------------------------------------------


def _alias_moves(env: Env, name: str, alias: str) -> list[AuditEvent]:
    return [e for e in env.store.audit_events(name) if e.object_id == f"{name}@{alias}"]


def _race(env: Env, targets: list[int], expected: int) -> dict[int, str]:
    """Move ``challenger`` to each target at once, each expecting ``expected``."""
    barrier = threading.Barrier(len(targets))
    outcome: dict[int, str] = {}

    def move(target: int) -> None:
        barrier.wait()
        try:
            env.store.set_alias(
                "m",
                "challenger",
                target,
                actor=f"user{target}",
                reason=f"to {target}",
                expected_version=expected,
            )
            outcome[target] = "won"
        except Conflict:
            outcome[target] = "lost"

    threads = [threading.Thread(target=move, args=(v,)) for v in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcome


def test_alias_race_with_expected_version_has_one_winner(env: Env) -> None:
    contenders = 4
    for _ in range(contenders + 1):
        env.version("m")
    for round_ in range(3):
        current = env.store.get_registered_model("m").aliases.get("challenger")
        if current is None:
            env.store.set_alias("m", "challenger", 1, actor="setup", reason="start")
            current = 1
        targets = [v for v in range(1, contenders + 2) if v != current][:contenders]
        outcome = _race(env, targets, current)
        winners = [v for v, result in outcome.items() if result == "won"]
        assert len(winners) == 1, (round_, outcome)
        assert env.store.get_version_by_alias("m", "challenger").version == winners[0]
        last = _alias_moves(env, "m", "challenger")[-1]
        assert (last.before, last.after) == ({"version": current}, {"version": winners[0]})
        assert last.actor == f"user{winners[0]}"
    assert len(_alias_moves(env, "m", "challenger")) == 4  # the first set, then one per round
    assert env.store.verify_audit().ok


def test_unconditional_alias_moves_serialise(env: Env) -> None:
    n = 6
    for _ in range(n):
        env.version("m")
    barrier = threading.Barrier(n)
    errors: list[BaseException] = []

    def move(target: int) -> None:
        barrier.wait()
        try:
            env.store.set_alias("m", "challenger", target, actor="x", reason=f"to {target}")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=move, args=(v,)) for v in range(1, n + 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    moves = _alias_moves(env, "m", "challenger")
    assert len(moves) == n  # distinct targets: every move changed something
    assert moves[0].before is None
    for earlier, later in itertools.pairwise(moves):
        assert later.before == {"version": earlier.after["version"]}  # type: ignore[index]
    final = env.store.get_version_by_alias("m", "challenger").version
    assert moves[-1].after == {"version": final}
    assert env.store.verify_audit().ok


def test_concurrent_registration_numbers_without_gaps(env: Env) -> None:
    workers, each = 4, 5
    run_ids = [env.run() for _ in range(workers)]
    barrier = threading.Barrier(workers)
    numbers: list[int] = []

    def register(run_id: str) -> None:
        barrier.wait()
        for _ in range(each):
            spec = ModelVersionSpec("m", run_id)
            numbers.append(env.store.create_model_version(spec, actor="w").version)

    threads = [threading.Thread(target=register, args=(r,)) for r in run_ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(numbers) == list(range(1, workers * each + 1))
    assert [v.version for v in env.store.list_model_versions("m")] == sorted(numbers)
    creates = [e for e in env.store.audit_events("m") if e.action == "model.create"]
    assert len(creates) == 1  # the model was created exactly once
    assert env.store.verify_audit().ok


# Processes: each opens its own engine on the same database, as separate programs would.


def _process_register(environ: dict[str, str], run_id: str, count: int, barrier: Any) -> list[int]:
    settings = load_settings(environ)
    store = open_registry_store(settings)
    barrier.wait()
    return [
        store.create_model_version(ModelVersionSpec("m", run_id), actor="proc").version
        for _ in range(count)
    ]


def _process_move(environ: dict[str, str], target: int, barrier: Any) -> str:
    store = open_registry_store(load_settings(environ))
    barrier.wait()
    try:
        store.set_alias(
            "m", "challenger", target, actor=f"p{target}", reason="race", expected_version=1
        )
    except Conflict:
        return "lost"
    return "won"


def _environ(settings: Settings) -> dict[str, str]:
    return {"MODELLOOP_HOME": str(settings.home), "MODELLOOP_DATABASE_URL": settings.database_url}


@pytest.fixture
def processes() -> Iterator[tuple[ProcessPoolExecutor, Any]]:
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager, ProcessPoolExecutor(3, mp_context=context) as pool:
        yield pool, manager


def test_processes_register_and_race(
    settings: Settings, processes: tuple[ProcessPoolExecutor, Any]
) -> None:
    pool, manager = processes
    env = Env(open_registry_store(settings), open_store(settings), settings)
    barrier = manager.Barrier(3)
    runs = [env.run() for _ in range(3)]
    futures = [pool.submit(_process_register, _environ(settings), r, 8, barrier) for r in runs]
    numbers = sorted(n for future in futures for n in future.result(timeout=120))
    assert numbers == list(range(1, 25))
    env.store.set_alias("m", "challenger", 1, actor="setup", reason="start")
    barrier = manager.Barrier(3)
    futures = [pool.submit(_process_move, _environ(settings), t, barrier) for t in (2, 3, 4)]
    outcome = {t: f.result(timeout=120) for t, f in zip((2, 3, 4), futures, strict=True)}
    winners = [t for t, result in outcome.items() if result == "won"]
    assert len(winners) == 1, outcome
    moves = _alias_moves(env, "m", "challenger")
    assert [(m.before, m.after) for m in moves] == [
        (None, {"version": 1}),
        ({"version": 1}, {"version": winners[0]}),
    ]
    assert env.store.verify_audit().ok
