"""Canary routing: which rows the challenger answers.

With a sticky key (say ``card_id``), a row's key value is hashed, together with the deployment's
name, into one of 10,000 buckets; buckets below ``canary_percent * 100`` go to the challenger.
The hash is stable across processes, replicas and restarts (BLAKE2b, not Python's salted
``hash``), so a card keeps meeting the same model for as long as the split stays the same, and
raising the percentage only moves keys from the champion to the challenger, never back. Salting
with the deployment name keeps two canaries from picking the same cards.

Without a sticky key every row is an independent coin flip.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from typing import Any

BUCKETS = 10_000


def bucket(salt: bytes, key: Any) -> int:
    """The bucket (0..9999) of one key value under ``salt`` (see :func:`salt_of`)."""
    digest = hashlib.blake2b(_key_bytes(key), digest_size=8, key=salt).digest()
    return int.from_bytes(digest, "little") % BUCKETS


def salt_of(deployment: str) -> bytes:
    """The hashing key of a deployment (BLAKE2b keys are at most 64 bytes; names may be longer)."""
    return hashlib.blake2b(deployment.encode("utf-8"), digest_size=32).digest()


def _key_bytes(key: Any) -> bytes:
    """1234, 1234.0 and "1234" are one card: integral numbers hash as their decimal text."""
    if isinstance(key, float) and key.is_integer():
        key = int(key)
    return str(key).encode("utf-8", "surrogatepass")


class CanarySplit:
    """Routes rows to the challenger with probability ``percent`` / 100, sticky by key."""

    def __init__(self, deployment: str, percent: float, rng: random.Random | None = None) -> None:
        if not 0 <= percent <= 100:
            raise ValueError(f"canary percent must be within 0..100, got {percent}")
        self._salt = salt_of(deployment)
        self._threshold = round(percent * BUCKETS / 100)
        self._fraction = percent / 100
        self._random = (rng or random.Random()).random  # noqa: S311 - a traffic split, not a secret

    @property
    def percent(self) -> float:
        return self._fraction * 100

    def to_challenger(self, key: Any) -> bool:
        """Whether the row with this key value goes to the challenger."""
        return bucket(self._salt, key) < self._threshold

    def route(self, keys: Sequence[Any] | None, rows: int) -> list[bool]:
        """Per row: True for the challenger. ``keys`` None means no sticky key: coin flips."""
        if self._threshold <= 0 and keys is not None:
            return [False] * rows
        if keys is None:
            chance, draw = self._fraction, self._random
            return [draw() < chance for _ in range(rows)]
        threshold, salt = self._threshold, self._salt
        return [bucket(salt, key) < threshold for key in keys]
