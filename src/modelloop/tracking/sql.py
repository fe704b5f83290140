"""Tracking on a SQL database (SQLite or PostgreSQL) with artifacts in a blob store.

Hot paths (metric batches, history reads) use Core statements and ``executemany``; every write
goes through :meth:`Database.write` so SQLite never reports "database is locked".
"""

from __future__ import annotations

import functools
import json
import math
import sys
from array import array
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy import (
    ColumnElement,
    Connection,
    Select,
    and_,
    bindparam,
    cast,
    delete,
    exists,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from modelloop.artifacts import BlobStore, canonical_path
from modelloop.errors import AlreadyExists, Conflict, InvalidArgument, ModelloopError, NotFound
from modelloop.store import Database
from modelloop.store import tables as t
from modelloop.tracking.entities import (
    ArtifactInfo,
    DatasetInput,
    Experiment,
    Lifecycle,
    Metric,
    MetricSeries,
    Run,
    RunSpec,
    RunStatus,
    check_key,
    check_lifecycle,
    check_run_id,
    check_time,
    check_value,
    new_id,
    now_ms,
)
from modelloop.tracking.filter import (
    And,
    Comparison,
    Expr,
    Or,
    parse_experiment_filter,
    parse_experiment_order_by,
    parse_filter,
    parse_order_by,
)

MAX_SEARCH_RESULTS = 50_000
_STATUSES = {s.value: s for s in RunStatus}


class SqlTrackingStore:
    """Implements :class:`~modelloop.tracking.store.TrackingStore` on a :class:`Database`."""

    def __init__(self, db: Database, blobs: BlobStore) -> None:
        self.db = db
        self.blobs = blobs

    def close(self) -> None:
        """The database is shared process-wide (see ``open_database``); nothing to release."""

    # -- experiments -------------------------------------------------------------------------

    def create_experiment(self, name: str, description: str | None = None) -> Experiment:
        name = _check_name(name, "experiment")
        if description is not None:
            check_value(description, "experiment", "description")
        created = now_ms()
        exp = Experiment(new_id(), name, created, description, updated_at=created)
        try:
            with self.db.write() as conn:
                conn.execute(
                    insert(t.experiments).values(
                        experiment_id=exp.experiment_id,
                        name=exp.name,
                        description=exp.description,
                        created_at=exp.created_at,
                    )
                )
        except IntegrityError:
            raise _name_taken(self.get_experiment_by_name(name), name) from None
        return exp

    def get_experiment(self, experiment_id: str) -> Experiment:
        """Deleted experiments too (``deleted_at`` says so): they can be restored."""
        with self.db.read() as conn:
            rows = conn.execute(
                select(t.experiments).where(t.experiments.c.experiment_id == experiment_id)
            ).all()
            if not rows:
                raise NotFound(f"Experiment {experiment_id!r} does not exist")
            return _load_experiments(conn, rows)[0]

    def get_experiment_by_name(self, name: str) -> Experiment | None:
        with self.db.read() as conn:
            rows = conn.execute(select(t.experiments).where(t.experiments.c.name == name)).all()
            return _load_experiments(conn, rows)[0] if rows else None

    def list_experiments(self, lifecycle: Lifecycle = "active") -> list[Experiment]:
        """By name; deleted ones only when asked for."""
        return self.search_experiments(lifecycle=lifecycle, max_results=MAX_SEARCH_RESULTS)

    def search_experiments(
        self,
        filter: str | None = None,
        order_by: Sequence[str] = (),
        max_results: int = 1000,
        offset: int = 0,
        lifecycle: Lifecycle = "active",
    ) -> list[Experiment]:
        """Experiments matching ``filter`` (``name``, ``created_at``, ``tags.<key>``), by
        ``order_by`` then name; a page of at most ``max_results`` after ``offset``."""
        _check_page(max_results, offset)
        e = t.experiments.c
        query = _lifecycle(select(t.experiments), e.deleted_at, check_lifecycle(lifecycle))
        expr = parse_experiment_filter(filter)
        if expr is not None:
            query = query.where(_compile_experiment(expr))
        for i, order in enumerate(parse_experiment_order_by(order_by)):
            if order.entity == "attribute":
                column: Any = _experiment_column(order.key)
            else:
                tag = t.experiment_tags.alias(f"order_{i}")
                query = query.outerjoin(
                    tag, and_(tag.c.experiment_id == e.experiment_id, tag.c.key == order.key)
                )
                column = tag.c.value
            query = query.order_by(
                column.desc().nulls_last() if order.descending else column.asc().nulls_last()
            )
        query = query.order_by(e.name).limit(max_results).offset(offset)
        with self.db.read() as conn:
            return _load_experiments(conn, conn.execute(query).all())

    def rename_experiment(self, experiment_id: str, name: str) -> Experiment:
        name = _check_name(name, "experiment")
        try:
            with self.db.write() as conn:
                _require_experiment(conn, experiment_id, active=True)
                conn.execute(
                    update(t.experiments)
                    .where(t.experiments.c.experiment_id == experiment_id)
                    .values(name=name, updated_at=now_ms())
                )
        except IntegrityError:
            raise _name_taken(self.get_experiment_by_name(name), name) from None
        return self.get_experiment(experiment_id)

    def delete_experiment(self, experiment_id: str) -> Experiment:
        """Mark the experiment and its live runs deleted (hidden, restorable, still stored);
        its name stays taken until it is restored and renamed."""
        when = now_ms()
        with self.db.write() as conn:
            if _require_experiment(conn, experiment_id) is None:
                conn.execute(
                    update(t.experiments)
                    .where(t.experiments.c.experiment_id == experiment_id)
                    .values(deleted_at=when, updated_at=when)
                )
                conn.execute(
                    update(t.runs)
                    .where(t.runs.c.experiment_id == experiment_id, t.runs.c.deleted_at.is_(None))
                    .values(deleted_at=when)
                )
        return self.get_experiment(experiment_id)

    def restore_experiment(self, experiment_id: str) -> Experiment:
        """Undo :meth:`delete_experiment`: the runs deleted with it come back, runs deleted
        before it stay deleted."""
        with self.db.write() as conn:
            deleted_at = _require_experiment(conn, experiment_id)
            if deleted_at is not None:
                conn.execute(
                    update(t.runs)
                    .where(
                        t.runs.c.experiment_id == experiment_id,
                        t.runs.c.deleted_at == deleted_at,
                    )
                    .values(deleted_at=None)
                )
                conn.execute(
                    update(t.experiments)
                    .where(t.experiments.c.experiment_id == experiment_id)
                    .values(deleted_at=None, updated_at=now_ms())
                )
        return self.get_experiment(experiment_id)

    def set_experiment_tags(self, experiment_id: str, tags: Mapping[str, str]) -> None:
        """Tags are overwritten, as a run's."""
        checked = _checked_pairs(tags, "tag")
        with self.db.write() as conn:
            _require_experiment(conn, experiment_id, active=True)
            if checked:
                stmt = _upsert(self.db.dialect)(t.experiment_tags)
                stmt = stmt.on_conflict_do_update(
                    index_elements=["experiment_id", "key"], set_={"value": stmt.excluded.value}
                )
                conn.execute(
                    stmt,
                    [
                        {"experiment_id": experiment_id, "key": k, "value": v}
                        for k, v in checked.items()
                    ],
                )
                _touch(conn, experiment_id)

    def delete_experiment_tag(self, experiment_id: str, key: str) -> None:
        with self.db.write() as conn:
            _require_experiment(conn, experiment_id, active=True)
            gone = conn.execute(
                delete(t.experiment_tags).where(
                    t.experiment_tags.c.experiment_id == experiment_id,
                    t.experiment_tags.c.key == key,
                )
            ).rowcount
            if gone:
                _touch(conn, experiment_id)
        if not gone:
            raise NotFound(f"Experiment {experiment_id} has no tag {key!r}")

    # -- runs --------------------------------------------------------------------------------

    def create_run(self, spec: RunSpec) -> Run:
        run_id = new_id()
        start = now_ms() if spec.start_time is None else check_time(spec.start_time, "start_time")
        name = _check_name(spec.name, "run") if spec.name else f"run-{run_id[:8]}"
        params = _checked_pairs(spec.params, "param")
        tags = _checked_pairs(spec.tags, "tag")
        user = _check_name(spec.user, "user")
        with self.db.write() as conn:
            _require_experiment(conn, spec.experiment_id, active=True)
            if spec.parent_run_id is not None:
                _require_run(conn, check_run_id(spec.parent_run_id))
            conn.execute(
                insert(t.runs).values(
                    run_id=run_id,
                    experiment_id=spec.experiment_id,
                    name=name,
                    status=RunStatus.RUNNING.value,
                    start_time=start,
                    end_time=None,
                    parent_run_id=spec.parent_run_id,
                    user=user,
                    source=json.dumps(dict(spec.source)),
                    environment=json.dumps(dict(spec.environment)),
                    error=None,
                )
            )
            _insert_pairs(conn, t.params, run_id, params)
            _insert_pairs(conn, t.tags, run_id, tags)
        return self.get_run(run_id)

    def get_run(self, run_id: str) -> Run:
        """Deleted runs too (``deleted_at`` says so): they can be restored."""
        check_run_id(run_id)
        with self.db.read() as conn:
            row = conn.execute(select(t.runs).where(t.runs.c.run_id == run_id)).first()
            if row is None:
                raise NotFound(f"Run {run_id!r} does not exist")
            return _load_runs(conn, [row])[0]

    def end_run(
        self,
        run_id: str,
        status: RunStatus,
        error: str | None = None,
        *,
        end_time: int | None = None,
    ) -> Run:
        check_run_id(run_id)
        if end_time is not None:
            check_time(end_time, "end_time")
        status = RunStatus(status)
        if not status.is_terminal:
            raise InvalidArgument(f"A run ends as FINISHED, FAILED or KILLED, not {status}")
        if error is not None:
            error = check_value(error, "run", "error")
        with self.db.write() as conn:
            current = _require_run(conn, run_id, active=True)
            if current != RunStatus.RUNNING.value and current != status.value:
                raise Conflict(
                    f"Run {run_id} already ended as {current}; cannot end it as {status}"
                )
            conn.execute(
                update(t.runs)
                .where(t.runs.c.run_id == run_id)
                .values(
                    status=status.value,
                    end_time=now_ms() if end_time is None else end_time,
                    error=error,
                )
            )
        return self.get_run(run_id)

    def log_batch(
        self,
        run_id: str,
        metrics: Sequence[Metric] = (),
        params: Mapping[str, str] | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> None:
        check_run_id(run_id)
        checked_params = _checked_pairs(params or {}, "param")
        checked_tags = _checked_pairs(tags or {}, "tag")
        for key in {m.key for m in metrics}:
            check_key(key, "metric")
        with self.db.write() as conn:
            _require_run(conn, run_id, active=True)
            if checked_params:
                _insert_params(conn, run_id, checked_params)
            if checked_tags:
                _upsert_tags(conn, self.db.dialect, run_id, checked_tags)
            if metrics:
                _insert_metrics(conn, self.db.dialect, run_id, metrics)

    def rename_run(self, run_id: str, name: str) -> Run:
        name = _check_name(name, "run")
        with self.db.write() as conn:
            _require_run(conn, run_id, active=True)
            conn.execute(update(t.runs).where(t.runs.c.run_id == run_id).values(name=name))
        return self.get_run(run_id)

    def resume_run(self, run_id: str) -> Run:
        check_run_id(run_id)
        with self.db.write() as conn:
            _require_run(conn, run_id, active=True)
            conn.execute(
                update(t.runs)
                .where(t.runs.c.run_id == run_id)
                .values(status=RunStatus.RUNNING.value, end_time=None, error=None)
            )
        return self.get_run(run_id)

    def delete_run(self, run_id: str) -> Run:
        """Mark the run deleted: hidden from searches, restorable, nothing erased. Its children
        are left as they are (delete them too if they should go)."""
        check_run_id(run_id)
        with self.db.write() as conn:
            _require_run(conn, run_id)
            conn.execute(
                update(t.runs)
                .where(t.runs.c.run_id == run_id, t.runs.c.deleted_at.is_(None))
                .values(deleted_at=now_ms())
            )
        return self.get_run(run_id)

    def restore_run(self, run_id: str) -> Run:
        check_run_id(run_id)
        with self.db.write() as conn:
            _require_run(conn, run_id)
            experiment_id = conn.execute(
                select(t.runs.c.experiment_id).where(t.runs.c.run_id == run_id)
            ).scalar_one()
            _require_experiment(conn, experiment_id, active=True)
            conn.execute(update(t.runs).where(t.runs.c.run_id == run_id).values(deleted_at=None))
        return self.get_run(run_id)

    def delete_tag(self, run_id: str, key: str) -> None:
        check_run_id(run_id)
        with self.db.write() as conn:
            _require_run(conn, run_id, active=True)
            gone = conn.execute(
                delete(t.tags).where(t.tags.c.run_id == run_id, t.tags.c.key == key)
            ).rowcount
        if not gone:
            raise NotFound(f"Run {run_id} has no tag {key!r}")

    def log_inputs(self, run_id: str, inputs: Sequence[DatasetInput]) -> None:
        """Record datasets the run took as inputs; one already recorded for the run (same name
        and digest) is kept as first logged."""
        check_run_id(run_id)
        rows = {(i.name, i.digest): _input_row(run_id, i) for i in inputs}
        with self.db.write() as conn:
            _require_run(conn, run_id, active=True)
            if rows:
                stmt = _upsert(self.db.dialect)(t.run_inputs).on_conflict_do_nothing(
                    index_elements=["run_id", "name", "digest"]
                )
                conn.execute(stmt, list(rows.values()))

    def run_inputs(self, run_id: str) -> list[DatasetInput]:
        """The datasets the run took as inputs, in the order they were logged."""
        check_run_id(run_id)
        with self.db.read() as conn:
            _require_run(conn, run_id)
        return self.inputs_of_runs([run_id])[run_id]

    def inputs_of_runs(self, run_ids: Sequence[str]) -> dict[str, list[DatasetInput]]:
        """:meth:`run_inputs` of many runs at once (a page of search results)."""
        found: dict[str, list[DatasetInput]] = {check_run_id(r): [] for r in run_ids}
        i = t.run_inputs.c
        with self.db.read() as conn:
            for chunk in _chunks(list(found)):
                for r in conn.execute(
                    select(t.run_inputs)
                    .where(i.run_id.in_(chunk))
                    .order_by(i.created_at, i.name, i.digest)
                ).all():
                    found[r.run_id].append(
                        DatasetInput(
                            r.name,
                            r.digest,
                            r.source_type,
                            r.source,
                            r.schema,
                            r.profile,
                            json.loads(r.tags),
                        )
                    )
        return found

    def latest_metrics(self, run_ids: Sequence[str]) -> dict[str, list[Metric]]:
        """The latest point (value, step and time) of each metric of each run."""
        found: dict[str, list[Metric]] = {check_run_id(r): [] for r in run_ids}
        if not found:
            return found
        with self.db.read() as conn:
            rows = conn.exec_driver_sql(
                "SELECT run_id, key, value, step, timestamp FROM latest_metrics "  # noqa: S608
                f"WHERE {_among_ids(conn)} ORDER BY run_id, key",
                (json.dumps(list(found)),),
            ).all()
        for run_id, key, value, step, timestamp in rows:
            found[run_id].append(Metric(key, math.nan if value is None else value, step, timestamp))
        return found

    def metric_history(self, run_id: str, key: str) -> MetricSeries:
        check_run_id(run_id)
        check_key(key, "metric")
        m = t.metrics.c
        with self.db.read() as conn:
            _require_run(conn, run_id)
            chunks = conn.execute(
                select(m.steps, m.timestamps, m["values"])
                .where(m.run_id == run_id, m.key == key)
                .order_by(m.chunk_id)
            ).all()
        return _series(key, chunks)

    def search_runs(
        self,
        experiment_ids: Sequence[str],
        filter: str | None = None,
        order_by: Sequence[str] = (),
        max_results: int = 1000,
        offset: int = 0,
        lifecycle: Lifecycle = "active",
    ) -> list[Run]:
        _check_page(max_results, offset)
        expr = parse_filter(filter)
        query = select(t.runs).where(t.runs.c.experiment_id.in_(list(experiment_ids)))
        query = _lifecycle(query, t.runs.c.deleted_at, check_lifecycle(lifecycle))
        if expr is not None:
            query = query.where(_compile(expr, self.db.dialect))
        for i, order in enumerate(parse_order_by(order_by)):
            if order.entity == "attribute":
                column: Any = t.runs.c[_attribute_column(order.key)]
            else:
                table = {"metric": t.latest_metrics, "param": t.params, "tag": t.tags}[
                    order.entity
                ].alias(f"order_{i}")
                query = query.outerjoin(
                    table, and_(table.c.run_id == t.runs.c.run_id, table.c.key == order.key)
                )
                column = table.c.value
            query = query.order_by(
                column.desc().nulls_last() if order.descending else column.asc().nulls_last()
            )
        query = query.order_by(t.runs.c.start_time.desc(), t.runs.c.run_id)
        query = query.limit(max_results).offset(offset)
        with self.db.read() as conn:
            rows = conn.execute(query).all()
            return _load_runs(conn, rows)

    # -- artifacts ---------------------------------------------------------------------------

    def put_artifact(self, run_id: str, path: str, source: Path | bytes) -> ArtifactInfo:
        check_run_id(run_id)
        logical = canonical_path(path)
        with self.db.read() as conn:
            _require_run(conn, run_id)
        if isinstance(source, bytes):
            digest, size = self.blobs.put_bytes(source), len(source)
        else:
            digest, size = self.blobs.put_file(source)
        return self.index_artifact(run_id, logical, digest, size)

    def index_artifact(self, run_id: str, path: str, digest: str, size: int) -> ArtifactInfo:
        """Record an already stored blob under a run's logical path (the server's upload path)."""
        logical = canonical_path(path)
        with self.db.write() as conn:
            _require_run(conn, run_id)
            existing = conn.execute(
                select(t.artifacts.c.digest).where(
                    t.artifacts.c.run_id == run_id, t.artifacts.c.path == logical
                )
            ).scalar()
            if existing is None:
                conn.execute(
                    insert(t.artifacts).values(
                        run_id=run_id, path=logical, digest=digest, size=size, created_at=now_ms()
                    )
                )
            elif existing != digest:
                raise Conflict(
                    f"Artifact {logical!r} of run {run_id} already exists with other content; "
                    "artifacts are immutable, log it under a new path"
                )
        return ArtifactInfo(logical, digest, size)

    def list_artifacts(self, run_id: str, prefix: str = "") -> list[ArtifactInfo]:
        check_run_id(run_id)
        folder = canonical_path(prefix) if prefix else ""
        with self.db.read() as conn:
            _require_run(conn, run_id)
            rows = conn.execute(
                select(t.artifacts.c.path, t.artifacts.c.digest, t.artifacts.c.size)
                .where(t.artifacts.c.run_id == run_id)
                .order_by(t.artifacts.c.path)
            ).all()
        return [
            ArtifactInfo(p, d, s)
            for p, d, s in rows
            if not folder or p == folder or p.startswith(folder + "/")
        ]

    def open_artifact(self, run_id: str, path: str) -> BinaryIO:
        return self.blobs.open(self.artifact_digest(run_id, path))

    def artifact_digest(self, run_id: str, path: str) -> str:
        check_run_id(run_id)
        logical = canonical_path(path)
        with self.db.read() as conn:
            digest = conn.execute(
                select(t.artifacts.c.digest).where(
                    t.artifacts.c.run_id == run_id, t.artifacts.c.path == logical
                )
            ).scalar()
            if digest is None:
                _require_run(conn, run_id)
                raise NotFound(f"Run {run_id} has no artifact {logical!r}")
        return str(digest)

    def read_artifact_of_runs(self, run_ids: Sequence[str], path: str) -> dict[str, bytes]:
        """The artifact at ``path`` of each run that has it (one query for all: listing pages
        read one document per row); runs without it, or whose blob is unreadable, are left out."""
        logical = canonical_path(path)
        for run_id in run_ids:
            check_run_id(run_id)
        if not run_ids:
            return {}
        a = t.artifacts.c
        with self.db.read() as conn:
            rows = conn.execute(
                select(a.run_id, a.digest).where(a.run_id.in_(list(run_ids)), a.path == logical)
            ).all()
        found = {}
        for run_id, digest in rows:
            try:
                found[run_id] = self.blobs.read_bytes(digest)
            except (ModelloopError, OSError):
                continue
        return found


# -- helpers ---------------------------------------------------------------------------------


# Bidirectional controls (U+202E and kin) make a name display as something it is not
# ("fraud\u202egpj.exe" reads "fraudexe.jpg"), so a listing could pass one run off as another.
_BIDI_CONTROLS = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)


def _check_name(name: object, what: str) -> str:
    field = "user" if what == "user" else "name"
    if not isinstance(name, str) or not name.strip() or len(name) > 256:
        raise _invalid_name(name, what, field, "use 1-256 characters")
    if any(ord(c) < 0x20 for c in name):
        raise _invalid_name(name, what, field, "control characters are not allowed")
    bidi = sorted({f"U+{ord(c):04X}" for c in name if c in _BIDI_CONTROLS})
    if bidi:
        reason = f"bidirectional control characters ({', '.join(bidi)}) are not allowed"
        raise _invalid_name(name, what, field, reason)
    return name


def _invalid_name(name: object, what: str, field: str, reason: str) -> InvalidArgument:
    return InvalidArgument(
        f"Invalid {what} name {name!r}: {reason}", [{"field": field, "message": reason}]
    )


def _checked_pairs(pairs: Mapping[str, object], what: str) -> dict[str, str]:
    return {check_key(k, what): check_value(v, what, k) for k, v in pairs.items()}


def _name_taken(holder: Experiment | None, name: str) -> AlreadyExists:
    if holder is not None and holder.deleted_at is not None:
        return AlreadyExists(
            f"Experiment {name!r} already exists, deleted (id {holder.experiment_id}): restore "
            "it, or rename it first to reuse the name"
        )
    return AlreadyExists(f"Experiment {name!r} already exists")


def _check_page(max_results: int, offset: int) -> None:
    if not 1 <= max_results <= MAX_SEARCH_RESULTS:
        raise InvalidArgument(f"max_results must be between 1 and {MAX_SEARCH_RESULTS}")
    if offset < 0:
        raise InvalidArgument(f"offset must be 0 or more, got {offset}")


def _lifecycle(query: Select[Any], deleted_at: Any, lifecycle: Lifecycle) -> Select[Any]:
    if lifecycle == "active":
        return query.where(deleted_at.is_(None))
    if lifecycle == "deleted":
        return query.where(deleted_at.is_not(None))
    return query


def _chunks(ids: list[str], size: int = 1000) -> list[list[str]]:
    """Ids in bounded groups: SQLite takes at most 32766 bound parameters per statement."""
    return [ids[i : i + size] for i in range(0, len(ids), size)]


def _load_experiments(conn: Connection, rows: Sequence[Any]) -> list[Experiment]:
    tags: dict[str, dict[str, str]] = {r.experiment_id: {} for r in rows}
    x = t.experiment_tags.c
    for chunk in _chunks(list(tags)):
        for experiment_id, key, value in conn.execute(
            select(x.experiment_id, x.key, x.value).where(x.experiment_id.in_(chunk))
        ).all():
            tags[experiment_id][key] = value
    return [
        Experiment(
            r.experiment_id,
            r.name,
            r.created_at,
            r.description,
            tags[r.experiment_id],
            r.deleted_at,
            r.updated_at if r.updated_at is not None else r.created_at,
        )
        for r in rows
    ]


def _touch(conn: Connection, experiment_id: str) -> None:
    conn.execute(
        update(t.experiments)
        .where(t.experiments.c.experiment_id == experiment_id)
        .values(updated_at=now_ms())
    )


def _require_experiment(
    conn: Connection, experiment_id: str, *, active: bool = False
) -> int | None:
    """The experiment's ``deleted_at``; NotFound if there is none, Conflict if ``active`` and
    it is deleted."""
    row = conn.execute(
        select(t.experiments.c.deleted_at).where(t.experiments.c.experiment_id == experiment_id)
    ).first()
    if row is None:
        raise NotFound(f"Experiment {experiment_id!r} does not exist")
    if active and row.deleted_at is not None:
        raise Conflict(f"Experiment {experiment_id} is deleted; restore it first")
    return row.deleted_at  # type: ignore[no-any-return]


_RUN_STATE = select(t.runs.c.status, t.runs.c.deleted_at).where(
    t.runs.c.run_id == bindparam("run_id")
)  # built once: every logging call asks it


def _require_run(conn: Connection, run_id: str, *, active: bool = False) -> str:
    """The run's status; NotFound if there is none, Conflict if ``active`` and it is deleted."""
    row = conn.execute(_RUN_STATE, {"run_id": run_id}).first()
    if row is None:
        raise NotFound(f"Run {run_id!r} does not exist")
    if active and row.deleted_at is not None:
        raise Conflict(f"Run {run_id} is deleted; restore it first")
    return str(row.status)


def _input_row(run_id: str, given: DatasetInput) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "name": _bounded(given.name, "dataset name", 500, required=True),
        "digest": _bounded(given.digest, "dataset digest", 64, required=True),
        "source_type": _bounded(given.source_type, "dataset source_type", 64, required=True),
        "source": check_value(given.source, "dataset", "source"),
        "schema": None if given.schema is None else _text_value(given.schema, "schema"),
        "profile": None if given.profile is None else _text_value(given.profile, "profile"),
        "tags": json.dumps(_checked_pairs(given.tags, "tag")),
        "created_at": now_ms(),
    }


MAX_INPUT_TEXT = 1_000_000  # a dataset's schema or profile, as JSON text


def _text_value(value: object, what: str) -> str:
    if not isinstance(value, str) or "\x00" in value or len(value) > MAX_INPUT_TEXT:
        raise InvalidArgument(
            f"Dataset {what} must be text without NUL of at most {MAX_INPUT_TEXT} characters"
        )
    return value


def _bounded(value: object, what: str, limit: int, *, required: bool) -> str:
    if not isinstance(value, str) or (required and not value) or len(value) > limit:
        raise InvalidArgument(f"Invalid {what} {value!r}: expected 1-{limit} characters")
    if "\x00" in value:
        raise InvalidArgument(f"Invalid {what} {value!r}: NUL characters are not allowed")
    return value


def _insert_pairs(conn: Connection, table: Any, run_id: str, pairs: Mapping[str, str]) -> None:
    if pairs:
        conn.execute(
            insert(table), [{"run_id": run_id, "key": k, "value": v} for k, v in pairs.items()]
        )


def _insert_params(conn: Connection, run_id: str, params: Mapping[str, str]) -> None:
    existing = dict(
        conn.execute(
            select(t.params.c.key, t.params.c.value).where(
                t.params.c.run_id == run_id, t.params.c.key.in_(list(params))
            )
        ).all()
    )
    for key, value in params.items():
        if key in existing and existing[key] != value:
            raise Conflict(
                f"Param {key!r} of run {run_id} is already {existing[key]!r}; cannot change it "
                f"to {value!r} (params are immutable: log a new run or use a tag)"
            )
    _insert_pairs(conn, t.params, run_id, {k: v for k, v in params.items() if k not in existing})


def _upsert(dialect: str) -> Any:
    return postgresql.insert if dialect == "postgresql" else sqlite.insert


@functools.cache
def _tags_upsert(dialect: str) -> Any:
    """Built once per dialect: constructing an upsert (its ``excluded`` alias) costs more than
    running it, and a per-call ``log_metric`` pays for every statement it builds."""
    stmt = _upsert(dialect)(t.tags)
    return stmt.on_conflict_do_update(
        index_elements=["run_id", "key"], set_={"value": stmt.excluded.value}
    )


def _upsert_tags(conn: Connection, dialect: str, run_id: str, tags: Mapping[str, str]) -> None:
    rows = [{"run_id": run_id, "key": k, "value": v} for k, v in tags.items()]
    conn.execute(_tags_upsert(dialect), rows)


def _pack(values: array[Any]) -> bytes:
    """Chunks are little-endian on disk whatever the machine."""
    if sys.byteorder == "big":  # pragma: no cover
        values = array(values.typecode, values)
        values.byteswap()
    return values.tobytes()


def _insert_metrics(conn: Connection, dialect: str, run_id: str, metrics: Sequence[Metric]) -> None:
    """One chunk row per key for the whole batch, then the latest point per key upserted."""
    by_key: dict[str, list[Metric]] = {}
    for metric in metrics:
        by_key.setdefault(metric.key, []).append(metric)
    conn.execute(
        insert(t.metrics),
        [
            {
                "run_id": run_id,
                "key": key,
                "count": len(points),
                "steps": _pack(array("q", [p.step for p in points])),
                "timestamps": _pack(array("q", [p.timestamp for p in points])),
                "values": _pack(array("d", [p.value for p in points])),
            }
            for key, points in by_key.items()
        ],
    )
    latest = []
    for key, points in by_key.items():
        best = max(points, key=lambda p: (p.step, p.timestamp))
        value = None if math.isnan(best.value) else best.value
        latest.append(
            {
                "run_id": run_id,
                "key": key,
                "value": value,
                "step": best.step,
                "timestamp": best.timestamp,
            }
        )
    conn.execute(_latest_upsert(dialect), latest)


@functools.cache
def _latest_upsert(dialect: str) -> Any:
    """The latest point per key moves only forward in (step, timestamp); built once per dialect."""
    stmt = _upsert(dialect)(t.latest_metrics)
    current = t.latest_metrics.c
    return stmt.on_conflict_do_update(
        index_elements=["run_id", "key"],
        set_={
            "value": stmt.excluded.value,
            "step": stmt.excluded.step,
            "timestamp": stmt.excluded.timestamp,
        },
        where=or_(
            stmt.excluded.step > current.step,
            and_(stmt.excluded.step == current.step, stmt.excluded.timestamp >= current.timestamp),
        ),
    )


def _series(key: str, chunks: Sequence[Any]) -> MetricSeries:
    """Concatenate chunks (write order), sorting by (step, timestamp) only when needed."""
    import numpy as np

    steps = np.frombuffer(b"".join(c[0] for c in chunks), dtype="<i8")
    timestamps = np.frombuffer(b"".join(c[1] for c in chunks), dtype="<i8")
    values = np.frombuffer(b"".join(c[2] for c in chunks), dtype="<f8")
    if len(chunks) > 1 or len(steps) > 1:
        backwards = np.diff(steps) < 0
        ties = np.diff(steps) == 0
        if backwards.any() or (ties & (np.diff(timestamps) < 0)).any():
            order = np.lexsort((timestamps, steps))
            steps, timestamps, values = steps[order], timestamps[order], values[order]
    return MetricSeries(key, steps, values, timestamps)


def _among_ids(conn: Connection) -> str:
    """``run_id`` among the ids of one JSON parameter: one bound value for any number of runs,
    where thousands of bound parameters would cost more to build than to run."""
    if conn.dialect.name == "postgresql":
        return "run_id IN (SELECT json_array_elements_text(%s::json))"
    return "run_id IN (SELECT value FROM json_each(?))"


def _load_runs(conn: Connection, rows: Sequence[Any]) -> list[Run]:
    """Attach params, tags and latest metrics to run rows: one query per table for all runs.

    The ids travel as one JSON parameter (SQLite ``json_each``, PostgreSQL ``json_array_elements``)
    rather than as thousands of bound parameters, and rows are read at the driver level: this
    is the bulk of a search over many runs.
    """
    ids = [r.run_id for r in rows]
    if not ids:
        return []
    among = _among_ids(conn)
    id_list = (json.dumps(ids),)
    params: dict[str, dict[str, str]] = {i: {} for i in ids}
    tags: dict[str, dict[str, str]] = {i: {} for i in ids}
    metrics: dict[str, dict[str, float]] = {i: {} for i in ids}
    for table, target in (("params", params), ("tags", tags)):
        for run_id, key, value in conn.exec_driver_sql(
            f"SELECT run_id, key, value FROM {table} WHERE {among}",  # noqa: S608 - constants
            id_list,
        ).all():
            target[run_id][key] = value
    for run_id, key, value in conn.exec_driver_sql(
        f"SELECT run_id, key, value FROM latest_metrics WHERE {among}",  # noqa: S608
        id_list,
    ).all():
        metrics[run_id][key] = math.nan if value is None else value
    return [
        Run(
            run_id=r.run_id,
            experiment_id=r.experiment_id,
            name=r.name,
            status=_STATUSES[r.status],
            start_time=r.start_time,
            end_time=r.end_time,
            parent_run_id=r.parent_run_id,
            user=r.user,
            source=json.loads(r.source),
            environment=json.loads(r.environment),
            error=r.error,
            params=params[r.run_id],
            tags=tags[r.run_id],
            metrics=metrics[r.run_id],
            deleted_at=r.deleted_at,
        )
        for r in rows
    ]


# -- filter compilation ----------------------------------------------------------------------


def _experiment_column(key: str) -> Any:
    e = t.experiments.c
    return func.coalesce(e.updated_at, e.created_at) if key == "updated_at" else e[key]


def _compile_experiment(expr: Expr) -> ColumnElement[bool]:
    if isinstance(expr, And):
        return and_(_compile_experiment(expr.left), _compile_experiment(expr.right))
    if isinstance(expr, Or):
        return or_(_compile_experiment(expr.left), _compile_experiment(expr.right))
    assert isinstance(expr, Comparison)
    e = t.experiments.c
    if expr.entity == "attribute":
        return _compare(_experiment_column(expr.key), expr.op, expr.value)
    x = t.experiment_tags.c
    return exists().where(
        x.experiment_id == e.experiment_id,
        x.key == expr.key,
        _compare(x.value, expr.op, expr.value),
    )


_ATTRIBUTE_COLUMNS = {"run_name": "name"}


def _attribute_column(name: str) -> str:
    return _ATTRIBUTE_COLUMNS.get(name, name)


def _compare(column: Any, op: str, value: Any) -> ColumnElement[bool]:
    if op == "=":
        return column == value  # type: ignore[no-any-return]
    if op == "!=":
        return column != value  # type: ignore[no-any-return]
    if op == "<":
        return column < value  # type: ignore[no-any-return]
    if op == "<=":
        return column <= value  # type: ignore[no-any-return]
    if op == ">":
        return column > value  # type: ignore[no-any-return]
    if op == ">=":
        return column >= value  # type: ignore[no-any-return]
    if op == "LIKE":
        return column.like(value)  # type: ignore[no-any-return]
    if op == "ILIKE":
        return column.ilike(value)  # type: ignore[no-any-return]
    if op == "IN":
        return column.in_(list(value))  # type: ignore[no-any-return]
    if op == "NOT IN":
        return column.not_in(list(value))  # type: ignore[no-any-return]
    raise InvalidArgument(f"Unsupported operator {op!r}")  # the parser admits no other


_CONTEXT_TAG = "mlflow.data.context"  # how an MLflow client says what an input was for


def _compile(expr: Expr, dialect: str) -> ColumnElement[bool]:
    if isinstance(expr, And):
        return and_(_compile(expr.left, dialect), _compile(expr.right, dialect))
    if isinstance(expr, Or):
        return or_(_compile(expr.left, dialect), _compile(expr.right, dialect))
    assert isinstance(expr, Comparison)
    if expr.entity == "attribute":
        return _compare(t.runs.c[_attribute_column(expr.key)], expr.op, expr.value)
    if expr.entity == "dataset":
        inputs = t.run_inputs.c
        if expr.key != "context":
            column: Any = inputs[expr.key]
        elif dialect == "postgresql":
            column = cast(inputs.tags, postgresql.JSON)[_CONTEXT_TAG].astext
        else:
            column = func.json_extract(inputs.tags, f'$."{_CONTEXT_TAG}"')
        return exists().where(
            inputs.run_id == t.runs.c.run_id, _compare(column, expr.op, expr.value)
        )
    table = {"metric": t.latest_metrics, "param": t.params, "tag": t.tags}[expr.entity]
    return exists().where(
        table.c.run_id == t.runs.c.run_id,
        table.c.key == expr.key,
        _compare(table.c.value, expr.op, expr.value),
    )
