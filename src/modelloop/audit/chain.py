"""The audit trail: an append-only, keyed hash chain of every registry state change.

Each event records who (actor), when (ms since the epoch), what (action on object_type/object_id),
the object's state before and after (JSON), and why (reason). Events are chained::

    hash = HMAC-SHA256(key, canonical JSON of {seq, time, actor, action, object_type, object_id,
                                               before, after, reason, prev_hash, key_id})

where ``prev_hash`` is the previous event's hash (64 zeros for the first), ``before``/``after``
are hashed as the exact JSON text stored, and ``key`` is the audit secret of
:mod:`modelloop.audit.keys`, which lives outside the database (``key_id`` names it). ``seq`` is
assigned by the appender (previous + 1), so numbers are contiguous. :func:`append` runs inside
the caller's write transaction, the one that makes the change, so an event exists if and only if
its change was committed; once it commits, a signed checkpoint of the new head is written outside
the database (:mod:`modelloop.audit.checkpoints`). Appends are serialised so the chain never
forks: on SQLite by ``Database.write`` (one writer at a time), on PostgreSQL by :func:`lock`
(``pg_advisory_xact_lock``), which registry writes take *first* so that their read-check-write
also sees every earlier write.

What :func:`verify` proves against someone who can write the database but not read the key:

- an event changed, forged, inserted, reordered or deleted from the middle, or a chain recomputed
  (its HMAC, ``seq`` and ``prev_hash`` no longer match);
- events deleted from the end and an emptied log, up to the newest checkpoint it reads (and the
  ``audit_head`` row, which the same writer could roll back too);
- a table changed without an event: an alias, version, request, user or declared configuration
  that the events do not explain (:mod:`modelloop.audit.state`).

It cannot prove anything against someone who holds the key (they can write valid events), nor
that events after the newest checkpoint it reads were not deleted along with that checkpoint.
Events written before keys existed (``key_id`` NULL, plain sha256) are accepted only up to an
anchor or checkpoint that covers them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, insert, select, text, update

from modelloop.audit import checkpoints, keys
from modelloop.audit.state import Replay
from modelloop.clock import now_ms
from modelloop.errors import InvalidArgument
from modelloop.settings import Settings, load_settings
from modelloop.store import Database
from modelloop.store import tables as t
from modelloop.store.database import after_commit

GENESIS = "0" * 64
_PG_AUDIT_LOCK = 0x6D6C6F6F7061  # pg_advisory_xact_lock key: "mloopa"
_BATCH = 1000


@dataclass(frozen=True, slots=True)
class AuditEvent:
    seq: int
    time: int
    actor: str
    action: str  # e.g. alias.move, model_version.create, alias_request.approve
    object_type: str  # model, model_version, alias, alias_request, user
    object_id: str  # "fraud", "fraud/3", "fraud@champion", "fraud@champion/<request id>"
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    reason: str | None
    prev_hash: str
    hash: str
    key_id: str | None = None  # the audit key that keyed it (None: written before keys)


@dataclass(frozen=True, slots=True)
class AuditVerification:
    ok: bool
    checked: int  # events read
    first_bad_seq: int | None
    problem: str | None
    head_seq: int | None = None  # the newest event, to record as an anchor
    head_hash: str | None = None
    unexplained: tuple[str, ...] = ()  # table rows that changed without an event
    reconciled: int = 0  # objects whose current state was compared with the events
    checkpoints: int = 0  # checkpoints read and matched
    checkpoint_seq: int | None = None  # the newest of them


def check_actor(actor: object) -> str:
    """Who a change is recorded as: 1-256 characters, no control characters."""
    if (
        not isinstance(actor, str)
        or not actor.strip()
        or len(actor) > 256
        or any(ord(c) < 0x20 or ord(c) == 0x7F for c in actor)
    ):
        raise InvalidArgument(f"Invalid actor {actor!r}: use a user name of 1-256 characters")
    return actor


@contextmanager
def recording(db: Database, actor: str) -> Iterator[Connection]:
    """The write transaction of an audited change by ``actor``: the actor checked, then the
    audit lock taken before anything is read, so the change sees every earlier one."""
    check_actor(actor)
    with db.write() as conn:
        lock(conn)
        yield conn


def lock(conn: Connection) -> None:
    """Serialise registry writes until the transaction ends (PostgreSQL; SQLite already is)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_AUDIT_LOCK})


def parse_anchor(anchor: str | None) -> tuple[int, str] | None:
    """``SEQ:HASH`` (as ``modelloop audit verify`` prints it) as a tuple."""
    if anchor is None:
        return None
    seq, _, digest = anchor.partition(":")
    if not seq.isascii() or not seq.isdigit() or len(digest) != 64:
        raise InvalidArgument(f"Invalid anchor {anchor!r}: expected SEQ:HASH (64 hex characters)")
    return int(seq), digest.lower()


def canonical(value: dict[str, Any] | None) -> str | None:
    """The JSON text an event stores (and hashes): sorted keys, no spaces, UTF-8."""
    if value is None:
        return None
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def event_hash(
    seq: int,
    time: int,
    actor: str,
    action: str,
    object_type: str,
    object_id: str,
    before: str | None,
    after: str | None,
    reason: str | None,
    prev_hash: str,
    key: tuple[str, bytes] | None = None,
) -> str:
    """The event's HMAC under ``key`` (key id, secret); a plain sha256 without one, as events
    were hashed before audit keys."""
    fields: dict[str, object] = {
        "seq": seq,
        "time": time,
        "actor": actor,
        "action": action,
        "object_type": object_type,
        "object_id": object_id,
        "before": before,
        "after": after,
        "reason": reason,
        "prev_hash": prev_hash,
    }
    if key is not None:
        fields["key_id"] = key[0]
    payload = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    if key is None:
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()
    return keys.mac(key[1], payload)


def append(
    conn: Connection,
    *,
    time: int,
    actor: str,
    action: str,
    object_type: str,
    object_id: str,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    reason: str | None = None,
) -> AuditEvent:
    """Append one event in the caller's transaction (which must come from ``Database.write``)."""
    lock(conn)
    last = conn.execute(
        select(t.audit_events.c.seq, t.audit_events.c.hash)
        .order_by(t.audit_events.c.seq.desc())
        .limit(1)
    ).first()
    seq, prev_hash = (1, GENESIS) if last is None else (last.seq + 1, last.hash)
    before_text, after_text = canonical(before), canonical(after)
    settings = load_settings()
    ring = keys.load(settings, create=True)
    key = ring.signing
    assert key is not None  # load(create=True) always has one
    digest = event_hash(
        seq,
        time,
        actor,
        action,
        object_type,
        object_id,
        before_text,
        after_text,
        reason,
        prev_hash,
        key,
    )
    conn.execute(
        insert(t.audit_events).values(
            seq=seq,
            time=time,
            actor=actor,
            action=action,
            object_type=object_type,
            object_id=object_id,
            before=before_text,
            after=after_text,
            reason=reason,
            prev_hash=prev_hash,
            hash=digest,
            key_id=key[0],
        )
    )
    if settings.audit_checkpoints is not None:
        checkpoint = checkpoints.sign(
            checkpoints.store_name(conn.engine.url),
            seq,
            digest,
            now_ms(),
            ring,
        )
        path = settings.audit_checkpoints
        after_commit(
            conn, "audit.checkpoint", lambda: checkpoints.record_after_commit(path, checkpoint)
        )
    if last is None:
        conn.execute(insert(t.audit_head).values(id=1, seq=seq, hash=digest))
    else:
        conn.execute(
            update(t.audit_head).where(t.audit_head.c.id == 1).values(seq=seq, hash=digest)
        )
    return AuditEvent(
        seq,
        time,
        actor,
        action,
        object_type,
        object_id,
        before,
        after,
        reason,
        prev_hash,
        digest,
        key[0],
    )


def events(
    db: Database,
    *,
    model: str | None = None,
    object_type: str | None = None,
    object_id: str | None = None,
    limit: int | None = None,
) -> list[AuditEvent]:
    """Events oldest first; ``model`` selects everything about one registered model (the model,
    its versions, aliases and alias requests); ``limit`` keeps the newest ones."""
    c = t.audit_events.c
    query = select(t.audit_events)
    if model is not None:
        query = query.where(
            c.object_type.in_(["model", "model_version", "alias", "alias_request"]),
            (c.object_id == model)
            | c.object_id.startswith(f"{model}/", autoescape=True)
            | c.object_id.startswith(f"{model}@", autoescape=True),
        )
    if object_type is not None:
        query = query.where(c.object_type == object_type)
    if object_id is not None:
        query = query.where(c.object_id == object_id)
    query = query.order_by(c.seq.desc())
    if limit is not None:
        query = query.limit(limit)
    with db.read() as conn:
        rows = conn.execute(query).all()
    return [_event(row) for row in reversed(rows)]


def verify(
    db: Database,
    anchor: tuple[int, str] | None = None,
    *,
    checkpoint_files: Sequence[Path] = (),
    settings: Settings | None = None,
) -> AuditVerification:
    """Recompute the chain from the first event with the configured keys, check it against every
    checkpoint of this store (the configured file and ``checkpoint_files``) and ``anchor`` (a
    (seq, hash) recorded earlier outside the database), then reconcile the tables with it.
    Reports the first problem found."""
    settings = settings or load_settings()
    ring = keys.load(settings)
    store = checkpoints.store_name(db.url)
    files = [settings.audit_checkpoints] if settings.audit_checkpoints is not None else []
    recorded = [r for path in [*files, *checkpoint_files] for r in checkpoints.read(path, store)]
    walk = _Walk(ring, recorded, anchor)
    for seq, forged in walk.forged():
        return AuditVerification(False, 0, seq, forged)
    replay = Replay()
    with db.read() as conn:
        head = conn.execute(select(t.audit_head.c.seq, t.audit_head.c.hash)).first()
        after_seq = 0
        while True:  # keyset pages: memory stays flat however long the log is
            rows = conn.execute(
                select(t.audit_events)
                .where(t.audit_events.c.seq > after_seq)
                .order_by(t.audit_events.c.seq)
                .limit(_BATCH)
            ).all()
            for row in rows:
                problem = walk.step(row)
                if problem is None and head is not None and row.seq == head.seq:
                    problem = _head_problem(row, head)
                if problem is not None:
                    return AuditVerification(False, walk.checked, row.seq, problem)
                replay.apply(row)
            if len(rows) < _BATCH:
                break
            after_seq = rows[-1].seq
        unexplained = tuple(replay.differences(conn))
    last_seq = walk.expected_seq - 1
    end = walk.finish(head)
    if end is not None:
        return AuditVerification(False, walk.checked, end[0], end[1])
    return AuditVerification(
        ok=not unexplained,
        checked=walk.checked,
        first_bad_seq=None,
        problem=None if not unexplained else f"{len(unexplained)} changes without an audit event",
        head_seq=last_seq or None,
        head_hash=walk.prev_hash,
        unexplained=unexplained,
        reconciled=replay.objects,
        checkpoints=walk.matched,
        checkpoint_seq=walk.newest_matched,
    )


def _head_problem(row: Any, head: Any) -> str | None:
    return None if row.hash == head.hash else f"event {row.seq} is not the recorded head"


class _Walk:
    """The chain check, one event at a time: links, keys, checkpoints and the anchor."""

    def __init__(
        self,
        ring: keys.Keyring,
        recorded: list[checkpoints.Recorded],
        anchor: tuple[int, str] | None,
    ) -> None:
        self.ring = ring
        self.recorded = recorded
        self.anchor = anchor
        self.expected: dict[int, list[tuple[str, str]]] = {}  # seq -> [(hash, from where)]
        for r in recorded:
            self.expected.setdefault(r.checkpoint.seq, []).append((r.checkpoint.hash, r.where))
        if anchor is not None:
            self.expected.setdefault(anchor[0], []).append((anchor[1], "the anchor"))
        self.checked = 0
        self.matched = 0
        self.newest_matched: int | None = None
        self.expected_seq, self.prev_hash = 1, GENESIS
        self.unkeyed_through = 0  # the newest event written before keys

    def forged(self) -> Iterator[tuple[int, str]]:
        for r in self.recorded:
            c = r.checkpoint
            if c.key_id not in self.ring.known:
                yield (
                    c.seq,
                    (
                        f"the checkpoint at {r.where} is signed with audit key {c.key_id}, which "
                        f"{self.ring.source} does not hold (give this verifier that key, or the "
                        "checkpoint is forged)"
                    ),
                )
            elif not c.signed_by(self.ring):
                yield c.seq, f"the checkpoint at {r.where} is forged (its signature is wrong)"

    def step(self, row: Any) -> str | None:
        self.checked += 1
        problem = _check(row, self.expected_seq, self.prev_hash, self.ring)
        if problem is not None:
            return problem
        if row.key_id is None:
            self.unkeyed_through = row.seq
        for digest, where in self.expected.pop(row.seq, []):
            if digest != row.hash:
                return f"event {row.seq} no longer has the hash recorded in {where}"
            self.matched += where != "the anchor"
            self.newest_matched = row.seq
        self.expected_seq, self.prev_hash = row.seq + 1, row.hash
        return None

    def finish(self, head: Any) -> tuple[int, str] | None:
        """What the end of the log tells: truncation, a wipe, a missing head, unkeyed events."""
        last_seq = self.expected_seq - 1
        if self.expected:
            seq = max(self.expected)
            where = self.expected[seq][0][1]
            if last_seq == 0:
                return last_seq + 1, f"the log was emptied: {where} recorded event {seq}"
            return (
                last_seq + 1,
                f"events {last_seq + 1}..{seq} were deleted from the end of the log "
                f"({where} recorded event {seq})",
            )
        if head is None and self.checked:
            return last_seq, "the recorded head of the log was deleted"
        if head is not None and head.seq > last_seq:
            return (
                last_seq + 1,
                f"events {last_seq + 1}..{head.seq} were deleted from the end of the log "
                f"(the recorded head is event {head.seq})",
            )
        if self.unkeyed_through and (self.newest_matched or 0) < self.unkeyed_through:
            return (
                self.unkeyed_through,
                f"events up to {self.unkeyed_through} are not keyed (written before audit keys, "
                "or forged without the key) and no checkpoint or anchor covers them; pass "
                "--anchor SEQ:HASH recorded for that log to accept them",
            )
        return None


def _check(row: Any, expected_seq: int, prev_hash: str, ring: keys.Keyring) -> str | None:
    if row.seq != expected_seq:
        missing = (
            f"event {expected_seq}"
            if row.seq == expected_seq + 1
            else f"events {expected_seq}..{row.seq - 1}"
        )
        return f"{missing} missing before event {row.seq} (deleted)"
    if row.prev_hash != prev_hash:
        return f"event {row.seq} does not follow the event before it (prev_hash mismatch)"
    key = None
    if row.key_id is not None:
        secret = ring.known.get(row.key_id)
        if secret is None:
            return (
                f"event {row.seq} is keyed with audit key {row.key_id}, which {ring.source} "
                "does not hold (give this verifier that key, or the event is forged)"
            )
        key = (row.key_id, secret)
    recomputed = event_hash(
        row.seq,
        row.time,
        row.actor,
        row.action,
        row.object_type,
        row.object_id,
        row.before,
        row.after,
        row.reason,
        row.prev_hash,
        key,
    )
    if recomputed != row.hash:
        return f"event {row.seq} was modified (its content no longer matches its hash)"
    return None


def _event(row: Any) -> AuditEvent:
    return AuditEvent(
        seq=row.seq,
        time=row.time,
        actor=row.actor,
        action=row.action,
        object_type=row.object_type,
        object_id=row.object_id,
        before=None if row.before is None else json.loads(row.before),
        after=None if row.after is None else json.loads(row.after),
        reason=row.reason,
        prev_hash=row.prev_hash,
        hash=row.hash,
        key_id=row.key_id,
    )
