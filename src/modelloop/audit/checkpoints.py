"""Signed checkpoints of the audit log's head, kept outside the database.

A log checked only against itself cannot show that its newest events were deleted (the head row
can be rolled back with them) or that it was emptied. A checkpoint records, outside the
database, that the log of one store reached event ``seq`` with hash ``hash`` at ``time``, with an
HMAC under the audit key so it cannot be forged. ``audit verify`` then fails if any checkpoint's
event is gone (truncation, wipe) or no longer carries that hash (a rewrite, even by someone who
recomputed the chain), and it accepts events written before audit keys existed only up to a
checkpoint that covers them.

Every audited change appends one, after its transaction commits, to the checkpoint file
(``MODELLOOP_AUDIT_CHECKPOINTS``); ``modelloop audit checkpoint --to FILE|URL`` exports the
current one elsewhere (a file on another machine, a webhook of a system the database's writers
cannot change), e.g. from cron. A checkpoint proves only what it covers: events deleted after the
newest checkpoint the verifier sees, by someone who also deletes that checkpoint, go unnoticed.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import make_url

from modelloop.audit import keys
from modelloop.clock import now_ms
from modelloop.errors import InvalidArgument

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

    from modelloop.store import Database

log = logging.getLogger("modelloop.audit")


@dataclass(frozen=True, slots=True)
class Checkpoint:
    store: str  # the metadata database's URL, password hidden
    seq: int
    hash: str
    time: int  # ms since the epoch, wall clock
    key_id: str
    mac: str

    def payload(self) -> str:
        fields = {k: v for k, v in asdict(self).items() if k != "mac"}
        return json.dumps(fields, sort_keys=True, separators=(",", ":"))

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))

    def signed_by(self, ring: keys.Keyring) -> bool:
        secret = ring.known.get(self.key_id)
        return secret is not None and keys.mac(secret, self.payload()) == self.mac


@dataclass(frozen=True, slots=True)
class Recorded:
    """A checkpoint as read back from a file: where it came from, and whether it is intact."""

    checkpoint: Checkpoint
    where: str  # "FILE line N"


def store_name(url: str | URL) -> str:
    return make_url(url).render_as_string(hide_password=True)


def sign(store: str, seq: int, digest: str, time: int, ring: keys.Keyring) -> Checkpoint:
    if ring.signing is None:  # pragma: no cover - callers load with create=True
        raise InvalidArgument(f"No audit key to sign a checkpoint with ({ring.source})")
    key_id, secret = ring.signing
    unsigned = Checkpoint(store, seq, digest, time, key_id, "")
    return Checkpoint(store, seq, digest, time, key_id, keys.mac(secret, unsigned.payload()))


def append(path: Path, checkpoint: Checkpoint) -> None:
    """Add one line to a checkpoint file (O_APPEND: lines from several processes never mix)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, (checkpoint.to_json() + "\n").encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)


def record_after_commit(path: Path, checkpoint: Checkpoint) -> None:
    """Append a checkpoint of a committed change; the change stands even if this fails, so a
    failure is logged (``audit verify`` then shows the newest checkpoint lagging the head)."""
    try:
        append(path, checkpoint)
    except OSError as exc:
        log.warning("could not write the audit checkpoint to %s: %s", path, exc)


def read(path: Path, store: str) -> Iterator[Recorded]:
    """The checkpoints of ``store`` in ``path`` (lines of other stores are skipped). A line that
    is not a checkpoint raises: a damaged checkpoint file is itself a finding."""
    try:
        file = path.open(encoding="utf-8")
    except FileNotFoundError:
        return
    except OSError as exc:
        raise InvalidArgument(f"Cannot read the audit checkpoints {path}: {exc}") from exc
    with file:
        for number, line in enumerate(file, 1):
            if not line.strip():
                continue
            where = f"{path} line {number}"
            checkpoint = _parse(line, where)
            if checkpoint.store == store:
                yield Recorded(checkpoint, where)


def _parse(line: str, where: str) -> Checkpoint:
    try:
        data: Any = json.loads(line)
        checkpoint = Checkpoint(**data)
    except (ValueError, TypeError) as exc:
        raise InvalidArgument(f"{where} is not an audit checkpoint: {exc}") from None
    valid = (
        isinstance(checkpoint.store, str)
        and isinstance(checkpoint.seq, int)
        and not isinstance(checkpoint.seq, bool)
        and checkpoint.seq >= 0
        and all(isinstance(v, str) for v in (checkpoint.hash, checkpoint.key_id, checkpoint.mac))
        and isinstance(checkpoint.time, int)
    )
    if not valid:
        raise InvalidArgument(f"{where} is not an audit checkpoint: a field has the wrong type")
    return checkpoint


def current(db: Database) -> Checkpoint:
    """A checkpoint of ``db``'s log as it stands, signed with the configured key."""
    from sqlalchemy import select

    from modelloop.store import tables as t

    ring = keys.load()
    if ring.signing is None:
        raise InvalidArgument(
            f"No audit key at {ring.source}: nothing was audited with this configuration yet "
            "(set MODELLOOP_AUDIT_KEY_FILE to the key the server uses)"
        )
    with db.read() as conn:
        head = conn.execute(select(t.audit_head.c.seq, t.audit_head.c.hash)).first()
    if head is None:
        raise InvalidArgument("The audit log is empty: there is nothing to checkpoint yet")
    return sign(store_name(db.url), head.seq, head.hash, now_ms(), ring)


def export(checkpoint: Checkpoint, target: str) -> str:
    """Send ``checkpoint`` to a file (appended) or an http(s) URL (POSTed as JSON); returns a
    sentence saying where it went."""
    if target.startswith(("http://", "https://")):
        import httpx

        try:
            response = httpx.post(
                target,
                content=checkpoint.to_json(),
                headers={"Content-Type": "application/json"},
                timeout=30,
            )
        except httpx.HTTPError as exc:
            raise InvalidArgument(f"Cannot deliver the checkpoint to {target}: {exc}") from exc
        if response.status_code >= 300:
            raise InvalidArgument(
                f"{target} answered {response.status_code} to the checkpoint: not delivered"
            )
        return f"posted to {target} ({response.status_code})"
    path = Path(target).expanduser()
    try:
        append(path, checkpoint)
    except (OSError, ValueError) as exc:  # ValueError: a NUL in the path
        raise InvalidArgument(f"Cannot write the checkpoint to {path}: {exc}") from exc
    return f"appended to {path}"
