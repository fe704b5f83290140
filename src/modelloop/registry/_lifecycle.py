"""Renaming and deleting registered models and versions, without breaking what names them.

An alias is how deployments, monitors and policies name a model (``models:/NAME@ALIAS``), and a
protected alias moves only through an approved request. So:

- a model with aliases can be neither renamed nor deleted (delete or move the aliases first; a
  protected alias cannot be deleted at all), nor can a version an alias points at;
- nor can a model a stored deployment, monitor or policy names (their ``model`` and
  ``challenger`` fields: ``NAME``, ``NAME@ALIAS``, ``NAME/VERSION``), nor a version one of them
  pins (``NAME/VERSION``): change those first;
- a model or version with a PENDING alias request cannot be deleted (decide or cancel it first);
- a deleted version's number is never given again (see :func:`_rows.next_version`).

Each change is one audit event (``model.rename``, ``model.delete``, ``model_version.delete``)
that :mod:`modelloop.audit.state` folds like the others; the run and its artifacts stay.
"""

from __future__ import annotations

import json
import re
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update

from modelloop import audit
from modelloop.clock import now_ms
from modelloop.errors import AlreadyExists, Conflict
from modelloop.registry import _rows
from modelloop.registry.entities import (
    RegisteredModel,
    RequestStatus,
    check_model_name,
    check_reason,
    check_version,
)
from modelloop.store import Database
from modelloop.store import tables as t

MV = t.model_versions.c
_R = t.alias_requests.c


class Lifecycle:
    """The rename and delete methods of :class:`~modelloop.registry.sql.SqlRegistryStore`."""

    db: Database

    def rename_registered_model(self, name: str, new_name: str, *, actor: str) -> RegisteredModel:
        """Give ``name`` and its versions, tags and alias requests the name ``new_name``."""
        new_name = check_model_name(new_name)
        with audit.recording(self.db, actor) as conn:
            row = _rows.require_model(conn, name)
            if _rows.model_row(conn, new_name) is not None:
                raise AlreadyExists(f"Registered model {new_name!r} already exists")
            _refuse_if_aliased(conn, name, f"rename {name!r}")
            _refuse_if_configured(conn, name, None, f"rename {name!r}")
            conn.execute(
                insert(t.registered_models).values(
                    name=new_name,
                    description=row.description,
                    created_at=row.created_at,
                    updated_at=now_ms(),
                )
            )
            versions = conn.execute(select(t.model_versions).where(MV.name == name)).all()
            if versions:
                conn.execute(
                    insert(t.model_versions),
                    [{**v._asdict(), "name": new_name} for v in versions],
                )
            for table in (t.model_version_tags, t.model_tags, t.alias_requests):
                conn.execute(update(table).where(table.c.name == name).values(name=new_name))
            conn.execute(delete(t.model_versions).where(MV.name == name))
            conn.execute(delete(t.registered_models).where(t.registered_models.c.name == name))
            audit.append(
                conn,
                time=now_ms(),
                actor=actor,
                action="model.rename",
                object_type="model",
                object_id=name,
                before={"name": name},
                after={"name": new_name},
            )
        with self.db.read() as conn:
            return _rows.load_models(conn, [_rows.require_model(conn, new_name)])[0]

    def delete_registered_model(self, name: str, *, actor: str, reason: str) -> None:
        """Delete a model without aliases or pending requests, with its versions and tags."""
        reason = check_reason(reason, f"delete model {name!r}")
        with audit.recording(self.db, actor) as conn:
            row = _rows.require_model(conn, name)
            _refuse_if_aliased(conn, name, f"delete {name!r}")
            _refuse_if_configured(conn, name, None, f"delete {name!r}")
            _refuse_if_pending(conn, name, None)
            numbers = list(
                conn.execute(select(MV.version).where(MV.name == name).order_by(MV.version))
                .scalars()
                .all()
            )
            tags = _rows.load_pairs(conn, t.model_tags, t.model_tags.c.name == name)
            for table in (t.model_version_tags, t.model_tags, t.alias_requests, t.model_versions):
                conn.execute(delete(table).where(table.c.name == name))
            conn.execute(delete(t.registered_models).where(t.registered_models.c.name == name))
            audit.append(
                conn,
                time=now_ms(),
                actor=actor,
                action="model.delete",
                object_type="model",
                object_id=name,
                before={"description": row.description, "tags": tags, "versions": numbers},
                after=None,
                reason=reason,
            )

    def delete_model_version(self, name: str, version: int, *, actor: str, reason: str) -> None:
        """Delete a version no alias points at and no pending request names."""
        version = check_version(version)
        reason = check_reason(reason, f"delete version {version} of {name!r}")
        with audit.recording(self.db, actor) as conn:
            row = _rows.require_version(conn, name, version)
            aliased = _rows.aliases_of(conn, name, version)
            if aliased:
                raise Conflict(
                    f"Version {version} of {name!r} is aliased as {', '.join(aliased)}; move "
                    "or delete those aliases before deleting it"
                )
            _refuse_if_configured(conn, name, version, f"delete version {version} of {name!r}")
            _refuse_if_pending(conn, name, version)
            c = t.model_version_tags.c
            conn.execute(delete(t.model_version_tags).where(c.name == name, c.version == version))
            conn.execute(delete(t.model_versions).where(MV.name == name, MV.version == version))
            _rows.touch(conn, name, now_ms())
            audit.append(
                conn,
                time=now_ms(),
                actor=actor,
                action="model_version.delete",
                object_type="model_version",
                object_id=f"{name}/{version}",
                before={
                    "run_id": row.run_id,
                    "artifact_path": row.artifact_path,
                    "package_digest": row.package_digest,
                    "status": row.status,
                },
                after=None,
                reason=reason,
            )


def _refuse_if_aliased(conn: Connection, name: str, what: str) -> None:
    c = t.aliases.c
    found = conn.execute(select(c.alias).where(c.name == name).order_by(c.alias)).scalars().all()
    if found:
        raise Conflict(
            f"Cannot {what}: it has the aliases {', '.join(found)}, which deployments, monitors "
            f"and policies may name (models:/{name}@{found[0]}); delete those aliases first (a "
            "protected alias such as champion cannot be deleted: remove it from "
            "MODELLOOP_PROTECTED_ALIASES first)"
        )


_CONFIGS = {"deployment": t.deployments, "monitor": t.monitors, "policy": t.policies}
_REFERENCE = re.compile(r"^(?:models:/)?(?P<name>[^@/\s]+)(?:@[^@/\s]+|/(?P<version>[0-9]+))?$")


def _refuse_if_configured(conn: Connection, name: str, version: int | None, what: str) -> None:
    """Refuse while a stored deployment, monitor or policy names the model (or pins the
    version): serving, monitoring or retraining would fail at their next load."""
    naming = []
    for kind, table in _CONFIGS.items():
        for row in conn.execute(select(table.c.name, table.c.config).order_by(table.c.name)):
            config = json.loads(row.config)
            for field in ("model", "challenger"):
                value = config.get(field) if isinstance(config, dict) else None
                found = _REFERENCE.match(value) if isinstance(value, str) else None
                if found is None or found["name"] != name:
                    continue
                if version is None or found["version"] == str(version):
                    naming.append(f"{kind} {row.name!r} ({field}: {value})")
    if naming:
        raise Conflict(
            f"Cannot {what}: {', '.join(naming)} still name it; change or delete "
            f"{'it' if len(naming) == 1 else 'them'} first"
        )


def _refuse_if_pending(conn: Connection, name: str, version: int | None) -> None:
    query = select(_R.request_id, _R.alias, _R.version).where(
        _R.name == name, _R.status == RequestStatus.PENDING.value
    )
    if version is not None:
        query = query.where(_R.version == version)
    pending: list[Any] = list(conn.execute(query.order_by(_R.created_at)).all())
    if pending:
        listed = ", ".join(f"{r.request_id} ({name}@{r.alias} -> {r.version})" for r in pending)
        raise Conflict(
            f"Alias requests are pending for {name!r}: {listed}; approve, reject or cancel "
            "them first"
        )
