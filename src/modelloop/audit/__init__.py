"""The audit trail of every registry state change: a keyed hash chain (:mod:`.chain`), its key
(:mod:`.keys`), checkpoints kept outside the database (:mod:`.checkpoints`) and the
reconciliation of the tables with it (:mod:`.state`)."""

from modelloop.audit.chain import (
    GENESIS,
    AuditEvent,
    AuditVerification,
    append,
    canonical,
    check_actor,
    event_hash,
    events,
    lock,
    parse_anchor,
    recording,
    verify,
)

__all__ = [
    "GENESIS",
    "AuditEvent",
    "AuditVerification",
    "append",
    "canonical",
    "check_actor",
    "event_hash",
    "events",
    "lock",
    "parse_anchor",
    "recording",
    "verify",
]
