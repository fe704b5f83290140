"""Marking runs whose process died KILLED: ``modelloop runs sweep`` and a thread of the server.

A RUNNING run that names its owning process (``ml.start_run`` records it, see
:mod:`modelloop.tracking.liveness`) is marked KILLED, with the reason as its ``error``, the tag
``modelloop.swept`` (``process_gone`` or ``no_heartbeat``) and its end dated at its last sign of
life (the last heartbeat, else its start), when either

- its process ran on this host, in this pid namespace, and is gone: no such pid, a zombie, or
  the pid now belongs to a process started later. This is known at once;
- or it stopped beating: no heartbeat for 5 times the interval it promised (``stale_after`` sets
  another threshold, never under 2 intervals). This works from anywhere: another host, a
  container, through a server.

Runs that name no process (started before modelloop recorded heartbeats, by
``Client.create_run`` without ``heartbeat=True``, or with ``MODELLOOP_HEARTBEAT_SECONDS=0``) are
never swept by surprise: they are counted as untracked and marked only when asked, with
``untracked_older_than`` (those started longer ago than that).

Caveats. A heartbeat carries the owner's clock and is compared with the sweeper's: clocks apart
by more than the threshold mislead the heartbeat test (not the pid test). A process suspended
(``SIGSTOP``, a sleeping laptop) for longer than the threshold is taken for dead; if it wakes,
its ``end_run`` fails with Conflict.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import timedelta

from modelloop.clock import iso, now_ms
from modelloop.errors import Conflict, NotFound
from modelloop.settings import Settings
from modelloop.tracking.entities import Run, RunStatus
from modelloop.tracking.liveness import (
    ENV_PROCESS,
    TAG_HEARTBEAT,
    Process,
    process_gone,
    this_process,
)
from modelloop.tracking.store import TrackingStore

TAG_SWEPT = "modelloop.swept"
PROCESS_GONE, NO_HEARTBEAT, UNTRACKED = "process_gone", "no_heartbeat", "untracked"
MISSED_BEATS = 5  # the default threshold, in heartbeat intervals
MIN_MISSED_BEATS = 2  # no threshold is shorter
DEFAULT_HEARTBEAT_SECONDS = 30.0
_PAGE = 1000

log = logging.getLogger("modelloop.tracking.sweep")


@dataclass(frozen=True, slots=True)
class SweptRun:
    """A run the sweep marked (or, in a dry run, would mark) KILLED, and why."""

    run_id: str
    experiment_id: str
    name: str
    cause: str  # process_gone | no_heartbeat | untracked
    reason: str  # a sentence, stored as the run's error
    last_seen: int | None  # ms since the epoch: its recorded end (None: when swept)


@dataclass(frozen=True, slots=True)
class Sweep:
    killed: tuple[SweptRun, ...]
    alive: int  # RUNNING runs whose process is alive or still beating
    untracked: int  # RUNNING runs that name no process, left alone
    dry_run: bool


def sweep_runs(
    store: TrackingStore,
    *,
    stale_after: timedelta | None = None,
    untracked_older_than: timedelta | None = None,
    dry_run: bool = False,
    here: Process | None = None,
    quiet_before: int | None = None,
) -> Sweep:
    """Mark the RUNNING runs of every experiment whose process is dead KILLED.

    ``here`` is the sweeping process (default: this one; pids are checked only on its host).
    Silence before ``quiet_before`` (ms) does not count: a server that was down could not
    receive heartbeats. Each run is read again just before it is marked, and one that ended or
    beat in between is left alone."""
    here = here or this_process()
    killed: list[SweptRun] = []
    alive = untracked = 0
    for run in _running_runs(store):
        tracked = Process.from_record(run.environment.get(ENV_PROCESS)) is not None
        verdict = _judge(run, here, stale_after, untracked_older_than, quiet_before)
        if verdict is None:
            if tracked:
                alive += 1
            else:
                untracked += 1
            continue
        if not dry_run:
            try:
                fresh = store.get_run(run.run_id)
            except NotFound:
                continue
            if fresh.status is not RunStatus.RUNNING:
                continue
            verdict = _judge(fresh, here, stale_after, untracked_older_than, quiet_before)
            if verdict is None:
                alive += 1
                continue
            try:
                _mark_killed(store, verdict)
            except (Conflict, NotFound):  # it ended (or vanished) since we read it
                continue
        killed.append(verdict)
    return Sweep(tuple(killed), alive, untracked, dry_run)


def _judge(
    run: Run,
    here: Process,
    stale_after: timedelta | None = None,
    untracked_older_than: timedelta | None = None,
    quiet_before: int | None = None,
) -> SweptRun | None:
    """Why ``run`` (RUNNING) is dead, or None while it may be alive."""
    now = now_ms()
    owner = Process.from_record(run.environment.get(ENV_PROCESS))
    if owner is None:
        if untracked_older_than is None:
            return None
        limit = untracked_older_than.total_seconds() * 1000
        if now - run.start_time <= limit:
            return None
        reason = (
            f"RUNNING since {iso(run.start_time)} without liveness records; swept as older "
            f"than {_seconds(limit / 1000)}"
        )
        return SweptRun(run.run_id, run.experiment_id, run.name, UNTRACKED, reason, None)
    last_seen = max(run.start_time, _heartbeat(run))
    gone = process_gone(owner, here)
    if gone is not None:
        reason = f"{gone}; the run did not end (last sign of life {iso(last_seen)})"
        return SweptRun(run.run_id, run.experiment_id, run.name, PROCESS_GONE, reason, last_seen)
    beat = owner.heartbeat_seconds or DEFAULT_HEARTBEAT_SECONDS
    threshold = MISSED_BEATS * beat
    if stale_after is not None:
        threshold = max(stale_after.total_seconds(), MIN_MISSED_BEATS * beat)
    silent = (now - max(last_seen, quiet_before or 0)) / 1000
    if silent <= threshold:
        return None
    reason = (
        f"no heartbeat since {iso(last_seen)} ({_seconds((now - last_seen) / 1000)} ago; "
        f"process {owner.pid} on host {owner.host} promised one every {beat:g} s)"
    )
    return SweptRun(run.run_id, run.experiment_id, run.name, NO_HEARTBEAT, reason, last_seen)


class RunSweeper:
    """A thread of ``modelloop server``: sweeps at start, then every ``interval`` seconds.

    Silence from before the server started is not counted (its clients could not beat), so at
    start only runs whose process on this host is gone are marked at once."""

    def __init__(self, settings: Settings, *, interval: float | None = None) -> None:
        self.settings = settings
        self.interval = interval or settings.heartbeat_seconds or DEFAULT_HEARTBEAT_SECONDS
        self._started = now_ms()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> RunSweeper:
        self._started = now_ms()
        self._thread = threading.Thread(target=self._loop, name="modelloop-sweeper", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _loop(self) -> None:
        from modelloop.tracking.client import open_store

        store: TrackingStore | None = None
        try:
            while not self._stop.is_set():
                if store is None:
                    try:
                        store = open_store(self.settings)
                    except Exception:  # the database is not up yet: try again next time
                        log.exception("cannot open the store to sweep dead runs")
                if store is not None:
                    self.tick(store)
                self._stop.wait(self.interval)
        finally:
            if store is not None:
                store.close()

    def tick(self, store: TrackingStore) -> Sweep | None:
        try:
            sweep = sweep_runs(store, quiet_before=self._started)
        except Exception:
            log.exception("sweeping dead runs failed")
            return None
        for run in sweep.killed:
            log.warning("run %s (%s) marked KILLED: %s", run.run_id, run.name, run.reason)
        return sweep


def _running_runs(store: TrackingStore) -> list[Run]:
    """Every RUNNING run, read before any is changed (so paging does not skip any)."""
    ids = [e.experiment_id for e in store.list_experiments()]
    runs: list[Run] = []
    while ids:
        page = store.search_runs(ids, "status = 'RUNNING'", max_results=_PAGE, offset=len(runs))
        runs += page
        if len(page) < _PAGE:
            break
    return runs


def _mark_killed(store: TrackingStore, swept: SweptRun) -> None:
    """Tag, then end: two writes, so that no reader sees a swept run KILLED without its tag,
    and a sweep cut off between them leaves a RUNNING run the next sweep marks again (the
    other order left it KILLED for good without the tag). A run that ended by itself in
    between (Conflict) loses the tag again: it was not swept."""
    store.log_batch(swept.run_id, tags={TAG_SWEPT: swept.cause})
    try:
        store.end_run(swept.run_id, RunStatus.KILLED, swept.reason, end_time=swept.last_seen)
    except Conflict:
        store.delete_tag(swept.run_id, TAG_SWEPT)
        raise


def _heartbeat(run: Run) -> int:
    try:
        return int(run.tags.get(TAG_HEARTBEAT, "0"))
    except ValueError:
        return 0


def _seconds(seconds: float) -> str:
    """A duration for a sentence: ``45 s``, ``12 min``, ``3.5 h``, ``2 d``."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172_800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86_400:.1f} d"
