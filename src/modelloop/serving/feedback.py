"""Ground truth for logged predictions, arriving days later: ``POST /feedback``.

    {"prediction_id": "0192...", "label": 1}                       one
    [{"prediction_id": ..., "label": 0}, {"prediction_id": ..., "label": "chargeback"}, ...]

A label is a number (``true``/``false`` count as 1/0) or a text (a class name), and it must be
one the served model knows (:meth:`modelloop.flavors.OutputSpec.read_label`): a class of a
classifier, 0 or 1 for a probability without recorded classes, a number for a score. So nothing
is accepted that monitoring would ignore later: a binary classifier's label is stored as 1.0 for
the class its score is the probability of and 0.0 for the other (the class's name kept as text
when it is not that number). It lands in the ``feedback`` table (``label``, ``value_text``), at
most once per prediction. Malformed items fail the whole request before anything is stored (422
with one detail per problem, naming the allowed values). Otherwise every item is answered:
``stored``, ``duplicate`` (that prediction already has a label, or the id came twice in this
request: the first one counts) or ``unknown`` (no such prediction was logged).

A prediction id says when it was made, so looking it up reads only that day's partition of the
log, and only the files written after it; ids this process answered but has not written yet are
found in memory. Another replica's not-yet-written ids become visible within its flush interval,
so an id younger than a few seconds is looked up again after a short wait before being called
unknown.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite

from modelloop import clock
from modelloop.errors import InvalidInput, PayloadTooLarge
from modelloop.serving.prediction_log import (
    open_log_filesystem,
    partition_date,
    prediction_time_ms,
)
from modelloop.serving.predictions import log_files, written_at_ms
from modelloop.store import Database
from modelloop.store import tables as t

if TYPE_CHECKING:
    from modelloop.flavors.signature import OutputSpec

MAX_ITEMS = 10_000
MAX_TEXT = 1024
STORED, DUPLICATE, UNKNOWN = "stored", "duplicate", "unknown"
_RECENT_MS = 5_000  # younger ids may still sit in another replica's memory
_RETRY_WAIT_S = 1.5


@dataclass(frozen=True, slots=True)
class Label:
    prediction_id: str
    label: float | None
    value_text: str | None


def parse_feedback(payload: Any, output: OutputSpec | None = None) -> tuple[list[Label], bool]:
    """The labels in a request body, and whether it was a single object; InvalidInput lists
    every malformed item, and every label ``output`` (the served model's) does not allow."""
    single = isinstance(payload, dict)
    items = [payload] if single else payload
    if not isinstance(items, list):
        raise InvalidInput(
            "expected {prediction_id, label} or a list of them",
            [{"row": None, "field": None, "message": f"got {type(payload).__name__}"}],
        )
    if not items:
        raise InvalidInput("no feedback", [{"row": None, "field": None, "message": "empty list"}])
    if len(items) > MAX_ITEMS:
        raise PayloadTooLarge(f"{len(items)} items is more than the limit of {MAX_ITEMS}")
    labels: list[Label] = []
    problems: list[dict[str, Any]] = []
    for row, item in enumerate(items):
        found = _label(item, None if single else row, problems, output)
        if found is not None:
            labels.append(found)
    if problems:
        first = "; ".join(f"{p['field'] or 'item'}: {p['message']}" for p in problems[:3])
        raise InvalidInput(f"invalid feedback: {len(problems)} problem(s): {first}", problems[:100])
    return labels, single


def _label(
    item: Any, row: int | None, problems: list[dict[str, Any]], output: OutputSpec | None
) -> Label | None:
    def problem(field: str | None, message: str) -> None:
        problems.append({"row": row, "field": field, "message": message})

    if not isinstance(item, dict):
        problem(None, f"expected an object {{prediction_id, label}}, got {type(item).__name__}")
        return None
    before = len(problems)
    for key in item:
        if key not in ("prediction_id", "label"):
            problem(str(key), "unexpected field (send prediction_id and label)")
    pid = item.get("prediction_id")
    if pid is None:
        problem("prediction_id", "missing")
    elif not isinstance(pid, str):
        problem("prediction_id", f"expected a string, got {type(pid).__name__}")
    else:
        try:
            prediction_time_ms(pid)
        except ValueError:
            problem("prediction_id", f"{pid[:64]!r} is not a prediction id (a lowercase UUIDv7)")
    value: Any = item.get("label")
    number: float | None = None
    text: str | None = None
    well_formed = len(problems)
    if "label" not in item or value is None:
        problem("label", "missing: a number, true/false, or a text")
    elif isinstance(value, bool):
        number = float(value)
    elif isinstance(value, int | float):
        number = float(value)
        if not math.isfinite(number):  # only a huge int gets here: JSON has no NaN/inf
            problem("label", "not a finite number")
    elif isinstance(value, str):
        if not value or len(value) > MAX_TEXT:
            problem("label", f"a text label must have 1 to {MAX_TEXT} characters")
        text = value
    else:
        problem("label", f"expected a number, true/false or a text, got {type(value).__name__}")
    if output is not None and len(problems) == well_formed:  # a label of this model?
        try:
            number, text = output.read_label(value)
        except ValueError as exc:
            problem("label", str(exc))
    if len(problems) > before:
        return None
    assert isinstance(pid, str)
    return Label(pid, number, text)


def logged_ids(uri: str, ids: Iterable[str]) -> set[str]:
    """Which of ``ids`` are in the prediction log at ``uri`` (every model)."""
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    fs, root = open_log_filesystem(uri)
    by_date: dict[str, list[str]] = defaultdict(list)
    for pid in ids:
        by_date[partition_date(prediction_time_ms(pid))].append(pid)
    found: set[str] = set()
    for date, wanted in by_date.items():
        oldest = min(prediction_time_ms(pid) for pid in wanted)
        files = [
            f for f in log_files(fs, root, model=None, dates=[date]) if written_at_ms(f) >= oldest
        ]
        if not files:
            continue
        dataset = ds.dataset(files, format="parquet", filesystem=fs)
        table = dataset.to_table(
            columns=["prediction_id"], filter=pc.field("prediction_id").isin(wanted)
        )
        found.update(table.column("prediction_id").to_pylist())
    return found


def record_feedback(
    db: Database,
    labels: list[Label],
    *,
    log_uri: str,
    pending: Callable[[Iterable[str]], set[str]] | None = None,
    deployment: str | None = None,
    received_by: str,
    now_ms: Callable[[], int] = clock.now_ms,
) -> list[dict[str, str]]:
    """Store what can be stored; one ``{prediction_id, status}`` per label, in order."""
    ids = {label.prediction_id for label in labels}
    known = pending(ids) if pending is not None else set()
    known |= logged_ids(log_uri, ids - known)
    recent = {pid for pid in ids - known if now_ms() - prediction_time_ms(pid) < _RECENT_MS}
    if recent:
        time.sleep(_RETRY_WAIT_S)
        known |= (pending(recent) if pending is not None else set()) | logged_ids(log_uri, recent)

    statuses: list[dict[str, str]] = []
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    received_at = now_ms()
    for label in labels:
        pid = label.prediction_id
        if pid not in known:
            status = UNKNOWN
        elif pid in seen:
            status = DUPLICATE
        else:
            status = STORED
            seen.add(pid)
            rows.append(
                {
                    "prediction_id": pid,
                    "deployment": deployment,
                    "label": label.label,
                    "value_text": label.value_text,
                    "received_at": received_at,
                    "received_by": received_by,
                }
            )
        statuses.append({"prediction_id": pid, "status": status})
    if not rows:
        return statuses
    inserted = _insert_new(db, rows)
    for entry in statuses:
        if entry["status"] == STORED and entry["prediction_id"] not in inserted:
            entry["status"] = DUPLICATE
    # A later repeat of an id that was stored by this request is still a duplicate; one that
    # lost to an earlier request's label already says so.
    return statuses


def _insert_new(db: Database, rows: list[dict[str, Any]]) -> set[str]:
    """Insert the rows whose prediction has no label yet; the ids actually inserted."""
    table = t.feedback
    with db.write() as conn:
        existing: set[str] = set()
        ids = [r["prediction_id"] for r in rows]
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            query = select(table.c.prediction_id).where(table.c.prediction_id.in_(chunk))
            existing.update(conn.execute(query).scalars())
        new = [r for r in rows if r["prediction_id"] not in existing]
        if not new:
            return set()
        # A concurrent writer (PostgreSQL, other replicas) may label the same id meanwhile:
        # conflicts are skipped, and only what this statement wrote counts as stored.
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        statement = dialect.insert(table).on_conflict_do_nothing(index_elements=["prediction_id"])
        inserted: set[str] = set()
        for i in range(0, len(new), 500):
            result = conn.execute(statement.returning(table.c.prediction_id), new[i : i + 500])
            inserted.update(result.scalars())
        return inserted


def feedback_summary(statuses: list[dict[str, str]]) -> dict[str, Any]:
    """The response to a batch: counts per status, then every item's status."""
    counts = {STORED: 0, DUPLICATE: 0, UNKNOWN: 0}
    for entry in statuses:
        counts[entry["status"]] += 1
    return {**counts, "results": statuses}
