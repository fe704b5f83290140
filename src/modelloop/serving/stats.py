"""Requests and errors per minute, from each serving process to the metadata database.

``/metrics`` answers for one process and only to whoever can reach it; the web UI shows a
deployment's error rate from the ``serving_stats`` table instead. A request only increments an
in-memory counter (a lock and two additions); a thread adds the counts to the table every
``interval`` seconds and on shutdown, one row per (deployment, process, minute, route), so
several workers and replicas never write the same row. Minutes come from the app's clock, the
one that stamps predictions (a simulation's, in the demo).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections import defaultdict
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from modelloop.store import Database

log = logging.getLogger("modelloop.serving.stats")

COUNTED_ROUTES = frozenset({"/predict", "/explain", "/feedback"})
_MINUTE_MS = 60_000


class TrafficStats:
    def __init__(
        self,
        db: Database,
        deployment: Callable[[], str],
        clock: Callable[[], int],
        *,
        interval: float = 5.0,
    ) -> None:
        self._db = db
        self._deployment = deployment
        self._clock = clock
        self._interval = interval
        self.instance = f"{socket.gethostname()[:80]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._lock = threading.Lock()
        self._pending: defaultdict[tuple[str, int, str], list[int]] = defaultdict(lambda: [0, 0])
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def count(self, route: str, status: int) -> None:
        if route not in COUNTED_ROUTES:
            return
        key = (self._deployment(), self._clock() // _MINUTE_MS * _MINUTE_MS, route)
        with self._lock:
            counts = self._pending[key]
            counts[0] += 1
            counts[1] += status >= 400

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="modelloop-stats", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self.flush()

    def flush(self) -> None:
        """Add what was counted since the last flush to the table; kept for later on failure."""
        from sqlalchemy import insert, select, update

        from modelloop.store import tables as t

        with self._lock:
            pending, self._pending = self._pending, defaultdict(lambda: [0, 0])
        if not pending:
            return
        s = t.serving_stats
        try:
            with self._db.write() as conn:
                for (deployment, minute, route), (requests, errors) in pending.items():
                    row = (s.c.deployment == deployment) & (s.c.instance == self.instance)
                    row &= (s.c.minute == minute) & (s.c.route == route)
                    if conn.execute(select(s.c.requests).where(row)).first() is None:
                        conn.execute(
                            insert(s).values(
                                deployment=deployment,
                                instance=self.instance,
                                minute=minute,
                                route=route,
                                requests=requests,
                                errors=errors,
                            )
                        )
                    else:
                        added = {"requests": s.c.requests + requests, "errors": s.c.errors + errors}
                        conn.execute(update(s).where(row).values(added))
        except Exception as exc:  # the database is away: keep the counts for the next flush
            log.warning("Could not store serving stats (kept for the next try): %s", exc)
            with self._lock:
                for key, (requests, errors) in pending.items():
                    counts = self._pending[key]
                    counts[0] += requests
                    counts[1] += errors

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.flush()


def counted(db: Database, deployment: str, start: int, end: int) -> tuple[int, int]:
    """(requests, errors) the serving processes counted for ``deployment`` in ``[start, end)``
    (ms; whole minutes), all routes together."""
    from sqlalchemy import func, select

    from modelloop.store import tables as t

    s = t.serving_stats
    query = select(func.sum(s.c.requests), func.sum(s.c.errors)).where(
        s.c.deployment == deployment, s.c.minute >= start, s.c.minute < end
    )
    with db.read() as conn:
        requests, errors = conn.execute(query).one()
    return int(requests or 0), int(errors or 0)


def counted_by_minute(
    db: Database, deployment: str, start: int, end: int
) -> list[tuple[int, str, int, int]]:
    """``(minute, route, requests, errors)`` the serving processes counted for ``deployment`` in
    ``[start, end)`` (ms; whole minutes), summed over processes, oldest first."""
    from sqlalchemy import func, select

    from modelloop.store import tables as t

    s = t.serving_stats
    query = (
        select(s.c.minute, s.c.route, func.sum(s.c.requests), func.sum(s.c.errors))
        .where(s.c.deployment == deployment, s.c.minute >= start, s.c.minute < end)
        .group_by(s.c.minute, s.c.route)
        .order_by(s.c.minute, s.c.route)
    )
    with db.read() as conn:
        rows = conn.execute(query).all()
    return [(int(m), str(r), int(n or 0), int(e or 0)) for m, r, n, e in rows]
