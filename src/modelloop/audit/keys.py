"""The secret that keys the audit trail, kept outside the metadata database.

A plain hash chain proves nothing against someone who can write the database: they can rewrite
an event and recompute every hash after it, or append a forged event with a valid hash. So each
event's hash is an HMAC-SHA256 under a secret that lives in a file (or an environment variable),
not in the database: without it, no event can be forged or rewritten undetected.

The key file holds one secret per line (``#`` comments allowed). The first line keys new events;
every line verifies, so a key is rotated by putting a new one first and keeping the old ones
below. Each event records the *id* of its key (a 16-hex-digit digest of the secret, never the
secret), so a verifier without that key says which one it lacks instead of calling the event
forged. When no key is configured, the first audited change creates ``$MODELLOOP_HOME/audit.key``
(mode 0600); every process that writes the same database must be given the same file.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from modelloop.errors import InvalidArgument
from modelloop.settings import Settings, load_settings

MIN_SECRET = 16  # characters: a shorter secret could be guessed offline from one event


@dataclass(frozen=True)
class Keyring:
    """The keys one process knows: ``signing`` keys new events, ``known`` verifies them."""

    source: str  # where the keys come from, for messages
    signing: tuple[str, bytes] | None = None  # (key id, secret)
    known: Mapping[str, bytes] = field(default_factory=dict)  # key id -> secret


def key_id(secret: bytes) -> str:
    """A name for ``secret`` that reveals nothing about it."""
    return hashlib.sha256(b"modelloop-audit-key:" + secret).hexdigest()[:16]


def mac(secret: bytes, payload: str) -> str:
    return hmac.new(secret, payload.encode("utf-8"), hashlib.sha256).hexdigest()


def load(settings: Settings | None = None, *, create: bool = False) -> Keyring:
    """The configured keys; with ``create``, a new key file when none exists yet."""
    settings = settings or load_settings()
    if settings.audit_key is not None:
        return _ring("MODELLOOP_AUDIT_KEY", [settings.audit_key])
    path = settings.audit_key_path
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if not create:
            return Keyring(source=str(path))
        text = _create(path)
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidArgument(f"Cannot read the audit key file {path}: {exc}") from exc
    lines = [line.strip() for line in text.splitlines()]
    return _ring(str(path), [line for line in lines if line and not line.startswith("#")])


def _ring(source: str, secrets_: list[str]) -> Keyring:
    if not secrets_:
        raise InvalidArgument(f"The audit key file {source} holds no key")
    for secret in secrets_:
        if len(secret) < MIN_SECRET:
            raise InvalidArgument(
                f"An audit key in {source} is shorter than {MIN_SECRET} characters: use "
                "'python -c \"import secrets; print(secrets.token_hex(32))\"' for a strong one"
            )
    encoded = [s.encode("utf-8") for s in secrets_]
    known = {key_id(s): s for s in encoded}
    return Keyring(source=source, signing=(key_id(encoded[0]), encoded[0]), known=known)


def _create(path: Path) -> str:
    """Write a fresh random key to ``path`` atomically (0600); if another process won the race,
    its key is the one."""
    text = (
        "# modelloop audit key: keys the audit trail. Keep it secret, away from the database's\n"
        "# writers and backed up: events keyed with a lost key can no longer be verified.\n"
        f"{secrets.token_hex(32)}\n"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        try:
            os.link(temporary, path)  # atomic, and never replaces a key that exists
        except FileExistsError:
            return path.read_text(encoding="utf-8")
    finally:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
    return text
