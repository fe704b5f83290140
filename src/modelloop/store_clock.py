"""What "now" is for a store: the wall clock, or the instant its simulation has reached.

A store filled by a simulation (``modelloop demo fraud`` serves transactions dated 2018) records
so in its ``store_properties`` table and advances that clock as the simulated days pass. What
needs "now" for a store's data asks :func:`store_clock` instead of reading the wall clock: the
scheduler of ``modelloop server`` computes windows and steps policies at that instant and never
beyond it, the web UI says which clock its times are on, and the CLI's commands default ``now``
to it. A store that never recorded a clock runs on the wall clock::

    ml.set_store_clock(datetime(2018, 5, 1))   # a simulation starts, or advances
    ml.store_clock()                           # StoreClock(kind='simulated', now_ms=...)
    ml.use_wall_clock()                        # the store's data is live again

Switching between the two kinds is audited (``store.clock``); advancing a simulated clock is
not (a simulation does it every simulated day). The clock stays where it was last recorded: it
does not move with the wall clock in between.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from modelloop.clock import from_ms, iso, now_ms, to_ms
from modelloop.settings import Settings, load_settings

if TYPE_CHECKING:
    from modelloop.store import Database

WALL, SIMULATED = "wall", "simulated"
_KEY = "clock"


@dataclass(frozen=True, slots=True)
class StoreClock:
    """A store's clock and its current instant."""

    kind: str  # wall | simulated
    now_ms: int  # ms since the epoch: the wall clock's now, or the simulation's last instant

    @property
    def simulated(self) -> bool:
        return self.kind == SIMULATED

    @property
    def now(self) -> datetime:
        """The current instant as an aware UTC datetime."""
        return from_ms(self.now_ms)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "now": self.now_ms}

    def __str__(self) -> str:
        return f"simulated clock: {iso(self.now_ms)}" if self.simulated else "wall clock"


def store_clock(settings: Settings | None = None) -> StoreClock:
    """The clock of the store the settings name (a server's, through ``/api/v1/clock``, when
    ``MODELLOOP_TRACKING_URI`` is set)."""
    settings = settings or load_settings()
    if settings.is_remote:
        from modelloop.transport import Transport

        assert settings.tracking_uri is not None
        transport = Transport(settings.tracking_uri, token=settings.token)
        try:
            answer = transport.call("GET", "/clock")
        finally:
            transport.close()
        return StoreClock(str(answer["kind"]), int(answer["now"]))
    return read_clock(_database(settings))


def read_clock(db: Database) -> StoreClock:
    """The clock recorded in ``db``; the wall clock when none is."""
    from sqlalchemy import select

    from modelloop.store import tables as t

    p = t.store_properties
    with db.read() as conn:
        value = conn.execute(select(p.c.value).where(p.c.key == _KEY)).scalar()
    recorded = json.loads(value) if value is not None else {}
    if recorded.get("kind") == SIMULATED:
        return StoreClock(SIMULATED, int(recorded["now"]))
    return StoreClock(WALL, now_ms())


def set_store_clock(
    at: datetime | int, *, settings: Settings | None = None, actor: str | None = None
) -> StoreClock:
    """Record that the store's data runs on a simulated clock, standing at ``at`` (a datetime,
    naive = UTC, or ms since the epoch). Advancing the clock is recording it again."""
    clock = StoreClock(SIMULATED, to_ms(at))
    _record(settings, clock, actor)
    return clock


def use_wall_clock(*, settings: Settings | None = None, actor: str | None = None) -> bool:
    """Put the store back on the wall clock (its data is live again); False if it was."""
    return _record(settings, None, actor)


def _record(settings: Settings | None, clock: StoreClock | None, actor: str | None) -> bool:
    """Store the clock (None: the wall clock); audit a change of kind. False if unchanged."""
    from sqlalchemy import delete, select

    from modelloop import audit
    from modelloop.store import tables as t
    from modelloop.tracking.source import current_user

    p = t.store_properties
    wall = now_ms()
    with _database(settings).write() as conn:
        audit.lock(conn)
        value = conn.execute(select(p.c.value).where(p.c.key == _KEY)).scalar()
        before = json.loads(value) if value is not None else None
        after = None if clock is None else clock.to_dict()
        if before == after:
            return False
        if clock is None:
            conn.execute(delete(p).where(p.c.key == _KEY))
        else:
            _upsert(conn, {"key": _KEY, "value": json.dumps(after), "updated_at": wall})
        kind_before = (before or {}).get("kind", WALL)
        kind_after = WALL if clock is None else clock.kind
        if kind_before != kind_after:
            audit.append(
                conn,
                time=wall,
                actor=actor or current_user(),
                action="store.clock",
                object_type="store",
                object_id=_KEY,
                before=before,
                after=after or {"kind": WALL},
            )
    return True


def _upsert(conn: Any, values: dict[str, Any]) -> None:
    """Insert or replace one property (atomic on both databases, however many writers)."""
    from sqlalchemy.dialects import postgresql, sqlite

    from modelloop.store import tables as t

    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(t.store_properties).values(**values)
    update = {k: statement.excluded[k] for k in ("value", "updated_at")}
    conn.execute(statement.on_conflict_do_update(index_elements=["key"], set_=update))


def _database(settings: Settings | None) -> Database:
    from modelloop.configs import local_database

    return local_database(settings, "The store's clock and its other properties")
