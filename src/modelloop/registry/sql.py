"""The registry on a SQL database (SQLite or PostgreSQL), every change audited in its transaction.

Each write runs in one transaction that first takes the audit lock
(:func:`modelloop.audit.recording`): registry writes are serialised, so reading the current state
(the next version number, an alias's current version, a request's status), checking it and
changing it cannot interleave with another writer, on either database, in any process. Registry
writes are human-paced, so one at a time costs nothing; reads never wait.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping

from sqlalchemy import delete, insert, select, update

from modelloop import audit
from modelloop.artifacts import canonical_path
from modelloop.audit import AuditEvent, AuditVerification
from modelloop.clock import now_ms
from modelloop.errors import AlreadyExists, Conflict, Forbidden, InvalidArgument, NotFound
from modelloop.registry import _rows
from modelloop.registry._approvals import AliasRequests
from modelloop.registry._lifecycle import Lifecycle
from modelloop.registry.entities import (
    Alias,
    ModelVersion,
    ModelVersionSpec,
    RegisteredModel,
    VersionStatus,
    check_alias,
    check_model_name,
    check_reason,
    check_tags,
    check_version,
    check_version_status,
)
from modelloop.store import Database
from modelloop.store import tables as t
from modelloop.tracking.entities import check_key, check_run_id, check_value

MV = t.model_versions.c


class SqlRegistryStore(AliasRequests, Lifecycle):
    """Implements :class:`~modelloop.registry.store.RegistryStore` on a :class:`Database`."""

    def __init__(
        self, db: Database, *, protected_aliases: frozenset[str] = frozenset({"champion"})
    ) -> None:
        self.db = db
        self.protected_aliases = protected_aliases

    def close(self) -> None:
        """The database is shared process-wide (see ``open_database``); nothing to release."""

    # -- registered models -------------------------------------------------------------------

    def create_registered_model(
        self,
        name: str,
        *,
        actor: str,
        description: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> RegisteredModel:
        name = check_model_name(name)
        description = _rows.checked_description(description)
        checked = check_tags(tags)
        with audit.recording(self.db, actor) as conn:
            if _rows.model_row(conn, name) is not None:
                raise AlreadyExists(f"Registered model {name!r} already exists")
            _rows.insert_model(conn, name, description, checked, actor)
        return self.get_registered_model(name)

    def get_registered_model(self, name: str) -> RegisteredModel:
        with self.db.read() as conn:
            row = _rows.require_model(conn, name)
            return _rows.load_models(conn, [row])[0]

    def list_registered_models(self) -> list[RegisteredModel]:
        with self.db.read() as conn:
            found = conn.execute(
                select(t.registered_models).order_by(t.registered_models.c.name)
            ).all()
            return _rows.load_models(conn, found)

    def update_registered_model(
        self,
        name: str,
        *,
        actor: str,
        description: str | None = None,
        tags: Mapping[str, str] | None = None,
        delete_tags: Collection[str] = (),
    ) -> RegisteredModel:
        description = _rows.checked_description(description)
        checked = check_tags(tags)
        deleted = _rows.checked_deletions(delete_tags, checked)
        with audit.recording(self.db, actor) as conn:
            row = _rows.require_model(conn, name)
            old_tags = _rows.load_pairs(conn, t.model_tags, t.model_tags.c.name == name)
            new_tags = _rows.merged(old_tags, checked, deleted)
            new_description = row.description if description is None else description
            if (new_description, new_tags) != (row.description, old_tags):
                _rows.set_pairs(conn, t.model_tags, {"name": name}, checked, deleted)
                conn.execute(
                    update(t.registered_models)
                    .where(t.registered_models.c.name == name)
                    .values(description=new_description, updated_at=now_ms())
                )
                audit.append(
                    conn,
                    time=now_ms(),
                    actor=actor,
                    action="model.update",
                    object_type="model",
                    object_id=name,
                    before={"description": row.description, "tags": old_tags},
                    after={"description": new_description, "tags": new_tags},
                )
        return self.get_registered_model(name)

    # -- versions ----------------------------------------------------------------------------

    def create_model_version(self, spec: ModelVersionSpec, *, actor: str) -> ModelVersion:
        name = check_model_name(spec.name)
        run_id = check_run_id(spec.run_id)
        prefix = canonical_path(spec.artifact_path)
        if spec.flavor is not None and not (isinstance(spec.flavor, str) and spec.flavor):
            raise InvalidArgument(f"Invalid flavor {spec.flavor!r}")
        signature = _rows.checked_json(spec.signature, "signature")
        description = _rows.checked_description(spec.description)
        tags = check_tags(spec.tags)
        metrics = _rows.checked_metrics(spec.metrics)
        digests = {
            check_key(k, "dataset"): check_value(v, "dataset", k)
            for k, v in dict(spec.dataset_digests).items()
        }
        with audit.recording(self.db, actor) as conn:
            _rows.require_run(conn, run_id)
            package_digest = _rows.package_digest(conn, run_id, prefix)
            if _rows.model_row(conn, name) is None:
                _rows.insert_model(conn, name, None, {}, actor)
            version = _rows.next_version(conn, name)
            created = now_ms()
            record = {
                "run_id": run_id,
                "artifact_path": prefix,
                "flavor": spec.flavor,
                "package_digest": package_digest,
                "status": VersionStatus.READY.value,
            }
            conn.execute(
                insert(t.model_versions).values(
                    name=name,
                    version=version,
                    signature=None if signature is None else json.dumps(signature),
                    description=description,
                    created_at=created,
                    created_by=actor,
                    metrics=json.dumps(metrics),
                    dataset_digests=json.dumps(digests),
                    **record,
                )
            )
            _rows.set_pairs(conn, t.model_version_tags, {"name": name, "version": version}, tags)
            _rows.touch(conn, name, created)
            audit.append(
                conn,
                time=created,
                actor=actor,
                action="model_version.create",
                object_type="model_version",
                object_id=f"{name}/{version}",
                before=None,
                after={"version": version, **record, "dataset_digests": digests},
            )
        return self.get_model_version(name, version)

    def get_model_version(self, name: str, version: int) -> ModelVersion:
        version = check_version(version)
        with self.db.read() as conn:
            row = _rows.require_version(conn, name, version)
            return _rows.load_versions(conn, name, [row])[0]

    def list_model_versions(self, name: str) -> list[ModelVersion]:
        with self.db.read() as conn:
            _rows.require_model(conn, name)
            found = conn.execute(
                select(t.model_versions).where(MV.name == name).order_by(MV.version)
            ).all()
            return _rows.load_versions(conn, name, found)

    def update_model_version(
        self,
        name: str,
        version: int,
        *,
        actor: str,
        description: str | None = None,
        tags: Mapping[str, str] | None = None,
        delete_tags: Collection[str] = (),
    ) -> ModelVersion:
        version = check_version(version)
        description = _rows.checked_description(description)
        checked = check_tags(tags)
        deleted = _rows.checked_deletions(delete_tags, checked)
        where = (t.model_version_tags.c.name == name) & (t.model_version_tags.c.version == version)
        with audit.recording(self.db, actor) as conn:
            row = _rows.require_version(conn, name, version)
            old_tags = _rows.load_pairs(conn, t.model_version_tags, where)
            new_tags = _rows.merged(old_tags, checked, deleted)
            new_description = row.description if description is None else description
            if (new_description, new_tags) != (row.description, old_tags):
                owner = {"name": name, "version": version}
                _rows.set_pairs(conn, t.model_version_tags, owner, checked, deleted)
                conn.execute(
                    update(t.model_versions)
                    .where(MV.name == name, MV.version == version)
                    .values(description=new_description)
                )
                audit.append(
                    conn,
                    time=now_ms(),
                    actor=actor,
                    action="model_version.update",
                    object_type="model_version",
                    object_id=f"{name}/{version}",
                    before={"description": row.description, "tags": old_tags},
                    after={"description": new_description, "tags": new_tags},
                )
        return self.get_model_version(name, version)

    def set_version_status(
        self, name: str, version: int, status: VersionStatus, *, actor: str, reason: str
    ) -> ModelVersion:
        version = check_version(version)
        new = check_version_status(status)
        reason = check_reason(reason, f"change the status of {name} version {version}")
        with audit.recording(self.db, actor) as conn:
            row = _rows.require_version(conn, name, version)
            if row.status != new.value:
                aliased = _rows.aliases_of(conn, name, version)
                if new is VersionStatus.ARCHIVED and aliased:
                    raise Conflict(
                        f"Version {version} of {name!r} is aliased as {', '.join(aliased)}; "
                        "move or delete those aliases before archiving it"
                    )
                conn.execute(
                    update(t.model_versions)
                    .where(MV.name == name, MV.version == version)
                    .values(status=new.value)
                )
                audit.append(
                    conn,
                    time=now_ms(),
                    actor=actor,
                    action="model_version.status",
                    object_type="model_version",
                    object_id=f"{name}/{version}",
                    before={"status": row.status},
                    after={"status": new.value},
                    reason=reason,
                )
        return self.get_model_version(name, version)

    # -- aliases -----------------------------------------------------------------------------

    def get_version_by_alias(self, name: str, alias: str) -> ModelVersion:
        alias = check_alias(alias)
        with self.db.read() as conn:
            _rows.require_model(conn, name)
            version = _rows.alias_version(conn, name, alias)
            if version is None:
                raise NotFound(f"Model {name!r} has no alias {alias!r}")
            return _rows.load_versions(conn, name, [_rows.require_version(conn, name, version)])[0]

    def set_alias(
        self,
        name: str,
        alias: str,
        version: int,
        *,
        actor: str,
        reason: str,
        expected_version: int | None = None,
    ) -> Alias:
        alias, version = check_alias(alias), check_version(version)
        reason = check_reason(reason, f"move alias {alias!r}")
        expected = _rows.checked_expected(expected_version)
        if alias in self.protected_aliases:
            raise Forbidden(
                f"Alias {alias!r} is protected: request the move (ml.request_alias or "
                f"'modelloop models request-alias {name} {alias} {version} --reason ...') and "
                "have another user approve it"
            )
        with audit.recording(self.db, actor) as conn:
            _rows.move_alias(conn, name, alias, version, actor, reason, expected)
        return _rows.load_alias(self.db, name, alias)

    def delete_alias(
        self,
        name: str,
        alias: str,
        *,
        actor: str,
        reason: str,
        expected_version: int | None = None,
    ) -> None:
        alias = check_alias(alias)
        reason = check_reason(reason, f"delete alias {alias!r}")
        expected = _rows.checked_expected(expected_version)
        if alias in self.protected_aliases:
            raise Forbidden(
                f"Alias {alias!r} is protected: it moves only through an approved request and "
                "cannot be deleted (remove it from MODELLOOP_PROTECTED_ALIASES first)"
            )
        with audit.recording(self.db, actor) as conn:
            _rows.require_model(conn, name)
            current = _rows.alias_version(conn, name, alias)
            if current is None:
                raise NotFound(f"Model {name!r} has no alias {alias!r}")
            _rows.check_expected(name, alias, current, expected)
            conn.execute(
                delete(t.aliases).where(t.aliases.c.name == name, t.aliases.c.alias == alias)
            )
            audit.append(
                conn,
                time=now_ms(),
                actor=actor,
                action="alias.delete",
                object_type="alias",
                object_id=f"{name}@{alias}",
                before={"version": current},
                after=None,
                reason=reason,
            )

    # -- audit -------------------------------------------------------------------------------

    def audit_events(self, model: str | None = None, limit: int | None = None) -> list[AuditEvent]:
        if limit is not None and limit < 1:
            raise InvalidArgument(f"limit must be at least 1, got {limit}")
        return audit.events(self.db, model=model, limit=limit)

    def verify_audit(self, anchor: tuple[int, str] | None = None) -> AuditVerification:
        return audit.verify(self.db, anchor)
