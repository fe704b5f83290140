"""The audit hash chain: intact logs verify; modified, deleted, truncated or rewritten ones don't.

Tampering is done the way an attacker with database access would: raw SQL on the tables.
"""

from __future__ import annotations

import itertools
import json

import pytest
from sqlalchemy import text

from modelloop import audit
from modelloop.audit import GENESIS
from modelloop.auth import Role, Users
from modelloop.errors import InvalidArgument
from modelloop.registry.client import open_registry_store
from modelloop.registry.sql import SqlRegistryStore
from modelloop.settings import Settings
from modelloop.store import open_database
from modelloop.tracking.client import open_store
from tests.registry.conftest import Env


@pytest.fixture
def env(settings: Settings) -> Env:
    """A local store (SQLite and PostgreSQL) with six audited changes."""
    env = Env(open_registry_store(settings), open_store(settings), settings)
    env.version("fraud", actor="alice")  # 1 model.create, 2 model_version.create
    env.version("fraud", actor="alice")  # 3
    env.store.set_alias("fraud", "challenger", 1, actor="alice", reason="first")  # 4
    env.store.set_alias("fraud", "challenger", 2, actor="bob", reason="better")  # 5
    env.store.delete_alias("fraud", "challenger", actor="bob", reason="done")  # 6
    return env


def _sql(env: Env, statement: str, **params: object) -> None:
    with open_database(env.settings.database_url).write() as conn:
        conn.execute(text(statement), params)


def test_an_intact_chain_verifies(env: Env) -> None:
    result = env.store.verify_audit()
    events = env.store.audit_events()
    assert (result.ok, result.checked, result.first_bad_seq, result.problem) == (
        True,
        6,
        None,
        None,
    )
    assert (result.head_seq, result.head_hash) == (6, events[-1].hash)
    assert events[0].prev_hash == GENESIS
    for earlier, later in itertools.pairwise(events):
        assert later.prev_hash == earlier.hash


def test_hashes_cover_every_field(env: Env) -> None:
    event = env.store.audit_events()[3]
    fields = {
        "seq": event.seq,
        "time": event.time,
        "actor": event.actor,
        "action": event.action,
        "object_type": event.object_type,
        "object_id": event.object_id,
        "before": audit.canonical(event.before),
        "after": audit.canonical(event.after),
        "reason": event.reason,
        "prev_hash": event.prev_hash,
    }
    assert audit.event_hash(**fields) == event.hash  # type: ignore[arg-type]
    for name, value in fields.items():
        changed = value + 1 if isinstance(value, int) else f"{value}x"
        assert audit.event_hash(**{**fields, name: changed}) != event.hash, name  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("after", json.dumps({"version": 99})),
        ("actor", "mallory"),
        ("reason", "it was always like this"),
        ("before", None),
    ],
)
def test_a_modified_event_is_named(env: Env, column: str, value: str | None) -> None:
    _sql(env, f"UPDATE audit_events SET {column} = :v WHERE seq = 5", v=value)
    result = env.store.verify_audit()
    assert not result.ok
    assert result.first_bad_seq == 5
    assert result.problem is not None
    assert "modified" in result.problem


def test_a_deleted_event_is_detected(env: Env) -> None:
    _sql(env, "DELETE FROM audit_events WHERE seq = 3")
    result = env.store.verify_audit()
    assert not result.ok
    assert result.first_bad_seq == 4
    assert "event 3 missing" in (result.problem or "")


def test_a_deleted_and_renumbered_event_is_detected(env: Env) -> None:
    _sql(env, "DELETE FROM audit_events WHERE seq = 3")
    _sql(env, "UPDATE audit_events SET seq = seq - 1 WHERE seq > 3")
    result = env.store.verify_audit()
    assert not result.ok
    assert result.first_bad_seq == 3


def test_a_truncated_tail_is_detected(env: Env) -> None:
    _sql(env, "DELETE FROM audit_events WHERE seq >= 5")
    result = env.store.verify_audit()
    assert not result.ok
    assert result.first_bad_seq == 5
    assert "deleted from the end" in (result.problem or "")


def test_a_deleted_head_is_detected(env: Env) -> None:
    _sql(env, "DELETE FROM audit_head")
    assert not env.store.verify_audit().ok


def test_an_emptied_log_is_detected(env: Env) -> None:
    _sql(env, "DELETE FROM audit_events")
    result = env.store.verify_audit()
    assert not result.ok
    assert result.first_bad_seq == 1


def test_a_rewritten_chain_is_caught_only_by_an_anchor(env: Env) -> None:
    """Modify an event and recompute every hash after it: the database alone cannot tell, a head
    recorded elsewhere can."""
    anchor = (env.store.verify_audit().head_seq or 0, env.store.verify_audit().head_hash or "")
    _sql(env, "UPDATE audit_events SET reason = 'forged' WHERE seq = 4")
    db = open_database(env.settings.database_url)
    with db.write() as conn:
        rows = conn.execute(text("SELECT * FROM audit_events ORDER BY seq")).all()
        prev = GENESIS
        for row in rows:
            digest = audit.event_hash(
                row.seq,
                row.time,
                row.actor,
                row.action,
                row.object_type,
                row.object_id,
                row.before,
                row.after,
                row.reason,
                prev,
            )
            conn.execute(
                text("UPDATE audit_events SET prev_hash = :p, hash = :h WHERE seq = :s"),
                {"p": prev, "h": digest, "s": row.seq},
            )
            prev = digest
        conn.execute(text("UPDATE audit_head SET hash = :h"), {"h": prev})
    assert env.store.verify_audit().ok  # undetectable from the database alone (documented)
    result = env.store.verify_audit(anchor)
    assert not result.ok
    assert result.first_bad_seq == anchor[0]


def test_appends_continue_the_chain_after_verification(env: Env) -> None:
    env.store.set_alias("fraud", "challenger", 1, actor="carol", reason="again")
    events = env.store.audit_events()
    assert [e.seq for e in events] == list(range(1, 8))
    assert env.store.verify_audit().ok


def test_user_changes_are_audited(env: Env) -> None:
    assert isinstance(env.store, SqlRegistryStore)
    users = Users(env.store.db)
    users.add("dana", Role.approver, actor="root")
    users.disable("dana", actor="root", reason="left the team")
    users.disable("dana", actor="root")  # already disabled: no event
    events = [e for e in env.store.audit_events() if e.object_type == "user"]
    assert [(e.action, e.object_id, e.actor) for e in events] == [
        ("user.add", "dana", "root"),
        ("user.disable", "dana", "root"),
    ]
    assert events[0].after == {"name": "dana", "role": "approver", "disabled": False}
    assert "token" not in json.dumps([e.after for e in events])
    assert env.store.verify_audit().ok


@pytest.mark.parametrize("anchor", ["", "12", "x:" + "a" * 64, "3:abc", "-1:" + "a" * 64])
def test_malformed_anchors_are_refused(anchor: str) -> None:
    with pytest.raises(InvalidArgument, match="SEQ:HASH"):
        audit.parse_anchor(anchor)
