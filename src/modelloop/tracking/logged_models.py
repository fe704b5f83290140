"""Logged models: a model an MLflow 3 client logs, with its own id (``m-<32 hex>``), name,
status, tags and params, whose files the client uploads after creating it.

modelloop keeps one artifact store: a logged model's files are artifacts of a run, under
``models/<model_id>/``. The run is the model's source run, or, when the client names none, a run
created for the model in its experiment (tagged :data:`TAG_LOGGED_MODEL`). The registry then
registers ``models:/m-...`` as it registers any run's model (:func:`logged_model_location`).
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

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

_MODEL_ID = re.compile(r"^m-[0-9a-f]{32}$")
_NAME = re.compile(r"^[^/:%\\\x00-\x1f]{1,256}$")


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
        return model

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
        check_run_id(run_id)
        with self.db.write() as conn:
            _live(conn, model_id)
            if conn.execute(select(literal(1)).where(t.runs.c.run_id == run_id)).first() is None:
                raise NotFound(f"Run {run_id!r} does not exist")
            o = t.run_outputs.c
            if conn.execute(
                select(literal(1)).where(o.run_id == run_id, o.model_id == model_id)
            ).first():
                return
            conn.execute(
                insert(t.run_outputs).values(
                    run_id=run_id, model_id=model_id, step=step, created_at=now_ms()
                )
            )

    def outputs_of_run(self, run_id: str) -> list[tuple[str, int]]:
        """The (model id, step) pairs a run produced, in the order they were recorded."""
        o = t.run_outputs.c
        with self.db.read() as conn:
            rows = conn.execute(
                select(o.model_id, o.step).where(o.run_id == run_id).order_by(o.created_at)
            ).all()
        return [(r.model_id, r.step) for r in rows]

    def search(
        self,
        experiment_ids: Sequence[str],
        filter_string: str | None = None,
        *,
        order_by: Sequence[tuple[str, bool]] = (),
        max_results: int = 100,
        offset: int = 0,
    ) -> LoggedModelPage:
        """Live models of the experiments, newest first unless ``order_by`` says otherwise
        (``(field, ascending)`` pairs over ``name``, ``creation_timestamp``,
        ``last_updated_timestamp``, ``model_type``, ``status``). ``filter_string`` is ANDed
        ``field = 'value'`` / ``!=`` conditions on ``name``, ``status``, ``model_type``,
        ``source_run_id``, ``model_id``, ``tags.<key>`` and ``params.<key>``."""
        if not 1 <= max_results <= MAX_SEARCH_RESULTS:
            raise InvalidArgument(
                f"max_results must be between 1 and {MAX_SEARCH_RESULTS}, got {max_results}",
                [{"field": "max_results", "message": f"1 to {MAX_SEARCH_RESULTS}"}],
            )
        conditions = _parse_filter(filter_string)
        sort_keys = [_sort_key(name) for name, _ in order_by]
        m = t.logged_models.c
        with self.db.read() as conn:
            rows = conn.execute(
                select(t.logged_models)
                .where(m.experiment_id.in_(list(experiment_ids)), m.deleted_at.is_(None))
                .order_by(m.created_at.desc(), m.model_id)
            ).all()
        models = [_model(r) for r in rows]
        models = [x for x in models if all(_matches(x, c) for c in conditions)]
        for key, (_, ascending) in reversed(list(zip(sort_keys, order_by, strict=True))):
            models.sort(key=_sortable(key), reverse=not ascending)
        page = models[offset : offset + max_results]
        more = offset + max_results < len(models)
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


# A condition: (getter name, key or None, negated, value)
_Condition = tuple[str, str | None, bool, str]
_FIELDS = ("name", "status", "model_type", "source_run_id", "model_id")
_CONDITION = re.compile(
    r"""\s*(?:(?P<entity>tags?|params?)\.(?:`(?P<qkey>[^`]+)`|(?P<key>[\w\-./:]+))|(?P<field>\w+))
    \s*(?P<op>!=|==|=)\s*(?:'(?P<single>[^']*)'|"(?P<double>[^"]*)")\s*""",
    re.VERBOSE,
)


def _parse_filter(text: str | None) -> list[_Condition]:
    if text is None or not text.strip():
        return []
    conditions: list[_Condition] = []
    for part in re.split(r"(?i)\s+and\s+", text.strip()):
        match = _CONDITION.fullmatch(part)
        if match is None or (match["field"] and match["field"] not in _FIELDS):
            raise InvalidArgument(
                f"Unsupported logged model filter {part.strip()!r}: modelloop filters logged "
                f"models with conditions `<field> = '<value>'` (or !=) joined by AND, on "
                f"{', '.join(_FIELDS)}, tags.<key> and params.<key>",
                [{"field": "filter", "message": "field = 'value' [AND ...]"}],
            )
        value = match["single"] if match["single"] is not None else match["double"]
        negated = match["op"] == "!="
        if match["entity"]:
            entity = "tags" if match["entity"].startswith("tag") else "params"
            conditions.append((entity, match["qkey"] or match["key"], negated, value))
        else:
            conditions.append((match["field"], None, negated, value))
    return conditions


def _matches(model: LoggedModel, condition: _Condition) -> bool:
    field_name, key, negated, value = condition
    if key is not None:
        actual: object = getattr(model, field_name).get(key)
    else:
        actual = getattr(model, field_name)
        if field_name == "status":
            value = value.upper()
    return (actual == value) != negated


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
            f"Cannot order logged models by {name!r}: use one of {', '.join(_SORT_FIELDS)}",
            [{"field": "order_by", "message": ", ".join(_SORT_FIELDS)}],
        )
    return _SORT_FIELDS[name]


def _sortable(key: Callable[[LoggedModel], object]) -> Callable[[LoggedModel], tuple[bool, Any]]:
    """A sort key on which None sorts after every value (and never compares with one)."""

    def sortable(model: LoggedModel) -> tuple[bool, Any]:
        value = key(model)
        return (value is None, value if value is not None else 0)

    return sortable
