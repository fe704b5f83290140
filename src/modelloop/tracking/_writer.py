"""Asynchronous, batched metric logging with a durability barrier.

``submit`` appends a point to an in-memory batch and returns at once; a background thread writes
what has accumulated every few milliseconds (sooner when a batch fills). ``flush`` returns only
once every point submitted before it is committed, and re-raises a write error, so what
``flush`` acknowledged is never lost.
"""

from __future__ import annotations

import atexit
import contextlib
import threading
import time
import weakref
from collections import defaultdict
from typing import Protocol

from modelloop.errors import ConnectionLost, ModelloopError, ServerUnavailable
from modelloop.tracking.entities import Metric


class _MetricSink(Protocol):
    def log_batch(self, run_id: str, metrics: list[Metric]) -> None: ...


_Point = tuple[str, Metric]  # (run_id, point)


class MetricWriter:
    def __init__(
        self,
        sink: _MetricSink,
        interval: float = 0.005,
        batch_size: int = 10_000,
        max_pending: int = 1_000_000,
    ) -> None:
        self._sink = sink
        self._interval = interval
        self._batch_size = batch_size
        self._max_pending = max_pending
        self._lock = threading.Lock()
        self._done = threading.Condition(threading.Lock())
        self._wake = threading.Event()  # something is pending
        self._hurry = threading.Event()  # a batch is full or someone waits in flush()
        self._pending: list[_Point] = []
        self._submitted = 0
        self._durable = 0
        self._error: ModelloopError | None = None
        self._thread: threading.Thread | None = None
        self._closed = False
        _live_writers.add(self)

    def submit(self, run_id: str, metric: Metric) -> None:
        with self._lock:
            self._pending.append((run_id, metric))
            self._submitted += 1
            size = len(self._pending)
            if self._thread is None:
                self._start()
        if size == 1:
            self._wake.set()
        elif size >= self._batch_size:
            self._hurry.set()
            if size >= self._max_pending:  # back-pressure: a slow backend bounds our memory
                self.flush()

    def flush(self, timeout: float | None = None) -> None:
        """Block until every point submitted so far is durable; raise what went wrong."""
        with self._lock:
            target = self._submitted
        if target > self._durable:
            self._wake.set()
            self._hurry.set()
            deadline = None if timeout is None else time.monotonic() + timeout
            with self._done:
                while self._durable < target:
                    left = None if deadline is None else deadline - time.monotonic()
                    if left is not None and left <= 0:
                        raise ServerUnavailable(f"Metrics not written within {timeout} s")
                    self._done.wait(left)
        error, self._error = self._error, None
        if error is not None:
            raise error

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self._closed = True
            self._wake.set()
            self._hurry.set()

    def _start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="modelloop-writer", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        """Sleep while idle; once a point arrives, let a batch gather for ``interval``."""
        while not self._closed:
            self._wake.wait()
            self._hurry.wait(self._interval)
            self._wake.clear()
            self._hurry.clear()
            self._write_pending()

    def _write_pending(self) -> None:
        with self._lock:
            batch, self._pending = self._pending, []
            upto = self._submitted
        if batch:
            by_run: dict[str, list[Metric]] = defaultdict(list)
            for run_id, metric in batch:
                by_run[run_id].append(metric)
            for run_id, metrics in by_run.items():
                self._write(run_id, metrics)
        with self._done:
            self._durable = upto
            self._done.notify_all()

    def _write(self, run_id: str, metrics: list[Metric]) -> None:
        delay = 0.05
        for attempt in range(6):
            try:
                self._sink.log_batch(run_id, metrics)
                return
            except ConnectionLost as exc:  # maybe applied: a retry could duplicate points
                self._error = exc
                return
            except ServerUnavailable as exc:  # nothing applied: retry with back-off, then report
                if attempt == 5:
                    self._error = exc
                    return
                time.sleep(delay)
                delay *= 2
            except ModelloopError as exc:
                self._error = exc
                return
            except Exception as exc:  # an unexpected failure must still reach flush()
                self._error = ModelloopError(f"Writing metrics failed: {exc!r}")
                return


_live_writers: weakref.WeakSet[MetricWriter] = weakref.WeakSet()


@atexit.register
def _flush_at_exit() -> None:
    """Best effort on a clean interpreter exit: unflushed points are written, errors dropped."""
    for writer in list(_live_writers):
        with contextlib.suppress(ModelloopError):
            writer.close()
