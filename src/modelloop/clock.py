"""Time, in one place: instants are milliseconds since the epoch (UTC) everywhere in the store.

Every layer converts through these helpers instead of keeping its own copy, so a naive datetime
means UTC in every module and a duration is counted the same way by the monitor, the policy
and the demo's simulated clock. Standard library only: this is the bottom of the import graph.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

DAY_MS = 86_400_000
HOUR_MS = 3_600_000


def now_ms() -> int:
    """The wall clock, in milliseconds since the epoch."""
    return time.time_ns() // 1_000_000


def to_ms(moment: Any) -> int:
    """Milliseconds since the epoch of a datetime (naive = UTC), a pandas Timestamp or a
    number of milliseconds."""
    if isinstance(moment, datetime):
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return int(moment.timestamp() * 1000)
    if isinstance(moment, int | float):
        return int(moment)
    return int(moment.value // 1_000_000)  # pandas Timestamp (ns)


def from_ms(ms: int | float) -> datetime:
    """The aware UTC datetime of ``ms``."""
    return datetime.fromtimestamp(ms / 1000, UTC)


def iso(ms: int | float) -> str:
    """ISO 8601 in UTC, e.g. ``2018-08-08T00:00:00+00:00``."""
    return from_ms(ms).isoformat()


def duration_ms(delta: timedelta) -> int:
    """A duration in whole milliseconds."""
    return int(delta.total_seconds() * 1000)


def days(ms: int | float) -> str:
    """A duration in days for messages: ``5d``, ``0.5d``."""
    return f"{ms / DAY_MS:g}d"
