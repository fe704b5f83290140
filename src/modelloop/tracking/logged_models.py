"""Logged models: a model an MLflow 3 client logs, with its own id (``m-<32 hex>``), name,
status, tags and params, whose files the client uploads after creating it; the runs that
output it or took it as an input, and the metrics runs logged for it (its evaluations).

modelloop keeps one artifact store: a logged model's files are artifacts of a run, under
``models/<model_id>/``. The run is the model's source run, or, when the client names none, a run
created for the model in its experiment (tagged :data:`TAG_LOGGED_MODEL`). The registry then
registers ``models:/m-...`` as it registers any run's model (:func:`logged_model_location`).
"""

from __future__ import annotations

import json
import math
import operator
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any, NamedTuple

from sqlalchemy import Connection, insert, literal, select, update

from modelloop.artifacts import canonical_path, contained_path
from modelloop.errors import InvalidArgument, NotFound, UnsafeFormat
from modelloop.store import Database
from modelloop.store import tables as t
from modelloop.tracking.entities import (
    RunSpec,
    RunStatus,
    check_key,
    check_run_id,
    check_value,
    new_id,
    now_ms,
)
from modelloop.tracking.sql import SqlTrackingStore
from modelloop.tracking.store import TrackingStore

# On a run created to hold a logged model's files: the model's id.
TAG_LOGGED_MODEL = "modelloop.logged_model"
MODELS_FOLDER = "models"
MAX_SEARCH_RESULTS = 1000

MAX_DATASET_NAME = 500
MAX_DATASET_DIGEST = 64

_MODEL_ID = re.compile(r"^m-[0-9a-f]{32}$")
_NAME = re.compile(r"^[^/:%\\\x00-\x1f]{1,256}$")


class ModelMetric(NamedTuple):
    """One metric point a run logged for a model, on a dataset when it names one."""

    model_id: str
    key: str
    value: float
    step: int
    timestamp: int
    run_id: str
    dataset_name: str | None = None
    dataset_digest: str | None = None


class LoggedModelStatus(StrEnum):
    PENDING = "PENDING"  # created, its files still uploading
    READY = "READY"
    FAILED = "FAILED"


@dataclass(frozen=True, slots=True)
class LoggedModel:
    model_id: str
    experiment_id: str
    run_id: str  # the run whose artifacts hold the files, under ``artifact_path``
    source_run_id: str | None
    name: str
    model_type: str | None
    status: LoggedModelStatus
    status_message: str | None
    created_at: int
    updated_at: int
    tags: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    deleted: bool = False
    metrics: tuple[ModelMetric, ...] = ()  # every point, in the order they were logged

    @property
    def artifact_path(self) -> str:
        return f"{MODELS_FOLDER}/{self.model_id}"


@dataclass(frozen=True, slots=True)
class LoggedModelSpec:
    """What a client gives to create a logged model; the store adds the id and the run."""

    experiment_id: str
    name: str | None = None
    source_run_id: str | None = None
    model_type: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    params: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RunModels:
    """The logged models a run took as inputs, and those it output (with their steps)."""

    inputs: list[str] = field(default_factory=list)
    outputs: list[tuple[str, int]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class DatasetRef:
    """A dataset metrics are logged on: its name, and its digest unless any digest will do."""

    name: str
    digest: str | None = None


@dataclass(frozen=True, slots=True)
class OrderBy:
    """One sort key of a search: a field or ``metrics.<key>`` (its latest value, on the
    dataset when one is named)."""

    field: str
    ascending: bool = True
    dataset_name: str | None = None
    dataset_digest: str | None = None


@dataclass(frozen=True, slots=True)
class LoggedModelPage:
    models: list[LoggedModel]
    next_offset: int | None  # where the next page starts; None: this was the last


def check_model_id(model_id: object) -> str:
    if not isinstance(model_id, str) or not _MODEL_ID.fullmatch(model_id):
        raise InvalidArgument(
            f"Invalid logged model id {model_id!r}: expected 'm-' and 32 lowercase hex characters"
        )
    return model_id


def logged_model_location(
    store_or_db: SqlTrackingStore | Database, model_id: str
) -> tuple[str, str]:
    """The run and artifact path holding a logged model's files: what the registry registers
    for a ``models:/m-...`` source (``ModelVersionSpec(name, run_id, artifact_path)``)."""
    db = store_or_db.db if isinstance(store_or_db, SqlTrackingStore) else store_or_db
    with db.read() as conn:
        model = _load(conn, check_model_id(model_id))
    if model.deleted:
        raise NotFound(f"Logged model {model_id!r} was deleted")
    return model.run_id, model.artifact_path


def describe_mlflow_model(
    store: TrackingStore, run_id: str, artifact_path: str
) -> tuple[str | None, dict[str, Any] | None]:
    """The modelloop flavor and signature of what an MLflow client logged under
    ``artifact_path`` of a run (an ``MLmodel`` file): what a registered version records. Read
    from the model itself, downloaded and opened but never unpickled (a pickled one is
    described by its ``MLmodel`` signature, or not at all); ``(None, None)`` when there is no
    ``MLmodel`` or its flavor is not one modelloop loads, so the version holds plain files."""
    from modelloop import flavors
    from modelloop.flavors.mlmodel import describe_mlmodel

    prefix = canonical_path(artifact_path)
    try:
        with store.open_artifact(run_id, f"{prefix}/{flavors.MLMODEL_NAME}") as f:
            raw = f.read()
    except NotFound:
        return None, None
    try:
        flavor, signature = describe_mlmodel(raw)
    except UnsafeFormat:  # an MLflow flavor modelloop does not load
        return None, None
    if flavor == "python":  # pickled
        return (flavor, signature) if signature is not None else (None, None)
    with tempfile.TemporaryDirectory(prefix="modelloop-mlflow-") as tmp:
        for info in store.list_artifacts(run_id, prefix):
            out = contained_path(Path(tmp), info.path)
            out.parent.mkdir(parents=True, exist_ok=True)
            with store.open_artifact(run_id, info.path) as src, out.open("wb") as dst:
                shutil.copyfileobj(src, dst)
        manifest = flavors.read_manifest(Path(tmp).joinpath(*prefix.split("/")))
    return manifest.flavor, manifest.signature.to_dict()


class LoggedModels:
    """Logged models on a tracking store's database; their files go to its artifacts."""

    def __init__(self, store: SqlTrackingStore) -> None:
        self.store = store
        self.db = store.db

    def create(self, spec: LoggedModelSpec, user: str = "unknown") -> LoggedModel:
        model_id = f"m-{new_id()}"
        name = _check_name(spec.name) if spec.name else f"model-{model_id[2:10]}"
        model_type = _check_text(spec.model_type, "model_type")
        tags = _checked_pairs(spec.tags, "tag")
        params = _checked_pairs(spec.params, "param")
        experiment = self.store.get_experiment(spec.experiment_id)
        run_id = spec.source_run_id
        if run_id is not None:
            run = self.store.get_run(check_run_id(run_id))
            if run.experiment_id != experiment.experiment_id:
                raise InvalidArgument(
                    f"Run {run_id} belongs to experiment {run.experiment_id}, not to "
                    f"{experiment.experiment_id}: a logged model lives in its run's experiment"
                )
        else:
            # The files need a run to belong to; this one exists only for the model.
            run_id = self.store.create_run(
                RunSpec(
                    experiment.experiment_id,
                    name=name,
                    user=user,
                    tags={TAG_LOGGED_MODEL: model_id},
                )
            ).run_id
            self.store.end_run(run_id, RunStatus.FINISHED)
        now = now_ms()
        with self.db.write() as conn:
            conn.execute(
                insert(t.logged_models).values(
                    model_id=model_id,
                    experiment_id=experiment.experiment_id,
                    run_id=run_id,
                    source_run_id=spec.source_run_id,
                    name=name,
                    model_type=model_type,
                    status=LoggedModelStatus.PENDING.value,
                    status_message=None,
                    tags=json.dumps(tags),
                    params=json.dumps(params),
                    created_at=now,
                    updated_at=now,
                    deleted_at=None,
                )
            )
        return self.get(model_id)

    def get(self, model_id: str, *, allow_deleted: bool = False) -> LoggedModel:
        with self.db.read() as conn:
            model = _load(conn, check_model_id(model_id))
            if model.deleted and not allow_deleted:
                raise NotFound(f"Logged model {model_id!r} was deleted")
            return _with_metrics(conn, [model])[0]

    def require_live(self, model_ids: Iterable[str]) -> None:
        """Raise unless every model exists and is not deleted: what logging a metric for
        them or naming them as a run's input or output needs."""
        wanted = {check_model_id(m) for m in model_ids}
        if wanted:
            with self.db.read() as conn:
                _require_live(conn, wanted)

    def log_metrics(self, metrics: Sequence[ModelMetric]) -> None:
        """Record points runs logged for models; the runs keep them in their own histories
        (the tracking store's ``log_batch``), so this writes only the models' view. Checked
        here: the models are live, the runs exist, the datasets are named in full."""
        if not metrics:
            return
        rows = [_metric_row(point) for point in metrics]
        run_ids = {point.run_id for point in metrics}
        with self.db.write() as conn:
            _require_live(conn, {point.model_id for point in metrics})
            found = set(
                conn.execute(select(t.runs.c.run_id).where(t.runs.c.run_id.in_(run_ids))).scalars()
            )
            missing = sorted(run_ids - found)
            if missing:
                raise NotFound(f"Run {missing[0]!r} does not exist")
            conn.execute(insert(t.logged_model_metrics), rows)

    def finalize(
        self, model_id: str, status: LoggedModelStatus, message: str | None = None
    ) -> LoggedModel:
        if status is LoggedModelStatus.PENDING:
            raise InvalidArgument(
                "A logged model is finalized as READY or FAILED, not PENDING",
                [{"field": "status", "message": "READY or FAILED"}],
            )
        self._update(model_id, status=status.value, status_message=message)
        return self.get(model_id)

    def set_tags(self, model_id: str, tags: Mapping[str, str]) -> LoggedModel:
        checked = _checked_pairs(tags, "tag")
        with self.db.write() as conn:
            model = _live(conn, model_id)
            merged = {**model.tags, **checked}
            _write(conn, model_id, tags=json.dumps(merged))
        return self.get(model_id)

    def delete_tag(self, model_id: str, key: str) -> None:
        with self.db.write() as conn:
            model = _live(conn, model_id)
            if key not in model.tags:
                raise NotFound(f"Logged model {model_id} has no tag {key!r}")
            rest = {k: v for k, v in model.tags.items() if k != key}
            _write(conn, model_id, tags=json.dumps(rest))

    def log_params(self, model_id: str, params: Mapping[str, str]) -> None:
        """Params are written once: the same value again is a no-op, another is refused."""
        checked = _checked_pairs(params, "param")
        with self.db.write() as conn:
            model = _live(conn, model_id)
            changed = [k for k, v in checked.items() if model.params.get(k, v) != v]
            if changed:
                raise InvalidArgument(
                    f"Params {changed} of logged model {model_id} already have other values; "
                    "params cannot change"
                )
            _write(conn, model_id, params=json.dumps({**model.params, **checked}))

    def delete(self, model_id: str) -> None:
        """Hidden from gets and searches; its files stay with its run (artifacts are
        immutable, and a registered version may still point at them)."""
        self._update(model_id, deleted_at=now_ms())

    def record_output(self, run_id: str, model_id: str, step: int = 0) -> None:
        """Run ``run_id`` produced ``model_id`` (MLflow's run outputs); recorded once."""
        self._link(t.run_outputs, run_id, model_id, step=step)

    def record_input(self, run_id: str, model_id: str) -> None:
        """Run ``run_id`` took ``model_id`` as an input (MLflow's run model inputs: an
        evaluation names the model it scored); recorded once."""
        self._link(t.run_model_inputs, run_id, model_id)

    def _link(self, table: Any, run_id: str, model_id: str, **values: Any) -> None:
        check_run_id(run_id)
        with self.db.write() as conn:
            _live(conn, model_id)
            if conn.execute(select(literal(1)).where(t.runs.c.run_id == run_id)).first() is None:
                raise NotFound(f"Run {run_id!r} does not exist")
            c = table.c
            if conn.execute(
                select(literal(1)).where(c.run_id == run_id, c.model_id == model_id)
            ).first():
                return
            conn.execute(
                insert(table).values(
                    run_id=run_id, model_id=model_id, created_at=now_ms(), **values
                )
            )

    def outputs_of_run(self, run_id: str) -> list[tuple[str, int]]:
        """The (model id, step) pairs a run produced, in the order they were recorded."""
        return self.models_of_runs([run_id])[run_id].outputs

    def models_of_runs(self, run_ids: Sequence[str]) -> dict[str, RunModels]:
        """Each run's model inputs and outputs, in the order they were recorded: two queries
        for all the runs (what MLflow's run answers carry)."""
        found = {run_id: RunModels() for run_id in run_ids}
        if not found:
            return found
        o, i = t.run_outputs.c, t.run_model_inputs.c
        with self.db.read() as conn:
            outputs = conn.execute(
                select(o.run_id, o.model_id, o.step)
                .where(o.run_id.in_(list(found)))
                .order_by(o.created_at, o.model_id)
            ).all()
            inputs = conn.execute(
                select(i.run_id, i.model_id)
                .where(i.run_id.in_(list(found)))
                .order_by(i.created_at, i.model_id)
            ).all()
        for run_id, model_id, step in outputs:
            found[run_id].outputs.append((model_id, step))
        for run_id, model_id in inputs:
            found[run_id].inputs.append(model_id)
        return found

    def search(
        self,
        experiment_ids: Sequence[str],
        filter_string: str | None = None,
        *,
        order_by: Sequence[OrderBy | tuple[str, bool]] = (),
        datasets: Sequence[DatasetRef] = (),
        max_results: int = 100,
        offset: int = 0,
    ) -> LoggedModelPage:
        """Live models of the experiments, newest first unless ``order_by`` says otherwise
        (over ``name``, ``creation_timestamp``, ``last_updated_timestamp``, ``model_type``,
        ``status``, ``model_id`` and ``metrics.<key>``; models without a value sort last).
        ``filter_string`` is ANDed conditions: ``field = 'value'`` / ``!=`` on ``name``,
        ``status``, ``model_type``, ``source_run_id``, ``model_id``, ``tags.<key>`` and
        ``params.<key>``, and ``metrics.<key> <op> <number>`` (``<``, ``<=``, ``>``, ``>=``,
        ``=``, ``!=``) on a metric's latest value (highest step, then time), as MLflow
        compares it; a model without the metric does not match. ``datasets`` narrows the
        metrics to those logged on one of them, and without a metric condition keeps only
        models with a metric on one of them."""
        if not 1 <= max_results <= MAX_SEARCH_RESULTS:
            raise InvalidArgument(
                f"max_results must be between 1 and {MAX_SEARCH_RESULTS}, got {max_results}",
                [{"field": "max_results", "message": f"1 to {MAX_SEARCH_RESULTS}"}],
            )
        conditions, metric_conditions = _parse_filter(filter_string)
        orders = [o if isinstance(o, OrderBy) else OrderBy(*o) for o in order_by]
        for order in orders:
            if not order.field.startswith(_METRIC_PREFIX):
                _sort_key(order.field)  # refuse an unknown field before reading anything
        metric_keys = {key for key, _, _ in metric_conditions} | {
            _metric_key(o.field) for o in orders if o.field.startswith(_METRIC_PREFIX)
        }
        m = t.logged_models.c
        with self.db.read() as conn:
            rows = conn.execute(
                select(t.logged_models)
                .where(m.experiment_id.in_(list(experiment_ids)), m.deleted_at.is_(None))
                .order_by(m.created_at.desc(), m.model_id)
            ).all()
            models = [x for x in map(_model, rows) if all(_matches(x, c) for c in conditions)]
            points: list[ModelMetric] = []
            if metric_keys or datasets:  # any key counts toward "has a metric on a dataset"
                wanted = None if datasets else metric_keys
                points = _points(conn, list(experiment_ids), wanted)
                points = [p for p in points if _on_datasets(p, datasets)]
        if metric_conditions:
            latest = _latest(points, None, None)
            models = [
                x
                for x in models
                if all(
                    _compare(latest.get((x.model_id, k)), op, v) for k, op, v in metric_conditions
                )
            ]
        elif datasets:
            on_datasets = {p.model_id for p in points}
            models = [x for x in models if x.model_id in on_datasets]
        for order in reversed(orders):
            if order.field.startswith(_METRIC_PREFIX):
                latest = _latest(points, order.dataset_name, order.dataset_digest)
                value: Callable[[LoggedModel], object] = _metric_value(
                    latest, _metric_key(order.field)
                )
            else:
                value = _sort_key(order.field)
            models.sort(key=_sortable(value, order.ascending), reverse=not order.ascending)
        page = models[offset : offset + max_results]
        more = offset + max_results < len(models)
        with self.db.read() as conn:
            page = _with_metrics(conn, page)
        return LoggedModelPage(page, offset + max_results if more else None)

    def _update(self, model_id: str, **values: Any) -> None:
        with self.db.write() as conn:
            _live(conn, model_id)
            _write(conn, model_id, **values)


# -- helpers ---------------------------------------------------------------------------------


def _load(conn: Connection, model_id: str) -> LoggedModel:
    row = conn.execute(
        select(t.logged_models).where(t.logged_models.c.model_id == model_id)
    ).first()
    if row is None:
        raise NotFound(f"Logged model {model_id!r} does not exist")
    return _model(row)


def _live(conn: Connection, model_id: str) -> LoggedModel:
    model = _load(conn, check_model_id(model_id))
    if model.deleted:
        raise NotFound(f"Logged model {model_id!r} was deleted")
    return model


def _require_live(conn: Connection, model_ids: set[str]) -> None:
    m = t.logged_models.c
    live = set(
        conn.execute(
            select(m.model_id).where(m.model_id.in_(model_ids), m.deleted_at.is_(None))
        ).scalars()
    )
    missing = sorted(model_ids - live)
    if missing:
        raise NotFound(f"Logged model {missing[0]!r} does not exist or was deleted")


def _write(conn: Connection, model_id: str, **values: Any) -> None:
    conn.execute(
        update(t.logged_models)
        .where(t.logged_models.c.model_id == model_id)
        .values(updated_at=now_ms(), **values)
    )


def _model(row: Any) -> LoggedModel:
    return LoggedModel(
        model_id=row.model_id,
        experiment_id=row.experiment_id,
        run_id=row.run_id,
        source_run_id=row.source_run_id,
        name=row.name,
        model_type=row.model_type,
        status=LoggedModelStatus(row.status),
        status_message=row.status_message,
        created_at=row.created_at,
        updated_at=row.updated_at,
        tags=json.loads(row.tags),
        params=json.loads(row.params),
        deleted=row.deleted_at is not None,
    )


def _with_metrics(conn: Connection, models: list[LoggedModel]) -> list[LoggedModel]:
    """The models with their metric points: one query for all of them."""
    if not models:
        return models
    c = t.logged_model_metrics.c
    found: dict[str, list[ModelMetric]] = {x.model_id: [] for x in models}
    rows = conn.execute(
        select(
            c.model_id,
            c.key,
            c.value,
            c.step,
            c.timestamp,
            c.run_id,
            c.dataset_name,
            c.dataset_digest,
        )
        .where(c.model_id.in_(list(found)))
        .order_by(c.metric_id)
    ).all()
    for row in rows:
        found[row.model_id].append(_point(row))
    return [replace(x, metrics=tuple(found[x.model_id])) for x in models]


def _points(
    conn: Connection, experiment_ids: list[str], keys: set[str] | None
) -> list[ModelMetric]:
    """The points of ``keys`` (every key when None) of the live models of the experiments."""
    c, m = t.logged_model_metrics.c, t.logged_models.c
    query = (
        select(
            c.model_id,
            c.key,
            c.value,
            c.step,
            c.timestamp,
            c.run_id,
            c.dataset_name,
            c.dataset_digest,
        )
        .join(t.logged_models, m.model_id == c.model_id)
        .where(m.experiment_id.in_(experiment_ids), m.deleted_at.is_(None))
    )
    if keys is not None:
        query = query.where(c.key.in_(sorted(keys)))
    return [_point(row) for row in conn.execute(query.order_by(c.metric_id))]


def _point(row: Any) -> ModelMetric:
    value = math.nan if row.value is None else row.value
    return ModelMetric(
        row.model_id,
        row.key,
        value,
        row.step,
        row.timestamp,
        row.run_id,
        row.dataset_name,
        row.dataset_digest,
    )


def _metric_row(point: ModelMetric) -> dict[str, Any]:
    check_model_id(point.model_id)
    check_run_id(point.run_id)
    check_key(point.key, "metric")
    if (point.dataset_name is None) != (point.dataset_digest is None):
        raise InvalidArgument(
            f"Metric {point.key!r} for model {point.model_id}: dataset_name and dataset_digest "
            "go together: give both or neither"
        )
    for what, text, limit in (
        ("dataset_name", point.dataset_name, MAX_DATASET_NAME),
        ("dataset_digest", point.dataset_digest, MAX_DATASET_DIGEST),
    ):
        if text is not None and (not isinstance(text, str) or not 0 < len(text) <= limit):
            raise InvalidArgument(
                f"Metric {point.key!r}: {what} must be 1 to {limit} characters, got {text!r}"
            )
    return {
        "model_id": point.model_id,
        "run_id": point.run_id,
        "key": point.key,
        "value": None if math.isnan(point.value) else point.value,
        "step": point.step,
        "timestamp": point.timestamp,
        "dataset_name": point.dataset_name,
        "dataset_digest": point.dataset_digest,
    }


def _on_datasets(point: ModelMetric, datasets: Sequence[DatasetRef]) -> bool:
    return not datasets or any(
        point.dataset_name == d.name and (d.digest is None or point.dataset_digest == d.digest)
        for d in datasets
    )


def _latest(
    points: Iterable[ModelMetric], dataset_name: str | None, dataset_digest: str | None
) -> dict[tuple[str, str], float]:
    """Each (model, key)'s latest value: highest step, then time, then value, as MLflow picks
    it (and as a run's latest metric is picked); only points on the dataset when named."""
    best: dict[tuple[str, str], tuple[tuple[int, int, float], float]] = {}
    for p in points:
        if dataset_name is not None and p.dataset_name != dataset_name:
            continue
        if dataset_digest is not None and p.dataset_digest != dataset_digest:
            continue
        rank = (p.step, p.timestamp, -math.inf if math.isnan(p.value) else p.value)
        held = best.get((p.model_id, p.key))
        if held is None or rank > held[0]:
            best[(p.model_id, p.key)] = (rank, p.value)
    return {pair: value for pair, (_, value) in best.items()}


def _metric_value(
    latest: Mapping[tuple[str, str], float], key: str
) -> Callable[[LoggedModel], object]:
    def value(model: LoggedModel) -> object:
        found = latest.get((model.model_id, key))
        return None if found is None or math.isnan(found) else found

    return value


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name) or name.strip() != name:
        raise InvalidArgument(
            f"Invalid logged model name {name!r}: 1-256 characters without '/', ':', '%', "
            "'\\', control characters or surrounding spaces",
            [{"field": "name", "message": "1-256 characters, no '/', ':', '%', '\\'"}],
        )
    return name


def _check_text(value: str | None, what: str) -> str | None:
    if value is None or value == "":
        return None
    return check_value(value, "logged model", what)


def _checked_pairs(pairs: Mapping[str, str], what: str) -> dict[str, str]:
    return {check_key(k, what): check_value(v, what, k) for k, v in pairs.items()}


# A condition: (getter name, key or None, negated, value); a metric one: (key, op, number)
_Condition = tuple[str, str | None, bool, str]
_MetricCondition = tuple[str, str, float]
_FIELDS = ("name", "status", "model_type", "source_run_id", "model_id")
_METRIC_PREFIX = "metrics."
_KEY = r"(?:`(?P<qkey>[^`]+)`|(?P<key>[\w\-./:]+))"
_CONDITION = re.compile(
    rf"""\s*(?:(?P<entity>tags?|params?)\.{_KEY}|(?P<field>\w+))
    \s*(?P<op>!=|==|=)\s*(?:'(?P<single>[^']*)'|"(?P<double>[^"]*)")\s*""",
    re.VERBOSE,
)
_METRIC_CONDITION = re.compile(
    rf"""\s*metrics\.{_KEY}\s*(?P<op><=|>=|!=|==|<|>|=)\s*
    (?P<number>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*""",
    re.VERBOSE,
)
_COMPARE: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "=": operator.eq,
    "==": operator.eq,
    "!=": operator.ne,
}


def _parse_filter(text: str | None) -> tuple[list[_Condition], list[_MetricCondition]]:
    conditions: list[_Condition] = []
    metric_conditions: list[_MetricCondition] = []
    if text is None or not text.strip():
        return conditions, metric_conditions
    for part in re.split(r"(?i)\s+and\s+", text.strip()):
        metric = _METRIC_CONDITION.fullmatch(part)
        if metric is not None:
            key = metric["qkey"] or metric["key"]
            metric_conditions.append((key, metric["op"], float(metric["number"])))
            continue
        match = _CONDITION.fullmatch(part)
        if match is None or (match["field"] and match["field"] not in _FIELDS):
            raise InvalidArgument(
                f"Unsupported logged model filter {part.strip()!r}: modelloop filters logged "
                f"models with conditions `<field> = '<value>'` (or !=) on "
                f"{', '.join(_FIELDS)}, tags.<key> and params.<key>, and "
                "`metrics.<key> <op> <number>` (<, <=, >, >=, =, !=), joined by AND",
                [{"field": "filter", "message": "field = 'value' [AND ...]"}],
            )
        value = match["single"] if match["single"] is not None else match["double"]
        negated = match["op"] == "!="
        if match["entity"]:
            entity = "tags" if match["entity"].startswith("tag") else "params"
            conditions.append((entity, match["qkey"] or match["key"], negated, value))
        else:
            conditions.append((match["field"], None, negated, value))
    return conditions, metric_conditions


def _matches(model: LoggedModel, condition: _Condition) -> bool:
    field_name, key, negated, value = condition
    if key is not None:
        actual: object = getattr(model, field_name).get(key)
    else:
        actual = getattr(model, field_name)
        if field_name == "status":
            value = value.upper()
    return (actual == value) != negated


def _metric_key(field_name: str) -> str:
    return field_name[len(_METRIC_PREFIX) :].strip("`")


def _compare(actual: float | None, op: str, value: float) -> bool:
    """A metric condition on a model's latest value; no value (or NaN) never matches."""
    if actual is None or math.isnan(actual):
        return False
    return _COMPARE[op](actual, value)


_SORT_FIELDS: dict[str, Callable[[LoggedModel], object]] = {
    "name": lambda m: m.name,
    "creation_timestamp": lambda m: m.created_at,
    "creation_time": lambda m: m.created_at,
    "last_updated_timestamp": lambda m: m.updated_at,
    "model_type": lambda m: m.model_type,
    "status": lambda m: m.status.value,
    "model_id": lambda m: m.model_id,
}


def _sort_key(name: str) -> Callable[[LoggedModel], object]:
    if name not in _SORT_FIELDS:
        raise InvalidArgument(
            f"Cannot order logged models by {name!r}: use one of {', '.join(_SORT_FIELDS)} "
            "or metrics.<key>",
            [{"field": "order_by", "message": ", ".join([*_SORT_FIELDS, "metrics.<key>"])}],
        )
    return _SORT_FIELDS[name]


def _sortable(
    key: Callable[[LoggedModel], object], ascending: bool
) -> Callable[[LoggedModel], tuple[bool, Any]]:
    """A sort key on which None sorts after every value in either direction (the sort is
    reversed for descending) and never compares with one."""

    def sortable(model: LoggedModel) -> tuple[bool, Any]:
        value = key(model)
        return ((value is None) == ascending, value if value is not None else 0)

    return sortable
