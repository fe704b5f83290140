"""The audit trail: an append-only, hash-chained log of every registry state change.

Each event records who (actor), when (ms since the epoch), what (action on object_type/object_id),
the object's state before and after (JSON), and why (reason). Events are chained::

    hash = sha256(canonical JSON of {seq, time, actor, action, object_type, object_id,
                                     before, after, reason, prev_hash})

where ``prev_hash`` is the previous event's hash (64 zeros for the first) and ``before``/``after``
are hashed as the exact JSON text stored. ``seq`` is assigned by the appender (previous + 1), so
numbers are contiguous. :func:`append` runs inside the caller's write transaction, the one that
makes the change, so an event exists if and only if its change was committed. Appends are
serialised so the chain never forks: on SQLite by ``Database.write`` (one writer at a time), on
PostgreSQL by :func:`lock` (``pg_advisory_xact_lock``), which registry writes take *first* so
that their read-check-write also sees every earlier write.

What :func:`verify` detects, and what it cannot:

- an event whose fields were changed (its hash no longer matches its content);
- an event deleted from the middle (a gap in ``seq``, and the next event's ``prev_hash``);
- events deleted from the end (the ``audit_head`` row, written with every append, names a newer
  event than the last one left), and an emptied log (the head names events that are gone);
- an event inserted or reordered (seq/prev_hash mismatch).
- NOT detectable from the database alone: someone with write access who rewrites an event *and*
  recomputes every later hash and the head. Against that, record the head hash that
  ``modelloop audit verify`` prints somewhere the database's writers cannot change (a ticket,
  a git commit) and pass it back as ``anchor``: a rewritten past no longer matches it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, insert, select, text, update

from modelloop.errors import InvalidArgument
from modelloop.store import Database
from modelloop.store import tables as t

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


@dataclass(frozen=True, slots=True)
class AuditVerification:
    ok: bool
    checked: int  # events read
    first_bad_seq: int | None
    problem: str | None
    head_seq: int | None = None  # the newest event, to record as an anchor
    head_hash: str | None = None


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
) -> str:
    fields = {
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
    payload = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


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
    digest = event_hash(
        seq, time, actor, action, object_type, object_id, before_text, after_text, reason, prev_hash
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
        )
    )
    if last is None:
        conn.execute(insert(t.audit_head).values(id=1, seq=seq, hash=digest))
    else:
        conn.execute(
            update(t.audit_head).where(t.audit_head.c.id == 1).values(seq=seq, hash=digest)
        )
    return AuditEvent(
        seq, time, actor, action, object_type, object_id, before, after, reason, prev_hash, digest
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


def verify(db: Database, anchor: tuple[int, str] | None = None) -> AuditVerification:
    """Recompute the chain from the first event; report the first event that breaks it.

    ``anchor``: a (seq, hash) recorded earlier outside the database; the event at that seq must
    still carry that hash.
    """
    checked = 0
    expected_seq, prev_hash = 1, GENESIS
    anchor_seen = anchor is None
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
                checked += 1
                problem = _check(row, expected_seq, prev_hash)
                if problem is None and anchor is not None and row.seq == anchor[0]:
                    anchor_seen = True
                    if row.hash != anchor[1]:
                        problem = f"event {row.seq} no longer has the anchored hash {anchor[1]}"
                if problem is not None:
                    return AuditVerification(False, checked, row.seq, problem)
                if head is not None and row.seq == head.seq and row.hash != head.hash:
                    return AuditVerification(
                        False, checked, row.seq, f"event {row.seq} is not the recorded head"
                    )
                expected_seq, prev_hash = row.seq + 1, row.hash
            if len(rows) < _BATCH:
                break
            after_seq = rows[-1].seq
    last_seq = expected_seq - 1
    if head is None and checked:
        return AuditVerification(
            False, checked, last_seq, "the recorded head of the log was deleted"
        )
    if head is not None and head.seq > last_seq:
        return AuditVerification(
            False,
            checked,
            last_seq + 1,
            f"events {last_seq + 1}..{head.seq} were deleted from the end of the log "
            f"(the recorded head is event {head.seq})",
        )
    if not anchor_seen:
        assert anchor is not None
        return AuditVerification(
            False, checked, anchor[0], f"anchored event {anchor[0]} is missing from the log"
        )
    return AuditVerification(True, checked, None, None, last_seq or None, prev_hash)


def _check(row: Any, expected_seq: int, prev_hash: str) -> str | None:
    if row.seq != expected_seq:
        missing = (
            f"event {expected_seq}"
            if row.seq == expected_seq + 1
            else f"events {expected_seq}..{row.seq - 1}"
        )
        return f"{missing} missing before event {row.seq} (deleted)"
    if row.prev_hash != prev_hash:
        return f"event {row.seq} does not follow the event before it (prev_hash mismatch)"
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
    )
