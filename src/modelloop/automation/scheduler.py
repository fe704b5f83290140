"""Monitors and policies on a schedule: a thread of ``modelloop server`` that runs what is due.

Every ``interval`` seconds it reads the stored monitors and policies (so ``apply`` needs no
restart), runs each monitor's due windows (periodic windows as they close; "last N" windows
every ``every``, default 1h), retries undelivered alerts, then steps every automation policy.
Monitors are idempotent per window, so a tick that overlaps another server's, or repeats after a
crash, stores nothing twice. One monitor or policy failing (a deleted model, an unreadable log)
is logged and does not stop the others.

A tick runs at the store's clock (:func:`modelloop.store_clock.store_clock`): the wall clock, or
on a store filled by a simulation the instant the simulation reached, so it computes nothing
beyond that instant (no empty windows from the simulated days to today). After a pause, a
monitor catches up on at most its ``catch_up`` of missed windows; what it leaves behind is said
once in the log, not at every tick.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from modelloop.settings import Settings

if TYPE_CHECKING:
    from modelloop.monitoring.windows import Backlog
    from modelloop.store_clock import StoreClock

log = logging.getLogger("modelloop.automation.scheduler")

DEFAULT_INTERVAL = 60.0
_DEFAULT_EVERY = timedelta(hours=1)


class Scheduler:
    def __init__(self, settings: Settings, *, interval: float = DEFAULT_INTERVAL) -> None:
        self.settings = settings
        self.interval = interval
        self.ticks = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_run: dict[str, float] = {}  # "last N" monitors: monotonic time of last run
        self._backlogs: dict[tuple[str, str], Backlog] = {}  # the last said, per monitor, kind
        self._clock_kind: str | None = None  # the clock last said

    def start(self) -> Scheduler:
        self._thread = threading.Thread(target=self._loop, name="modelloop-monitors", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.tick()
            self._stop.wait(self.interval)

    def tick(self, now: datetime | None = None) -> int:
        """Run every due monitor once, then step every policy, at ``now`` (default: the store's
        clock); the number of windows stored."""
        from modelloop.monitoring.runner import check_windows
        from modelloop.monitoring.sql import SqlMonitorStore
        from modelloop.store_clock import store_clock

        stored = 0
        try:
            if now is None:
                clock = store_clock(self.settings)
                self._say_clock(clock)
                now = clock.now
            monitors = SqlMonitorStore.local(self.settings).list()
        except Exception:
            log.exception("cannot read the store's clock and monitors")
            return 0
        for entry in monitors:
            monitor = entry.monitor
            if self._stop.is_set():
                break
            if monitor.last is not None:
                every = (monitor.every or _DEFAULT_EVERY).total_seconds()
                if time.monotonic() - self._last_run.get(monitor.name, -every) < every:
                    continue
                self._last_run[monitor.name] = time.monotonic()
            try:
                results = check_windows(
                    monitor.name, now=now, settings=self.settings, on_backlog=self._say_backlog
                )
            except Exception as exc:
                reason = getattr(exc, "message", None) or repr(exc)
                log.error("monitor %s failed: %s", monitor.name, reason)
                continue
            stored += sum(r.stored for r in results)
        self._step_policies(now)
        self.ticks += 1
        return stored

    def _say_clock(self, clock: StoreClock) -> None:
        """Say once (and again when it changes) that the store runs on a simulated clock."""
        if clock.kind != self._clock_kind:
            self._clock_kind = clock.kind
            if clock.simulated:
                log.warning(
                    "the store runs on a %s: monitors and policies run at that instant, not at "
                    "the wall clock ('modelloop clock --wall' makes the store live again)",
                    clock,
                )

    def _say_backlog(self, backlog: Backlog) -> None:
        """A monitor's backlog, said once: not again while it stays the same."""
        key = (backlog.monitor, backlog.kind)
        if self._backlogs.get(key) != backlog:
            self._backlogs[key] = backlog
            log.warning("%s", backlog)

    def _step_policies(self, now: datetime) -> None:
        """After the monitors, so that a policy sees the windows this tick stored."""
        from modelloop.automation.loop import step_policy
        from modelloop.automation.policy import list_policies

        try:
            policies = list_policies(settings=self.settings)
        except Exception:
            log.exception("cannot list policies")
            return
        for policy in policies:
            if self._stop.is_set():
                return
            try:
                step_policy(policy.name, now=now, settings=self.settings)
            except Exception as exc:
                reason = getattr(exc, "message", None) or repr(exc)
                log.error("policy %s failed: %s", policy.name, reason)
