"""The prediction log: every answer, appended to partitioned Parquet off the request path.

    <prediction_log_uri>/model=<name>/date=YYYY-MM-DD/part-<unix ms>-<uuid4 hex>.parquet

A request only appends its batch to an in-memory list (a lock and an ``append``); a background
thread turns what accumulated into Parquet every ``flush_interval`` seconds, or sooner once
``flush_rows`` rows wait. Each file holds one model's rows of one UTC day (the day of the
prediction, not of the write), sorted by ``prediction_id``, with the columns

    prediction_id  timestamp (UTC, ms)  deployment  model_name  model_version  role
    latency_ms  score  <sticky key, as text>  <every input feature, one column each>

Input features whose name collides with one of those columns get an ``input_`` prefix. Files
appear atomically (written under a dot-name, then renamed), readers skip dot-files, and every
process names its own files, so several ``--workers`` share a directory safely.

Prediction ids are UUIDv7-style: their first 48 bits are the prediction's unix time in ms, so an
id alone says which date partition holds it, and ids sort in time order (as text, too).
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import uuid
import weakref
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from modelloop.clock import now_ms

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa
    import pyarrow.fs as pafs

log = logging.getLogger("modelloop.serving.prediction_log")

META_COLUMNS = (
    "prediction_id",
    "timestamp",
    "deployment",
    "model_name",
    "model_version",
    "role",
    "latency_ms",
    "score",
)
_RESERVED = frozenset((*META_COLUMNS, "model", "date", "label", "label_text", "labelled_at"))
_DAY_MS = 86_400_000
_ATTEMPTS = 3
_VARIANT = "89ab"


def new_prediction_ids(count: int, ms: int) -> list[str]:
    """``count`` UUIDv7-style ids stamped with unix time ``ms``."""
    t = f"{ms & 0xFFFFFFFFFFFF:012x}"
    head = f"{t[:8]}-{t[8:]}-7"
    noise = os.urandom(10 * count).hex()
    ids = []
    for i in range(0, 20 * count, 20):
        r = noise[i : i + 20]
        ids.append(f"{head}{r[:3]}-{_VARIANT[int(r[3], 16) & 3]}{r[4:7]}-{r[8:20]}")
    return ids


def prediction_time_ms(prediction_id: str) -> int:
    """The unix time in ms a prediction id was made at; ValueError for anything else."""
    if len(prediction_id) != 36 or prediction_id[14] != "7":
        raise ValueError(f"not a prediction id: {prediction_id!r}")
    parsed = uuid.UUID(prediction_id)
    if str(parsed) != prediction_id:  # upper case, braces, ...: ids are compared as text
        raise ValueError(f"not a prediction id: {prediction_id!r}")
    return parsed.int >> 80


def partition_date(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d")


class InputDecoder(Protocol):
    """What turns a served model's float64 input matrix back into named, typed columns."""

    def input_columns(self, matrix: np.ndarray) -> Mapping[str, Any]: ...


@dataclass(slots=True, eq=False)
class PredictionBatch:
    """The rows one request had one model answer (or shadow-score)."""

    prediction_ids: list[str]
    timestamp_ms: int
    deployment: str
    model_name: str
    model_version: int
    role: str  # champion, challenger (canary) or shadow
    latency_ms: float
    scores: np.ndarray
    inputs: np.ndarray
    decoder: InputDecoder
    keys: Mapping[str, list[Any]] | None = None  # entity columns, e.g. the sticky key


class PredictionLog:
    """Collects :class:`PredictionBatch` es in memory; a thread writes them as Parquet."""

    def __init__(
        self,
        uri: str,
        *,
        flush_interval: float = 1.0,
        flush_rows: int = 50_000,
        max_pending_rows: int = 2_000_000,
    ) -> None:
        self.uri = uri
        self._fs, self._root = open_log_filesystem(uri)
        self._local = type(self._fs).__name__ == "LocalFileSystem"
        self._interval = flush_interval
        self._flush_rows = flush_rows
        self._max_pending = max_pending_rows
        self._lock = threading.Lock()
        self._done = threading.Condition()
        self._wake = threading.Event()
        self._pending: list[PredictionBatch] = []
        self._in_flight: list[PredictionBatch] = []
        self._pending_rows = 0
        self._appended = 0  # batches ever appended
        self._settled = 0  # batches written (or given up on)
        self._thread: threading.Thread | None = None
        self._closed = False
        self.rows_written = 0
        self.rows_dropped = 0
        self.write_errors = 0
        self._failures = 0  # failed writes in a row
        _open_logs.add(self)

    @property
    def pending_rows(self) -> int:
        return self._pending_rows

    def append(self, batch: PredictionBatch) -> None:
        """Enqueue; never blocks on I/O. Over ``max_pending_rows`` the batch is dropped."""
        rows = len(batch.prediction_ids)
        with self._lock:
            if self._pending_rows + rows > self._max_pending or self._closed:
                self.rows_dropped += rows
                return
            self._pending.append(batch)
            self._pending_rows += rows
            self._appended += 1
            if self._thread is None:
                self._start()
        if self._pending_rows >= self._flush_rows:
            self._wake.set()

    def pending_ids(self, candidates: Iterable[str]) -> set[str]:
        """Which of ``candidates`` this process answered but has not written yet."""
        wanted = set(candidates)
        with self._lock:
            batches = [*self._in_flight, *self._pending]
        return {pid for b in batches for pid in b.prediction_ids if pid in wanted}

    def flush(self, timeout: float | None = 30.0) -> bool:
        """Block until everything appended so far is on disk; False on timeout."""
        with self._lock:
            target = self._appended
        deadline = None if timeout is None else time.monotonic() + timeout
        self._wake.set()
        with self._done:
            while self._settled < target:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._done.wait(0.1 if left is None else min(left, 0.1))
                self._wake.set()
        return True

    def close(self, timeout: float = 30.0) -> None:
        """Write what is pending and stop the thread; later appends are dropped."""
        flushed = self.flush(timeout)
        with self._lock:
            self._closed = True
            thread = self._thread
        self._wake.set()
        if thread is not None:
            thread.join(timeout)
        if not flushed:
            log.error("Prediction log %s: %d rows not written", self.uri, self._pending_rows)
        _open_logs.discard(self)

    def _start(self) -> None:
        self._thread = threading.Thread(
            target=self._run, name="modelloop-prediction-log", daemon=True
        )
        self._thread.start()

    def _run(self) -> None:
        while True:
            self._wake.wait(self._interval)
            self._wake.clear()
            with self._lock:
                batches, self._pending = self._pending, []
                self._in_flight = batches
                target = self._appended
                closed = self._closed
            settled = self._write_or_requeue(batches) if batches else True
            with self._lock:
                self._in_flight = []
            with self._done:
                if settled:
                    self._settled = max(self._settled, target)
                self._done.notify_all()
            if closed:
                return

    def _write_or_requeue(self, batches: list[PredictionBatch]) -> bool:
        """Write; what failed goes back for the next round. After ``_ATTEMPTS`` failures in a
        row (or once closed) it is dropped instead: a storage outage costs memory for a while,
        and rows that can never be written do not block the others forever."""
        failed = self._write(batches)
        rows = sum(len(b.prediction_ids) for b in batches)
        lost = sum(len(b.prediction_ids) for b in failed)
        self.rows_written += rows - lost
        if not failed:
            self._failures = 0
            with self._lock:
                self._pending_rows -= rows
            return True
        self.write_errors += 1
        self._failures += 1
        give_up = self._failures >= _ATTEMPTS or self._closed
        with self._lock:
            self._pending_rows -= rows - lost
            if give_up:
                self.rows_dropped += lost
                self._pending_rows -= lost
            else:
                self._pending[:0] = failed
        if give_up:
            log.error("Prediction log %s: dropped %d rows after repeated failures", self.uri, lost)
            self._failures = 0
            return True
        time.sleep(min(self._interval, 1.0))
        return False

    def _write(self, batches: list[PredictionBatch]) -> list[PredictionBatch]:
        """Write each model's rows; the batches of the models that failed."""
        import pyarrow as pa

        by_model: dict[str, list[PredictionBatch]] = defaultdict(list)
        for batch in batches:
            by_model[batch.model_name].append(batch)
        failed: list[PredictionBatch] = []
        for model, own in by_model.items():
            try:
                tables = [_table(group) for group in _groups(own)]
                try:
                    merged = [pa.concat_tables(tables, promote_options="default")]
                except (pa.ArrowInvalid, pa.ArrowTypeError):  # versions disagree on a type
                    merged = tables
                for table in merged:
                    for date, part in _split_by_date(table):
                        self._write_file(model, date, part.sort_by("prediction_id"))
            except Exception:
                rows = sum(len(b.prediction_ids) for b in own)
                log.exception(
                    "Prediction log %s: writing %d rows of %s failed", self.uri, rows, model
                )
                failed += own
        return failed

    def _write_file(self, model: str, date: str, table: pa.Table) -> None:
        import pyarrow.parquet as pq

        folder = f"{self._root}/{partition_dir(model, date)}"
        name = f"part-{now_ms()}-{uuid.uuid4().hex}.parquet"
        self._fs.create_dir(folder, recursive=True)
        if not self._local:  # object stores make a file visible only once it is complete
            pq.write_table(table, f"{folder}/{name}", filesystem=self._fs, compression="zstd")
            return
        hidden = f"{folder}/.{name}"
        pq.write_table(table, hidden, filesystem=self._fs, compression="zstd")
        self._fs.move(hidden, f"{folder}/{name}")


def _groups(batches: list[PredictionBatch]) -> Iterable[list[PredictionBatch]]:
    """Batches that share every constant column and input layout, so they stack as arrays."""
    groups: dict[tuple[Any, ...], list[PredictionBatch]] = defaultdict(list)
    for b in batches:
        keys = tuple(sorted(b.keys)) if b.keys else ()
        shape = (b.scores.ndim, *b.scores.shape[1:], b.inputs.shape[1])
        ident = (b.model_name, b.model_version, b.role, b.deployment, id(b.decoder), keys, shape)
        groups[ident].append(b)
    return groups.values()


def _table(group: list[PredictionBatch]) -> pa.Table:
    import numpy as np
    import pyarrow as pa

    first = group[0]
    counts = [len(b.prediction_ids) for b in group]
    rows = sum(counts)
    scores = np.concatenate([b.scores for b in group])
    columns: dict[str, Any] = {
        "prediction_id": pa.array([p for b in group for p in b.prediction_ids], pa.string()),
        "timestamp": pa.array(
            np.repeat(np.array([b.timestamp_ms for b in group], "datetime64[ms]"), counts),
            pa.timestamp("ms", tz="UTC"),
        ),
        "deployment": pa.repeat(pa.scalar(first.deployment), rows),
        "model_name": pa.repeat(pa.scalar(first.model_name), rows),
        "model_version": pa.repeat(pa.scalar(first.model_version, pa.int64()), rows),
        "role": pa.repeat(pa.scalar(first.role), rows),
        "latency_ms": pa.array(np.repeat([b.latency_ms for b in group], counts), pa.float64()),
        "score": _score_array(scores),
    }
    for key in first.keys or ():
        values = [v for b in group for v in (b.keys or {})[key]]
        columns[_column_name(key)] = pa.array(
            [None if v is None else str(v) for v in values], pa.string()
        )
    matrix = np.concatenate([b.inputs for b in group]) if len(group) > 1 else first.inputs
    for name, values in first.decoder.input_columns(matrix).items():
        columns[_column_name(name)] = values
    return pa.table(columns)


def _score_array(scores: np.ndarray) -> pa.Array:
    import numpy as np
    import pyarrow as pa

    values = pa.array(scores.reshape(-1).astype(np.float64, copy=False))
    if scores.ndim == 1:
        return values
    return pa.FixedSizeListArray.from_arrays(values, int(np.prod(scores.shape[1:])))


def _column_name(name: str) -> str:
    while name in _RESERVED:
        name = f"input_{name}"
    return name


def _split_by_date(table: pa.Table) -> Iterable[tuple[str, pa.Table]]:
    import numpy as np
    import pyarrow.compute as pc

    ms = table.column("timestamp").cast("int64").to_numpy()
    days = ms // _DAY_MS
    first, last = int(days.min()), int(days.max())
    if first == last:
        yield partition_date(first * _DAY_MS), table
        return
    for day in np.unique(days):
        yield partition_date(int(day) * _DAY_MS), table.filter(pc.equal(days, day))


# -- where the files are -------------------------------------------------------------------------


def open_log_filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    """A pyarrow filesystem and the root path inside it, for a directory or an fsspec URL."""
    import pyarrow.fs as pafs

    if "://" not in uri or uri.startswith("file://"):
        return pafs.LocalFileSystem(), str(Path(uri.removeprefix("file://")).absolute())
    import fsspec

    fs, path = fsspec.core.url_to_fs(uri)
    return pafs.PyFileSystem(pafs.FSSpecHandler(fs)), str(path).rstrip("/")


def partition_dir(model: str, date: str) -> str:
    return f"model={escape_partition(model)}/date={date}"


def escape_partition(value: str) -> str:
    """Hive partition values are percent-encoded; a model name never escapes its folder."""
    from urllib.parse import quote

    return quote(value, safe="-_.@ ")


_open_logs: weakref.WeakSet[PredictionLog] = weakref.WeakSet()


@atexit.register
def _close_open_logs() -> None:  # pragma: no cover - runs at interpreter exit
    for prediction_log in list(_open_logs):
        prediction_log.close(timeout=10.0)
