"""Declared configurations (deployments, monitors): validated whole, stored, audited.

A configuration comes from a YAML file, a mapping or a REST body; it is validated by its pydantic
model with one message per problem (``field: message``), then stored as a JSON document in a
table of ``(name, config, updated_at, updated_by)`` in the metadata database. Every change is an
audit event with the document before and after; applying the same document again changes
nothing and records nothing.
"""

from __future__ import annotations

import json
import types
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ValidationError

from modelloop.clock import now_ms
from modelloop.errors import Conflict, InvalidArgument

if TYPE_CHECKING:
    from sqlalchemy import Connection, Row, Table

    from modelloop.settings import Settings
    from modelloop.store import Database

Config = TypeVar("Config", bound=BaseModel)


def validate(model: type[Config], data: Any, source: str, what: str) -> Config:
    """``data`` as a ``model``; every problem becomes one line of an InvalidArgument."""
    if not isinstance(data, dict):
        raise InvalidArgument(
            f"{source}: expected a mapping of settings, got {type(data).__name__}"
        )
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        details = [
            {
                "field": ".".join(str(p) for p in error["loc"]) or what,
                "message": _message(error, model),
            }
            for error in exc.errors()
        ]
        lines = "; ".join(f"{d['field']}: {d['message']}" for d in details)
        raise InvalidArgument(f"{source} is not a valid {what}: {lines}", details) from None


def read_yaml(path: str | Path, what: str) -> Any:
    """The parsed content of a YAML (or JSON) file, or InvalidArgument saying why not."""
    import yaml

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidArgument(f"Cannot read the {what} file {path}: {exc.strerror}") from exc
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InvalidArgument(f"{path} is not valid YAML: {exc}") from exc


def save(
    db: Database,
    table: Table,
    name: str,
    document: Callable[[dict[str, Any] | None], dict[str, Any]],
    *,
    actor: str,
    kind: str,
) -> bool:
    """Store ``document(before)`` under ``name`` (audited as ``<kind>.apply``); False if it is
    what was stored already. ``before`` is the stored document, or None."""
    from sqlalchemy import insert, select, update

    from modelloop import audit

    now = now_ms()
    with db.write() as conn:
        audit.lock(conn)
        row = conn.execute(select(table.c.config).where(table.c.name == name)).first()
        before = None if row is None else json.loads(row.config)
        after = document(before)
        if before == after:
            return False
        values = {
            "config": json.dumps(after, sort_keys=True),
            "updated_at": now,
            "updated_by": actor,
        }
        if row is None:
            conn.execute(insert(table).values(name=name, **values))
        else:
            conn.execute(update(table).where(table.c.name == name).values(**values))
        audit.append(
            conn,
            time=now,
            actor=actor,
            action=f"{kind}.apply",
            object_type=kind,
            object_id=name,
            before=before,
            after=after,
        )
    return True


def remove(
    db: Database,
    table: Table,
    name: str,
    *,
    actor: str,
    kind: str,
    before_delete: Callable[[Connection], None] | None = None,
    named_by: Mapping[str, tuple[Table, str]] | None = None,
) -> bool:
    """Delete the document stored under ``name`` (audited as ``<kind>.delete``, with what it
    was); False if there was none. ``before_delete`` removes what hangs off it, in the same
    transaction. ``named_by`` maps a kind of document to its table and the field by which it
    names this one: while any such document names it, the delete is a Conflict that lists them,
    so nothing is left pointing at a deployment or monitor that is gone."""
    from sqlalchemy import delete, select

    from modelloop import audit

    with db.write() as conn:
        audit.lock(conn)
        row = conn.execute(select(table.c.config).where(table.c.name == name)).first()
        if row is None:
            return False
        _refuse_if_named(conn, kind, name, named_by or {})
        if before_delete is not None:
            before_delete(conn)
        conn.execute(delete(table).where(table.c.name == name))
        audit.append(
            conn,
            time=now_ms(),
            actor=actor,
            action=f"{kind}.delete",
            object_type=kind,
            object_id=name,
            before=json.loads(row.config),
            after=None,
        )
    return True


def _refuse_if_named(
    conn: Connection, kind: str, name: str, named_by: Mapping[str, tuple[Table, str]]
) -> None:
    from sqlalchemy import select

    naming = [
        f"{other} {row.name!r}"
        for other, (table, field) in named_by.items()
        for row in conn.execute(select(table.c.name, table.c.config).order_by(table.c.name))
        if json.loads(row.config).get(field) == name
    ]
    if naming:
        raise Conflict(
            f"Cannot delete {kind} {name!r}: {', '.join(naming)} still name it; delete or change "
            f"{'it' if len(naming) == 1 else 'them'} first",
            [{"field": "name", "message": f"named by {', '.join(naming)}"}],
        )


def stored(db: Database, table: Table, name: str | None = None) -> list[Row[Any]]:
    """The stored rows, by name (one or none when ``name`` is given)."""
    from sqlalchemy import select

    query = select(table).order_by(table.c.name)
    if name is not None:
        query = query.where(table.c.name == name)
    with db.read() as conn:
        return list(conn.execute(query).all())


def local_database(settings: Settings | None, what: str) -> Database:
    """The metadata database; configurations are not served over a tracking server's client."""
    from modelloop.settings import load_settings
    from modelloop.store import open_database

    settings = settings or load_settings()
    if settings.is_remote:
        raise InvalidArgument(
            f"{what} are stored in the metadata database: unset MODELLOOP_TRACKING_URI and "
            "set MODELLOOP_DATABASE_URL to the server's database"
        )
    return open_database(settings.database_url)


def _message(error: Any, model: type[BaseModel]) -> str:
    if error["type"] == "extra_forbidden":
        owner = _model_at(model, error["loc"][:-1])
        if owner is None:
            return "unknown setting"
        return "unknown setting (known: " + ", ".join(owner.model_fields) + ")"
    return str(error["msg"]).removeprefix("Value error, ")


def _model_at(model: Any, path: tuple[Any, ...]) -> type[BaseModel] | None:
    """The (nested) model that ``path`` of an error location points into, so an unknown key
    deep in a configuration is answered with the keys known there; None if unsure."""
    current: Any = model
    for part in path:
        current = _unoptional(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(str(part))
            current = None if field is None else field.annotation
        elif typing.get_origin(current) in (dict, list, tuple):  # part is a key or an index
            current = (typing.get_args(current) or (None,))[-1]
        else:
            return None
    current = _unoptional(current)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _unoptional(annotation: Any) -> Any:
    """``X`` of ``X | None``; other annotations as they are."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        return members[0] if len(members) == 1 else None
    return annotation
