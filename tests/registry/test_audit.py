"""The audit hash chain: intact logs verify; modified, deleted, truncated or rewritten ones don't.

Tampering is done the way an attacker with database access would: raw SQL on the tables.
"""

from __future__ import annotations

import http.server
import itertools
import json
import threading
from pathlib import Path

import pytest
from sqlalchemy import text

from modelloop import audit, configs
from modelloop.audit import GENESIS, checkpoints, keys
from modelloop.auth import Role, Users
from modelloop.errors import InvalidArgument
from modelloop.registry.client import open_registry_store
from modelloop.registry.sql import SqlRegistryStore
from modelloop.settings import Settings, load_settings
from modelloop.store import open_database
from modelloop.store import tables as t
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


def test_hashes_cover_every_field_and_the_key(env: Env) -> None:
    event = env.store.audit_events()[3]
    ring = keys.load()
    assert event.key_id is not None
    assert ring.signing is not None
    assert event.key_id == ring.signing[0]
    key = (event.key_id, ring.known[event.key_id])
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
    assert audit.event_hash(**fields, key=key) == event.hash  # type: ignore[arg-type]
    for name, value in fields.items():
        changed = value + 1 if isinstance(value, int) else f"{value}x"
        assert audit.event_hash(**{**fields, name: changed}, key=key) != event.hash, name  # type: ignore[arg-type]
    other = ("0" * 16, b"another secret of enough length")
    assert audit.event_hash(**fields, key=other) != event.hash  # type: ignore[arg-type]
    assert audit.event_hash(**fields) != event.hash  # type: ignore[arg-type]


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


def _rechain(env: Env, key: tuple[str, bytes] | None = None, key_id: str | None = None) -> None:
    """Recompute every hash as an attacker would: without the key (plain sha256, ``key_id`` set
    to ``key_id``), or with it (someone who holds the key); the head row follows."""
    with open_database(env.settings.database_url).write() as conn:
        rows = conn.execute(text("SELECT * FROM audit_events ORDER BY seq")).all()
        prev = GENESIS
        for row in rows:
            fields = (
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
            digest = audit.event_hash(*fields, key=key)
            conn.execute(
                text(
                    "UPDATE audit_events SET prev_hash = :p, hash = :h, key_id = :k WHERE seq = :s"
                ),
                {"p": prev, "h": digest, "k": key[0] if key else key_id, "s": row.seq},
            )
            prev = digest
        conn.execute(
            text("UPDATE audit_head SET seq = :s, hash = :h"), {"s": rows[-1].seq, "h": prev}
        )


def _head(env: Env) -> tuple[int, str]:
    result = env.store.verify_audit()
    assert result.ok, result
    assert result.head_seq is not None
    assert result.head_hash is not None
    return result.head_seq, result.head_hash


@pytest.fixture
def no_checkpoints(monkeypatch: pytest.MonkeyPatch) -> None:
    """Verification that reads no checkpoint: what the database alone (and an anchor) can show."""
    monkeypatch.setenv("MODELLOOP_AUDIT_CHECKPOINTS", "off")


@pytest.mark.usefixtures("no_checkpoints")
def test_a_chain_recomputed_without_the_key_is_detected(env: Env) -> None:
    _sql(env, "UPDATE audit_events SET reason = 'forged' WHERE seq = 4")
    _rechain(env)  # plain sha256, as hashes were before keys: no longer accepted on its own
    result = env.store.verify_audit()
    assert not result.ok
    assert result.first_bad_seq == 6
    assert "not keyed" in (result.problem or "")


@pytest.mark.usefixtures("no_checkpoints")
def test_a_chain_recomputed_under_our_key_id_is_detected(env: Env) -> None:
    key_id = env.store.audit_events()[0].key_id
    _sql(env, "UPDATE audit_events SET reason = 'forged' WHERE seq = 4")
    _rechain(env, key_id=key_id)
    result = env.store.verify_audit()
    assert (result.ok, result.first_bad_seq) == (False, 1)
    assert "modified" in (result.problem or "")


@pytest.mark.usefixtures("no_checkpoints")
@pytest.mark.parametrize("keyed", [True, False])
def test_a_forged_event_appended_with_a_valid_hash_is_detected(env: Env, keyed: bool) -> None:
    head_seq, head_hash = _head(env)
    key_id = env.store.audit_events()[0].key_id if keyed else None
    after = json.dumps({"version": 1})
    fields = (
        head_seq + 1,
        1,
        "mallory",
        "alias.move",
        "alias",
        "fraud@champion",
        None,
        after,
        "forged",
        head_hash,
    )
    digest = audit.event_hash(*fields)  # all the attacker can compute without the key
    _sql(
        env,
        "INSERT INTO audit_events (seq, time, actor, action, object_type, object_id, before, "
        "after, reason, prev_hash, hash, key_id) VALUES (:s, 1, 'mallory', 'alias.move', "
        "'alias', 'fraud@champion', NULL, :a, 'forged', :p, :h, :k)",
        s=head_seq + 1,
        a=after,
        p=head_hash,
        h=digest,
        k=key_id,
    )
    _sql(env, "UPDATE audit_head SET seq = :s, hash = :h", s=head_seq + 1, h=digest)
    result = env.store.verify_audit()
    assert (result.ok, result.first_bad_seq) == (False, head_seq + 1)
    assert ("modified" if keyed else "not keyed") in (result.problem or "")


def test_a_chain_rewritten_with_the_key_is_caught_by_checkpoints(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Someone holding the key can write a valid chain; what was recorded outside the database
    before (checkpoints, an anchor) still tells."""
    anchor = _head(env)
    ring = keys.load()
    assert ring.signing is not None
    _sql(env, "UPDATE audit_events SET reason = 'forged' WHERE seq = 4")
    _rechain(env, key=ring.signing)
    result = env.store.verify_audit()
    assert (result.ok, result.first_bad_seq) == (False, 4)
    assert "no longer has the hash recorded in" in (result.problem or "")
    monkeypatch.setenv("MODELLOOP_AUDIT_CHECKPOINTS", "off")
    assert env.store.verify_audit().ok  # the database alone cannot tell (documented)
    result = env.store.verify_audit(anchor)
    assert (result.ok, result.first_bad_seq) == (False, anchor[0])
    assert "the anchor" in (result.problem or "")


def test_a_truncated_tail_with_its_head_rolled_back_is_caught_by_checkpoints(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    kept = env.store.audit_events()[3]
    _sql(env, "DELETE FROM audit_events WHERE seq >= 5")
    _sql(env, "UPDATE audit_head SET seq = 4, hash = :h", h=kept.hash)
    result = env.store.verify_audit()
    assert (result.ok, result.first_bad_seq) == (False, 5)
    assert "events 5..6 were deleted from the end" in (result.problem or "")
    monkeypatch.setenv("MODELLOOP_AUDIT_CHECKPOINTS", "off")
    result = env.store.verify_audit()  # the chain looks whole; the tables still disagree
    assert (result.ok, result.first_bad_seq) == (False, None)
    assert any("alias fraud@challenger" in line for line in result.unexplained)


def test_a_wiped_log_is_caught_by_checkpoints(env: Env) -> None:
    _sql(env, "DELETE FROM audit_events")
    _sql(env, "DELETE FROM audit_head")
    result = env.store.verify_audit()
    assert (result.ok, result.first_bad_seq) == (False, 1)
    assert "the log was emptied" in (result.problem or "")


def test_a_forged_checkpoint_is_detected(env: Env) -> None:
    path = load_settings().audit_checkpoints
    assert path is not None
    line = json.loads(path.read_text().splitlines()[-1])
    assert line["store"] == checkpoints.store_name(env.settings.database_url)
    with path.open("a") as file:
        file.write(json.dumps({**line, "seq": line["seq"] + 5}) + "\n")
    result = env.store.verify_audit()
    assert not result.ok
    assert "is forged (its signature is wrong)" in (result.problem or "")


def test_verification_counts_the_checkpoints_it_matched(env: Env) -> None:
    result = env.store.verify_audit()
    assert result.ok
    assert result.checkpoints == 5  # one per committed change (the first one wrote 2 events)
    assert result.checkpoint_seq == 6


def test_events_from_before_keys_need_an_anchor_or_a_later_checkpoint(
    env: Env, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A store upgraded from unkeyed hashes: its old events verify only once something recorded
    outside the database covers them."""
    monkeypatch.setenv("MODELLOOP_AUDIT_CHECKPOINTS", str(tmp_path / "fresh.jsonl"))
    _rechain(env)  # the log as an older modelloop wrote it
    old = env.store.verify_audit()
    assert not old.ok
    assert "not keyed" in (old.problem or "")
    anchor = (6, env.store.audit_events()[-1].hash)
    assert env.store.verify_audit(anchor).ok
    env.store.set_alias("fraud", "challenger", 2, actor="carol", reason="after the upgrade")
    result = env.store.verify_audit()
    assert result.ok, result.problem  # the keyed event's checkpoint covers the old ones
    assert result.checkpoint_seq == 7


def test_a_verifier_without_the_key_says_which_key_it_lacks(
    env: Env, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    key_id = env.store.audit_events()[0].key_id
    other = tmp_path / "other.key"
    other.write_text("another-secret-of-32-characters-!!\n")
    monkeypatch.setenv("MODELLOOP_AUDIT_KEY_FILE", str(other))
    result = env.store.verify_audit()
    assert not result.ok
    assert f"audit key {key_id}, which {other} does not hold" in (result.problem or "")


def test_keys_rotate_new_first_old_below(
    env: Env, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    old = keys.load()
    assert old.signing is not None
    rotated = tmp_path / "rotated.key"
    rotated.write_text(
        f"# new first\nnew-secret-of-enough-length-0123\n{old.signing[1].decode()}\n"
    )
    monkeypatch.setenv("MODELLOOP_AUDIT_KEY_FILE", str(rotated))
    env.store.set_alias("fraud", "challenger", 1, actor="carol", reason="after rotation")
    events = env.store.audit_events()
    assert events[-1].key_id == keys.key_id(b"new-secret-of-enough-length-0123")
    assert events[0].key_id == old.signing[0]
    assert env.store.verify_audit().ok


def test_short_keys_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELLOOP_AUDIT_KEY", "short")
    with pytest.raises(InvalidArgument, match="shorter than 16 characters"):
        keys.load()


def test_the_default_key_is_created_private_in_the_home(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    monkeypatch.delenv("MODELLOOP_AUDIT_KEY_FILE")
    monkeypatch.delenv("MODELLOOP_AUDIT_CHECKPOINTS")
    monkeypatch.setenv("MODELLOOP_HOME", str(home))
    settings = load_settings()
    assert keys.load(settings).signing is None  # verifying never creates a key
    assert not (home / "audit.key").exists()
    users = Users(open_database(settings.database_url))
    users.add("erin", Role.viewer, actor="root")
    assert (home / "audit.key").stat().st_mode & 0o777 == 0o600
    assert (home / "audit-checkpoints.jsonl").stat().st_mode & 0o777 == 0o600
    assert keys.load(settings).signing is not None
    assert audit.verify(open_database(settings.database_url)).ok


# -- the tables against the events ---------------------------------------------------------------


def _tampers() -> list[tuple[str, str, str]]:
    """(what an attacker runs, what verify must name); fixtures: `reconcile_env`."""
    return [
        (
            "UPDATE aliases SET version = 2 WHERE alias = 'stable'",
            "alias fraud@stable",
            "version is 2, the audit trail says 1",
        ),
        (
            "INSERT INTO aliases (name, alias, version, updated_at, updated_by) "
            "VALUES ('fraud', 'prod', 2, 1, 'mallory')",
            "alias fraud@prod",
            "no audit event created it",
        ),
        (
            "DELETE FROM aliases WHERE alias = 'stable'",
            "alias fraud@stable",
            "deleted without an audit event",
        ),
        (
            "UPDATE model_versions SET status = 'ARCHIVED' WHERE version = 1",
            "version 1 of model",
            'status is "ARCHIVED"',
        ),
        (
            "UPDATE model_versions SET package_digest = 'x' WHERE version = 2",
            "version 2 of model",
            "package_digest",
        ),
        (
            "UPDATE model_versions SET run_id = (SELECT run_id FROM model_versions WHERE "
            "version = 1) WHERE version = 2",
            "version 2 of model",
            "run_id",
        ),
        ("UPDATE registered_models SET description = 'x'", "model 'fraud'", "description"),
        ("UPDATE alias_requests SET status = 'APPROVED'", "alias request", "status"),
        (
            "INSERT INTO users (name, token_sha256, role, created_at, disabled) "
            "VALUES ('mallory', 'f00d', 'admin', 1, FALSE)",
            "user 'mallory'",
            "no audit event created it",
        ),
        ("UPDATE users SET role = 'admin' WHERE name = 'dana'", "user 'dana'", "role"),
        ("UPDATE users SET token_sha256 = 'f00d' WHERE name = 'dana'", "user 'dana'", "credential"),
        ("UPDATE users SET disabled = FALSE WHERE name = 'erin'", "user 'erin'", "disabled"),
        ("DELETE FROM users WHERE name = 'dana'", "user 'dana'", "deleted"),
        (
            'UPDATE deployments SET config = \'{"model": "other@champion"}\'',
            "deployment 'fraud-api'",
            "model is",
        ),
        ("DELETE FROM policies", "policy 'nightly'", "deleted"),
        (
            "INSERT INTO monitors (name, config, updated_at, updated_by) "
            "VALUES ('m', '{}', 1, 'mallory')",
            "monitor 'm'",
            "no audit event created it",
        ),
    ]


@pytest.fixture
def reconcile_env(env: Env) -> Env:
    """The audit env, plus an alias, a pending request, users and declared configurations."""
    assert isinstance(env.store, SqlRegistryStore)
    env.store.set_alias("fraud", "stable", 1, actor="alice", reason="first")
    env.store.request_alias("fraud", "champion", 2, actor="alice", reason="better")
    users = Users(env.store.db)
    users.add("dana", Role.approver, actor="root")
    users.add("erin", Role.viewer, actor="root")
    users.disable("erin", actor="root")
    deployment = {"model": "fraud@champion", "name": "fraud-api"}
    configs.save(
        env.store.db,
        t.deployments,
        "fraud-api",
        lambda _: deployment,
        actor="alice",
        kind="deployment",
    )
    configs.save(
        env.store.db,
        t.policies,
        "nightly",
        lambda _: {"model": "fraud"},
        actor="alice",
        kind="policy",
    )
    return env


def test_untouched_tables_reconcile(reconcile_env: Env) -> None:
    result = reconcile_env.store.verify_audit()
    assert result.ok, result.unexplained
    assert result.unexplained == ()
    assert result.reconciled == 9  # 1 model, 2 versions, 1 alias, 1 request, 2 users, 2 configs


@pytest.mark.parametrize(("statement", "what", "detail"), _tampers())
def test_a_change_no_event_explains_is_named(
    reconcile_env: Env, statement: str, what: str, detail: str
) -> None:
    _sql(reconcile_env, statement)
    result = reconcile_env.store.verify_audit()
    assert not result.ok
    assert result.first_bad_seq is None  # the chain itself is intact
    named = [line for line in result.unexplained if what in line]
    assert named, result.unexplained
    assert detail in named[0]


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
    assert events[0].after is not None
    assert {k: v for k, v in events[0].after.items() if k != "credential"} == {
        "name": "dana",
        "role": "approver",
        "disabled": False,
    }
    assert "token" not in json.dumps([e.after for e in events])
    assert env.store.verify_audit().ok


@pytest.mark.parametrize("anchor", ["", "12", "x:" + "a" * 64, "3:abc", "-1:" + "a" * 64])
def test_malformed_anchors_are_refused(anchor: str) -> None:
    with pytest.raises(InvalidArgument, match="SEQ:HASH"):
        audit.parse_anchor(anchor)


@pytest.mark.parametrize("status", [204, 500])
def test_checkpoints_export_to_a_webhook(env: Env, status: int) -> None:
    """``audit checkpoint --to URL`` POSTs the signed checkpoint; an error status is a failure."""
    received: list[bytes] = []

    class Receiver(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(self.rfile.read(int(self.headers["Content-Length"])))
            self.send_response(status)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        assert isinstance(env.store, SqlRegistryStore)
        checkpoint = checkpoints.current(env.store.db)
        url = f"http://127.0.0.1:{server.server_port}/audit"
        if status >= 300:
            with pytest.raises(InvalidArgument, match="answered 500"):
                checkpoints.export(checkpoint, url)
        else:
            assert checkpoints.export(checkpoint, url) == f"posted to {url} (204)"
    finally:
        server.shutdown()
        server.server_close()
    sent = checkpoints.Checkpoint(**json.loads(received[0]))
    assert sent == checkpoint
    assert (sent.seq, sent.hash) == _head(env)
    assert sent.signed_by(keys.load())
