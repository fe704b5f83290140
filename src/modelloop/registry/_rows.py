"""Reading and writing registry rows inside a transaction: the pieces both the store and its
approvals need. Callers hold an :func:`modelloop.audit.recording` transaction.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, update

from modelloop import audit
from modelloop.clock import now_ms
from modelloop.errors import Conflict, InvalidArgument, NotFound
from modelloop.registry.entities import (
    Alias,
    ModelVersion,
    RegisteredModel,
    VersionStatus,
    check_model_name,
    check_version,
)
from modelloop.store import Database
from modelloop.store import tables as t
from modelloop.tracking.entities import check_key, check_value

MV = t.model_versions.c


def checked_description(description: str | None) -> str | None:
    return None if description is None else check_value(description, "model", "description")


def checked_expected(expected: int | None) -> int | None:
    if expected is None or expected == 0:
        return expected
    return check_version(expected)


def check_expected(name: str, alias: str, current: int | None, expected: int | None) -> None:
    if expected is None or (current or 0) == expected:
        return
    now = f"points at version {current}" if current is not None else "does not exist"
    wanted = "not to exist" if expected == 0 else f"to point at version {expected}"
    raise Conflict(f"Alias {alias!r} of {name!r} {now}; expected it {wanted}")


def checked_json(value: Mapping[str, Any] | None, what: str) -> dict[str, Any] | None:
    if value is None:
        return None
    try:
        return dict(json.loads(json.dumps(dict(value), allow_nan=False)))
    except (TypeError, ValueError) as exc:
        raise InvalidArgument(f"Invalid {what}: not a JSON object ({exc})") from None


def checked_metrics(metrics: Mapping[str, float]) -> dict[str, float]:
    checked = {}
    for key, value in dict(metrics).items():
        check_key(key, "metric")
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise InvalidArgument(f"Metric {key!r} of a model version must be a finite number")
        checked[key] = float(value)
    return checked


def model_row(conn: Connection, name: str) -> Any:
    return conn.execute(
        select(t.registered_models).where(t.registered_models.c.name == name)
    ).first()


def require_model(conn: Connection, name: str) -> Any:
    row = model_row(conn, check_model_name(name))
    if row is None:
        raise NotFound(f"Registered model {name!r} does not exist")
    return row


def require_run(conn: Connection, run_id: str) -> None:
    """A run to register from: it exists and is not deleted (a deleted run is read-only)."""
    row = conn.execute(select(t.runs.c.deleted_at).where(t.runs.c.run_id == run_id)).first()
    if row is None:
        raise NotFound(f"Run {run_id!r} does not exist")
    if row.deleted_at is not None:
        raise Conflict(f"Run {run_id} is deleted: restore it before registering its model")


def require_version(conn: Connection, name: str, version: int) -> Any:
    row = conn.execute(
        select(t.model_versions).where(MV.name == name, MV.version == version)
    ).first()
    if row is None:
        require_model(conn, name)
        raise NotFound(f"Model {name!r} has no version {version}")
    return row


def insert_model(
    conn: Connection, name: str, description: str | None, tags: dict[str, str], actor: str
) -> None:
    created = now_ms()
    conn.execute(
        insert(t.registered_models).values(
            name=name, description=description, created_at=created, updated_at=created
        )
    )
    set_pairs(conn, t.model_tags, {"name": name}, tags)
    audit.append(
        conn,
        time=created,
        actor=actor,
        action="model.create",
        object_type="model",
        object_id=name,
        before=None,
        after={"name": name, "description": description, "tags": tags},
    )


def touch(conn: Connection, name: str, at: int) -> None:
    conn.execute(
        update(t.registered_models).where(t.registered_models.c.name == name).values(updated_at=at)
    )


def load_pairs(conn: Connection, table: Any, where: Any) -> dict[str, str]:
    return dict(conn.execute(select(table.c.key, table.c.value).where(where)).all())


def checked_deletions(keys: Collection[str], setting: Mapping[str, str]) -> frozenset[str]:
    """Tag keys to delete: valid keys, none of them also being set in the same change."""
    if isinstance(keys, str):
        raise InvalidArgument("delete_tags must be a list of tag keys, not a string")
    deleted = frozenset(check_key(k, "tag") for k in keys)
    both = sorted(deleted & set(setting))
    if both:
        raise InvalidArgument(f"Tags {', '.join(both)} are both set and deleted in one change")
    return deleted


def merged(old: dict[str, str], setting: dict[str, str], deleted: frozenset[str]) -> dict[str, str]:
    return {**{k: v for k, v in old.items() if k not in deleted}, **setting}


def set_pairs(
    conn: Connection,
    table: Any,
    owner: dict[str, Any],
    pairs: dict[str, str],
    deleted: Collection[str] = (),
) -> None:
    """Set or overwrite tags and delete others: delete the keys, insert the set ones again
    (a portable upsert)."""
    keys = [*pairs, *deleted]
    if not keys:
        return
    where = [table.c[k] == v for k, v in owner.items()]
    conn.execute(delete(table).where(*where, table.c.key.in_(keys)))
    if pairs:
        conn.execute(insert(table), [{**owner, "key": k, "value": v} for k, v in pairs.items()])


def next_version(conn: Connection, name: str) -> int:
    """One more than the highest version ``name`` ever had: a deleted version's number is never
    given again (``models:/NAME/3`` keeps meaning one package), even after the model itself was
    deleted and created again, so the audit trail's creations count too."""
    current = conn.execute(select(func.max(MV.version)).where(MV.name == name)).scalar() or 0
    a = t.audit_events.c
    created = conn.execute(
        select(a.object_id).where(
            a.action == "model_version.create",
            a.object_type == "model_version",
            a.object_id.startswith(f"{name}/", autoescape=True),
        )
    ).scalars()
    issued = max((int(i.rpartition("/")[2]) for i in created), default=0)
    return max(current, issued) + 1


def package_digest(conn: Connection, run_id: str, prefix: str) -> str:
    """sha256 over ``relative path TAB content digest`` lines of the package, sorted by path."""
    a = t.artifacts.c
    rows = conn.execute(
        select(a.path, a.digest)
        .where(a.run_id == run_id, a.path.startswith(prefix + "/", autoescape=True))
        .order_by(a.path)
    ).all()
    if not rows:
        raise NotFound(
            f"Run {run_id} has no artifacts under {prefix!r}: log the model package there "
            "first (or pass the model to register_model)"
        )
    lines = "".join(f"{path[len(prefix) + 1 :]}\t{digest}\n" for path, digest in rows)
    return hashlib.sha256(lines.encode("utf-8")).hexdigest()


def alias_version(conn: Connection, name: str, alias: str) -> int | None:
    version = conn.execute(
        select(t.aliases.c.version).where(t.aliases.c.name == name, t.aliases.c.alias == alias)
    ).scalar()
    return None if version is None else int(version)


def aliases_of(conn: Connection, name: str, version: int) -> list[str]:
    c = t.aliases.c
    return list(
        conn.execute(
            select(c.alias).where(c.name == name, c.version == version).order_by(c.alias)
        ).scalars()
    )


def move_alias(
    conn: Connection,
    name: str,
    alias: str,
    version: int,
    actor: str,
    reason: str,
    expected: int | None,
    approval: dict[str, Any] | None = None,
) -> None:
    """Point ``alias`` at ``version`` (inside a locked write), audited as ``alias.move``."""
    row = require_version(conn, name, version)
    if row.status != VersionStatus.READY.value:
        raise Conflict(
            f"Version {version} of {name!r} is {row.status}; an alias can only point at a "
            "READY version"
        )
    current = alias_version(conn, name, alias)
    check_expected(name, alias, current, expected)
    if current == version:
        return  # already there: nothing changes, nothing to audit
    at = now_ms()
    values = {"version": version, "updated_at": at, "updated_by": actor}
    if current is None:
        conn.execute(insert(t.aliases).values(name=name, alias=alias, **values))
    else:
        conn.execute(
            update(t.aliases)
            .where(t.aliases.c.name == name, t.aliases.c.alias == alias)
            .values(**values)
        )
    touch(conn, name, at)
    audit.append(
        conn,
        time=at,
        actor=actor,
        action="alias.move",
        object_type="alias",
        object_id=f"{name}@{alias}",
        before=None if current is None else {"version": current},
        after={"version": version, **(approval or {})},
        reason=reason,
    )


def load_alias(db: Database, name: str, alias: str) -> Alias:
    with db.read() as conn:
        row = conn.execute(
            select(t.aliases).where(t.aliases.c.name == name, t.aliases.c.alias == alias)
        ).first()
    if row is None:  # pragma: no cover - deleted between the write and this read
        raise NotFound(f"Model {name!r} has no alias {alias!r}")
    return Alias(row.name, row.alias, row.version, row.updated_at, row.updated_by)


def load_models(conn: Connection, rows: Sequence[Any]) -> list[RegisteredModel]:
    names = [r.name for r in rows]
    if not names:
        return []
    tags: dict[str, dict[str, str]] = {n: {} for n in names}
    for name, key, value in conn.execute(
        select(t.model_tags.c.name, t.model_tags.c.key, t.model_tags.c.value).where(
            t.model_tags.c.name.in_(names)
        )
    ).all():
        tags[name][key] = value
    aliases: dict[str, dict[str, int]] = {n: {} for n in names}
    for name, alias, version in conn.execute(
        select(t.aliases.c.name, t.aliases.c.alias, t.aliases.c.version)
        .where(t.aliases.c.name.in_(names))
        .order_by(t.aliases.c.alias)
    ).all():
        aliases[name][alias] = version
    latest = dict(
        conn.execute(
            select(MV.name, func.max(MV.version)).where(MV.name.in_(names)).group_by(MV.name)
        ).all()
    )
    return [
        RegisteredModel(
            r.name,
            r.description,
            tags[r.name],
            r.created_at,
            r.updated_at,
            latest.get(r.name),
            aliases[r.name],
        )
        for r in rows
    ]


def load_versions(conn: Connection, name: str, rows: Sequence[Any]) -> list[ModelVersion]:
    numbers = [r.version for r in rows]
    tags: dict[int, dict[str, str]] = {v: {} for v in numbers}
    c = t.model_version_tags.c
    for version, key, value in conn.execute(
        select(c.version, c.key, c.value).where(c.name == name, c.version.in_(numbers))
    ).all():
        tags[version][key] = value
    aliases: dict[int, list[str]] = {v: [] for v in numbers}
    for alias, version in conn.execute(
        select(t.aliases.c.alias, t.aliases.c.version)
        .where(t.aliases.c.name == name, t.aliases.c.version.in_(numbers))
        .order_by(t.aliases.c.alias)
    ).all():
        aliases[version].append(alias)
    return [
        ModelVersion(
            name=r.name,
            version=r.version,
            run_id=r.run_id,
            artifact_path=r.artifact_path,
            flavor=r.flavor,
            signature=None if r.signature is None else json.loads(r.signature),
            status=VersionStatus(r.status),
            description=r.description,
            tags=tags[r.version],
            created_at=r.created_at,
            created_by=r.created_by,
            metrics=json.loads(r.metrics),
            dataset_digests=json.loads(r.dataset_digests),
            package_digest=r.package_digest,
            aliases=aliases[r.version],
        )
        for r in rows
    ]
