"""Protected aliases move only through a request approved by someone else, locally and through a
real server whose users hold tokens and roles."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import modelloop as ml
from modelloop.auth import Role, Users
from modelloop.errors import Forbidden, InvalidArgument, Unauthorized
from modelloop.registry.client import open_registry_store
from modelloop.registry.entities import RequestStatus
from modelloop.registry.http import HttpRegistryStore
from modelloop.settings import Settings
from modelloop.store import open_database
from modelloop.tracking.client import open_store
from tests.live_server import live_server
from tests.registry.conftest import Env

ADMIN_TOKEN = "admin-token-for-tests"

# -- through the SDK, locally --------------------------------------------------------------------


@pytest.fixture
def model(home: Path) -> str:
    with ml.start_run(experiment="fraud") as run:
        run.log_text("tree\n", "model/model.txt")
    ml.register_model(run, "fraud-detector")
    ml.register_model(run, "fraud-detector")
    return "fraud-detector"


def test_four_eyes_promotion_with_the_sdk(model: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(Forbidden, match="request"):
        ml.set_alias(model, "champion", 1, reason="ship it")
    monkeypatch.setenv("MODELLOOP_USER", "alice")
    request = ml.request_alias(model, "champion", 1, reason="AUC 0.93 on the May holdout")
    with pytest.raises(Forbidden, match="self-approval"):
        ml.approve_request(request.request_id)
    assert ml.resolve_model_uri(f"models:/{model}/1").aliases == []
    monkeypatch.setenv("MODELLOOP_USER", "bob")
    approved = ml.approve_request(request.request_id, reason="reviewed the report")
    assert (approved.status, approved.decided_by) == (RequestStatus.APPROVED, "bob")
    assert ml.resolve_model_uri(f"models:/{model}@champion").version == 1
    events = ml.audit_log(model)[-3:]
    assert [(e.action, e.actor) for e in events] == [
        ("alias_request.create", "alice"),
        ("alias_request.approve", "bob"),
        ("alias.move", "bob"),
    ]
    assert events[1].reason == "reviewed the report"
    assert events[2].reason == "AUC 0.93 on the May holdout"
    assert events[2].after == {
        "version": 1,
        "request_id": request.request_id,
        "requested_by": "alice",
        "approved_by": "bob",
    }
    assert ml.verify_audit().ok


def test_protected_aliases_come_from_the_settings(
    model: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODELLOOP_PROTECTED_ALIASES", "prod, champion")
    with pytest.raises(Forbidden):
        ml.set_alias(model, "prod", 1, reason="r")
    ml.set_alias(model, "challenger", 1, reason="not protected")
    monkeypatch.setenv("MODELLOOP_PROTECTED_ALIASES", "")
    ml.set_alias(model, "champion", 2, reason="nothing is protected here")
    assert ml.resolve_model_uri(f"models:/{model}@champion").version == 2


def test_a_rejected_request_moves_nothing(model: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELLOOP_USER", "alice")
    request = ml.request_alias(model, "champion", 2, reason="r")
    monkeypatch.setenv("MODELLOOP_USER", "bob")
    rejected = ml.reject_request(request.request_id, reason="fails the fairness check")
    assert (rejected.status, rejected.decision_reason) == (
        RequestStatus.REJECTED,
        "fails the fairness check",
    )
    assert ml.get_registry().get_model(model).aliases == {}


# -- through a server with users -----------------------------------------------------------------


@dataclasses.dataclass
class Team:
    url: str
    tokens: dict[str, str]  # user name -> token
    env: Env

    def store(self, user: str) -> HttpRegistryStore:
        token = ADMIN_TOKEN if user == "admin" else self.tokens[user]
        return HttpRegistryStore(self.url, token=token)


@pytest.fixture
def team(settings: Settings) -> Iterator[Team]:
    users = Users(open_database(settings.database_url))
    tokens = {
        name: users.add(name, role, actor="root")[1]
        for name, role in [
            ("victor", Role.viewer),
            ("alice", Role.editor),
            ("erin", Role.editor),
            ("bob", Role.approver),
            ("carol", Role.approver),
        ]
    }
    env = Env(open_registry_store(settings), open_store(settings), settings)
    env.version("fraud")
    with live_server(settings, token=ADMIN_TOKEN) as url:
        yield Team(url, tokens, env)


def test_roles_through_the_server(team: Team) -> None:
    viewer, alice, bob = team.store("victor"), team.store("alice"), team.store("bob")
    try:
        assert viewer.get_registered_model("fraud").latest_version == 1  # viewers read
        with pytest.raises(Forbidden, match=r"viewer role.*needs editor"):
            viewer.request_alias("fraud", "champion", 1, actor="victor", reason="r")
        # alice claims to be bob: with authentication the token decides, not the claim
        request = alice.request_alias("fraud", "champion", 1, actor="bob", reason="ready")
        assert request.requested_by == "alice"
        with pytest.raises(Forbidden, match="editor role; this needs approver"):
            alice.approve_request(request.request_id, actor="alice")
        approved = bob.approve_request(request.request_id, actor="someone-else", reason="ok")
        assert (approved.requested_by, approved.decided_by) == ("alice", "bob")
        assert viewer.get_version_by_alias("fraud", "champion").version == 1
        events = viewer.audit_events("fraud")[-3:]
        assert [(e.action, e.actor) for e in events] == [
            ("alias_request.create", "alice"),
            ("alias_request.approve", "bob"),
            ("alias.move", "bob"),
        ]
        assert viewer.verify_audit().ok
    finally:
        for store in (viewer, alice, bob):
            store.close()


def test_an_approver_cannot_approve_their_own_request(team: Team) -> None:
    bob, carol = team.store("bob"), team.store("carol")
    try:
        request = bob.request_alias("fraud", "champion", 1, actor="bob", reason="r")
        with pytest.raises(Forbidden, match="self-approval"):
            bob.approve_request(request.request_id, actor="bob")
        assert carol.approve_request(request.request_id, actor="carol").decided_by == "carol"
    finally:
        bob.close()
        carol.close()


def test_the_admin_token_acts_as_admin(team: Team) -> None:
    admin = team.store("admin")
    try:
        admin.set_alias("fraud", "challenger", 1, actor="ignored", reason="r")
        assert admin.audit_events("fraud")[-1].actor == "admin"
    finally:
        admin.close()


def test_tokens_are_checked(team: Team) -> None:
    users = Users(open_database(team.env.settings.database_url))
    users.disable("alice", actor="root", reason="left")
    for token in (team.tokens["alice"], "not-a-token", team.tokens["bob"] + "x"):
        store = HttpRegistryStore(team.url, token=token)
        with pytest.raises(Unauthorized, match="Wrong bearer token"):
            store.list_registered_models()
        store.close()
    response = httpx.get(f"{team.url}/api/v1/models")
    assert response.status_code == 401
    assert response.json()["message"].startswith("Missing bearer token")


def test_roles_apply_to_tracking_too(team: Team) -> None:
    viewer = {"Authorization": f"Bearer {team.tokens['victor']}"}
    editor = {"Authorization": f"Bearer {team.tokens['alice']}"}
    assert httpx.get(f"{team.url}/api/v1/experiments", headers=viewer).status_code == 200
    search = {"experiment_ids": [], "max_results": 1}
    found = httpx.post(f"{team.url}/api/v1/runs/search", json=search, headers=viewer)
    assert found.status_code == 200, found.text
    body = {"name": "new-experiment"}
    refused = httpx.post(f"{team.url}/api/v1/experiments", json=body, headers=viewer)
    assert refused.status_code == 403
    assert refused.json()["error_code"] == "FORBIDDEN"
    created = httpx.post(f"{team.url}/api/v1/experiments", json=body, headers=editor)
    assert created.status_code == 201


def test_users_have_checked_names_and_roles(settings: Settings) -> None:
    users = Users(open_database(settings.database_url))
    for bad in ("", "a b", "admin", "anonymous", "-x"):
        with pytest.raises(InvalidArgument):
            users.add(bad, Role.viewer, actor="root")
    with pytest.raises(InvalidArgument, match="viewer, editor, approver, admin"):
        users.add("zed", "superuser", actor="root")
    user, token = users.add("zed", "viewer", actor="root")
    assert len(token) >= 40
    assert users.authenticate(token) is not None
    assert users.list() == [user]
