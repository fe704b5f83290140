"""Deployments on a SQL database (SQLite or PostgreSQL): the ``deployments`` table.

Each deployment is one JSON document (:meth:`Deployment.to_record`) written through
:func:`modelloop.configs.save` and :func:`modelloop.configs.remove`, so every change is an audit
event (``deployment.apply`` / ``deployment.delete``, with the document before and after) in the
transaction that makes it, and applying the same document again records nothing.
"""

from __future__ import annotations

import builtins
import json
from typing import Any

from modelloop import configs
from modelloop.errors import NotFound
from modelloop.registry.entities import ModelVersion, parse_model_uri
from modelloop.registry.sql import SqlRegistryStore
from modelloop.registry.store import RegistryStore
from modelloop.serving.deployment import (
    Deployment,
    ModelRef,
    StoredDeployment,
    check_deployment_name,
    parse_deployment,
)
from modelloop.store import Database
from modelloop.store import tables as t

_KIND = "deployment"


class SqlDeploymentStore:
    """Implements :class:`~modelloop.serving.store.DeploymentStore` on a :class:`Database`.
    ``models`` is where the models a deployment names are looked up: by default the registry
    in the same database."""

    def __init__(self, db: Database, *, models: RegistryStore | None = None) -> None:
        self.db = db
        self._models: RegistryStore = models if models is not None else SqlRegistryStore(db)

    def __repr__(self) -> str:
        return f"SqlDeploymentStore({self.db!r})"

    def close(self) -> None:
        """The database is shared process-wide (see ``open_database``); nothing to release."""

    def apply(self, deployment: Deployment, *, actor: str) -> bool:
        self._check_models(deployment)
        record = deployment.to_record()
        return configs.save(
            self.db, t.deployments, deployment.name, lambda _: record, actor=actor, kind=_KIND
        )

    def get(self, name: str) -> StoredDeployment:
        rows = configs.stored(self.db, t.deployments, check_deployment_name(name))
        if not rows:
            raise NotFound(
                f"No deployment named {name!r}: create it with 'modelloop deployments apply'"
            )
        return _stored(rows[0])

    def list(self) -> builtins.list[StoredDeployment]:
        return [_stored(row) for row in configs.stored(self.db, t.deployments)]

    def delete(self, name: str, *, actor: str) -> bool:
        name = check_deployment_name(name)
        named_by = {"monitor": (t.monitors, "deployment"), "policy": (t.policies, "deployment")}
        return configs.remove(
            self.db, t.deployments, name, actor=actor, kind=_KIND, named_by=named_by
        )

    def _check_models(self, deployment: Deployment) -> None:
        """NotFound unless every model the deployment names resolves in the registry now, with
        one detail per model that does not (and the aliases or versions it has)."""
        refs = {"model": deployment.model, "challenger": deployment.challenger}
        problems = []
        for field, ref in refs.items():
            if ref is None:
                continue
            try:
                _resolve(self._models, ref)
            except NotFound as exc:
                problems.append(
                    {"field": field, "message": exc.message + _choices(self._models, ref)}
                )
        if problems:
            lines = "; ".join(f"{p['field']} {refs[p['field']]}: {p['message']}" for p in problems)
            raise NotFound(
                f"Deployment {deployment.name!r} names no model to serve: {lines}", problems
            )


def _resolve(models: RegistryStore, ref: ModelRef) -> ModelVersion:
    """The version ``ref`` names now (as ``Registry.resolve_model_uri`` reads its URI)."""
    uri = parse_model_uri(ref.uri)
    if uri.alias is not None:
        return models.get_version_by_alias(uri.name, uri.alias)
    assert uri.version is not None  # a ModelRef names an alias or a version
    return models.get_model_version(uri.name, uri.version)


def _choices(models: RegistryStore, ref: ModelRef) -> str:
    """What the model does have, when it exists: its aliases, or its versions."""
    try:
        model = models.get_registered_model(ref.name)
    except NotFound:
        return ""
    if ref.alias is not None:
        aliases = ", ".join(f"{a} (v{v})" for a, v in sorted(model.aliases.items()))
        return f" (its aliases: {aliases or 'none yet'})"
    return f" (its latest version is {model.latest_version})"


def _stored(row: Any) -> StoredDeployment:
    config = parse_deployment(json.loads(row.config), f"stored deployment {row.name!r}")
    return StoredDeployment(config, row.updated_at, row.updated_by)
