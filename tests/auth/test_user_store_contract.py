"""One contract for every UserStore: SQLite, PostgreSQL, and a server's /api/v1/users routes;
then what only a server adds: admins only, and tokens that take effect at once."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from modelloop import audit
from modelloop.auth import Role, Users, UserStore, open_user_store
from modelloop.errors import AlreadyExists, Forbidden, InvalidArgument, NotFound, Unauthorized
from modelloop.settings import Settings
from modelloop.store import open_database
from tests.conftest import store_settings
from tests.live_server import live_server

ADMIN_TOKEN = "admin-token-for-the-users-tests"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres), "http"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[UserStore, Settings]]:
    """The store under test, and the settings of the database behind it."""
    kind = "sqlite" if request.param == "http" else request.param
    with store_settings(tmp_path, kind) as settings:
        if request.param != "http":
            store = open_user_store(settings)
            yield store, settings
            store.close()
            return
        with live_server(settings) as url:
            store = open_user_store(dataclasses.replace(settings, tracking_uri=url))
            try:
                yield store, settings
            finally:
                store.close()


def test_added_users_are_read_back_and_their_token_shown_once(
    backend: tuple[UserStore, Settings],
) -> None:
    store, settings = backend
    user, token = store.add("alice", "approver", actor="root")
    assert (user.name, user.role, user.disabled) == ("alice", Role.approver, False)
    assert len(token) >= 40
    assert store.get("alice") == user
    assert [u.name for u in store.list()] == ["alice"]
    # Only the hash is stored: the token authenticates, and it is nowhere in the database.
    db = open_database(settings.database_url)
    assert Users(db).authenticate(token) is not None
    events = audit.events(db)
    assert [(e.action, e.actor, e.object_id) for e in events] == [("user.add", "root", "alice")]
    assert token not in str(events[0].after)


def test_disabling_refuses_the_token_and_is_audited(backend: tuple[UserStore, Settings]) -> None:
    store, settings = backend
    _, token = store.add("bob", Role.editor, actor="root")
    assert store.disable("bob", actor="root", reason="left").disabled
    assert store.disable("bob", actor="root").disabled  # idempotent, not audited again
    db = open_database(settings.database_url)
    assert Users(db).authenticate(token) is None
    assert [e.action for e in audit.events(db)] == ["user.add", "user.disable"]


def test_a_rotated_token_replaces_the_old_one_at_once(backend: tuple[UserStore, Settings]) -> None:
    store, settings = backend
    _, old = store.add("carol", "viewer", actor="root")
    new = store.rotate_token("carol", actor="root", reason="laptop lost")
    db = open_database(settings.database_url)
    users = Users(db)
    assert new != old
    assert users.authenticate(old) is None
    principal = users.authenticate(new)
    assert principal is not None
    assert (principal.name, principal.role) == ("carol", Role.viewer)
    rotated = audit.events(db)[-1]
    assert (rotated.action, rotated.reason) == ("user.rotate", "laptop lost")
    assert rotated.before != rotated.after
    # The audit trail explains the table: the credential the events name is the stored one.
    assert audit.verify(db).ok, audit.verify(db)


def test_errors_are_the_same_on_every_backend(backend: tuple[UserStore, Settings]) -> None:
    store, _ = backend
    store.add("dave", "editor", actor="root")
    with pytest.raises(AlreadyExists, match="User 'dave' already exists"):
        store.add("dave", "viewer", actor="root")
    with pytest.raises(NotFound, match="User 'nobody' does not exist"):
        store.get("nobody")
    with pytest.raises(NotFound, match="User 'nobody' does not exist"):
        store.disable("nobody", actor="root")
    with pytest.raises(NotFound, match="User 'nobody' does not exist"):
        store.rotate_token("nobody", actor="root")
    with pytest.raises(InvalidArgument, match="user name"):
        store.add("-x", "editor", actor="root")
    with pytest.raises(InvalidArgument, match=r"[Rr]ole"):
        store.add("erin", "superuser", actor="root")
    with pytest.raises(InvalidArgument, match="reserved"):
        store.add("admin", "admin", actor="root")
    assert [u.name for u in store.list()] == ["dave"]


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[tuple[str, Settings]]:
    with store_settings(tmp_path, "sqlite") as settings, live_server(settings, ADMIN_TOKEN) as url:
        yield url, dataclasses.replace(settings, tracking_uri=url, token=None)


def test_only_admins_manage_users_through_a_server(secured: tuple[str, Settings]) -> None:
    _, settings = secured
    admin = open_user_store(dataclasses.replace(settings, token=ADMIN_TOKEN))
    _, approver_token = admin.add("alice", "approver", actor="ignored")
    # The actor is the token's user, whatever the client claims.
    events = audit.events(open_database(settings.database_url))
    assert (events[-1].action, events[-1].actor) == ("user.add", "admin")
    as_approver = open_user_store(dataclasses.replace(settings, token=approver_token))
    with pytest.raises(Forbidden, match="approver role; this needs admin"):
        as_approver.list()
    with pytest.raises(Forbidden):
        as_approver.add("mallory", "admin", actor="alice")
    with pytest.raises(Unauthorized):
        open_user_store(settings).list()  # no token at all
    assert [u.name for u in admin.list()] == ["alice"]
    for store in (admin, as_approver):
        store.close()


def test_tokens_from_the_api_work_and_stop_working_at_once(secured: tuple[str, Settings]) -> None:
    url, settings = secured
    admin = open_user_store(dataclasses.replace(settings, token=ADMIN_TOKEN))
    _, token = admin.add("bob", "viewer", actor="admin")

    def status(with_token: str) -> int:
        headers = {"Authorization": f"Bearer {with_token}"}
        return httpx.get(f"{url}/api/v1/experiments", headers=headers).status_code

    assert status(token) == 200  # no restart needed on a server that requires tokens
    new = admin.rotate_token("bob", actor="admin")
    assert (status(token), status(new)) == (401, 200)
    admin.disable("bob", actor="admin")
    assert status(new) == 401
    admin.close()
