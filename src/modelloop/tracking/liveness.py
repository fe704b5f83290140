"""What a process records so that a run it leaves behind can be recognised as dead.

A process killed with ``SIGKILL`` (or by the OOM killer, a lost machine, a closed laptop) never
ends its runs; they would stay RUNNING forever. So a run started with ``ml.start_run`` records:

- at creation, in ``run.environment["process"]``, which process owns it: host name, pid, the
  pid's start time and pid namespace (Linux; they tell a reused pid and a container apart) and
  the heartbeat interval it promises;
- every ``MODELLOOP_HEARTBEAT_SECONDS`` (default 30) while it is active, the tag
  ``modelloop.heartbeat`` (ms since the epoch), written by one daemon thread per client.

:mod:`modelloop.tracking.sweep` reads both to mark dead runs KILLED. Only the SDK's own writes
are used (a tag through ``log_batch``), so this works on SQLite, PostgreSQL and through a server.
"""

from __future__ import annotations

import atexit
import logging
import os
import socket
import sys
import threading
import weakref
from dataclasses import asdict, dataclass
from typing import Any

from modelloop.clock import now_ms
from modelloop.errors import NotFound
from modelloop.tracking.store import RunStore

TAG_HEARTBEAT = "modelloop.heartbeat"
ENV_PROCESS = "process"  # the key of run.environment that names the owning process

log = logging.getLogger("modelloop.tracking.liveness")


@dataclass(frozen=True, slots=True)
class Process:
    """A process, named so that another process on the same host can tell whether it lives."""

    host: str
    pid: int
    start: str | None = None  # Linux: start time in clock ticks since boot (a reused pid differs)
    namespace: str | None = None  # Linux: "<boot id>:<pid namespace>", where the pid means this
    heartbeat_seconds: float = 0.0  # the interval the owner promised (0: unknown)

    def record(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_record(cls, record: object) -> Process | None:
        """The process a run's environment names, or None when absent or malformed."""
        if not isinstance(record, dict):
            return None
        host, pid = record.get("host"), record.get("pid")
        start, namespace = record.get("start"), record.get("namespace")
        seconds = record.get("heartbeat_seconds", 0.0)
        if not isinstance(host, str) or isinstance(pid, bool) or not isinstance(pid, int):
            return None
        if not isinstance(seconds, int | float) or isinstance(seconds, bool) or seconds < 0:
            return None
        return cls(
            host,
            pid,
            start if isinstance(start, str) else None,
            namespace if isinstance(namespace, str) else None,
            float(seconds),
        )


def this_process(heartbeat_seconds: float = 0.0) -> Process:
    """The calling process."""
    pid = os.getpid()
    return Process(
        socket.gethostname(), pid, _start_of(pid), _pid_namespace(), float(heartbeat_seconds)
    )


def process_gone(owner: Process, here: Process) -> str | None:
    """Why ``owner`` is certainly not running, seen from ``here``; None when it may be.

    Only a process on the same host and in the same pid namespace can be checked: the pid no
    longer exists, is a zombie, or belongs to a process started later (the pid was reused).
    Anywhere else (another host, a container, Windows) the answer is None and only the heartbeat
    tells."""
    if owner.host != here.host or owner.namespace != here.namespace or sys.platform == "win32":
        return None
    where = f"process {owner.pid} on host {owner.host}"
    if not _pid_exists(owner.pid):
        return f"{where} is gone"
    if _is_zombie(owner.pid):
        return f"{where} is gone (a zombie: it exited and was not reaped)"
    if owner.start is not None:
        start = _start_of(owner.pid)
        if start is not None and start != owner.start:
            return f"{where} is gone (the pid now belongs to another process)"
    return None


class Heartbeat:
    """Writes ``modelloop.heartbeat`` for a client's active runs every ``interval`` seconds.

    One daemon thread, started with the first run; a failed write (a server restarting) is
    logged and retried at the next beat, never raised into the training code."""

    def __init__(self, store: RunStore, interval: float) -> None:
        self._store = store
        self.interval = interval
        self._runs: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        _live_heartbeats.add(self)

    def add(self, run_id: str) -> None:
        with self._lock:
            self._runs.add(run_id)
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(
                    target=self._loop, name="modelloop-heartbeat", daemon=True
                )
                self._thread.start()

    def discard(self, run_id: str) -> None:
        with self._lock:
            self._runs.discard(run_id)

    @property
    def runs(self) -> frozenset[str]:
        with self._lock:
            return frozenset(self._runs)

    def close(self) -> None:
        """Stop beating; a beat under way finishes in the background."""
        self._stop.set()

    def beat(self) -> None:
        """Record now as the last sign of life of every active run."""
        at = str(now_ms())
        for run_id in self.runs:
            try:
                self._store.log_batch(run_id, tags={TAG_HEARTBEAT: at})
            except NotFound:  # deleted (or the store was swapped): nothing left to keep alive
                self.discard(run_id)
            except Exception as exc:  # the next beat tries again
                log.warning("heartbeat of run %s not recorded: %s", run_id, exc)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.beat()


_live_heartbeats: weakref.WeakSet[Heartbeat] = weakref.WeakSet()


@atexit.register
def _stop_at_exit() -> None:
    """No beat may start while the interpreter (and the store under it) shuts down."""
    for heartbeat in list(_live_heartbeats):
        heartbeat.close()


# -- what the operating system says about a pid -------------------------------------------------


def _pid_exists(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)  # signal 0: no signal, only the existence and permission checks
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it exists
        return True
    return True


def _stat_fields(pid: int) -> list[str] | None:
    """Fields 3.. of ``/proc/<pid>/stat`` (after the command name, which may hold spaces)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as file:
            text = file.read()
    except OSError:
        return None
    return text[text.rfind(")") + 2 :].split()


def _start_of(pid: int) -> str | None:
    fields = _stat_fields(pid)
    return fields[19] if fields is not None and len(fields) > 19 else None  # field 22: starttime


def _is_zombie(pid: int) -> bool:
    fields = _stat_fields(pid)
    return fields is not None and bool(fields) and fields[0] in ("Z", "X")


def _pid_namespace() -> str | None:
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as file:
            boot = file.read().strip()
        return f"{boot}:{os.readlink('/proc/self/ns/pid')}"
    except OSError:
        return None
